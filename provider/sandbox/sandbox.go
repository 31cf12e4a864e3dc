// Package sandbox is Kloud's side of the sandbox provider, the embedded
// default: a machine is a directory under its credential's directory (its
// disk) plus a confined klient process (its CPU). Host is the sandbox
// "cloud" Kloud runs: the machines of every credential and the control API
// the plugin (kloud.local/kloud/sandbox, resource sandbox_machine) reaches
// with a token granted per run. This package also checks credentials,
// bootstraps them, composes templates, and starts, stops and inspects
// machines through the Host.
package sandbox

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
)

// The provider's identity.
const (
	Name         = "sandbox"
	ResourceName = "machine"
	Source       = "kloud.local/kloud/sandbox"
	// Region and Image are what every sandbox machine reports (the rating
	// bridge groups usage by them).
	Region = "local"
	Image  = "sandbox"
	// SubDir is the data dir's default under Kloud's own data dir.
	SubDir = "sandbox"
)

// Provider is the sandbox provider's registration.
func Provider() *provider.Provider {
	return &provider.Provider{
		Name:          Name,
		ResourceName:  ResourceName,
		Source:        Source,
		Userdata:      "user_data",
		NoCloudInit:   true,
		CheckTemplate: CheckTemplate,
		// The agent's process id, address and running state follow
		// Kloud's own start and stop.
		ObservedAttributes: []string{"pid", "address", "state"},
		Machine:            func(bm *provider.BaseMachine) (provider.Machine, error) { return &Machine{BaseMachine: bm}, nil },
		Stack:              func(bs *provider.BaseStack) (provider.Stack, error) { return &Stack{BaseStack: bs}, nil },
		Schema:             Schema,
	}
}

func init() { provider.MustRegister(Provider()) }

// Schema creates the sandbox provider's persisted values.
var Schema = &provider.Schema{
	NewCredential: func() any { return &Credential{} },
	NewBootstrap:  func() any { return &Bootstrap{} },
	NewMetadata:   func(*stack.Machine) any { return &Metadata{Region: Region, Image: Image} },
}

// Credential is a sandbox account: where its machines live on Kloud's host.
type Credential struct {
	// DataDir holds the machines (machines/<id>/) and the bootstrap record;
	// <sandbox root>/<credential id> when empty. Only an admin may set it,
	// and only inside the sandbox root (or an allowed root).
	DataDir string `json:"data_dir,omitempty" kloud:"Data directory"`
}

// Valid refuses a data dir that is not a clean absolute path.
func (c *Credential) Valid() error {
	if c.DataDir == "" {
		return nil
	}
	switch {
	case strings.ContainsAny(c.DataDir, "\x00\n"):
		return &provider.FieldError{Field: "data_dir", Message: "must be a path on one line"}
	case !filepath.IsAbs(c.DataDir):
		return &provider.FieldError{Field: "data_dir", Message: fmt.Sprintf("%q must be an absolute path", c.DataDir)}
	case filepath.Clean(c.DataDir) != c.DataDir:
		return &provider.FieldError{Field: "data_dir", Message: fmt.Sprintf("%q is not clean; use %q", c.DataDir, filepath.Clean(c.DataDir))}
	}
	return nil
}

// Bootstrap is a credential's persistent record, made by the bootstrap
// template: the network its machines are grouped in and a key id
// generated once (the id of a terraform_data resource).
type Bootstrap struct {
	Network string `json:"network" kloud:"Network"`
	KeyID   string `json:"key_id" kloud:"Key ID"`
}

// Metadata is what Kloud stores about a sandbox machine. Its JSON names
// match sandbox_machine's state attributes (id, pid, address, size), so the
// machine's Terraform state decodes into it.
type Metadata struct {
	ID      string `json:"id"`
	PID     int    `json:"pid"`
	Address string `json:"address"`
	Size    string `json:"size"`
	// DataDir is no longer filled (a machine's directory follows from its
	// credential); kept so older records decode.
	DataDir string `json:"data_dir,omitempty"`
	Region  string `json:"region"`
	Image   string `json:"image"`
}

// ErrNoHost is returned when Kloud runs no sandbox Host (BaseStack and
// BaseMachine carry it as their Service).
var ErrNoHost = provider.Kind("the sandbox host is not running in this Kloud", provider.ErrUnreachable)

// hostOf returns the Host a BaseStack or BaseMachine carries.
func hostOf(svc any) (*Host, error) {
	h, ok := svc.(*Host)
	if !ok || h == nil {
		return nil, ErrNoHost
	}
	return h, nil
}

// The variables that carry the control API's endpoint and the run's token
// to the plugin's provider block.
const (
	EndpointVar = "kloud_sandbox_endpoint"
	TokenVar    = "kloud_sandbox_token"
	// TokenEnv is the environment variable the plugin reads the run's
	// token from: it is not a Terraform variable, so a saved plan does not
	// record a token that is revoked once the plan's run ends.
	TokenEnv = "KLOUD_SANDBOX_TOKEN"
)

// providerAttrs are the provider "sandbox" arguments Kloud sets; a
// template may not set them.
var providerAttrs = []string{"endpoint", "token", "data_dir"}

// CheckTemplate refuses a provider "sandbox" block that sets the control
// API's endpoint or token (or the old data_dir): Kloud configures the
// provider for the stack's credential, and for it only.
func CheckTemplate(p *terraform.Parsed) terraform.Diagnostics {
	if p == nil || p.File == nil {
		return nil
	}
	var diags terraform.Diagnostics
	content, _, _ := p.File.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "provider", LabelNames: []string{"name"}}}})
	schema := &hcl.BodySchema{}
	for _, a := range providerAttrs {
		schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: a})
	}
	for _, b := range content.Blocks {
		if b.Labels[0] != Name {
			continue
		}
		pc, _, _ := b.Body.PartialContent(schema)
		for _, name := range providerAttrs {
			if a, ok := pc.Attributes[name]; ok {
				r := a.NameRange
				diags = append(diags, terraform.Diagnostic{File: r.Filename, Line: r.Start.Line, Column: r.Start.Column, Severity: terraform.SeverityError,
					Message: fmt.Sprintf(`provider "sandbox" sets %s: Kloud configures the sandbox provider for the stack's credential itself`, name)})
			}
		}
	}
	return diags
}
