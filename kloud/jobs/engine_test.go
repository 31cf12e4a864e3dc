package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/store/sqlite"
)

// The loops' tick intervals in tests: each names its ticker channel.
const (
	claimEvery  = 1 * time.Hour
	followEvery = 2 * time.Hour
	renewEvery  = 3 * time.Hour
	expireEvery = 4 * time.Hour
)

// ticks hands the engine one channel per interval; a test fires them.
type ticks struct {
	mu sync.Mutex
	ch map[time.Duration]chan time.Time
}

func (k *ticks) get(d time.Duration) chan time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ch[d] == nil {
		k.ch[d] = make(chan time.Time)
	}
	return k.ch[d]
}

func (k *ticks) newTicker(d time.Duration) (<-chan time.Time, func()) { return k.get(d), func() {} }

// fire delivers one tick of interval d to the loop waiting on it.
func (k *ticks) fire(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case k.get(d) <- time.Now():
	case <-time.After(30 * time.Second):
		t.Fatalf("nothing took the %v tick", d)
	}
}

type harness struct {
	e     *jobs.Engine
	st    *sqlite.Store
	ticks *ticks
	now   time.Time
	mu    sync.Mutex
	recov []string // ids of jobs Recover was called for
	recCh chan string
}

func newHarness(t *testing.T, exec jobs.Executor, tweak func(*jobs.Config)) *harness {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{st: st, ticks: &ticks{ch: map[time.Duration]chan time.Time{}}, now: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC), recCh: make(chan string, 16)}
	cfg := jobs.Config{
		Store: st, Exec: exec, WorkerID: "w1", Workers: 4, Lease: time.Minute, MaxPerOwner: 4,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Recover: func(_ context.Context, j *jobs.Job, reason string) {
			h.mu.Lock()
			h.recov = append(h.recov, j.ID)
			h.mu.Unlock()
			h.recCh <- j.ID
		},
		Now: func() time.Time { return h.now }, NewTicker: h.ticks.newTicker,
		ClaimPoll: claimEvery, FollowPoll: followEvery, RenewEvery: renewEvery, ExpireEvery: expireEvery,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	if h.e, err = jobs.New(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.e.Close(0)
		_ = st.Close()
	})
	return h
}

