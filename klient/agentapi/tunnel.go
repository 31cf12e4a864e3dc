package agentapi

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hashicorp/yamux"
)

// ConnectPath is where the agent opens its tunnel: a WebSocket, with the
// machine's own bearer token, that Kloud multiplexes (yamux, Kloud the
// client that opens streams, the agent the server that accepts them).
const ConnectPath = "/api/v1/agent/connect"

// A stream Kloud opens on the tunnel carries frames: a kind byte, the
// payload's length (uint32, big endian) and the payload. The first frame is
// FrameOpen (Kloud → agent), answered by FrameReply; then FrameData both
// ways, FrameControl from Kloud (resize) and from the agent (exit).
const (
	FrameOpen    byte = 'o'
	FrameReply   byte = 'a'
	FrameData    byte = 'd'
	FrameControl byte = 'c'
)

// MaxFrame bounds a frame's payload; a longer one is a protocol error.
const MaxFrame = 1 << 20

// ErrFrame is wrapped by every malformed frame.
var ErrFrame = errors.New("malformed tunnel frame")

// Open is what Kloud asks of the agent on a new stream.
type Open struct {
	// Kind is what the stream is for: "terminal".
	Kind string `json:"kind"`
	// UserID is who the session is for: named sessions are re-attached
	// only by the same user.
	UserID string `json:"user_id"`
	// Session names a session that survives a dropped connection; empty
	// for one that ends with its connection.
	Session string `json:"session,omitempty"`
	Cols    int    `json:"cols,omitempty"`
	Rows    int    `json:"rows,omitempty"`
	// Command, when set, runs instead of the login shell (kloud machine
	// ssh ID -- CMD...).
	Command []string `json:"command,omitempty"`
}

// Reply is the agent's answer to Open.
type Reply struct {
	Error string `json:"error,omitempty"`
	// Attached is true when a named session already ran and was
	// re-attached (its recent output follows).
	Attached bool `json:"attached,omitempty"`
}

// Control is a terminal's control message: the text frames of the
// terminal WebSocket (client ↔ Kloud) and the FrameControl payloads of the
// tunnel (Kloud ↔ agent) are both this one type.
//
//	{"type":"resize","cols":120,"rows":40}   client → Kloud → agent
//	{"type":"exit","code":3}                 agent → Kloud → client, the shell ended
type Control struct {
	Type string `json:"type"`
	Cols int    `json:"cols,omitempty"`
	Rows int    `json:"rows,omitempty"`
	Code *int   `json:"code,omitempty"`
}

// The control types.
const (
	ControlResize = "resize"
	ControlExit   = "exit"
)

// MaxTerminalSize bounds cols and rows of a resize.
const MaxTerminalSize = 10000

// ParseControl decodes and checks one control message; its error says what
// is wrong, for the close reason of the session that sent it.
func ParseControl(b []byte) (Control, error) {
	var c Control
	if len(b) > 4096 {
		return c, fmt.Errorf("%w: control message longer than 4096 bytes", ErrFrame)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%w: control message is not JSON: %v", ErrFrame, err)
	}
	switch c.Type {
	case ControlResize:
		if c.Cols < 1 || c.Rows < 1 || c.Cols > MaxTerminalSize || c.Rows > MaxTerminalSize {
			return c, fmt.Errorf("%w: resize wants cols and rows in 1..%d, got %dx%d", ErrFrame, MaxTerminalSize, c.Cols, c.Rows)
		}
	case ControlExit:
		if c.Code == nil {
			return c, fmt.Errorf("%w: exit without a code", ErrFrame)
		}
	default:
		t := c.Type
		if len(t) > 64 {
			t = t[:64] + "…"
		}
		return c, fmt.Errorf("%w: unknown control type %q; want resize", ErrFrame, t)
	}
	return c, nil
}

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, kind byte, payload []byte) error {
	if len(payload) > MaxFrame {
		return fmt.Errorf("%w: payload of %d bytes, more than %d", ErrFrame, len(payload), MaxFrame)
	}
	var hdr [5]byte
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if len(payload) <= 32<<10 {
		buf := make([]byte, 0, 5+len(payload))
		_, err := w.Write(append(append(buf, hdr[:]...), payload...))
		return err
	}
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// WriteJSON writes one frame holding v as JSON.
func WriteJSON(w io.Writer, kind byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode frame: %w", err)
	}
	return WriteFrame(w, kind, b)
}

// ReadFrame reads one frame into buf (grown when too small) and returns
// its kind and payload, which is valid until the next call with buf.
func ReadFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxFrame {
		return 0, nil, fmt.Errorf("%w: length %d, more than %d", ErrFrame, n, MaxFrame)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[0], buf, nil
}

// ReadJSON reads one frame that must be of kind and decodes it into v.
func ReadJSON(r io.Reader, kind byte, v any) error {
	k, b, err := ReadFrame(r, nil)
	if err != nil {
		return err
	}
	if k != kind {
		return fmt.Errorf("%w: got kind %q, want %q", ErrFrame, k, kind)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", ErrFrame, err)
	}
	return nil
}

// NamedSessionLinger is how long a named terminal session outlives its
// dropped connection, waiting to be re-attached.
const NamedSessionLinger = 5 * time.Minute

// MaxSessionName bounds ?session=NAME.
const MaxSessionName = 64

// YamuxConfig is the multiplexer's configuration on both ends of the
// tunnel: keepalives find a dead peer within seconds, and a stream's
// window (4 MiB, what one stream may have in flight and buffered) is large
// enough that bulk output is not held back by window updates on a slow
// round trip: 1 MiB gave a third of the throughput of cat in the
// benchmark.
func YamuxConfig() *yamux.Config {
	c := yamux.DefaultConfig()
	c.AcceptBacklog = 256
	c.EnableKeepAlive = true
	c.KeepAliveInterval = 5 * time.Second
	c.ConnectionWriteTimeout = 10 * time.Second
	c.MaxStreamWindowSize = 4 << 20
	c.StreamOpenTimeout = 10 * time.Second
	c.LogOutput = io.Discard
	return c
}

// TunnelConn wraps the WebSocket connection under the multiplexer, on both
// ends: yamux writes a data frame's 12-byte header and its body in two
// writes, and each write of a WebSocket net.Conn is a message of its own;
// this joins the two into one message, halving the messages (and their
// system calls) of bulk terminal output. Only yamux's send loop writes.
func TunnelConn(c net.Conn) net.Conn { return &tunnelConn{Conn: c} }

type tunnelConn struct {
	net.Conn
	held []byte // a data frame's header waiting for its body
	buf  []byte
}

// yamuxHeader is the size of a yamux frame header; byte 1 is its type
// (0 is data) and bytes 8..12 a data frame's body length.
const yamuxHeader = 12

func (c *tunnelConn) Write(p []byte) (int, error) {
	if c.held == nil && len(p) == yamuxHeader && p[1] == 0 && binary.BigEndian.Uint32(p[8:]) > 0 {
		c.held = append(c.buf[:0], p...)
		return len(p), nil
	}
	if c.held == nil {
		return c.Conn.Write(p)
	}
	msg := append(c.held, p...)
	c.held = nil
	_, err := c.Conn.Write(msg)
	if cap(msg) <= 64<<10 {
		c.buf = msg[:0]
	} else {
		c.buf = nil
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}
