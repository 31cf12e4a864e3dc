package store

import (
	"context"

	"github.com/kloud/kloud/errdefs"
)

// ErrUnavailable: the backend cannot be reached now (errdefs.ErrUnavailable).
var ErrUnavailable = errdefs.ErrUnavailable

// Readiness is what a backend tells a readiness probe.
type Readiness interface {
	// Ready returns nil when the backend answers and its schema is the one
	// this binary writes (every migration applied); otherwise an error
	// saying which, wrapping ErrUnavailable when it cannot be reached.
	Ready(ctx context.Context) error
}
