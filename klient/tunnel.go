package klient

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/yamux"

	"github.com/kloud/kloud/klient/agentapi"
)

// The tunnel's reconnect delays: the first retry comes after about
// tunnelMinBackoff (an agent whose replica died is back within a second),
// each further one doubles, up to tunnelMaxBackoff (a tunnel that keeps
// failing, say behind a proxy that drops upgrades, costs Kloud a connect
// every half minute, not several a second), each with ±50% jitter so a
// fleet of agents does not reconnect in step.
const (
	tunnelMinBackoff = 100 * time.Millisecond
	tunnelMaxBackoff = 30 * time.Second
	// tunnelStable is how long a tunnel must have stayed up for the next
	// failure to start again from the shortest delay.
	tunnelStable = 10 * time.Second
)

// tunnelLoop keeps one tunnel to Kloud open until ctx ends: it dials
// ConnectPath (a WebSocket with the machine's token), serves the streams
// Kloud opens on it, and reconnects with backoff and jitter when it drops.
// Kloud never needs the machine's address: the agent dials out.
func (a *Agent) tunnelLoop(ctx context.Context) {
	log := a.cfg.Log
	var backoff time.Duration
	for {
		began := time.Now()
		err := a.tunnelOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > tunnelStable {
			backoff = 0
		}
		backoff = nextBackoff(backoff, 2*tunnelMinBackoff, tunnelMaxBackoff)
		wait := jitter(backoff)
		log.Warn("tunnel to kloud down; reconnecting", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// jitter is d moved by up to half of it either way.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d)
}

// tunnelURL is Kloud's connect endpoint as a WebSocket URL.
func tunnelURL(kloudURL string) string {
	u := strings.TrimRight(kloudURL, "/") + agentapi.ConnectPath
	if rest, ok := strings.CutPrefix(u, "https://"); ok {
		return "wss://" + rest
	}
	return "ws://" + strings.TrimPrefix(u, "http://")
}

// tunnelOnce dials one tunnel and serves it until it drops.
func (a *Agent) tunnelOnce(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, resp, err := websocket.Dial(dctx, tunnelURL(a.cfg.KloudURL), &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + a.cfg.Token}},
		HTTPClient: &http.Client{Transport: a.cfg.HTTPClient.Transport},
	})
	cancel()
	if err != nil {
		if resp != nil {
			return fmt.Errorf("dial tunnel: %d %s: %w", resp.StatusCode, http.StatusText(resp.StatusCode), err)
		}
		return fmt.Errorf("dial tunnel: %w", err)
	}
	c.SetReadLimit(2 * agentapi.MaxFrame)
	nc := websocket.NetConn(ctx, c, websocket.MessageBinary)
	sess, err := yamux.Server(agentapi.TunnelConn(nc), agentapi.YamuxConfig())
	if err != nil {
		nc.Close()
		return fmt.Errorf("open tunnel session: %w", err)
	}
	a.cfg.Log.Info("tunnel to kloud up", "url", a.cfg.KloudURL)
	a.setTunnel(true)
	defer a.setTunnel(false)
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	defer sess.Close()
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			if errors.Is(err, yamux.ErrSessionShutdown) || ctx.Err() != nil {
				return errors.New("tunnel closed")
			}
			return fmt.Errorf("accept stream: %w", err)
		}
		a.streams.Add(1)
		go func() {
			defer a.streams.Done()
			a.serveStream(st)
		}()
	}
}

// serveStream reads a stream's Open and serves what it asks for.
func (a *Agent) serveStream(st *yamux.Stream) {
	_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
	var open agentapi.Open
	if err := agentapi.ReadJSON(st, agentapi.FrameOpen, &open); err != nil {
		st.Close()
		return
	}
	_ = st.SetReadDeadline(time.Time{})
	a.terms.serve(st, open)
}

func (a *Agent) setTunnel(up bool) {
	a.mu.Lock()
	a.tunnelUp = up
	a.mu.Unlock()
}