func (h *harness) enqueue(t *testing.T, owner, target string) *jobs.Job {
	t.Helper()
	j, err := h.e.Enqueue(context.Background(), &jobs.Job{Kind: jobs.KindApply, OwnerID: owner, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// follow waits, through the engine's follower, for the job to end and
// returns it with its events.
func (h *harness) follow(t *testing.T, id string) (*jobs.Job, []*jobs.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var events []*jobs.Event
	if err := h.e.Follow(ctx, id, 0, func(evs []*jobs.Event) error {
		events = append(events, evs...)
		return nil
	}); err != nil {
		t.Fatalf("follow job %s: %v", id, err)
	}
	j, err := h.st.GetJob(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j, events
}

func messages(events []*jobs.Event) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "%s %d %s\n", e.Kind, e.Percentage, e.Message)
	}
	return b.String()
}

// blockUntilStopped is a job's work that says it started and runs until
// its context ends.
func blockUntilStopped(ctx context.Context, _ *jobs.Run, started chan<- struct{}) error {
	close(started)
	<-ctx.Done()
	return ctx.Err()
}

// TestEngineOutcomes runs one job to each of its ends: what the job's
// status, error and events say, with its secrets masked.
func TestEngineOutcomes(t *testing.T) {
	const secret = "hunter22-secret"
	tests := []struct {
		name      string
		exec      func(ctx context.Context, run *jobs.Run, started chan<- struct{}) error
		timeout   time.Duration
		act       func(t *testing.T, h *harness, j *jobs.Job) // once the job runs
		want      jobs.Status
		wantError string
		wantEvent string
	}{
		{
			name: "succeeds",
			exec: func(ctx context.Context, run *jobs.Run, _ chan<- struct{}) error {
				run.Secrets.Add(secret)
				run.Progress(ctx, 50, "half way with "+secret)
				run.Event(ctx, jobs.EventOutput, 50, `{"token":"`+secret+`"}`)
				return nil
			},
			want:      jobs.StatusSucceeded,
			wantEvent: "progress 50 half way with ********",
		},
		{
			name: "fails, its secret masked",
			exec: func(ctx context.Context, run *jobs.Run, _ chan<- struct{}) error {
				run.Secrets.Add(secret)
				return fmt.Errorf("apply: bad token %s", secret)
			},
			want:      jobs.StatusFailed,
			wantError: "apply: bad token ********",
			wantEvent: "error 0 apply: bad token ********",
		},
		{
			name: "times out",
			exec: func(ctx context.Context, run *jobs.Run, _ chan<- struct{}) error {
				<-ctx.Done()
				return fmt.Errorf("terraform apply: %w", ctx.Err())
			},
			timeout:   time.Nanosecond,
			want:      jobs.StatusFailed,
			wantError: "timed out after 1ns (job timeout for apply)",
			wantEvent: "error 0 timed out after 1ns (job timeout for apply) (terraform apply: context deadline exceeded)",
		},
		{
			name: "cancelled here",
			exec: blockUntilStopped,
			act: func(t *testing.T, h *harness, j *jobs.Job) {
				if _, err := h.e.Cancel(context.Background(), j.ID, "alice"); err != nil {
					t.Fatal(err)
				}
			},
			want:      jobs.StatusFailed,
			wantError: "cancelled by alice",
		},
		{
			name: "cancelled through the store, seen at the lease renewal",
			exec: blockUntilStopped,
			act: func(t *testing.T, h *harness, j *jobs.Job) {
				if _, err := h.st.CancelJob(context.Background(), j.ID, "cancelled by bob", h.now); err != nil {
					t.Fatal(err)
				}
				h.ticks.fire(t, renewEvery)
			},
			want:      jobs.StatusFailed,
			wantError: "cancelled by bob",
		},
		{
			name: "interrupted at shutdown",
			exec: blockUntilStopped,
			act: func(t *testing.T, h *harness, j *jobs.Job) {
				go h.e.Close(0)
			},
			want:      jobs.StatusFailed,
			wantError: "interrupted by server shutdown",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := make(chan struct{})
			h := newHarness(t, func(ctx context.Context, run *jobs.Run) error { return tt.exec(ctx, run, started) }, func(c *jobs.Config) {
				if tt.timeout > 0 {
					c.Timeout = func(string) time.Duration { return tt.timeout }
				}
			})
			h.e.Start()
			j := h.enqueue(t, "u1", "stack/s1")
			if tt.act != nil {
				select {
				case <-started:
				case <-time.After(30 * time.Second):
					t.Fatal("the job never started")
				}
				tt.act(t, h, j)
			}
			got, events := h.follow(t, j.ID)
			if got.Status != tt.want || got.Error != tt.wantError {
				t.Errorf("job = %s %q, want %s %q", got.Status, got.Error, tt.want, tt.wantError)
			}
			msgs := messages(events)
			if strings.Contains(msgs, secret) {
				t.Errorf("a secret is in the events:\n%s", msgs)
			}
			if tt.wantEvent != "" && !strings.Contains(msgs, tt.wantEvent+"\n") {
				t.Errorf("events lack %q:\n%s", tt.wantEvent, msgs)
			}
			for _, want := range []string{"phase 0 queued apply\n", "phase 0 running apply on w1\n", "done 100 " + string(tt.want) + "\n"} {
				if !strings.Contains(msgs, want) {
					t.Errorf("events lack %q:\n%s", want, msgs)
				}
			}
			if left := h.e.RunningCount(); left != 0 {
				t.Errorf("%d jobs still known as running (their secrets kept)", left)
			}
		})
	}
}

