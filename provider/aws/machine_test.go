package aws

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/provider/aws/awssim"
	"github.com/kloud/kloud/stack"
)

// fakeClock is the waits' clock: After advances it at once and records
// the wait, so a ten-minute timeout passes without sleeping.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
	// onWait, when set, runs at every wait (the world changing meanwhile).
	onWait func()
}

func newClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.waits = append(c.waits, d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	hook := c.onWait
	c.mu.Unlock()
	if hook != nil {
		hook()
	}
	return ch
}

func (c *fakeClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// sdkRetries counts the SDK's retries; its backoff is zero so no test
// sleeps.
type sdkRetries struct {
	mu sync.Mutex
	n  int
}

func (r *sdkRetries) BackoffDelay(int, error) (time.Duration, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	return 0, nil
}

func (r *sdkRetries) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

type env struct {
	sim     *awssim.Server
	clock   *fakeClock
	retries *sdkRetries
	opts    Options
	cred    *Credential
}

func newEnv(t *testing.T, simOpts awssim.Options) *env {
	t.Helper()
	sim := awssim.New(simOpts)
	t.Cleanup(sim.Close)
	sim.AddKey(awssim.Key{AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey, Account: "210987654321"})
	e := &env{sim: sim, clock: newClock(), retries: &sdkRetries{}}
	e.opts = Options{
		MaxAttempts:     3,
		Backoff:         e.retries,
		PollInterval:    5 * time.Second,
		MaxPollInterval: 40 * time.Second,
		StartTimeout:    2 * time.Minute,
		StopTimeout:     2 * time.Minute,
		Now:             e.clock.Now,
		After:           e.clock.After,
	}
	e.cred = &Credential{AccessKey: testAccessKey, SecretKey: testSecretKey, Region: "us-east-1", Endpoint: sim.URL()}
	return e
}

func (e *env) machine(t *testing.T, md *Metadata) *Machine {
	t.Helper()
	p := New(e.opts)
	m, err := p.Machine(&provider.BaseMachine{Provider: p, Machine: &stack.Machine{ID: "m-1", Provider: Name}, Cred: e.cred, Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	return m.(*Machine)
}

func (e *env) stack(t *testing.T, cred *Credential, log *slog.Logger) *Stack {
	t.Helper()
	p := New(e.opts)
	data, _ := json.Marshal(map[string]any{"access_key": cred.AccessKey, "secret_key": cred.SecretKey.Reveal(), "region": cred.Region, "endpoint": cred.Endpoint})
	st, err := p.Stack(&provider.BaseStack{
		Provider: p, Log: log, Cred: cred,
		Credential: &stack.Credential{ID: "cr-1", OwnerID: "u-1", Provider: Name, Data: data},
	})
	if err != nil {
		t.Fatal(err)
	}
	return st.(*Stack)
}

// TestVerifyCredential checks good keys against the simulator and tells
// refused keys from an endpoint that does not answer.
func TestVerifyCredential(t *testing.T) {
	e := newEnv(t, awssim.Options{})
	dead := httptest.NewServer(nil)
	deadURL := dead.URL
	dead.Close() // nothing listens there now
	tests := []struct {
		name     string
		mutate   func(*Credential)
		throttle int
		want     error
		msg      string
	}{
		{"good keys", nil, 0, nil, ""},
		{"good keys, throttled twice then answered", nil, 2, nil, ""},
		{"unknown access key", func(c *Credential) { c.AccessKey = "AKIAZZZZZZZZZZZZZZZZ" }, 0, ErrBadCredentials,
			"InvalidClientTokenId: The security token included in the request is invalid. (STS GetCallerIdentity, HTTP 403"},
		{"wrong secret key", func(c *Credential) { c.SecretKey = stack.Secret(strings.Repeat("Q", 40)) }, 0, ErrBadCredentials,
			"SignatureDoesNotMatch"},
		{"endpoint unreachable", func(c *Credential) { c.Endpoint = deadURL }, 0, ErrUnreachable,
			"connection refused"},
		{"throttled past every retry", nil, 3, ErrThrottled, "Throttling: Rate exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cred := *e.cred
			if tt.mutate != nil {
				tt.mutate(&cred)
			}
			if tt.throttle > 0 {
				e.sim.Throttle("GetCallerIdentity", tt.throttle)
				t.Cleanup(e.sim.ClearFaults)
			}
			var logs bytes.Buffer
			s := e.stack(t, &cred, slog.New(slog.NewTextHandler(&logs, nil)))
			err := s.VerifyCredential(context.Background(), s.Credential)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(logs.String(), "account=210987654321") {
					t.Errorf("the account is not reported: %s", logs.String())
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.want, tt.msg)
			}
			for _, other := range []error{ErrBadCredentials, ErrUnreachable, ErrThrottled} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("err is also %v", other)
				}
			}
			if strings.Contains(err.Error(), cred.SecretKey.Reveal()) {
				t.Error("the error shows the secret key")
			}
		})
	}
}

