package provider

import (
	"log/slog"

	"github.com/kloud/kloud/stack"
)

// BaseStack is what Kloud hands a provider's Stack constructor: the stack
// being built (nil for credential-only work such as verify and bootstrap),
// the user's template, the credential with its decoded schema values, and the
// settings every provider's composition needs. Its methods do the shared
// work so a provider does not.
type BaseStack struct {
	Provider *Provider
	Log      *slog.Logger

	// Stack and Template are nil for credential-only work.
	Stack    *stack.Stack
	Template *stack.Template

	// Credential is the stored credential; Cred and Bootstrap are its Data
	// and Bootstrap decoded into the provider's schema types (Bootstrap is
	// nil until the credential was bootstrapped).
	Credential *stack.Credential
	Cred       any
	Bootstrap  any

	// KloudURL is where machine agents reach Kloud; AgentSecret is the
	// stack's secret from which each machine's agent token is derived.
	KloudURL    string
	AgentSecret stack.Secret
}

// BaseMachine is what Kloud hands a provider's Machine constructor: one
// machine with its credential and decoded schema values.
type BaseMachine struct {
	Provider *Provider
	Log      *slog.Logger

	Machine    *stack.Machine
	Credential *stack.Credential
	Cred       any
	Bootstrap  any
	// Metadata is the machine's stored metadata decoded into the provider's
	// Schema.NewMetadata type.
	Metadata any
}
