package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/coder/websocket"

	"github.com/kloud/kloud/klient/agentapi"
)

// ShareMachine shares a machine with a user (use: terminals; control:
// terminals, start and stop); sharing again changes the permission.
func (c *Client) ShareMachine(ctx context.Context, id string, req ShareRequest) (*Share, error) {
	return call[Share](ctx, c, http.MethodPost, "/api/v1/machines/"+url.PathEscape(id)+"/shares", req)
}

// MachineShares lists a machine's shares.
func (c *Client) MachineShares(ctx context.Context, id string) ([]Share, error) {
	return list[Share](ctx, c, "/api/v1/machines/"+url.PathEscape(id)+"/shares")
}

// UnshareMachine revokes a user's share of a machine; their open terminal
// sessions on it close.
func (c *Client) UnshareMachine(ctx context.Context, id, userID string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/machines/"+url.PathEscape(id)+"/shares/"+url.PathEscape(userID), nil, nil)
}

// MachineSessions lists a machine's terminal sessions (only the open ones
// with openOnly); a user the machine is shared with sees their own.
func (c *Client) MachineSessions(ctx context.Context, id string, openOnly bool) ([]TerminalSession, error) {
	p := "/api/v1/machines/" + url.PathEscape(id) + "/sessions"
	if openOnly {
		p += "?open=1"
	}
	return list[TerminalSession](ctx, c, p)
}

// TerminalOptions are what a terminal asks for.
type TerminalOptions struct {
	// Session names a session that survives a dropped connection for
	// five minutes; re-attaching replays its recent output.
	Session string
	// Cols and Rows are the terminal's size at start.
	Cols, Rows int
	// Command runs instead of the login shell.
	Command []string
}

// TerminalPath is the terminal endpoint of machine id with opts' query.
func TerminalPath(id string, opts TerminalOptions) string {
	q := url.Values{}
	if opts.Session != "" {
		q.Set("session", opts.Session)
	}
	if opts.Cols > 0 && opts.Rows > 0 {
		q.Set("cols", strconv.Itoa(opts.Cols))
		q.Set("rows", strconv.Itoa(opts.Rows))
	}
	for _, w := range opts.Command {
		q.Add("command", w)
	}
	p := "/api/v1/machines/" + url.PathEscape(id) + "/terminal"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return p
}

// AgentConnect opens a machine agent's tunnel (c carries the machine's own
// token): the WebSocket of GET /api/v1/agent/connect as a net.Conn, on
// which Kloud then opens yamux streams. The agent (klient) dials it the
// same way.
func (c *Client) AgentConnect(ctx context.Context) (net.Conn, error) {
	ws, err := c.dialWebSocket(ctx, agentapi.ConnectPath)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(2 * agentapi.MaxFrame)
	return websocket.NetConn(context.WithoutCancel(ctx), ws, websocket.MessageBinary), nil
}

// Terminal opens a terminal on a Running machine: GET
// /api/v1/machines/{id}/terminal upgraded to a WebSocket. A refusal before
// the upgrade (401, 404, 409 with the state, 503 when the agent is not
// connected) is an *Error.
func (c *Client) Terminal(ctx context.Context, id string, opts TerminalOptions) (*Terminal, error) {
	ws, err := c.dialWebSocket(ctx, TerminalPath(id, opts))
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(agentapi.MaxFrame)
	return &Terminal{ws: ws}, nil
}

// dialWebSocket opens a WebSocket to path with the client's token; a
// refusal before the upgrade is an *Error.
func (c *Client) dialWebSocket(ctx context.Context, path string) (*websocket.Conn, error) {
	u := c.URL + path
	if rest, ok := strings.CutPrefix(u, "https://"); ok {
		u = "wss://" + rest
	} else {
		u = "ws://" + strings.TrimPrefix(u, "http://")
	}
	h := http.Header{}
	if c.Token != "" {
		h.Set("Authorization", "Bearer "+c.Token)
	}
	hc := &http.Client{}
	if c.HTTP != nil {
		hc.Transport = c.HTTP.Transport
	}
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h, HTTPClient: hc})
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 {
			e := &Error{Status: resp.StatusCode}
			if resp.Body != nil {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
				if json.Unmarshal(b, e) != nil || e.Message == "" {
					e.Message = strings.TrimSpace(string(b))
				}
			}
			return nil, e
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return ws, nil
}

// Terminal is an open terminal session: Read the terminal's output, Write
// its input. Read returns io.EOF when the session ends; ExitCode then says
// how the command ended, CloseReason why the server closed it.
type Terminal struct {
	ws *websocket.Conn

	rmu     sync.Mutex
	pending []byte

	mu     sync.Mutex
	exit   *int
	status websocket.StatusCode
	reason string
}

// Read reads the terminal's output.
func (t *Terminal) Read(p []byte) (int, error) {
	t.rmu.Lock()
	defer t.rmu.Unlock()
	for len(t.pending) == 0 {
		typ, b, err := t.ws.Read(context.Background())
		if err != nil {
			t.mu.Lock()
			if st := websocket.CloseStatus(err); st != -1 {
				t.status = st
				var ce websocket.CloseError
				if errors.As(err, &ce) {
					t.reason = ce.Reason
				}
				t.mu.Unlock()
				return 0, io.EOF
			}
			t.mu.Unlock()
			return 0, err
		}
		if typ == websocket.MessageText {
			if c, err := agentapi.ParseControl(b); err == nil && c.Type == agentapi.ControlExit {
				t.mu.Lock()
				t.exit = c.Code
				t.mu.Unlock()
			}
			continue
		}
		t.pending = b
	}
	n := copy(p, t.pending)
	t.pending = t.pending[n:]
	return n, nil
}

// Write sends input to the terminal.
func (t *Terminal) Write(p []byte) (int, error) {
	if err := t.ws.Write(context.Background(), websocket.MessageBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Resize tells the terminal its new size.
func (t *Terminal) Resize(cols, rows int) error {
	return t.SendControl(agentapi.Control{Type: agentapi.ControlResize, Cols: cols, Rows: rows})
}

// SendControl sends one control message (a text frame) as it is.
func (t *Terminal) SendControl(c agentapi.Control) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return t.SendText(b)
}

// SendText sends a raw text frame (tests send malformed ones with it).
func (t *Terminal) SendText(b []byte) error {
	return t.ws.Write(context.Background(), websocket.MessageText, b)
}

// ExitCode is the command's exit status, once the session ended with one.
func (t *Terminal) ExitCode() (int, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.exit == nil {
		return 0, false
	}
	return *t.exit, true
}

// CloseReason is the close code and reason the server ended the session
// with (after Read returned io.EOF).
func (t *Terminal) CloseReason() (int, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return int(t.status), t.reason
}

// Close ends the session; an unnamed session's shell is hung up.
func (t *Terminal) Close() error {
	return t.ws.Close(websocket.StatusNormalClosure, "")
}
