package klient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/kloud/kloud/klient/agentapi"

	"github.com/kloud/kloud/internal/version"
)

// ErrKloudStatus is wrapped when Kloud answers a call with a non-2xx status.
var ErrKloudStatus = errors.New("kloud refused the call")

// StatusError is Kloud's non-2xx answer to one call.
type StatusError struct {
	Path   string
	Status int
	Body   string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s: %s: %d %s", ErrKloudStatus, e.Path, e.Status, http.StatusText(e.Status))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

func (e *StatusError) Unwrap() error { return ErrKloudStatus }

// kloudLoop registers with Kloud, retrying until it succeeds, then
// heartbeats every interval. A failed call is retried after an exponential
// backoff (half an interval, doubling, capped at MaxBackoff); the agent
// keeps serving meanwhile. A heartbeat answered 404 (Kloud no longer knows
// the machine) sends the agent back to registering.
func (a *Agent) kloudLoop(ctx context.Context) {
	log := a.cfg.Log
	var wait, backoff time.Duration
	for {
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-a.cfg.After(wait):
			}
		}
		if ctx.Err() != nil {
			return
		}
		a.mu.Lock()
		registered := a.registered
		a.mu.Unlock()
		path := RegisterPath
		if registered {
			path = HeartbeatPath
		}
		ack, err := a.call(ctx, path)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			a.mu.Lock()
			if !a.registered {
				log.Info("registered with kloud", "url", a.cfg.KloudURL)
			}
			a.registered = true
			a.lastBeat = a.cfg.Now()
			if d := ack.Interval(); d > 0 && d != a.interval {
				log.Info("heartbeat interval set by kloud", "interval", d)
				a.interval = d
			}
			wait = a.heartbeatLocked()
			a.mu.Unlock()
			backoff = 0
			continue
		}
		var se *StatusError
		if registered && errors.As(err, &se) && se.Status == http.StatusNotFound {
			a.mu.Lock()
			a.registered = false
			a.mu.Unlock()
		}
		a.mu.Lock()
		interval := a.heartbeatLocked()
		a.mu.Unlock()
		backoff = nextBackoff(backoff, interval, a.cfg.MaxBackoff)
		wait = backoff
		log.Warn("call kloud failed; retrying", "path", path, "err", err, "retry_in", backoff)
	}
}

// nextBackoff returns the delay after one more failure, given the previous
// delay (zero after a success).
func nextBackoff(prev, interval, max time.Duration) time.Duration {
	next := prev * 2
	if prev == 0 {
		next = interval / 2
		if next <= 0 {
			next = time.Millisecond
		}
	}
	if next > max {
		next = max
	}
	return next
}

// call POSTs the agent's beat to Kloud at path with its bearer token and
// returns Kloud's ack (zero when its body is not one: an older server).
func (a *Agent) call(ctx context.Context, path string) (agentapi.Ack, error) {
	var ack agentapi.Ack
	body, err := json.Marshal(a.beat())
	if err != nil {
		return ack, fmt.Errorf("encode beat: %w", err)
	}
	url := strings.TrimRight(a.cfg.KloudURL, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return ack, fmt.Errorf("build request %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.cfg.Token)
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return ack, fmt.Errorf("post %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return ack, &StatusError{Path: path, Status: resp.StatusCode, Body: strings.TrimSpace(string(b[:min(len(b), 512)]))}
	}
	_ = json.Unmarshal(b, &ack)
	return ack, nil
}

func (a *Agent) beat() Beat {
	lastInput, sessions := a.terms.activity()
	busy := a.cpu.busy(a.cfg.BusyCPU)
	a.mu.Lock()
	defer a.mu.Unlock()
	b := Beat{
		MachineID:     a.cfg.MachineID,
		Address:       a.addr,
		Size:          a.cfg.Size,
		UptimeSeconds: a.uptime().Seconds(),
		Version:       version.Version,
		Sessions:      sessions,
		Busy:          busy,
	}
	if !lastInput.IsZero() {
		t := lastInput.UTC()
		b.InputAt = &t
	}
	// The machine is in use now while a terminal is attached or it works;
	// else it was last in use at the last terminal input.
	switch {
	case sessions > 0 || busy:
		now := a.cfg.Now().UTC()
		b.ActiveAt = &now
	case b.InputAt != nil:
		b.ActiveAt = b.InputAt
	}
	return b
}
