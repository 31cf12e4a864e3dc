package sqlite

import (
	"context"
	"log/slog"
	"testing"

	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/secretbox"
	"github.com/kloud/kloud/store/storetest"
)

func openTest(t testing.TB, dir string, opts ...Option) *Store {
	t.Helper()
	opts = append([]Option{WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	s, err := Open(context.Background(), dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	t.Setenv(secretbox.EnvKey, "")
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t, t.TempDir()) })
}