// TestEngineSecretsScopedToJob: a job's secrets are masked in its own
// events only, and forgotten when it ends.
func TestEngineSecretsScopedToJob(t *testing.T) {
	const secret = "alpha-secret-value"
	added := make(chan struct{})
	h := newHarness(t, func(ctx context.Context, run *jobs.Run) error {
		switch run.Job.Target {
		case "stack/a":
			run.Secrets.Add(secret)
			close(added)
			run.Event(ctx, jobs.EventOutput, 0, "a says "+secret)
		case "stack/b":
			<-added
			run.Event(ctx, jobs.EventOutput, 0, "b says "+secret)
		}
		return nil
	}, nil)
	h.e.Start()
	a := h.enqueue(t, "u1", "stack/a")
	b := h.enqueue(t, "u1", "stack/b")
	_, evA := h.follow(t, a.ID)
	_, evB := h.follow(t, b.ID)
	if msgs := messages(evA); !strings.Contains(msgs, "a says ********") {
		t.Errorf("job a's events:\n%s", msgs)
	}
	if msgs := messages(evB); !strings.Contains(msgs, "b says "+secret) {
		t.Errorf("job b's events were masked with job a's secrets:\n%s", msgs)
	}
	// Job a has ended: an event appended to it now is not masked.
	h.e.Event(context.Background(), a.ID, jobs.EventPhase, 100, "late "+secret)
	evs, err := h.st.ListEvents(context.Background(), a.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if last := evs[len(evs)-1]; last.Message != "late "+secret {
		t.Errorf("after the job, its secrets are still masked: %q", last.Message)
	}
}

// TestEngineFairShare: with one running job per owner, an owner's second
// job waits while another owner's job runs; all end.
func TestEngineFairShare(t *testing.T) {
	started := make(chan string, 8)
	release := make(chan struct{})
	h := newHarness(t, func(ctx context.Context, run *jobs.Run) error {
		started <- run.Job.Target
		<-release
		return nil
	}, func(c *jobs.Config) { c.Workers, c.MaxPerOwner = 4, 1 })
	a1 := h.enqueue(t, "alice", "stack/a1")
	a2 := h.enqueue(t, "alice", "stack/a2")
	b1 := h.enqueue(t, "bob", "stack/b1")
	h.e.Start()
	var first []string
	for range 2 {
		select {
		case s := <-started:
			first = append(first, s)
		case <-time.After(30 * time.Second):
			t.Fatalf("started %v, want two jobs", first)
		}
	}
	slices.Sort(first)
	if !slices.Equal(first, []string{"stack/a1", "stack/b1"}) {
		t.Errorf("first started %v, want alice's first and bob's", first)
	}
	if j, err := h.st.GetJob(context.Background(), a2.ID); err != nil || j.Status != jobs.StatusQueued {
		t.Errorf("alice's second job = %+v, %v; want queued", j, err)
	}
	close(release)
	for _, j := range []*jobs.Job{a1, a2, b1} {
		if got, _ := h.follow(t, j.ID); got.Status != jobs.StatusSucceeded {
			t.Errorf("job %s = %s %q", got.Target, got.Status, got.Error)
		}
	}
}

// TestEngineFailsDeadWorkersJobs: a job whose worker stopped renewing its
// lease is failed at the expiry tick, and at start when this server is the
// store's only user; Recover frees its target.
func TestEngineFailsDeadWorkersJobs(t *testing.T) {
	tests := []struct {
		name  string
		sole  bool
		lease time.Duration // of the dead worker's claim, from the engine's now
		fail  func(t *testing.T, h *harness)
	}{
		{"lease expired, at the expiry tick", false, -time.Minute, func(t *testing.T, h *harness) {
			h.e.Start()
			h.ticks.fire(t, expireEvery)
		}},
		{"lease expired, at start", false, -time.Minute, func(t *testing.T, h *harness) {
			if err := h.e.FailDeadAtStart(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
		{"lease current, at the sole server's start", true, time.Hour, func(t *testing.T, h *harness) {
			if err := h.e.FailDeadAtStart(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(context.Context, *jobs.Run) error { return errors.New("not run here") }, func(c *jobs.Config) { c.SoleServer = tt.sole })
			ctx := context.Background()
			if err := h.st.CreateJob(ctx, &jobs.Job{Kind: jobs.KindApply, OwnerID: "u1", Target: "stack/s1", Status: jobs.StatusQueued, CreatedAt: h.now}); err != nil {
				t.Fatal(err)
			}
			// The dead worker claimed it a while ago.
			claimedAt := h.now.Add(tt.lease - time.Hour)
			j, err := h.st.ClaimJob(ctx, "dead", claimedAt, time.Hour, 4)
			if err != nil {
				t.Fatal(err)
			}
			tt.fail(t, h)
			select {
			case id := <-h.recCh:
				if id != j.ID {
					t.Errorf("recovered %s, want %s", id, j.ID)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the dead worker's job was never recovered")
			}
			got, events := h.follow(t, j.ID)
			if got.Status != jobs.StatusFailed || got.Error == "" {
				t.Errorf("job = %s %q, want failed with a reason", got.Status, got.Error)
			}
			if msgs := messages(events); !strings.Contains(msgs, "error 0 worker dead died; job failed\n") {
				t.Errorf("events:\n%s", msgs)
			}
		})
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	exec := func(context.Context, *jobs.Run) error { return nil }
	tests := []jobs.Config{{}, {Exec: exec, WorkerID: "w"}, {Store: (*sqlite.Store)(nil), WorkerID: "w"}, {Store: (*sqlite.Store)(nil), Exec: exec}}
	for i, cfg := range tests {
		if _, err := jobs.New(cfg); err == nil {
			t.Errorf("config %d: jobs.New accepted it", i)
		}
	}
}

// TestEngineLeaseLost: when the store says another worker took the job (its
// lease expired meanwhile), the work is stopped and this worker records
// nothing more of the job.
func TestEngineLeaseLost(t *testing.T) {
	started := make(chan struct{})
	stopped := make(chan string, 1)
	h := newHarness(t, func(ctx context.Context, run *jobs.Run) error {
		close(started)
		<-ctx.Done()
		reason, _ := jobs.StopReason(ctx)
		stopped <- reason
		return ctx.Err()
	}, nil)
	h.e.Start()
	j := h.enqueue(t, "u1", "stack/s1")
	<-started
	// The expiry pass of another replica, far in the future, fails the job.
	if _, err := h.st.FailExpiredJobs(context.Background(), h.now.Add(24*time.Hour), "expired elsewhere"); err != nil {
		t.Fatal(err)
	}
	h.ticks.fire(t, renewEvery)
	select {
	case reason := <-stopped:
		if reason != jobs.LeaseLostReason {
			t.Errorf("stopped because %q, want the lost lease", reason)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the work was not stopped")
	}
	got, events := h.follow(t, j.ID)
	if got.Status != jobs.StatusFailed || got.Error != "expired elsewhere" {
		t.Errorf("job = %s %q, want the expiry's end kept", got.Status, got.Error)
	}
	if msgs := messages(events); strings.Contains(msgs, "done ") {
		t.Errorf("the worker that lost the lease recorded an end:\n%s", msgs)
	}
}

// TestEngineOutputKeepsOrderInFewWrites: output lines are stored in the
// order given, before any event given after them and before the job's end,
// masked, and many lines given quickly take fewer writes than lines.
func TestEngineOutputKeepsOrderInFewWrites(t *testing.T) {
	const secret = "out-secret-value"
	h := newHarness(t, func(ctx context.Context, run *jobs.Run) error {
		run.Secrets.Add(secret)
		run.Output("a " + secret)
		run.Output("b")
		run.Event(ctx, jobs.EventPhase, 0, "p")
		for i := range 200 {
			run.Output(fmt.Sprint("line ", i))
		}
		run.Progress(ctx, 50, "half")
		run.Output("last")
		return nil
	}, func(cfg *jobs.Config) {
		counted := &countingAppends{Store: cfg.Store}
		cfg.Store = counted
		t.Cleanup(func() {
			// 206 events, of which 203 output lines written as they come.
			n := counted.calls.Load()
			if n >= 150 {
				t.Errorf("%d appends for 206 events: output lines are not batched", n)
			}
			t.Logf("206 events in %d appends", n)
		})
	})
	h.e.Start()
	j := h.enqueue(t, "u1", "stack/a")
	_, evs := h.follow(t, j.ID)
	var want strings.Builder
	want.WriteString("phase 0 queued apply\nphase 0 running apply on w1\noutput 0 a ********\noutput 0 b\nphase 0 p\n")
	for i := range 200 {
		fmt.Fprintf(&want, "output 0 line %d\n", i)
	}
	want.WriteString("progress 50 half\noutput 50 last\ndone 100 succeeded\n")
	if got := messages(evs); got != want.String() {
		t.Fatalf("events:\n%s\nwant\n%s", got, want.String())
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
}

// countingAppends counts the store's AppendEvents calls.
type countingAppends struct {
	jobs.Store
	calls atomic.Int64
}

func (c *countingAppends) AppendEvents(ctx context.Context, jobID string, evs ...*jobs.Event) error {
	c.calls.Add(1)
	return c.Store.AppendEvents(ctx, jobID, evs...)
}
