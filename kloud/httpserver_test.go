package kloud_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/kloud/kloud/kloud"
)

// TestSlowBodyIsCut sends a request body one byte at a time, slower than
// the read timeout allows: the server cuts the connection before the body
// is complete, and the handler sees a read error, not the body.
func TestSlowBodyIsCut(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	handlerErr := make(chan error, 1)
	hs := kloud.NewHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		handlerErr <- err
		if err != nil {
			http.Error(w, "slow body", http.StatusRequestTimeout)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}), kloud.HTTPOptions{ReadHeaderTimeout: readTimeout, ReadTimeout: readTimeout, IdleTimeout: time.Second})
	for _, c := range []struct {
		name string
		got  time.Duration
	}{{"read header", hs.ReadHeaderTimeout}, {"read", hs.ReadTimeout}, {"idle", hs.IdleTimeout}, {"write", hs.WriteTimeout}} {
		if c.name == "write" {
			if c.got != 0 {
				t.Errorf("write timeout = %v, want none (followed events stream for long)", c.got)
			}
		} else if c.got <= 0 {
			t.Errorf("%s timeout not set", c.name)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const bodyLen = 100
	if _, err := fmt.Fprintf(conn, "POST /x HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n", bodyLen); err != nil {
		t.Fatal(err)
	}
	// The server answering or closing ends the trickle.
	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		close(closed)
	}()
	tick := time.NewTicker(readTimeout / 3) // 100 bytes take 10 s
	defer tick.Stop()
	sent := 0
	for sent < bodyLen {
		select {
		case <-closed:
		case <-tick.C:
			if _, err := conn.Write([]byte{'x'}); err == nil {
				sent++
				continue
			}
		}
		break
	}
	if sent == bodyLen {
		t.Fatalf("the whole %d-byte body was read one byte every %v; want it cut after %v", bodyLen, readTimeout/3, readTimeout)
	}
	if err := <-handlerErr; err == nil {
		t.Error("the handler read the whole slow body")
	}
	t.Logf("cut after %d of %d bytes", sent, bodyLen)
}
