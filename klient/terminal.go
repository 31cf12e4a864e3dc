package klient

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/kloud/kloud/klient/agentapi"
)

// maxSessions bounds the terminal sessions of one machine, attached or
// lingering: each is a process and a PTY.
const maxSessions = 256

// replaySize is how much of a session's recent output is kept to replay
// when a named session is re-attached.
const replaySize = 64 << 10

// terminals are the machine's terminal sessions: each a PTY running a
// login shell (or a command) in the machine's home, attached to at most one
// tunnel stream at a time.
type terminals struct {
	dir    string // the shell's working directory
	token  string // removed from the shell's environment wherever it appears
	linger time.Duration
	now    func() time.Time
	log    *slog.Logger

	mu        sync.Mutex
	named     map[string]*termSession // by user id and name
	all       map[*termSession]bool
	attached  int
	lastInput time.Time
	closed    bool
	wg        sync.WaitGroup
}

func newTerminals(dir, token string, now func() time.Time, log *slog.Logger) *terminals {
	home := dir
	if h := os.Getenv("HOME"); h != "" {
		if st, err := os.Stat(h); err == nil && st.IsDir() {
			home = h
		}
	}
	return &terminals{dir: home, token: token, linger: agentapi.NamedSessionLinger, now: now, log: log,
		named: map[string]*termSession{}, all: map[*termSession]bool{}}
}

// termSession is one PTY and its process.
type termSession struct {
	t    *terminals
	key  string // "" for an unnamed session
	cmd  *exec.Cmd
	pty  *os.File
	done chan struct{} // closed once the process is reaped
	// ready is closed when the first stream attaches (or the session is
	// hung up first): the PTY is not read before, so nothing the process
	// prints first is lost.
	ready     chan struct{}
	readyOnce sync.Once

	mu       sync.Mutex
	out      io.Writer // the attached stream, nil while detached
	detached chan struct{}
	ring     ring
	exitCode int
	linger   *time.Timer
}

// activity is what the heartbeat reports of the terminals: the last input,
// and how many sessions are attached.
func (t *terminals) activity() (time.Time, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastInput, t.attached
}

func (t *terminals) input() {
	now := t.now()
	t.mu.Lock()
	if now.After(t.lastInput) {
		t.lastInput = now
	}
	t.mu.Unlock()
}

// serve runs one terminal stream opened by Kloud: it starts or re-attaches
// the session, then copies input from the stream to the PTY until the
// stream ends, when an unnamed session is hung up and a named one waits to
// be re-attached.
func (t *terminals) serve(stream io.ReadWriteCloser, open agentapi.Open) {
	defer stream.Close()
	s, attached, err := t.session(open)
	if err != nil {
		_ = agentapi.WriteJSON(stream, agentapi.FrameReply, agentapi.Reply{Error: err.Error()})
		return
	}
	if err := agentapi.WriteJSON(stream, agentapi.FrameReply, agentapi.Reply{Attached: attached}); err != nil {
		if !attached {
			s.mu.Lock()
			s.hangup() // nobody will ever attach to it
			s.mu.Unlock()
		}
		return
	}
	detached := s.attach(stream)
	t.mu.Lock()
	t.attached++
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.attached--
		t.mu.Unlock()
		s.detach(stream)
	}()
	inputDone := make(chan struct{})
	go func() {
		defer close(inputDone)
		var buf []byte
		for {
			kind, b, err := agentapi.ReadFrame(stream, buf)
			if err != nil {
				return
			}
			buf = b[:0]
			switch kind {
			case agentapi.FrameData:
				t.input()
				if _, err := s.pty.Write(b); err != nil {
					return
				}
			case agentapi.FrameControl:
				c, err := agentapi.ParseControl(b)
				if err != nil || c.Type != agentapi.ControlResize {
					t.log.Warn("terminal: bad control frame; closing the stream", "err", err)
					return
				}
				_ = pty.Setsize(s.pty, &pty.Winsize{Cols: uint16(c.Cols), Rows: uint16(c.Rows)})
			default:
				t.log.Warn("terminal: unknown frame; closing the stream", "kind", string(kind))
				return
			}
		}
	}()
	select {
	case <-inputDone:
	case <-detached: // the process ended, or another stream took over
	}
}

