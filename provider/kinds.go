package provider

import "errors"

// The kinds of failure Kloud (and the conformance suite,
// provider/providertest) tells apart without knowing the provider. A
// provider's own sentinel errors match them through Kind, so callers can
// branch on either.
var (
	// ErrCredentialRefused: the provider's endpoint answered and refused
	// the credential (an unknown key, a wrong secret, a revoked token, a
	// place the credential may not use).
	ErrCredentialRefused = errors.New("credential refused")
	// ErrUnreachable: the provider's endpoint did not answer (connection
	// refused, DNS, timeout, a host that is not running).
	ErrUnreachable = errors.New("provider endpoint unreachable")
	// ErrNotImplemented: the provider does not do this yet. A scaffolded
	// provider's methods return it until they are written.
	ErrNotImplemented = errors.New("not implemented")
)

// Kind returns a provider's own sentinel error reading msg that also
// matches kind (ErrCredentialRefused, ErrUnreachable) with errors.Is:
//
//	ErrBadToken = provider.Kind("acme refused the token", provider.ErrCredentialRefused)
func Kind(msg string, kind error) error { return &kindError{msg: msg, kind: kind} }

type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }

// Is matches the kind; the error itself is matched by identity.
func (e *kindError) Is(target error) bool { return target == e.kind }
