package storetest

import (
	"errors"
	"strings"
	"testing"

	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/secretbox"
)

// KeyOpener opens one and the same database on every call, sealing
// secrets with the key passphrase names (secretbox.FromPassphrase). The
// caller closes what it returns.
type KeyOpener func(t *testing.T, passphrase string) (store.Store, error)

// RunKeyCheck is the conformance case for secret keys: the database
// records a check value sealed with the key of its first open; an open
// with the same key works, one with another key is refused with
// secretbox.ErrKeyMismatch and a message saying what to do.
func RunKeyCheck(t *testing.T, open KeyOpener) {
	first, err := open(t, "key-of-the-first-replica")
	if err != nil {
		t.Fatalf("first open: %v", err)
	}
	defer first.Close()
	for _, c := range []struct {
		name, key string
		refused   bool
	}{
		{"SameKey", "key-of-the-first-replica", false},
		{"OtherKey", "key-of-another-replica", true},
		{"SameKeyAfterRefusal", "key-of-the-first-replica", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := open(t, c.key)
			if s != nil {
				defer s.Close()
			}
			switch {
			case !c.refused && err != nil:
				t.Fatalf("open with the same key: %v", err)
			case c.refused && !errors.Is(err, secretbox.ErrKeyMismatch):
				t.Fatalf("open with another key: err = %v, want ErrKeyMismatch", err)
			case c.refused && !strings.Contains(err.Error(), "set KLOUD_SECRET_KEY to the key of the other replicas"):
				t.Fatalf("open with another key: %q does not say what to do", err)
			}
		})
	}
}
