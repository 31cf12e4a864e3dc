package klient

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/klient/agentapi"
)

// termPeer is Kloud's end of one terminal stream in these tests.
type termPeer struct {
	t    *testing.T
	conn net.Conn
	out  chan string
	ctl  chan agentapi.Control
}

func openTerm(t *testing.T, ts *terminals, open agentapi.Open) (*termPeer, agentapi.Reply) {
	t.Helper()
	a, b := net.Pipe()
	go ts.serve(b, open)
	var reply agentapi.Reply
	if err := agentapi.ReadJSON(a, agentapi.FrameReply, &reply); err != nil {
		t.Fatalf("reply: %v", err)
	}
	p := &termPeer{t: t, conn: a, out: make(chan string, 1024), ctl: make(chan agentapi.Control, 4)}
	go func() {
		defer close(p.out)
		for {
			kind, b, err := agentapi.ReadFrame(a, nil)
			if err != nil {
				return
			}
			switch kind {
			case agentapi.FrameData:
				p.out <- string(b)
			case agentapi.FrameControl:
				c, _ := agentapi.ParseControl(b)
				p.ctl <- c
			}
		}
	}()
	t.Cleanup(func() { a.Close() })
	return p, reply
}

func (p *termPeer) send(s string) {
	p.t.Helper()
	if err := agentapi.WriteFrame(p.conn, agentapi.FrameData, []byte(s)); err != nil {
		p.t.Fatal(err)
	}
}

// wait reads output until it holds want.
func (p *termPeer) wait(want string) string {
	p.t.Helper()
	var seen strings.Builder
	timeout := time.After(20 * time.Second)
	for !strings.Contains(seen.String(), want) {
		select {
		case s, ok := <-p.out:
			if !ok {
				p.t.Fatalf("stream ended before %q: %q", want, seen.String())
			}
			seen.WriteString(s)
		case <-timeout:
			p.t.Fatalf("timed out waiting for %q: %q", want, seen.String())
		}
	}
	return seen.String()
}

func newTestTerminals(t *testing.T) *terminals {
	ts := newTerminals(t.TempDir(), "tok-secret", time.Now, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { ts.closeAll(5 * time.Second) })
	return ts
}

func TestTerminalShellAndCommand(t *testing.T) {
	// bash as a login shell reads the host's profile here (HOME is the
	// test's): only sh is hermetic.
	for _, sh := range []string{"/bin/sh"} {
		t.Run(sh, func(t *testing.T) { testTerminalShell(t, sh) })
	}
}

func testTerminalShell(t *testing.T, shell string) {
	t.Setenv("KLIENT_TOKEN", "tok-secret")
	t.Setenv("KLOUD_URL", "http://x")
	t.Setenv("SHELL", shell)
	ts := newTestTerminals(t)
	p, reply := openTerm(t, ts, agentapi.Open{Kind: "terminal", UserID: "u1", Cols: 90, Rows: 20})
	if reply.Error != "" || reply.Attached {
		t.Fatalf("reply = %+v", reply)
	}
	p.send("echo A-$((1+2)); stty size; env | grep -c -e KLIENT_ -e KLOUD_ -e tok-secret\n")
	s := p.wait("20 90")
	p.wait("0\r\n")
	if !strings.Contains(s, "A-3") {
		t.Fatalf("output %q", s)
	}
	if err := agentapi.WriteJSON(p.conn, agentapi.FrameControl, agentapi.Control{Type: "resize", Cols: 50, Rows: 10}); err != nil {
		t.Fatal(err)
	}
	p.send("stty size\n")
	p.wait("10 50")
	if _, sessions := ts.activity(); sessions != 1 {
		t.Errorf("sessions = %d, want 1", sessions)
	}
	if at, _ := ts.activity(); at.IsZero() {
		t.Error("typing recorded no input time")
	}

	c, _ := openTerm(t, ts, agentapi.Open{Kind: "terminal", UserID: "u1", Command: []string{"sh", "-c", "echo hi; exit 3"}})
	c.wait("hi")
	select {
	case ctl := <-c.ctl:
		if ctl.Type != "exit" || ctl.Code == nil || *ctl.Code != 3 {
			t.Fatalf("control = %+v, want exit 3", ctl)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit status")
	}
}

func TestNamedSessionReplays(t *testing.T) {
	t.Setenv("SHELL", "/bin/sh")
	ts := newTestTerminals(t)
	p, _ := openTerm(t, ts, agentapi.Open{Kind: "terminal", UserID: "u1", Session: "w"})
	p.send("V=kept; echo M-$((6*7))\n")
	p.wait("M-42")
	p.conn.Close()
	// Another user's session of the same name is their own.
	o, reply := openTerm(t, ts, agentapi.Open{Kind: "terminal", UserID: "u2", Session: "w"})
	if reply.Attached {
		t.Fatal("another user re-attached u1's session")
	}
	o.conn.Close()
	q, reply := openTerm(t, ts, agentapi.Open{Kind: "terminal", UserID: "u1", Session: "w"})
	if !reply.Attached {
		t.Fatal("the named session was not re-attached")
	}
	q.wait("M-42") // replayed
	q.send("echo V-$V\n")
	q.wait("V-kept")
}

func TestRing(t *testing.T) {
	var r ring
	r.write([]byte("abc"))
	if string(r.bytes()) != "abc" {
		t.Fatalf("ring = %q", r.bytes())
	}
	big := strings.Repeat("x", replaySize-2) + "yz"
	r.write([]byte(big))
	if b := r.bytes(); len(b) != replaySize || !strings.HasSuffix(string(b), "xyz") {
		t.Fatalf("ring after wrap: len %d suffix %q", len(b), b[len(b)-3:])
	}
	r.write([]byte(strings.Repeat("q", 2*replaySize)))
	if b := r.bytes(); len(b) != replaySize || strings.Trim(string(b), "q") != "" {
		t.Fatal("a write larger than the ring keeps its end")
	}
}

// BenchmarkAgentCat: `cat` of a 100 MB file through the agent alone (PTY,
// frames), read from the stream's other end: the share of the terminal
// throughput through Kloud that the agent and the PTY set.
func BenchmarkAgentCat(b *testing.B) {
	dir := b.TempDir()
	const size = 100 << 20
	f, err := os.Create(filepath.Join(dir, "big.bin"))
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		b.Fatal(err)
	}
	f.Close()
	ts := newTerminals(dir, "", time.Now, slog.New(slog.DiscardHandler))
	defer ts.closeAll(5 * time.Second)
	b.SetBytes(size)
	for range b.N {
		a, c := net.Pipe()
		go ts.serve(c, agentapi.Open{Kind: "terminal", UserID: "u", Command: []string{"sh", "-c", "stty raw -echo; cat " + filepath.Join(dir, "big.bin")}})
		start := time.Now()
		var n int
		var buf []byte
		for {
			kind, p, err := agentapi.ReadFrame(a, buf)
			if err != nil {
				break
			}
			buf = p[:0]
			if kind == agentapi.FrameData {
				n += len(p)
			}
			if kind == agentapi.FrameControl {
				break
			}
		}
		a.Close()
		fmt.Printf("agent alone: cat of %d bytes in %v, %.1f MB/s\n", n, time.Since(start).Round(time.Millisecond), float64(n)/(1<<20)/time.Since(start).Seconds())
	}
}
