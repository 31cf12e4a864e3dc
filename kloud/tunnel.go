package kloud

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/yamux"

	"github.com/kloud/kloud/klient/agentapi"
	"github.com/kloud/kloud/store"
)

// errAgentOffline is answered when no replica holds the machine's tunnel.
var errAgentOffline = errors.New("the machine's agent is not connected")

// tunnels are the agents' tunnels this replica holds, one per machine: a
// newer connection of the same machine replaces the older one.
type tunnels struct {
	mu   sync.Mutex
	byID map[string]*tunnel
	wg   sync.WaitGroup
}

// tunnel is one agent's connection: Kloud opens a yamux stream on it per
// terminal session.
type tunnel struct {
	id        string
	machineID string
	sess      *yamux.Session
}

func newTunnels() *tunnels { return &tunnels{byID: map[string]*tunnel{}} }

// get returns the machine's tunnel on this replica, nil when none.
func (ts *tunnels) get(machineID string) *tunnel {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t := ts.byID[machineID]
	if t != nil && t.sess.IsClosed() {
		return nil
	}
	return t
}

// put makes t the machine's tunnel, closing the one it replaces.
func (ts *tunnels) put(t *tunnel) {
	ts.mu.Lock()
	old := ts.byID[t.machineID]
	ts.byID[t.machineID] = t
	ts.mu.Unlock()
	if old != nil {
		old.sess.Close()
	}
}

// remove forgets t if it is still its machine's tunnel.
func (ts *tunnels) remove(t *tunnel) {
	ts.mu.Lock()
	if ts.byID[t.machineID] == t {
		delete(ts.byID, t.machineID)
	}
	ts.mu.Unlock()
}

// closeAll closes every tunnel and waits for their handlers.
func (ts *tunnels) closeAll() {
	ts.mu.Lock()
	all := make([]*tunnel, 0, len(ts.byID))
	for _, t := range ts.byID {
		all = append(all, t)
	}
	ts.mu.Unlock()
	for _, t := range all {
		t.sess.Close()
	}
	ts.wg.Wait()
}

// isWebSocket reports whether r asks for a WebSocket upgrade.
func isWebSocket(r *http.Request) bool {
	return headerHas(r.Header, "Connection", "upgrade") && headerHas(r.Header, "Upgrade", "websocket")
}

func headerHas(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// errNotWebSocket is the 400 a plain request to a WebSocket endpoint gets.
func errNotWebSocket(path string) error {
	return badRequest("", "%s is a WebSocket endpoint: send a GET with Connection: Upgrade and Upgrade: websocket", path)
}

// acceptWebSocket upgrades the request. The server's read timeout applies
// to requests, not to a connection that lives for hours, so it is lifted
// first; a ResponseWriter wrapped by middleware is unwrapped to hijack.
func acceptWebSocket(w http.ResponseWriter, r *http.Request, opts *websocket.AcceptOptions) (*websocket.Conn, error) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	if _, ok := w.(http.Hijacker); !ok {
		w = hijacker{w, rc}
	}
	return websocket.Accept(w, r, opts)
}

// hijacker gives a wrapped ResponseWriter the Hijack its innermost writer
// has, through http.ResponseController.
type hijacker struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (h hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) { return h.rc.Hijack() }

// handleAgentConnect takes a machine agent's tunnel: authenticated by the
// machine's own token before the upgrade, then multiplexed with yamux
// (Kloud opens streams, the agent accepts them). The replica records in
// the store that it holds the machine's tunnel, at its advertised URL, so
// other replicas relay terminal requests here.
func (s *Server) handleAgentConnect(w http.ResponseWriter, r *http.Request) {
	m, err := s.agentMachine(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !isWebSocket(r) {
		s.writeError(w, r, errNotWebSocket(agentapi.ConnectPath))
		return
	}
	c, err := acceptWebSocket(w, r, nil)
	if err != nil {
		s.log.Warn("accept agent tunnel", slog.String("machine", m.ID), slog.String("error", err.Error()))
		return
	}
	c.SetReadLimit(2 * agentapi.MaxFrame)
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	nc := websocket.NetConn(ctx, c, websocket.MessageBinary)
	sess, err := yamux.Client(agentapi.TunnelConn(nc), agentapi.YamuxConfig())
	if err != nil {
		nc.Close()
		return
	}
	t := &tunnel{id: newToken("tun_"), machineID: m.ID, sess: sess}
	s.tunnels.wg.Add(1)
	defer s.tunnels.wg.Done()
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		sess.Close()
		return
	}
	s.tunnels.put(t)
	rec := &store.Tunnel{MachineID: m.ID, Replica: s.cfg.AdvertiseURL, ConnID: t.id, ConnectedAt: s.now()}
	if err := s.st.PutTunnel(ctx, rec); err != nil {
		s.log.Error("record tunnel holder", slog.String("machine", m.ID), slog.String("error", err.Error()))
	}
	s.log.Info("agent tunnel up", slog.String("machine", m.ID))
	<-sess.CloseChan()
	s.tunnels.remove(t)
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer dcancel()
	if err := s.st.DeleteTunnel(dctx, m.ID, t.id); err != nil {
		s.log.Warn("remove tunnel holder", slog.String("machine", m.ID), slog.String("error", err.Error()))
	}
	s.log.Info("agent tunnel down", slog.String("machine", m.ID))
}

// openStream opens a stream to the machine's agent on this replica's
// tunnel and sends open; it returns the stream once the agent accepted.
func (s *Server) openStream(ctx context.Context, machineID string, open agentapi.Open) (net.Conn, *agentapi.Reply, error) {
	t := s.tunnels.get(machineID)
	if t == nil {
		return nil, nil, fmt.Errorf("machine %s: %w", machineID, errAgentOffline)
	}
	st, err := t.sess.OpenStream()
	if err != nil {
		return nil, nil, fmt.Errorf("machine %s: open stream: %w", machineID, errAgentOffline)
	}
	stop := context.AfterFunc(ctx, func() { st.Close() })
	defer stop()
	_ = st.SetDeadline(time.Now().Add(15 * time.Second))
	if err := agentapi.WriteJSON(st, agentapi.FrameOpen, open); err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("machine %s: send open: %w", machineID, errAgentOffline)
	}
	var reply agentapi.Reply
	if err := agentapi.ReadJSON(st, agentapi.FrameReply, &reply); err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("machine %s: read the agent's reply: %w", machineID, errAgentOffline)
	}
	_ = st.SetDeadline(time.Time{})
	if reply.Error != "" {
		st.Close()
		return nil, nil, fmt.Errorf("machine %s: the agent refused: %s: %w", machineID, reply.Error, store.ErrConflict)
	}
	return st, &reply, nil
}
