package storetest

import (
	"context"
	"testing"

	"github.com/kloud/kloud/store"
)

// readinessCases: a backend that answers readiness probes says a freshly
// opened store is ready (reachable, every migration applied).
var readinessCases = []testCase{
	{"FreshStoreIsReady", func(t *testing.T, s store.Store) {
		r, ok := s.(store.Readiness)
		if !ok {
			t.Skip("the backend has no readiness probe")
		}
		if err := r.Ready(context.Background()); err != nil {
			t.Fatalf("Ready on a fresh store = %v", err)
		}
	}},
}