// session starts a session for open, or finds the named one to re-attach.
func (t *terminals) session(open agentapi.Open) (*termSession, bool, error) {
	if open.Kind != "terminal" {
		return nil, false, fmt.Errorf("unknown stream kind %q", open.Kind)
	}
	if len(open.Session) > agentapi.MaxSessionName {
		return nil, false, fmt.Errorf("session name longer than %d", agentapi.MaxSessionName)
	}
	key := ""
	if open.Session != "" {
		key = open.UserID + "\x00" + open.Session
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, false, errors.New("the agent is stopping")
	}
	if s := t.named[key]; key != "" && s != nil {
		if open.Cols > 0 && open.Rows > 0 {
			_ = pty.Setsize(s.pty, &pty.Winsize{Cols: uint16(open.Cols), Rows: uint16(open.Rows)})
		}
		return s, true, nil
	}
	if len(t.all) >= maxSessions {
		return nil, false, fmt.Errorf("the machine has %d terminal sessions, the most it keeps; close one first", len(t.all))
	}
	s, err := t.start(open)
	if err != nil {
		return nil, false, err
	}
	s.key = key
	if key != "" {
		t.named[key] = s
	}
	t.all[s] = true
	return s, false, nil
}

// start runs the shell (or the command) on a new PTY. t.mu is held.
func (t *terminals) start(open agentapi.Open) (*termSession, error) {
	var cmd *exec.Cmd
	if len(open.Command) > 0 {
		cmd = exec.Command(open.Command[0], open.Command[1:]...)
	} else {
		sh := loginShell()
		cmd = exec.Command(sh)
		cmd.Args = []string{"-" + filepath.Base(sh)} // a login shell
	}
	cmd.Dir = t.dir
	cmd.Env = shellEnv(os.Environ(), t.token)
	cols, rows := open.Cols, open.Rows
	if cols <= 0 || rows <= 0 {
		cols, rows = 80, 24
	}
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)})
	if err != nil {
		return nil, fmt.Errorf("start terminal: %w", err)
	}
	s := &termSession{t: t, cmd: cmd, pty: f, done: make(chan struct{}), detached: make(chan struct{}), ready: make(chan struct{})}
	t.wg.Add(1)
	go s.pump()
	return s, nil
}

// loginShell is the user's shell: $SHELL when it exists, else bash, else sh.
func loginShell() string {
	for _, sh := range []string{os.Getenv("SHELL"), "/bin/bash", "/bin/sh"} {
		if sh == "" {
			continue
		}
		if st, err := os.Stat(sh); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return sh
		}
	}
	return "/bin/sh"
}

// shellEnv is the agent's environment without anything of Kloud's: no
// KLIENT_* or KLOUD_* variable, nothing holding the agent's token.
func shellEnv(env []string, token string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "KLIENT_") || strings.HasPrefix(k, "KLOUD_") || k == "TERM" ||
			(token != "" && strings.Contains(v, token)) {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "TERM=xterm-256color")
}

// attach makes stream the session's output, after replaying what the
// session printed lately, and returns a channel closed when the stream is
// detached (the process ended or another stream took over).
func (s *termSession) attach(stream io.Writer) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.linger != nil {
		s.linger.Stop()
		s.linger = nil
	}
	if s.out != nil {
		close(s.detached) // the old stream lets go
	}
	s.detached = make(chan struct{})
	select {
	case <-s.done:
		// It ended while detached: replay, then report the exit.
		s.replay(stream)
		code := s.exitCode
		_ = agentapi.WriteJSON(stream, agentapi.FrameControl, agentapi.Control{Type: agentapi.ControlExit, Code: &code})
		close(s.detached)
		s.t.forget(s)
		return s.detached
	default:
	}
	s.replay(stream)
	s.out = stream
	s.readyOnce.Do(func() { close(s.ready) })
	return s.detached
}

func (s *termSession) replay(w io.Writer) {
	if b := s.ring.bytes(); len(b) > 0 && s.key != "" {
		for len(b) > 0 {
			n := min(len(b), 32<<10)
			if agentapi.WriteFrame(w, agentapi.FrameData, b[:n]) != nil {
				return
			}
			b = b[n:]
		}
	}
}

