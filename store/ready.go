package store

import (
	"context"
	"errors"
)

// ErrUnavailable: the backend cannot be reached now (connection lost,
// server down, timeout); the same call may succeed later. The API answers
// it with 503 and Retry-After.
var ErrUnavailable = errors.New("store unavailable")

// Readiness is what a backend tells a readiness probe.
type Readiness interface {
	// Ready returns nil when the backend answers and its schema is the one
	// this binary writes (every migration applied); otherwise an error
	// saying which, wrapping ErrUnavailable when it cannot be reached.
	Ready(ctx context.Context) error
}
