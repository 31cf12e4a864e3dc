// Package digitalocean is Kloud's DigitalOcean provider: machines are
// droplets (Terraform's digitalocean_droplet, from the
// digitalocean/digitalocean provider). It checks a credential with the
// account call, bootstraps an SSH key Kloud generates and a VPC, composes a
// user's template (token through a sensitive variable, the bootstrap key,
// VPC and region on every droplet, the agent's start-up in the user data,
// Kloud's tags), and starts, stops and inspects droplets through godo.
//
// No cloud is reachable from Kloud's tests: the API calls are tested
// against dosim, an in-repo simulator of the v2 JSON API, through the real
// godo client pointed at it with the credential's endpoint field; the
// Terraform side is tested up to the composed files (golden files), since
// the digitalocean/digitalocean Terraform provider cannot be downloaded
// there. Setting KLOUD_TEST_DO_TOKEN runs the credential check against the
// real API.
package digitalocean

import (
	"github.com/kloud/kloud/provider"
)

// The provider's identity.
const (
	Name         = "digitalocean"
	ResourceName = "droplet"
	Source       = "digitalocean/digitalocean"
	Version      = "~> 2.0"
	// DefaultImage is the image of var.kloud_image, the default a template
	// can name.
	DefaultImage = "ubuntu-24-04-x64"
)

// The droplet actions the provider takes.
const (
	actionPowerOn  = "power_on"
	actionPowerOff = "power_off"
	actionShutdown = "shutdown"
)

// NewProvider returns the digitalocean provider with opts (see Options);
// Kloud registers Provider(), which has the defaults. Tests build their own
// with short intervals and an injected clock.
func NewProvider(opts Options) *provider.Provider {
	o := opts.withDefaults()
	return &provider.Provider{
		Name:          Name,
		ResourceName:  ResourceName,
		Source:        Source,
		Version:       Version,
		Userdata:      "user_data",
		CheckTemplate: templateDiagnostics,
		Machine: func(bm *provider.BaseMachine) (provider.Machine, error) {
			return &Machine{BaseMachine: bm, opts: o}, nil
		},
		Stack:  func(bs *provider.BaseStack) (provider.Stack, error) { return &Stack{BaseStack: bs, opts: o}, nil },
		Schema: Schema,
	}
}

// Provider is the digitalocean provider's registration, with the default
// options.
func Provider() *provider.Provider { return NewProvider(Options{}) }

func init() { provider.MustRegister(Provider()) }
