package jobs

// RunningCount is how many jobs the engine still knows as running (and
// whose secrets it keeps), for the external tests.
func (e *Engine) RunningCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.running)
}

// LeaseLostReason is the reason a job whose lease was lost stops with.
var LeaseLostReason = errLeaseLost.reason
