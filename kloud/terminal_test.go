package kloud_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/kloudtest"
)

// oneMachine is a template of one sandbox machine.
const termTemplate = "resource \"sandbox_machine\" \"m\" {\n  name = \"term\"\n}\n"

// termOutput reads a terminal's output in the background, so a test can
// wait for text to appear without blocking on Read.
type termOutput struct {
	t    testing.TB
	term *client.Terminal
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
	err  error
}

func readTerminal(t testing.TB, term *client.Terminal) *termOutput {
	o := &termOutput{t: t, term: term, done: make(chan struct{})}
	go func() {
		defer close(o.done)
		b := make([]byte, 32<<10)
		for {
			n, err := term.Read(b)
			o.mu.Lock()
			o.buf.Write(b[:n])
			if err != nil {
				o.err = err
			}
			o.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return o
}

func (o *termOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// wait waits until the output holds want and returns the output so far.
func (o *termOutput) wait(want string) string {
	o.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := o.String()
		if strings.Contains(s, want) {
			return s
		}
		select {
		case <-o.done:
			if s = o.String(); strings.Contains(s, want) {
				return s
			}
			o.t.Fatalf("terminal ended (%v) before %q appeared; output:\n%s", o.err, want, s)
		default:
		}
		if time.Now().After(deadline) {
			o.t.Fatalf("timed out waiting for %q; output:\n%s", want, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ended waits until the session ends and returns how long that took.
func (o *termOutput) ended(within time.Duration) bool {
	select {
	case <-o.done:
		return true
	case <-time.After(within):
		return false
	}
}

// openTerminal opens a terminal on machine id, waiting (a new machine's
// agent takes a moment to open its tunnel) while the server answers 503.
func openTerminal(t testing.TB, c *client.Client, id string, opts client.TerminalOptions) *client.Terminal {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		term, err := c.Terminal(context.Background(), id, opts)
		if err == nil {
			t.Cleanup(func() { term.Close() })
			return term
		}
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("open terminal on %s: %v", id, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// plainShell makes the login shell of the machines started from now on
// /bin/sh: an unconfined sandbox machine shares the host's HOME, and a
// host's bash profile (pyenv, conda…) is no part of these tests.
func plainShell(t testing.TB) { t.Setenv("SHELL", "/bin/sh") }

// machineOf applies a one-machine stack for c and returns the machine.
func machineOf(t *testing.T, c *client.Client) client.Machine {
	t.Helper()
	plainShell(t)
	_, st, job := applyOne(t, c, termTemplate)
	if job.Status != "succeeded" || len(st.Machines) != 1 {
		t.Fatalf("apply = %s (%s), machines %d", job.Status, job.Error, len(st.Machines))
	}
	return st.Machines[0]
}

// TestTerminalOnSandboxMachine opens a terminal on a confined sandbox
// machine through the API: the shell computes, has a PTY of the size the
// client sent, follows a resize, sees nothing of Kloud's environment and
// cannot read Kloud's data dir.
func TestTerminalOnSandboxMachine(t *testing.T) {
	h := kloudtest.New(t, kloudtest.Confined(t))
	m := machineOf(t, h.Admin)

	term := openTerminal(t, h.Admin, m.ID, client.TerminalOptions{Cols: 100, Rows: 30})
	out := readTerminal(t, term)
	io.WriteString(term, "echo $((6*7)); tty; stty size\n")
	s := out.wait("30 100")
	if !strings.Contains(s, "42") || !strings.Contains(s, "/dev/pts/") {
		t.Fatalf("output lacks 42 or a /dev/pts/ path:\n%s", s)
	}
	if err := term.Resize(120, 40); err != nil {
		t.Fatal(err)
	}
	io.WriteString(term, "stty size\n")
	out.wait("40 120")

	io.WriteString(term, "env; echo ENV-$((1+1))\n")
	s = out.wait("ENV-2")
	envOut := s[strings.LastIndex(s, "env; echo"):]
	for _, bad := range []string{"KLIENT_", "KLOUD_", "kla_"} {
		if strings.Contains(envOut, bad) {
			t.Errorf("the shell's environment holds %q:\n%s", bad, envOut)
		}
	}
	token, err := os.ReadFile(filepath.Join(h.DataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(term, "cat "+filepath.Join(h.DataDir, "admin.token")+"; echo RC=$?\n")
	s = out.wait("RC=")
	if strings.Contains(s, strings.TrimSpace(string(token))) || strings.Contains(s, "RC=0") {
		t.Fatalf("the shell read the admin token:\n%s", s)
	}
	io.WriteString(term, "exit 0\n")
	if !out.ended(10 * time.Second) {
		t.Fatal("the session did not end after exit")
	}
	if code, ok := term.ExitCode(); !ok || code != 0 {
		t.Errorf("exit code = %d, %v; want 0", code, ok)
	}
}

// TestTerminalRefusals: what is refused before any upgrade, and a
// malformed control frame closing only its own session.
func TestTerminalRefusals(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	m := machineOf(t, h.Admin)
	other := h.Member(t, "other")

	get := func(path, token string, upgrade bool) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if upgrade {
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("GET %s: content type %q, want application/json (%s)", path, ct, b)
		}
		return resp.StatusCode, string(b)
	}
	path := "/api/v1/machines/" + m.ID + "/terminal"
	for _, c := range []struct {
		name    string
		path    string
		token   string
		upgrade bool
		status  int
	}{
		{"no token", path, "", true, 401},
		{"wrong token", path, "klu_nope", true, 401},
		{"not a WebSocket", path, h.AdminToken, false, 400},
		{"another member's machine", path, other.Token, true, 404},
		{"no such machine", "/api/v1/machines/m-nope/terminal", h.AdminToken, true, 404},
		{"bad session name", path + "?session=a%20b", h.AdminToken, true, 400},
		{"bad size", path + "?cols=0&rows=5", h.AdminToken, true, 400},
		{"agent tunnel without a token", "/api/v1/agent/connect", "", true, 401},
		{"agent tunnel with a user token", "/api/v1/agent/connect", h.AdminToken, true, 401},
	} {
		if status, body := get(c.path, c.token, c.upgrade); status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, status, body, c.status)
		}
	}

	// Two sessions on one machine; a malformed control frame closes only
	// the session that sent it, with a reason.
	a := openTerminal(t, h.Admin, m.ID, client.TerminalOptions{})
	b := openTerminal(t, h.Admin, m.ID, client.TerminalOptions{})
	outA, outB := readTerminal(t, a), readTerminal(t, b)
	if err := a.SendText([]byte(`{"type":"resize","cols":"wide"}`)); err != nil {
		t.Fatal(err)
	}
	if !outA.ended(5 * time.Second) {
		t.Fatal("a malformed control frame did not close its session")
	}
	if code, reason := a.CloseReason(); code != 1003 || !strings.Contains(reason, "control message") {
		t.Errorf("close = %d %q, want 1003 naming the control message", code, reason)
	}
	io.WriteString(b, "echo B-$((2+3))\n")
	outB.wait("B-5")
	if err := b.SendText([]byte(`{"type":"launch"}`)); err != nil {
		t.Fatal(err)
	}
	if !outB.ended(5 * time.Second) {
		t.Fatal("an unknown control type did not close its session")
	}
	// The machine still serves new sessions.
	c := openTerminal(t, h.Admin, m.ID, client.TerminalOptions{})
	outC := readTerminal(t, c)
	io.WriteString(c, "echo C-$((3+4))\n")
	outC.wait("C-7")

	// A stopped machine answers 409 with its state.
	kloudtest.WaitJob(t, h.Admin, mustJob(t)(h.Admin.StopMachine(ctx, m.ID)).JobID)
	_, err := h.Admin.Terminal(ctx, m.ID, client.TerminalOptions{})
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != 409 || ae.State != "Stopped" {
		t.Fatalf("terminal on a stopped machine = %v, want 409 with state Stopped", err)
	}
}

func mustJob(t *testing.T) func(*client.JobRef, error) *client.JobRef {
	return func(ref *client.JobRef, err error) *client.JobRef {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
}

// TestNamedTerminalSession: a named session survives its dropped
// connection and, re-attached by the same user, replays its recent output;
// an unnamed one is hung up when its connection closes.
func TestNamedTerminalSession(t *testing.T) {
	h := kloudtest.New(t)
	m := machineOf(t, h.Admin)

	first := openTerminal(t, h.Admin, m.ID, client.TerminalOptions{Session: "work"})
	out := readTerminal(t, first)
	io.WriteString(first, "X=kept; echo MARK-$((40+2))\n")
	out.wait("MARK-42")
	first.Close()
	out.ended(5 * time.Second)

	again := openTerminal(t, h.Admin, m.ID, client.TerminalOptions{Session: "work"})
	out2 := readTerminal(t, again)
	out2.wait("MARK-42") // replayed
	io.WriteString(again, "echo VAR-$X\n")
	out2.wait("VAR-kept")

	// An unnamed session's shell is hung up when its socket closes.
	plain := openTerminal(t, h.Admin, m.ID, client.TerminalOptions{})
	po := readTerminal(t, plain)
	io.WriteString(plain, "echo P''ID=$$\n")
	var match []string
	for i := 0; match == nil; i++ {
		if i > 2000 {
			t.Fatalf("no PID in %q", po.String())
		}
		time.Sleep(5 * time.Millisecond)
		match = regexp.MustCompile(`PID=([0-9]+)\r?\n`).FindStringSubmatch(po.String())
	}
	proc := "/proc/" + match[1]
	if _, err := os.Stat(proc); err != nil {
		t.Fatalf("shell %s not found: %v", proc, err)
	}
	plain.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(proc + "/stat")
		if err != nil || strings.Contains(string(b), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the unnamed session's shell %s still runs after its socket closed", proc)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
