package agentapi

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

func TestParseControl(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" when valid, else a word of the error
	}{
		{`{"type":"resize","cols":80,"rows":24}`, ""},
		{`{"type":"exit","code":3}`, ""},
		{`{"type":"resize","cols":0,"rows":24}`, "resize wants"},
		{`{"type":"resize","cols":80,"rows":100000}`, "resize wants"},
		{`{"type":"resize","cols":"wide"}`, "not JSON"},
		{`{"type":"exit"}`, "without a code"},
		{`{"type":"launch"}`, "unknown control type"},
		{`not json`, "not JSON"},
		{`{"type":"` + strings.Repeat("x", 5000) + `"}`, "longer than"},
	}
	for _, tt := range tests {
		_, err := ParseControl([]byte(tt.in))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%.40s: %v", tt.in, err)
		case tt.want != "" && (err == nil || !errors.Is(err, ErrFrame) || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%.40s: %v, want an ErrFrame with %q", tt.in, err, tt.want)
		}
	}
}

func TestFrames(t *testing.T) {
	var b bytes.Buffer
	big := bytes.Repeat([]byte("z"), 100<<10)
	for _, p := range [][]byte{nil, []byte("hi"), big} {
		if err := WriteFrame(&b, FrameData, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range [][]byte{nil, []byte("hi"), big} {
		kind, got, err := ReadFrame(&b, nil)
		if err != nil || kind != FrameData || !bytes.Equal(got, want) {
			t.Fatalf("frame = %q %d bytes, %v", kind, len(got), err)
		}
	}
	if _, _, err := ReadFrame(&b, nil); err != io.EOF {
		t.Fatalf("after the last frame: %v", err)
	}
	if err := WriteFrame(&b, FrameData, make([]byte, MaxFrame+1)); !errors.Is(err, ErrFrame) {
		t.Fatalf("an oversized frame: %v", err)
	}
	b.Write([]byte{FrameData, 0xff, 0xff, 0xff, 0xff})
	if _, _, err := ReadFrame(&b, nil); !errors.Is(err, ErrFrame) {
		t.Fatalf("an oversized length: %v", err)
	}
	b.Reset()
	b.Write([]byte{FrameData, 0, 0, 0, 9, 'a'})
	if _, _, err := ReadFrame(&b, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a cut frame: %v", err)
	}
}

// TestTunnelConnJoinsHeaderAndBody: a data frame's header and body reach
// the connection as one write; other frames pass as they are.
func TestTunnelConnJoinsHeaderAndBody(t *testing.T) {
	rec := &writes{}
	c := TunnelConn(rec)
	data := []byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 3}
	window := []byte{0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0}
	c.Write(data)
	c.Write([]byte("abc"))
	c.Write(window)
	c.Write(data)
	c.Write([]byte("xyz"))
	if len(rec.w) != 3 || len(rec.w[0]) != 15 || string(rec.w[0][12:]) != "abc" || len(rec.w[1]) != 12 || string(rec.w[2][12:]) != "xyz" {
		t.Fatalf("writes = %q", rec.w)
	}
}

type writes struct {
	net.Conn
	w [][]byte
}

func (w *writes) Write(p []byte) (int, error) {
	w.w = append(w.w, append([]byte(nil), p...))
	return len(p), nil
}
