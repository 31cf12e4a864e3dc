// Package stack holds Kloud's domain types (credentials, templates, stacks,
// machines and their state history) and the Stack and Machine interfaces
// every provider implements. It links no Terraform code: template parsing,
// policy, composition and the runner live in stack/terraform.
package stack

import (
	"context"
	"encoding/json"
	"time"

	"github.com/kloud/kloud/internal/secretmask"
	"github.com/kloud/kloud/machinestate"
)

// Secret is a string that must never be shown: printing it or encoding it as
// JSON yields a mask. Decoding JSON into a Secret keeps the value.
type Secret string

const secretMask = secretmask.Mask

// String masks the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return secretMask
}

// GoString masks the secret for %#v.
func (s Secret) GoString() string { return s.String() }

// MarshalJSON masks the secret.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// Reveal returns the secret's value, for the one place that must pass it on
// (a TF_VAR_ environment variable, an SDK client).
func (s Secret) Reveal() string { return string(s) }

// Credential is a user's account with a provider. Data is the JSON the user
// gave, checked against the provider's credential schema; Bootstrap is the
// JSON of the provider's bootstrap outputs. Both are encrypted at rest and
// never leave the server.
type Credential struct {
	ID           string          `json:"id"`
	OwnerID      string          `json:"owner_id"`
	Provider     string          `json:"provider"`
	Title        string          `json:"title"`
	Data         json.RawMessage `json:"-"`
	Bootstrap    json.RawMessage `json:"-"`
	Verified     bool            `json:"verified"`
	VerifyMsg    string          `json:"verify_message,omitempty"`
	Bootstrapped bool            `json:"bootstrapped"`
	CreatedAt    time.Time       `json:"created_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
}

// Format is the syntax of a template.
type Format string

// The template formats.
const (
	FormatHCL  Format = "hcl"
	FormatJSON Format = "json"
)

// Template is a Terraform configuration. A user's template holds the file as
// written (Content). A composed template, as a provider's ApplyTemplate or
// BootstrapTemplates returns it, also holds the files Kloud generated to sit
// beside it and the secret variables that reach Terraform only through the
// environment.
type Template struct {
	ID        string    `json:"id"`
	OwnerID   string    `json:"owner_id"`
	Title     string    `json:"title"`
	Provider  string    `json:"provider"`
	Format    Format    `json:"format"`
	Content   string    `json:"content"`
	CreatedAt time.Time `json:"created_at"`
	// ActiveVersion is the version new stacks use; Format and Content are
	// that version's (0 reads as 1, the version a template starts with).
	ActiveVersion int `json:"active_version,omitempty"`

	// Generated maps a file name to the content Kloud writes beside the
	// user's file (provider block, variables, *_override.tf.json).
	Generated map[string][]byte `json:"-"`
	// Env holds variables passed as TF_VAR_<name>; values are secrets.
	Env map[string]Secret `json:"-"`
	// ProviderEnv holds environment variables for Terraform and its
	// provider plugins, for provider settings that must not be recorded in
	// a saved plan file (a per-run token): a variable's value is, an
	// environment variable the plugin reads is not.
	ProviderEnv map[string]Secret `json:"-"`
	// KloudAttributes names the attributes Kloud injects into every
	// machine for itself (its URL, the agent's token): their lines are
	// kept out of the plan output the user reads.
	KloudAttributes []string `json:"-"`
}

// FileName is the name the user's content is written under.
func (t *Template) FileName() string {
	if t.Format == FormatJSON {
		return "main.tf.json"
	}
	return "main.tf"
}

// Stack is a set of machines built from one template with one credential.
type Stack struct {
	ID           string                  `json:"id"`
	OwnerID      string                  `json:"owner_id"`
	Title        string                  `json:"title"`
	TemplateID   string                  `json:"template_id"`
	CredentialID string                  `json:"credential_id"`
	Provider     string                  `json:"provider"`
	Variables    map[string]string       `json:"variables"`
	Status       machinestate.StackState `json:"status"`
	Reason       string                  `json:"reason,omitempty"`
	CreatedAt    time.Time               `json:"created_at"`
	UpdatedAt    time.Time               `json:"updated_at"`

	// TemplateVersion is the version of the template the stack's next
	// plan or apply uses (0 reads as 1).
	TemplateVersion int `json:"template_version,omitempty"`
}

// Machine is one machine of a stack, as Terraform built it.
type Machine struct {
	ID       string             `json:"id"`
	StackID  string             `json:"stack_id"`
	OwnerID  string             `json:"owner_id"`
	Provider string             `json:"provider"`
	Label    string             `json:"label"` // Terraform address, e.g. sandbox_machine.web[0]
	State    machinestate.State `json:"state"`
	Reason   string             `json:"reason,omitempty"`
	AlwaysOn bool               `json:"always_on"`
	Metadata json.RawMessage    `json:"metadata,omitempty"`
	// AgentTokenHash is the hash of the machine agent's own token.
	AgentTokenHash string    `json:"-"`
	LastSeen       time.Time `json:"last_seen,omitzero"`
	// LastActivity is when the machine was last in use (terminal input,
	// an attached terminal, the agent's sign of work); zero when never.
	LastActivity time.Time `json:"last_activity,omitzero"`
	// AgentVersion is the version the agent last reported.
	AgentVersion string `json:"agent_version,omitempty"`
	// StateSince is when the machine entered its current state, and
	// UptimeBase the time it spent Running before that; the store keeps
	// both with every state change, so uptime needs no history read.
	StateSince time.Time     `json:"state_since,omitzero"`
	UptimeBase time.Duration `json:"-"`
	CreatedAt  time.Time     `json:"created_at"`
	UpdatedAt  time.Time     `json:"updated_at"`
}

// Uptime is the time the machine has spent Running up to now.
func (m *Machine) Uptime(now time.Time) time.Duration {
	up := m.UptimeBase
	if m.State == machinestate.Running && now.After(m.StateSince) {
		up += now.Sub(m.StateSince)
	}
	return up
}

// StateRecord is one change of a machine's state. A machine's records, in
// order, are the source of truth for its uptime.
type StateRecord struct {
	MachineID string             `json:"machine_id"`
	State     machinestate.State `json:"state"`
	Reason    string             `json:"reason,omitempty"`
	At        time.Time          `json:"at"`
}

// Interface is what a provider's stack implements: the credential check, the
// persistent per-credential resources, and the composition of a user's
// template into one Terraform can run.
type Interface interface {
	VerifyCredential(ctx context.Context, c *Credential) error
	BootstrapTemplates(ctx context.Context, c *Credential) ([]*Template, error)
	ApplyTemplate(ctx context.Context, c *Credential) (*Template, error)
}

// MachineInterface is what a provider's machine implements. Metadata returned
// is the provider's Schema.NewMetadata type, to be stored with the machine.
type MachineInterface interface {
	Start(ctx context.Context) (metadata any, err error)
	Stop(ctx context.Context) (metadata any, err error)
	Info(ctx context.Context) (state machinestate.State, metadata any, err error)
}
