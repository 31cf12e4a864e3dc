package jobs

import (
	"context"
	"sync"
	"time"
)

// hub tells followers of a job's events that new ones were appended in this
// process; followers of jobs running on other replicas fall back to polling.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

func newHub() *hub { return &hub{subs: make(map[string]map[chan struct{}]struct{})} }

func (h *hub) subscribe(jobID string) (ch chan struct{}, cancel func()) {
	ch = make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs[jobID] == nil {
		h.subs[jobID] = make(map[chan struct{}]struct{})
	}
	h.subs[jobID][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[jobID], ch)
		if len(h.subs[jobID]) == 0 {
			delete(h.subs, jobID)
		}
		h.mu.Unlock()
	}
}

func (h *hub) notify(jobID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[jobID] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Follow passes a job's events after afterSeq to emit, batch by batch as
// they are appended, until the job has ended and every event was passed,
// ctx ends or emit fails. A batch may be empty (emit may flush then).
// Events appended in this process arrive at once; those of jobs running on
// other replicas arrive through the store at the follow poll interval.
func (e *Engine) Follow(ctx context.Context, jobID string, afterSeq int64, emit func([]*Event) error) error {
	notify, unsubscribe := e.events.subscribe(jobID)
	defer unsubscribe()
	poll, stopPoll := e.cfg.NewTicker(e.cfg.FollowPoll)
	defer stopPoll()
	last := afterSeq
	for {
		// Read the job before the events: once it has ended, the events
		// read after hold everything it wrote.
		j, err := e.st.GetJob(ctx, jobID)
		if err != nil {
			return err
		}
		events, err := e.st.ListEvents(ctx, jobID, last, 0)
		if err != nil {
			return err
		}
		if err := emit(events); err != nil {
			return err
		}
		if len(events) > 0 {
			last = events[len(events)-1].Seq
		}
		if !j.Status.Active() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-notify:
		case <-poll:
		}
	}
}

// realTicker is Config.NewTicker's default.
func realTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}