// TestInfoStates maps every EC2 state, an instance EC2 no longer knows
// and a machine never built.
func TestInfoStates(t *testing.T) {
	e := newEnv(t, awssim.Options{TransitionPolls: 1000}) // transitional states stay
	tests := []struct {
		ec2  string
		want machinestate.State
	}{
		{awssim.Pending, machinestate.Starting},
		{awssim.Running, machinestate.Running},
		{awssim.Stopping, machinestate.Stopping},
		{awssim.Stopped, machinestate.Stopped},
		{awssim.ShuttingDown, machinestate.Terminating},
		{awssim.Terminated, machinestate.Terminated},
	}
	for _, tt := range tests {
		t.Run(tt.ec2, func(t *testing.T) {
			id := e.sim.AddInstance(awssim.Instance{State: tt.ec2, InstanceType: "m5.large", AvailabilityZone: "us-east-1c"})
			m := e.machine(t, &Metadata{ID: id})
			st, meta, err := m.Info(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			md := meta.(*Metadata)
			if st != tt.want || md.InstanceState != tt.ec2 || md.Size != "m5.large" || md.Region != "us-east-1" || md.AvailabilityZone != "us-east-1c" {
				t.Errorf("state %s, metadata %+v; want %s", st, md, tt.want)
			}
			if running := tt.ec2 == awssim.Running; running != (md.PublicIP != "") {
				t.Errorf("public ip %q in state %s", md.PublicIP, tt.ec2)
			}
		})
	}
	t.Run("not found", func(t *testing.T) {
		id := e.sim.AddInstance(awssim.Instance{State: awssim.Terminated})
		e.sim.Forget(id)
		st, meta, err := e.machine(t, &Metadata{ID: id, InstanceType: "t3.micro", PublicIP: "203.0.113.9"}).Info(context.Background())
		if err != nil || st != machinestate.NotInitialized || meta.(*Metadata).PublicIP != "" || meta.(*Metadata).Size != "t3.micro" {
			t.Errorf("state %s, metadata %+v, err %v", st, meta, err)
		}
	})
	t.Run("never built", func(t *testing.T) {
		calls := e.sim.Calls("DescribeInstances")
		st, _, err := e.machine(t, nil).Info(context.Background())
		if err != nil || st != machinestate.NotInitialized || e.sim.Calls("DescribeInstances") != calls {
			t.Errorf("state %s, err %v", st, err)
		}
	})
	t.Run("bad keys", func(t *testing.T) {
		id := e.sim.AddInstance(awssim.Instance{})
		m := e.machine(t, &Metadata{ID: id})
		cred := *e.cred
		cred.SecretKey = stack.Secret(strings.Repeat("Q", 40))
		m.Cred = &cred
		st, _, err := m.Info(context.Background())
		if st != machinestate.Unknown || !errors.Is(err, ErrBadCredentials) {
			t.Errorf("state %s, err %v", st, err)
		}
	})
}

// TestStartStop stops and starts an instance, each wait ending after the
// simulator's transition (two describes) with the poll interval between.
func TestStartStop(t *testing.T) {
	e := newEnv(t, awssim.Options{TransitionPolls: 2})
	id := e.sim.AddInstance(awssim.Instance{InstanceType: "t3.small"})
	before, _ := e.sim.Instance(id)
	m := e.machine(t, &Metadata{ID: id})
	ctx := context.Background()

	meta, err := m.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if md := meta.(*Metadata); md.InstanceState != "stopped" || md.PublicIP != "" {
		t.Errorf("after stop: %+v", md)
	}
	if in, _ := e.sim.Instance(id); in.State != awssim.Stopped {
		t.Errorf("simulator state %s", in.State)
	}
	if w := e.clock.Waits(); len(w) != 2 || w[0] != 5*time.Second || w[1] != 5*time.Second {
		t.Errorf("waits %v, want two of the poll interval", w)
	}

	m.Metadata = meta
	meta, err = m.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	md := meta.(*Metadata)
	if md.InstanceState != "running" || md.PublicIP == "" || md.PublicIP == before.PublicIP || md.Size != "t3.small" {
		t.Errorf("after start: %+v (public ip before %s)", md, before.PublicIP)
	}
	if e.sim.Calls("StartInstances") != 1 || e.sim.Calls("StopInstances") != 1 {
		t.Errorf("calls: start %d, stop %d", e.sim.Calls("StartInstances"), e.sim.Calls("StopInstances"))
	}
	// Starting a running machine waits for nothing.
	waits := len(e.clock.Waits())
	if _, err := m.Start(ctx); err != nil || len(e.clock.Waits()) != waits {
		t.Errorf("start of a running machine: %v, %d waits", err, len(e.clock.Waits())-waits)
	}
}

// TestWaitTimeout: a transition longer than the timeout fails with
// ErrTimeout, naming the last state seen, after polling the whole time.
func TestWaitTimeout(t *testing.T) {
	e := newEnv(t, awssim.Options{TransitionPolls: 1000})
	ctx := context.Background()
	stopped := e.sim.AddInstance(awssim.Instance{State: awssim.Stopped})
	_, err := e.machine(t, &Metadata{ID: stopped}).Start(ctx)
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "did not reach running within 2m0s (last seen pending)") {
		t.Fatalf("start: %v", err)
	}
	var total time.Duration
	for _, w := range e.clock.Waits() {
		total += w
	}
	if total != 2*time.Minute || e.sim.Calls("DescribeInstances") != 25 {
		t.Errorf("waited %s over %d describes", total, e.sim.Calls("DescribeInstances"))
	}

	running := e.sim.AddInstance(awssim.Instance{})
	_, err = e.machine(t, &Metadata{ID: running}).Stop(ctx)
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "last seen stopping") {
		t.Errorf("stop: %v", err)
	}

	// A cancelled context ends the wait at once.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.machine(t, &Metadata{ID: stopped}).Start(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestThrottling: the SDK retries a throttled call by itself; past its
