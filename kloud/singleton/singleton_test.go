package singleton_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/kloud/singleton"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/sqlite"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// reportingLeases tells the test the answer of every AcquireLease, so it
// knows a tick was handled without waiting on time.
type reportingLeases struct {
	singleton.Leases
	acquired chan error
}

func (r reportingLeases) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (*store.Lease, error) {
	l, err := r.Leases.AcquireLease(ctx, name, holder, now, ttl)
	r.acquired <- err
	return l, err
}

// replica is one running loop, driven by hand: it ticks when the test
// sends a tick, and its pass reports that it ran.
type replica struct {
	loop     *singleton.Loop
	ticks    chan time.Time
	acquired chan error
	ran      chan struct{}
	stop     context.CancelFunc
	done     chan struct{}
}

func startReplica(t *testing.T, st singleton.Leases, clk *testenv.FakeClock, holder string) *replica {
	t.Helper()
	r := &replica{ticks: make(chan time.Time), acquired: make(chan error), ran: make(chan struct{}), done: make(chan struct{})}
	r.loop = &singleton.Loop{
		Name: "test-singleton", Holder: holder, Interval: time.Minute,
		Leases: reportingLeases{Leases: st, acquired: r.acquired}, Now: clk.Now, Log: quiet,
		Tick: func(d time.Duration) (<-chan time.Time, func()) {
			if d != time.Minute {
				t.Errorf("%s: ticker asked for a tick every %v, want the interval, 1m", holder, d)
			}
			return r.ticks, func() {}
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = func() { cancel(); <-r.done }
	go func() {
		defer close(r.done)
		r.loop.Run(ctx, func(context.Context) error {
			r.ran <- struct{}{}
			return errors.New("a failed pass is logged; the loop goes on")
		})
	}()
	t.Cleanup(r.stop)
	return r
}

// tick sends one tick and waits until the replica handled it; it reports
// whether the replica held the lease and ran its pass.
func (r *replica) tick(clk *testenv.FakeClock) bool {
	r.ticks <- clk.Now()
	if err := <-r.acquired; err != nil {
		return false
	}
	<-r.ran
	return true
}

// TestOneReplicaAtATime drives two replicas' loops on one SQLite store by
// hand: the first to tick holds the lease and runs, the other does not
// until the holder stops (it gives the lease up) or dies (its lease
// expires after three intervals).
func TestOneReplicaAtATime(t *testing.T) {
	st, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := testenv.NewFakeClock(time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC))
	ctx := context.Background()
	reps := map[string]*replica{"a": startReplica(t, st, clk, "a"), "b": startReplica(t, st, clk, "b")}

	steps := []struct {
		name    string
		advance time.Duration
		tick    string // the replica that ticks
		stop    string // the replica that stops first
		wantRan bool
		holder  string // who holds the lease after the step ("" nobody)
	}{
		{name: "first tick takes the lease", tick: "a", wantRan: true, holder: "a"},
		{name: "the other replica waits", tick: "b", wantRan: false, holder: "a"},
		{name: "the holder renews", advance: 2 * time.Minute, tick: "a", wantRan: true, holder: "a"},
		{name: "within three intervals of the renewal the other still waits", advance: 2*time.Minute + 59*time.Second, tick: "b", wantRan: false, holder: "a"},
		{name: "a dead holder's lease expires", advance: 2 * time.Second, tick: "b", wantRan: true, holder: "b"},
		{name: "the old holder does not run beside the new one", tick: "a", wantRan: false, holder: "b"},
		{name: "a stopped holder gives the lease up", stop: "b", holder: ""},
		{name: "and the other takes it at its next tick", tick: "a", wantRan: true, holder: "a"},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		if s.stop != "" {
			reps[s.stop].stop()
		}
		if s.tick != "" {
			if ran := reps[s.tick].tick(clk); ran != s.wantRan {
				t.Fatalf("%s: %s ran = %v, want %v", s.name, s.tick, ran, s.wantRan)
			}
		}
		for name, r := range reps {
			if held := r.loop.Held(ctx); held != (name == s.holder) {
				t.Fatalf("%s: %s holds the lease = %v; want the holder %q", s.name, name, held, s.holder)
			}
		}
	}
}