// detach lets go of stream if it is still the session's output: an
// unnamed session is hung up, a named one lingers to be re-attached.
func (s *termSession) detach(stream io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out != stream {
		return
	}
	s.out = nil
	select {
	case <-s.done:
		return
	default:
	}
	if s.key == "" {
		s.hangup()
		return
	}
	s.linger = time.AfterFunc(s.t.linger, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.out == nil {
			s.hangup()
		}
	})
}

// hangup sends SIGHUP to the session's process group, as a terminal that
// closes does. s.mu is held.
func (s *termSession) hangup() {
	s.readyOnce.Do(func() { close(s.ready) })
	if p := s.cmd.Process; p != nil {
		_ = syscall.Kill(-p.Pid, syscall.SIGHUP)
	}
}

// pump copies the PTY's output to the attached stream (and to the replay
// ring) until the process ends, then reports its exit status.
func (s *termSession) pump() {
	defer s.t.wg.Done()
	// A PTY read returns at most a few KiB; a reader hands chunks over and
	// the writer sends what has piled up as one frame, so bulk output
	// (cat of a large file) travels in large frames.
	chunks := make(chan []byte, 16)
	go func() {
		defer close(chunks)
		<-s.ready
		for {
			buf := make([]byte, 32<<10)
			n, err := s.pty.Read(buf)
			if n > 0 {
				chunks <- buf[:n]
			}
			if err != nil {
				return
			}
		}
	}()
	var frame []byte
	for chunk := range chunks {
		frame = append(frame[:0], chunk...)
	more:
		for len(frame) < 256<<10 {
			select {
			case c, ok := <-chunks:
				if !ok {
					break more
				}
				frame = append(frame, c...)
			default:
				break more
			}
		}
		s.mu.Lock()
		if s.key != "" {
			s.ring.write(frame)
		}
		if s.out != nil {
			if agentapi.WriteFrame(s.out, agentapi.FrameData, frame) != nil {
				s.out = nil
			}
		}
		s.mu.Unlock()
	}
	code := 0
	if err := s.cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		} else {
			code = -1
		}
	}
	s.pty.Close()
	s.mu.Lock()
	s.exitCode = code
	close(s.done)
	out := s.out
	if out != nil {
		_ = agentapi.WriteJSON(out, agentapi.FrameControl, agentapi.Control{Type: agentapi.ControlExit, Code: &code})
		close(s.detached)
		s.out = nil
	}
	if s.linger != nil {
		s.linger.Stop()
	}
	s.mu.Unlock()
	if out != nil || s.key == "" {
		s.t.forget(s)
	} else {
		// A named session that ended while detached keeps its output
		// and status for the linger time.
		time.AfterFunc(s.t.linger, func() { s.t.forget(s) })
	}
}

func (t *terminals) forget(s *termSession) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.all, s)
	if s.key != "" && t.named[s.key] == s {
		delete(t.named, s.key)
	}
}

// closeAll hangs up every session and, after grace, kills what is left;
// it returns once every session's process is reaped.
func (t *terminals) closeAll(grace time.Duration) {
	t.mu.Lock()
	t.closed = true
	var all []*termSession
	for s := range t.all {
		all = append(all, s)
	}
	t.mu.Unlock()
	for _, s := range all {
		s.mu.Lock()
		s.hangup()
		s.mu.Unlock()
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	for _, s := range all {
		select {
		case <-s.done:
			continue
		case <-timer.C:
		}
		for _, s := range all {
			if p := s.cmd.Process; p != nil {
				_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
			}
		}
		break
	}
	t.wg.Wait()
}

// ring keeps the last replaySize bytes written.
type ring struct {
	buf  []byte
	full bool
	pos  int
}

func (r *ring) write(p []byte) {
	if r.buf == nil {
		r.buf = make([]byte, replaySize)
	}
	size := len(r.buf)
	if len(p) >= size {
		copy(r.buf, p[len(p)-size:])
		r.pos, r.full = 0, true
		return
	}
	n := copy(r.buf[r.pos:], p)
	copy(r.buf, p[n:])
	if r.pos+len(p) >= size {
		r.full = true
	}
	r.pos = (r.pos + len(p)) % size
}

func (r *ring) bytes() []byte {
	if !r.full {
		return append([]byte(nil), r.buf[:r.pos]...)
	}
	return append(append([]byte(nil), r.buf[r.pos:]...), r.buf[:r.pos]...)
}