// attempts, the wait loop backs off (doubling its wait) and tries again.
func TestThrottling(t *testing.T) {
	t.Run("sdk retries", func(t *testing.T) {
		e := newEnv(t, awssim.Options{TransitionPolls: 1})
		id := e.sim.AddInstance(awssim.Instance{State: awssim.Stopped})
		e.sim.Throttle("StartInstances", 2)
		if _, err := e.machine(t, &Metadata{ID: id}).Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if e.sim.Calls("StartInstances") != 3 || e.retries.count() != 2 {
			t.Errorf("start calls %d, sdk retries %d", e.sim.Calls("StartInstances"), e.retries.count())
		}
		if w := e.clock.Waits(); len(w) != 1 || w[0] != 5*time.Second {
			t.Errorf("waits %v", w)
		}
	})
	t.Run("wait loop backs off", func(t *testing.T) {
		e := newEnv(t, awssim.Options{TransitionPolls: 1})
		id := e.sim.AddInstance(awssim.Instance{State: awssim.Stopped})
		// Three attempts per call: the first two describes fail
		// whole, the third succeeds on its third attempt.
		e.sim.Throttle("DescribeInstances", 8)
		meta, err := e.machine(t, &Metadata{ID: id}).Start(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if meta.(*Metadata).InstanceState != "running" {
			t.Errorf("metadata %+v", meta)
		}
		want := []time.Duration{10 * time.Second, 20 * time.Second, 5 * time.Second}
		if w := e.clock.Waits(); !equalDurations(w, want) {
			t.Errorf("waits %v, want %v", w, want)
		}
		if e.sim.Calls("DescribeInstances") != 10 {
			t.Errorf("describe calls %d", e.sim.Calls("DescribeInstances"))
		}
	})
	t.Run("throttled until the timeout", func(t *testing.T) {
		e := newEnv(t, awssim.Options{})
		id := e.sim.AddInstance(awssim.Instance{})
		e.sim.Throttle("StopInstances", 1000)
		_, err := e.machine(t, &Metadata{ID: id}).Stop(context.Background())
		if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "RequestLimitExceeded") {
			t.Fatalf("err = %v", err)
		}
		want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 40 * time.Second, 10 * time.Second}
		if w := e.clock.Waits(); !equalDurations(w, want) {
			t.Errorf("waits %v, want %v (capped at MaxPollInterval, the last cut by the deadline)", w, want)
		}
	})
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestStartStopErrors: what EC2 refuses is not retried, and an instance
// that is terminated while Kloud waits ends the wait.
func TestStartStopErrors(t *testing.T) {
	e := newEnv(t, awssim.Options{TransitionPolls: 1000})
	ctx := context.Background()
	terminated := e.sim.AddInstance(awssim.Instance{State: awssim.Terminated})
	_, err := e.machine(t, &Metadata{ID: terminated}).Start(ctx)
	if !errors.Is(err, ErrAPI) || !strings.Contains(err.Error(), "IncorrectInstanceState") || e.sim.Calls("StartInstances") != 1 {
		t.Errorf("start of a terminated instance: %v (%d calls)", err, e.sim.Calls("StartInstances"))
	}
	stopping := e.sim.AddInstance(awssim.Instance{State: awssim.Stopping})
	if _, err := e.machine(t, &Metadata{ID: stopping}).Start(ctx); !errors.Is(err, ErrAPI) || !strings.Contains(err.Error(), "not in a state from which it can be started") {
		t.Errorf("start of a stopping instance: %v", err)
	}
	gone := e.sim.AddInstance(awssim.Instance{State: awssim.Stopped})
	e.sim.Forget(gone)
	if _, err := e.machine(t, &Metadata{ID: gone}).Start(ctx); !errors.Is(err, ErrInstanceNotFound) {
		t.Errorf("start of an unknown instance: %v", err)
	}
	if _, err := e.machine(t, nil).Stop(ctx); !errors.Is(err, ErrNoInstanceID) {
		t.Errorf("stop of a machine never built: %v", err)
	}
	// Terminated by someone else while Kloud waits for it to stop.
	running := e.sim.AddInstance(awssim.Instance{})
	e.clock.onWait = func() { e.sim.SetState(running, awssim.Terminated) }
	_, err = e.machine(t, &Metadata{ID: running}).Stop(ctx)
	if !errors.Is(err, ErrUnexpectedState) || !strings.Contains(err.Error(), "it is terminated, waiting for stopped") {
		t.Errorf("stop of an instance terminated meanwhile: %v", err)
	}
	if n := len(e.clock.Waits()); n != 1 {
		t.Errorf("%d waits, want 1", n)
	}
}
