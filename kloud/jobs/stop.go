package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// stopCause is why a job's (or a plan's) context ended before its work did:
// its timeout, a cancel, the server's shutdown, a lost lease. Its text is
// the job's error.
type stopCause struct{ reason string }

func (c *stopCause) Error() string { return c.reason }

var (
	errLeaseLost = &stopCause{"the job's lease was lost; another replica owns the job now"}
	errShutdown  = &stopCause{"interrupted by server shutdown"}
)

// TimedOut is the cause of a context that ended when the timeout d of kind
// (a job kind, or "plan") passed.
func TimedOut(d time.Duration, kind string) error {
	return &stopCause{fmt.Sprintf("timed out after %s (job timeout for %s)", d, kind)}
}

// StopReason returns why ctx was stopped, when its timeout, a cancel, the
// server's shutdown or a lost lease ended it.
func StopReason(ctx context.Context) (string, bool) {
	var c *stopCause
	if ctx.Err() != nil && errors.As(context.Cause(ctx), &c) {
		return c.reason, true
	}
	return "", false
}
