package kloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/klient/agentapi"
	"github.com/kloud/kloud/kloud/audit"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// relayHeader marks a terminal request one replica relayed to the replica
// holding the machine's tunnel; a relayed request is never relayed again.
const relayHeader = "X-Kloud-Relayed"

// revokeCheck is how often a session opened through a share checks that
// the share still stands: a revocation made on any replica closes it
// within that time (at once on the replica that revoked).
const revokeCheck = 250 * time.Millisecond

// activityEvery is how often terminal input on one machine is written as
// the machine's activity.
const activityEvery = time.Second

// terminalMethod names opening a terminal in a 409's message.
const terminalMethod machinestate.Method = "open a terminal"

// terminalQuery is what ?session=&cols=&rows=&command= ask for.
func terminalQuery(r *http.Request) (agentapi.Open, error) {
	q := r.URL.Query()
	open := agentapi.Open{Kind: "terminal", Session: q.Get("session"), Command: q["command"]}
	if n := open.Session; n != "" {
		if len(n) > agentapi.MaxSessionName {
			return open, badRequest("session", "session name %s is longer than %d characters", quote(n), agentapi.MaxSessionName)
		}
		for _, c := range n {
			if !(c == '-' || c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return open, badRequest("session", "session name %s: use letters, digits, '-', '_' and '.'", quote(n))
			}
		}
	}
	for _, f := range []struct {
		name string
		p    *int
	}{{"cols", &open.Cols}, {"rows", &open.Rows}} {
		v := q.Get(f.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > agentapi.MaxTerminalSize {
			return open, badRequest(f.name, "%s %s: want a number from 1 to %d", f.name, quote(v), agentapi.MaxTerminalSize)
		}
		*f.p = n
	}
	if len(open.Command) > 256 {
		return open, badRequest("command", "a command of %d words; at most 256", len(open.Command))
	}
	size := 0
	for _, w := range open.Command {
		size += len(w)
	}
	if size > 64<<10 {
		return open, badRequest("command", "a command of %d bytes; at most 65536", size)
	}
	if open.Session != "" && len(open.Command) > 0 {
		return open, badRequest("session", "a named session runs the login shell; give a session or a command, not both")
	}
	return open, nil
}

// checkOrigin refuses a cookie-authenticated upgrade from a foreign page:
// a browser sends its cookie with any page's WebSocket, so the Origin must
// be this server. A bearer token is never sent by a browser on its own, so
// bearer requests need no check.
func checkOrigin(r *http.Request) error {
	if _, ok := bearer(r); ok {
		return nil
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || !sameHost(u.Host, r.Host) {
		return fmt.Errorf("%w: a WebSocket from origin %s may not use this server's session cookie", ErrForbidden, quote(origin))
	}
	return nil
}

func sameHost(a, b string) bool { return a == b }

// handleTerminal serves GET /api/v1/machines/{id}/terminal: a WebSocket
// whose binary frames carry the terminal's bytes both ways and whose text
// frames carry agentapi.Control messages (resize from the client; exit,
// with the command's status, from the server before it closes).
func (s *Server) handleTerminal(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	actor := actorFrom(ctx)
	m, share, err := s.machineAccess(ctx, actor, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !isWebSocket(r) {
		s.writeError(w, r, errNotWebSocket("/api/v1/machines/{id}/terminal"))
		return
	}
	if err := checkOrigin(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	if m.State != machinestate.Running {
		s.writeError(w, r, fmt.Errorf("machine %s: %w", m.ID, &machinestate.MethodError{Method: terminalMethod, State: m.State, Allowed: m.State.Allowed()}))
		return
	}
	open, err := terminalQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	open.UserID = actor.ID
	if s.tunnels.get(m.ID) == nil {
		if r.Header.Get(relayHeader) == "" {
			if rec, err := s.st.GetTunnel(ctx, m.ID); err == nil && rec.Replica != s.cfg.AdvertiseURL {
				s.relayTerminal(w, r, rec.Replica)
				return
			}
		}
		s.writeError(w, r, fmt.Errorf("machine %s: %w", m.ID, errAgentOffline))
		return
	}
	stream, reply, err := s.openStream(ctx, m.ID, open)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The Origin was checked above, for the requests that need it.
	c, err := acceptWebSocket(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		stream.Close()
		return
	}
	ts := &termConn{
		id: newToken("term-")[:21], machine: m, userID: actor.ID, name: open.Session, viaShare: share != nil,
		requestID: requestIDFrom(ctx), command: len(open.Command) > 0, opened: s.now(),
		ws: c, stream: stream, closed: make(chan struct{}), wsClosed: make(chan struct{}),
	}
	s.serveTerminal(ts, reply.Attached)
}

// relayTerminal hands the request, headers and all, to the replica that
// holds the machine's tunnel, and the upgraded connection through.
func (s *Server) relayTerminal(w http.ResponseWriter, r *http.Request, replica string) {
	target, err := url.Parse(replica)
	if err != nil || target.Host == "" {
		s.writeError(w, r, fmt.Errorf("tunnel holder %s: %w", quote(replica), errAgentOffline))
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	proxy := &httputil.ReverseProxy{
		Director: func(req *http.Request) {
			req.URL.Scheme, req.URL.Host = target.Scheme, target.Host
			req.Header.Set(relayHeader, s.cfg.AdvertiseURL)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Warn("relay terminal", slog.String("to", replica), slog.String("error", err.Error()))
			s.writeError(w, r, fmt.Errorf("relay to %s: %w", replica, errAgentOffline))
		},
	}
	proxy.ServeHTTP(w, r)
}

// termConn is one terminal session this replica serves: a client's
// WebSocket joined to a stream of the machine's tunnel.
type termConn struct {
	id       string
	machine  *stack.Machine
	userID   string
	name     string
	viaShare bool
	// requestID, command and opened are for the audit entries.
	requestID string
	command   bool
	opened    time.Time
	ws        *websocket.Conn
	stream    net.Conn

	// ended records the session's end (store, audit) before the client
	// hears of it, so a client that saw the session close finds it closed.
	ended    func(tc *termConn, exitCode *int, reason string)
	exitMu   sync.Mutex
	exitCode *int
	once     sync.Once
	reason   string        // why it closed, set once
	closed   chan struct{} // closed when the session starts closing
	wsClosed chan struct{} // closed once the close handshake is over
}

// close ends the session with a close code and reason for the client.
func (tc *termConn) close(code websocket.StatusCode, reason string) {
	tc.once.Do(func() {
		tc.reason = reason
		close(tc.closed)
		tc.stream.Close()
		tc.exitMu.Lock()
		exitCode := tc.exitCode
		tc.exitMu.Unlock()
		go func() {
			defer close(tc.wsClosed)
			if tc.ended != nil {
				tc.ended(tc, exitCode, reason)
			}
			_ = tc.ws.Close(code, reason)
		}()
	})
}

// termRegistry is the terminal sessions this replica serves, so revoking a
// share closes its sessions at once.
type termRegistry struct {
	mu   sync.Mutex
	open map[*termConn]bool
	wg   sync.WaitGroup
	// touched is when each machine's activity was last written.
	touched map[string]time.Time
}

func newTermRegistry() *termRegistry {
	return &termRegistry{open: map[*termConn]bool{}, touched: map[string]time.Time{}}
}

// revoke closes the sessions of userID on machineID.
func (tr *termRegistry) revoke(machineID, userID string) {
	tr.mu.Lock()
	var hit []*termConn
	for tc := range tr.open {
		if tc.machine.ID == machineID && tc.userID == userID {
			hit = append(hit, tc)
		}
	}
	tr.mu.Unlock()
	for _, tc := range hit {
		tc.close(websocket.StatusPolicyViolation, "access to the machine was revoked")
	}
}

// closeAll closes every session (the server is stopping) and waits.
func (tr *termRegistry) closeAll() {
	tr.mu.Lock()
	all := make([]*termConn, 0, len(tr.open))
	for tc := range tr.open {
		all = append(all, tc)
	}
	tr.mu.Unlock()
	for _, tc := range all {
		tc.close(websocket.StatusGoingAway, "the server is stopping")
	}
	tr.wg.Wait()
}

// serveTerminal copies between the client and the agent until either
// side ends, the session's access is revoked or the server stops.
func (s *Server) serveTerminal(tc *termConn, attached bool) {
	tr := s.terms
	tr.mu.Lock()
	tr.open[tc] = true
	tr.wg.Add(1)
	tr.mu.Unlock()
	defer func() {
		tr.mu.Lock()
		delete(tr.open, tc)
		tr.mu.Unlock()
		tr.wg.Done()
	}()
	tc.ws.SetReadLimit(agentapi.MaxFrame)
	s.terminalOpened(tc, attached)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tc.ended = s.terminalClosed
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // agent → client
		defer wg.Done()
		var buf []byte
		for {
			kind, b, err := agentapi.ReadFrame(tc.stream, buf)
			if err != nil {
				tc.close(websocket.StatusNormalClosure, "the session ended")
				return
			}
			buf = b[:0]
			switch kind {
			case agentapi.FrameData:
				if err := tc.ws.Write(ctx, websocket.MessageBinary, b); err != nil {
					tc.close(websocket.StatusGoingAway, "write failed")
					return
				}
			case agentapi.FrameControl:
				c, err := agentapi.ParseControl(b)
				if err != nil || c.Type != agentapi.ControlExit {
					continue
				}
				tc.exitMu.Lock()
				tc.exitCode = c.Code
				tc.exitMu.Unlock()
				_ = tc.ws.Write(ctx, websocket.MessageText, b)
				tc.close(websocket.StatusNormalClosure, "exit "+strconv.Itoa(*c.Code))
				return
			}
		}
	}()
	go func() { // client → agent
		defer wg.Done()
		for {
			typ, b, err := tc.ws.Read(ctx)
			if err != nil {
				tc.close(websocket.StatusNormalClosure, "the client left")
				return
			}
			if typ == websocket.MessageBinary {
				s.terminalInput(tc.machine.ID)
				if agentapi.WriteFrame(tc.stream, agentapi.FrameData, b) != nil {
					tc.close(websocket.StatusGoingAway, "the agent left")
					return
				}
				continue
			}
			c, err := agentapi.ParseControl(b)
			if err == nil && c.Type != agentapi.ControlResize {
				err = fmt.Errorf("%w: a client sends only resize", agentapi.ErrFrame)
			}
			if err != nil {
				tc.close(websocket.StatusUnsupportedData, clipReason(err.Error()))
				return
			}
			if agentapi.WriteJSON(tc.stream, agentapi.FrameControl, c) != nil {
				tc.close(websocket.StatusGoingAway, "the agent left")
				return
			}
		}
	}()
	if tc.viaShare {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.watchShare(tc)
		}()
	}
	stopOnClose := context.AfterFunc(s.bgContext(), func() { tc.close(websocket.StatusGoingAway, "the server is stopping") })
	defer stopOnClose()
	<-tc.closed
	<-tc.wsClosed // the client reads the close reason before the connection goes
	cancel()
	wg.Wait()
}

// watchShare closes a session opened through a share once the share is
// gone, whichever replica revoked it.
func (s *Server) watchShare(tc *termConn) {
	tick := time.NewTicker(revokeCheck)
	defer tick.Stop()
	for {
		select {
		case <-tc.closed:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := s.st.GetShare(ctx, tc.machine.ID, tc.userID)
		cancel()
		if errors.Is(err, store.ErrNotFound) {
			tc.close(websocket.StatusPolicyViolation, "access to the machine was revoked")
			return
		}
	}
}

// terminalInput records, at most once per activityEvery per machine, that
// the machine is in use.
func (s *Server) terminalInput(machineID string) {
	now := s.now()
	tr := s.terms
	tr.mu.Lock()
	last := tr.touched[machineID]
	if now.Sub(last) < activityEvery {
		tr.mu.Unlock()
		return
	}
	tr.touched[machineID] = now
	tr.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.st.TouchMachineActivity(ctx, machineID, now); err != nil {
			s.log.Warn("record terminal activity", slog.String("machine", machineID), slog.String("error", err.Error()))
		}
	}()
}

// clipReason fits a close reason in a WebSocket close frame (123 bytes).
func clipReason(s string) string {
	if len(s) <= 120 {
		return s
	}
	return s[:117] + "..."
}

// terminalOpened and terminalClosed record a session's start and end in
// the audit log (terminal.open, terminal.close): who, on which machine,
// which session, and how it ended.
func (s *Server) terminalOpened(tc *termConn, attached bool) {
	detail := "session " + tc.id
	if tc.name != "" {
		detail += " named " + tc.name
		if attached {
			detail += " (re-attached)"
		}
	}
	if tc.command {
		detail += ", running a command"
	}
	if tc.viaShare {
		detail += ", through a share"
	}
	rec := &store.TerminalSession{ID: tc.id, MachineID: tc.machine.ID, UserID: tc.userID, OwnerID: tc.machine.OwnerID,
		Name: tc.name, Replica: s.cfg.AdvertiseURL, OpenedAt: tc.opened}
	if err := s.st.PutTerminalSession(context.Background(), rec); err != nil {
		s.log.Error("record terminal session", slog.String("session", tc.id), slog.String("error", err.Error()))
	}
	s.recordAudit(context.Background(), audit.Entry{Actor: tc.userID, Action: "terminal.open", Target: "machine/" + tc.machine.ID,
		OwnerID: tc.machine.OwnerID, Outcome: audit.OutcomeOK, RequestID: tc.requestID, Detail: detail})
}

func (s *Server) terminalClosed(tc *termConn, exitCode *int, reason string) {
	detail := "session " + tc.id + " after " + s.now().Sub(tc.opened).Round(time.Second).String()
	if exitCode != nil {
		detail += ", exit " + strconv.Itoa(*exitCode)
	}
	if reason != "" {
		detail += ": " + reason
	}
	if err := s.st.CloseTerminalSession(context.Background(), tc.id, s.now(), exitCode); err != nil {
		s.log.Error("record the end of a terminal session", slog.String("session", tc.id), slog.String("error", err.Error()))
	}
	s.recordAudit(context.Background(), audit.Entry{Actor: tc.userID, Action: "terminal.close", Target: "machine/" + tc.machine.ID,
		OwnerID: tc.machine.OwnerID, Outcome: audit.OutcomeOK, RequestID: tc.requestID, Detail: detail})
}

// recordActivity stores the activity an agent's report carries: the
// machine is in use now while a terminal is attached or the agent's sign
// of work holds, else it was last in use at ActiveAt. A time ahead of this
// server's clock counts as now; an activity no newer than the stored one
// by a second writes nothing.
func (s *Server) recordActivity(ctx context.Context, m *stack.Machine, rep agentapi.Report, now time.Time) error {
	var at time.Time
	switch {
	case rep.Sessions > 0 || rep.Busy:
		at = now
	case rep.ActiveAt != nil:
		at = *rep.ActiveAt
	case rep.InputAt != nil:
		at = *rep.InputAt
	default:
		return nil
	}
	if at.After(now) {
		at = now
	}
	if at.Sub(m.LastActivity) < time.Second {
		return nil
	}
	if err := s.st.TouchMachineActivity(ctx, m.ID, at); err != nil {
		return fmt.Errorf("record activity of machine %s: %w", m.ID, err)
	}
	return nil
}

// handleListSessions lists a machine's terminal sessions: GET
// /api/v1/machines/{id}/sessions[?open=1]. The owner and admins see every
// session; a user the machine is shared with sees their own.
func (s *Server) handleListSessions(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	actor := actorFrom(ctx)
	m, share, err := s.machineAccess(ctx, actor, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	l, err := parseList(r, "open")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	open := false
	switch v := l.Get("open"); v {
	case "", "0", "false":
	case "1", "true":
		open = true
	default:
		s.writeError(w, r, badRequest("open", "open %s: want 1 or 0", quote(v)))
		return
	}
	all, err := s.st.ListTerminalSessions(ctx, m.ID, open)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	mine := all[:0]
	for _, ts := range all {
		if share == nil || ts.UserID == actor.ID {
			mine = append(mine, ts)
		}
	}
	listPage(s, w, r, l, mine, nil, positionKey, func(ts *store.TerminalSession) client.TerminalSession {
		return client.TerminalSession{ID: ts.ID, MachineID: ts.MachineID, UserID: ts.UserID, OwnerID: ts.OwnerID, Name: ts.Name,
			Replica: ts.Replica, OpenedAt: ts.OpenedAt, ClosedAt: optTime(ts.ClosedAt), ExitCode: ts.ExitCode}
	})
}

// closeStaleSessions closes the terminal sessions this replica's previous
// run (at the same advertised address) left open: they died with it.
func (s *Server) closeStaleSessions(ctx context.Context) {
	if s.cfg.AdvertiseURL == "" {
		return
	}
	n, err := s.st.CloseReplicaSessions(ctx, s.cfg.AdvertiseURL, s.now())
	switch {
	case err != nil:
		s.log.Error("close the terminal sessions of this replica's previous run", slog.String("error", err.Error()))
	case n > 0:
		s.log.Info("closed terminal sessions left open by this replica's previous run", slog.Int64("sessions", n))
	}
}
