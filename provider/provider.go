// Package provider is Kloud's plugin API: a cloud provider registers a
// Provider with its schema (credential, bootstrap and metadata types) and the
// constructors of its Stack and Machine, and Kloud drives it through them.
// BaseStack and BaseMachine carry the work every provider shares.
package provider

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
)

// Stack is what a provider's stack implements (see stack.Interface).
type Stack = stack.Interface

// Machine is what a provider's machine implements (see stack.MachineInterface).
type Machine = stack.MachineInterface

// Validator is implemented by schema values that can check themselves; Valid
// is called after a value is read (from a request or from the store).
type Validator interface {
	Valid() error
}

// Schema creates the values a provider persists.
type Schema struct {
	// NewCredential returns a pointer to the provider's credential struct.
	NewCredential func() any
	// NewBootstrap returns a pointer to the provider's bootstrap outputs struct.
	NewBootstrap func() any
	// NewMetadata returns a pointer to the provider's machine metadata struct.
	NewMetadata func(*stack.Machine) any
}

// Provider describes one cloud provider plugin.
type Provider struct {
	// Name is the provider's name, also the Terraform provider's local name.
	Name string
	// ResourceName is the Terraform resource type of a machine without the
	// provider prefix: "instance" for aws_instance.
	ResourceName string
	// Userdata is the name of the resource attribute the agent's start-up
	// script is injected into ("user_data").
	Userdata string
	// NoCloudInit is true when Userdata is a plain shell script, not
	// cloud-init.
	NoCloudInit bool
	// Source is the Terraform provider source address
	// ("hashicorp/aws", "kloud.local/kloud/sandbox").
	Source string
	// Version is the Terraform provider version constraint, if any.
	Version string

	// CheckTemplate, when set, refuses what this provider cannot take in a
	// user's template (a literal credential, a machine without a required
	// argument), each refusal with its place; Kloud calls it when a
	// template is created, so the 422 comes before any apply.
	CheckTemplate func(*terraform.Parsed) terraform.Diagnostics

	// ObservedAttributes are machine attributes the provider reads from
	// the real machine (its process, its power state) rather than from the
	// template: a refresh that changes only these is no drift.
	ObservedAttributes []string

	Machine func(*BaseMachine) (Machine, error)
	Stack   func(*BaseStack) (Stack, error)
	Schema  *Schema
}

// TerraformType is the Terraform resource type of the provider's machines.
func (p *Provider) TerraformType() string { return p.Name + "_" + p.ResourceName }

// PolicyOptions are the template policy's options for a template of p:
// p's own Terraform provider (its Name as the local name, its Source) is
// the only one allowed besides Terraform's builtin. Another registered
// provider is not allowed either: Kloud configures only the stack's
// provider, so another would run with the ambient credentials of Kloud's
// host.
func (p *Provider) PolicyOptions() terraform.PolicyOptions {
	return terraform.PolicyOptions{AllowedProviders: map[string]string{p.Name: p.Source}}
}

// Sentinel errors of the registry.
var (
	ErrInvalidProvider = errors.New("invalid provider")
	ErrDuplicate       = errors.New("provider already registered")
	ErrUnknownProvider = errors.New("unknown provider")
)

// registry is the one piece of package-level mutable state Kloud allows: the
// providers that registered themselves at init.
var registry = struct {
	sync.RWMutex
	m map[string]*Provider
}{m: make(map[string]*Provider)}

// Register adds p to the registry. It refuses a nil provider, an empty name,
// a provider with no constructors or schema, and a name already taken.
func Register(p *Provider) error {
	switch {
	case p == nil:
		return fmt.Errorf("register provider: %w: nil", ErrInvalidProvider)
	case p.Name == "":
		return fmt.Errorf("register provider: %w: empty name", ErrInvalidProvider)
	case p.Machine == nil || p.Stack == nil:
		return fmt.Errorf("register provider %s: %w: Machine and Stack constructors are required", p.Name, ErrInvalidProvider)
	case p.Schema == nil || p.Schema.NewCredential == nil:
		return fmt.Errorf("register provider %s: %w: Schema.NewCredential is required", p.Name, ErrInvalidProvider)
	}
	registry.Lock()
	defer registry.Unlock()
	if _, ok := registry.m[p.Name]; ok {
		return fmt.Errorf("register provider %s: %w", p.Name, ErrDuplicate)
	}
	registry.m[p.Name] = p
	return nil
}

// MustRegister is Register for a provider package's init; it panics on a
// programming error, never on user input.
func MustRegister(p *Provider) {
	if err := Register(p); err != nil {
		panic(err)
	}
}

// Get returns the provider registered under name.
func Get(name string) (*Provider, error) {
	registry.RLock()
	defer registry.RUnlock()
	p, ok := registry.m[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownProvider, name)
	}
	return p, nil
}

// All returns every registered provider sorted by name.
func All() []*Provider {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]*Provider, 0, len(registry.m))
	for _, p := range registry.m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// unregister removes a provider; tests use it to keep the registry clean.
func unregister(name string) {
	registry.Lock()
	defer registry.Unlock()
	delete(registry.m, name)
}
