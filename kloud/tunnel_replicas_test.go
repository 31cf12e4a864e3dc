package kloud_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/ferrettest"
	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/mongo"
	"github.com/kloud/kloud/store/secretbox"
)

// tcpBalancer is a TCP load balancer in front of the replicas, as a
// deployment would have for long-lived connections: each connection goes
// to the next replica that accepts it. Agents' heartbeats and tunnels
// reach Kloud through it.
type tcpBalancer struct {
	ln       net.Listener
	mu       sync.Mutex
	backends []string // host:port
	next     atomic.Uint64
	conns    sync.WaitGroup
}

func newTCPBalancer(t *testing.T) *tcpBalancer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &tcpBalancer{ln: ln}
	go b.serve()
	t.Cleanup(func() { ln.Close() })
	return b
}

func (b *tcpBalancer) url() string { return "http://" + b.ln.Addr().String() }

func (b *tcpBalancer) add(url string) {
	b.mu.Lock()
	b.backends = append(b.backends, strings.TrimPrefix(url, "http://"))
	b.mu.Unlock()
}

func (b *tcpBalancer) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		go b.relay(c)
	}
}

func (b *tcpBalancer) relay(c net.Conn) {
	defer c.Close()
	b.mu.Lock()
	backends := append([]string(nil), b.backends...)
	b.mu.Unlock()
	start := int(b.next.Add(1))
	var up net.Conn
	for i := range backends {
		var err error
		if up, err = net.DialTimeout("tcp", backends[(start+i)%len(backends)], 2*time.Second); err == nil {
			break
		}
	}
	if up == nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// TestTerminalAcrossReplicas: two replicas on one FerretDB database. The
// store says which replica holds a machine's tunnel; a terminal opened
// through the other replica is relayed to it; when the holder is killed,
// the agent reconnects to the live replica and a new session opens within
// 10 s.
func TestTerminalAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two kloud servers")
	}
	ctx := context.Background()
	const token = "kla_tunnel_replicas_admin_token"
	const secret = "tunnel-replicas-shared-secret"
	testenv.Terraform(t)
	kloudBinary(t)
	plainShell(t)
	fdb := ferrettest.Start(t)
	storeURI := fdb.DatabaseURI("tunnels")
	lb := newTCPBalancer(t)
	shared := t.TempDir()
	reps := []*replica{
		startReplica(t, "a", storeURI, lb.url(), token, secret, shared),
		startReplica(t, "b", storeURI, lb.url(), token, secret, shared),
	}
	for _, r := range reps {
		lb.add(r.url)
	}
	box, err := secretbox.FromPassphrase(secret)
	if err != nil {
		t.Fatal(err)
	}
	db, err := mongo.Open(ctx, storeURI, "", mongo.WithBox(box), mongo.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	c := reps[0].client
	_, st, job := applyOne(t, c, termTemplate)
	if job.Status != "succeeded" || len(st.Machines) != 1 {
		t.Fatalf("apply = %s (%s)", job.Status, job.Error)
	}
	m := st.Machines[0]
	t.Cleanup(func() {
		for _, r := range reps {
			if !r.alive() {
				continue
			}
			if ref, err := r.client.DestroyStack(ctx, st.ID); err == nil {
				wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				_, _ = r.client.WaitJob(wctx, ref.JobID)
				cancel()
			}
			return
		}
	})

	holder := func() (*replica, *replica) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			tun, err := db.GetTunnel(ctx, m.ID)
			if err == nil {
				for i, r := range reps {
					if tun.Replica == r.url && r.alive() {
						return r, reps[1-i]
					}
				}
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("no live replica holds the tunnel of %s (%v, %v)", m.ID, tun, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	held, other := holder()
	t.Logf("replica %s holds the tunnel; opening the terminal through %s", held.name, other.name)

	run := func(via *replica, n int) error {
		term, err := via.client.Terminal(ctx, m.ID, client.TerminalOptions{})
		if err != nil {
			return err
		}
		defer term.Close()
		out := readTerminal(t, term)
		fmt.Fprintf(term, "echo RELAY-$((%d*2))\n", n)
		out.wait(fmt.Sprintf("RELAY-%d", 2*n))
		return nil
	}
	if err := run(other, 21); err != nil {
		t.Fatalf("terminal through the replica without the tunnel: %v", err)
	}
	if err := run(held, 22); err != nil {
		t.Fatalf("terminal through the replica with the tunnel: %v", err)
	}

	held.kill(t)
	killed := time.Now()
	for {
		err := run(other, 23)
		if err == nil {
			break
		}
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable {
			t.Fatalf("terminal after the holder died: %v", err)
		}
		if time.Since(killed) > 10*time.Second {
			t.Fatalf("no session opened within 10 s of killing the tunnel's holder: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("a new session opened %v after the holder was killed", time.Since(killed).Round(time.Millisecond))
	now, _ := holder()
	if now != other {
		t.Errorf("the tunnel is held by %s, want the live replica %s", now.name, other.name)
	}
	var view client.Machine
	if err := other.client.Do(ctx, http.MethodGet, "/api/v1/machines/"+m.ID, nil, &view); err != nil || view.State.String() != "Running" {
		b, _ := json.Marshal(view)
		t.Errorf("machine after the failover = %s, %v", b, err)
	}
}
