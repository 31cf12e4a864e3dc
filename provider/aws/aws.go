// Package aws is Kloud's Amazon Web Services provider: credentials are
// access keys checked with STS GetCallerIdentity, a credential's bootstrap
// is a VPC with a public subnet, a security group and a key pair, stacks are
// Terraform templates of aws_instance resources run with the hashicorp/aws
// Terraform provider, and machines are started, stopped and inspected with
// EC2's StartInstances, StopInstances and DescribeInstances through
// aws-sdk-go-v2.
//
// Kloud cannot reach AWS from its tests, and the hashicorp/aws Terraform
// provider cannot be downloaded there either: the tests run the real SDK
// clients against awssim, a simulator of the EC2 and STS Query APIs on
// loopback (selected by the credential's endpoint field), and stop at
// composition for Terraform (golden files of the generated files; no
// terraform validate or apply). TestRealAWS runs the credential check
// against the real API when KLOUD_TEST_AWS=1 and AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_REGION are set.
package aws

import (
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"

	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
)

// The provider's identity.
const (
	Name         = "aws"
	ResourceName = "instance"
	// Source is the Terraform provider; Version its constraint (the
	// default_tags, endpoints and user_data handling used here are
	// those of 5.x and 6.x).
	Source  = "hashicorp/aws"
	Version = ">= 5.0"
)

// Defaults of Options.
const (
	DefaultMaxAttempts     = 5
	DefaultMaxBackoff      = 20 * time.Second
	DefaultPollInterval    = 5 * time.Second
	DefaultMaxPollInterval = 30 * time.Second
	DefaultStartTimeout    = 10 * time.Minute
	DefaultStopTimeout     = 10 * time.Minute
	DefaultHTTPTimeout     = 30 * time.Second
)

// Options tune how the provider talks to AWS. The zero value is what Kloud
// registers; tests shorten the waits and inject a clock.
type Options struct {
	// HTTPClient carries the SDK's requests; a client with
	// DefaultHTTPTimeout when nil.
	HTTPClient *http.Client
	// MaxAttempts is how many times the SDK tries one call that fails
	// with a retryable error (throttling, 5xx, a connection error)
	// before it gives up; DefaultMaxAttempts when zero.
	MaxAttempts int
	// Backoff is the SDK's delay between those attempts; exponential
	// with jitter up to DefaultMaxBackoff when nil.
	Backoff retry.BackoffDelayer
	// PollInterval is the first wait between DescribeInstances calls while
	// a machine starts or stops; it doubles after a call that was
	// throttled (or failed transiently) up to MaxPollInterval.
	PollInterval, MaxPollInterval time.Duration
	// StartTimeout and StopTimeout bound the wait for running and
	// stopped.
	StartTimeout, StopTimeout time.Duration
	// Now and After are the clock of the waits (time.Now and time.After
	// when nil).
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
}

func (o Options) withDefaults() Options {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.MaxPollInterval < o.PollInterval {
		o.MaxPollInterval = max(DefaultMaxPollInterval, o.PollInterval)
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	return o
}

// Schema creates the aws provider's persisted values.
var Schema = &provider.Schema{
	NewCredential: func() any { return &Credential{} },
	NewBootstrap:  func() any { return &Bootstrap{} },
	NewMetadata:   func(*stack.Machine) any { return &Metadata{} },
}

// New returns the provider's registration with opts.
func New(opts Options) *provider.Provider {
	opts = opts.withDefaults()
	return &provider.Provider{
		Name:          Name,
		ResourceName:  ResourceName,
		Source:        Source,
		Version:       Version,
		Userdata:      "user_data",
		CheckTemplate: CheckTemplate,
		Machine: func(bm *provider.BaseMachine) (provider.Machine, error) {
			return &Machine{BaseMachine: bm, opts: opts}, nil
		},
		Stack: func(bs *provider.BaseStack) (provider.Stack, error) {
			return &Stack{BaseStack: bs, opts: opts}, nil
		},
		Schema: Schema,
	}
}

// Provider is the registration Kloud uses: New with default options.
func Provider() *provider.Provider { return New(Options{}) }

func init() { provider.MustRegister(Provider()) }
