package digitalocean

import (
	"context"
	"crypto/ed25519"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/provider/digitalocean/dosim"
	"github.com/kloud/kloud/stack"
)

// testToken is a well-formed personal access token the simulator accepts.
var testToken = "dop_v1_" + strings.Repeat("0123456789abcdef", 4)

// fakeClock is the provider's and the simulator's clock in tests: Sleep
// advances it at once and records the wait, so timeouts and backoffs run
// without sleeping.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.sleeps = append(c.sleeps, d)
	return nil
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// env is a simulator with one account, a fake clock shared by both sides,
// and a provider with short, fake-clock timeouts.
type env struct {
	sim   *dosim.Server
	clock *fakeClock
	p     *provider.Provider
	cred  *Credential
}

// testOptions are the waits used in tests (on the fake clock): polls every
// 1 s growing to 4 s, a 20 s graceful shutdown, a 1 min action timeout.
func testOptions(clock *fakeClock) Options {
	return Options{
		PollInterval: time.Second, MaxPollInterval: 4 * time.Second,
		ShutdownTimeout: 20 * time.Second, ActionTimeout: time.Minute,
		MaxRetries: 4, RetryBase: time.Second, MaxRetryWait: 30 * time.Second,
		Now: clock.Now, Sleep: clock.Sleep,
	}
}

func newEnv(t *testing.T, simOpts dosim.Options) *env {
	t.Helper()
	clock := newClock()
	simOpts.Now = clock.Now
	sim := dosim.New(simOpts)
	t.Cleanup(sim.Close)
	sim.AddAccount(testToken, dosim.Account{Email: "dev@example.com", UUID: "b6fc48dbf6d9906cace5f9a4bf7a8d1e3c8e5c5a"})
	return &env{
		sim: sim, clock: clock,
		p:    NewProvider(testOptions(clock)),
		cred: &Credential{Token: stack.Secret(testToken), Region: "nyc3", Endpoint: sim.URL()},
	}
}

func (e *env) stack(t *testing.T, cred *Credential) *Stack {
	t.Helper()
	st, err := e.p.Stack(&provider.BaseStack{Provider: e.p, Credential: &stack.Credential{ID: "cred-1", Provider: Name}, Cred: cred})
	if err != nil {
		t.Fatal(err)
	}
	return st.(*Stack)
}

func (e *env) machine(t *testing.T, dropletID int) *Machine {
	t.Helper()
	md := &Metadata{}
	if dropletID != 0 {
		md.ID = strconv.Itoa(dropletID)
	}
	m, err := e.p.Machine(&provider.BaseMachine{
		Provider: e.p,
		Machine:  &stack.Machine{ID: "m-1", Provider: Name, Label: "digitalocean_droplet.web[0]"},
		Cred:     e.cred,
		Metadata: md,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m.(*Machine)
}

// fixedKey is a key pair from a fixed seed, for golden files.
func fixedKey() ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i * 7)
	}
	return ed25519.NewKeyFromSeed(seed)
}

// fixedBootstrap is a bootstrap made with fixedKey for credential cred-1
// (token testToken), as the credential stores it.
func fixedBootstrap(t *testing.T) *Bootstrap {
	t.Helper()
	key := fixedKey()
	pub := key.Public().(ed25519.PublicKey)
	text, err := MarshalPrivateKey(key, "kloud-cred-1", strings.NewReader("\x01\x02\x03\x04"))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := SealPrivateKey(text, testToken, "cred-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &Bootstrap{
		KeyID: "41923115", KeyFingerprint: Fingerprint(pub),
		VPCUUID: "5a4981aa-9653-4bd1-bef5-d6bff52042e4", Region: "nyc3",
		PublicKey: MarshalAuthorizedKey(pub, "kloud-cred-1"), PrivateKey: PrivateKey(priv),
	}
	if err := b.Valid(); err != nil {
		t.Fatal(err)
	}
	return b
}
