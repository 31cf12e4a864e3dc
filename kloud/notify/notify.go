// Package notify sends Kloud's events to webhooks: each event a webhook
// asks for becomes a stored delivery, whose JSON body is signed with the
// webhook's secret (X-Kloud-Signature: sha256=<hex HMAC-SHA256 of the
// body>) and tried until the receiver answers 2xx, with backoff, for an
// hour; every attempt is kept in the delivery's log.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/kloud/kloud/store"
)

// The events a webhook may ask for.
const (
	JobSucceeded    = "job.succeeded"
	JobFailed       = "job.failed"
	BudgetWarned    = "budget.warned"
	BudgetExhausted = "budget.exhausted"
	MachineStopped  = "machine.stopped"
	StackDrifted    = "stack.drifted"
)

// Events lists every event, in the order the API documents them.
var Events = []string{JobSucceeded, JobFailed, BudgetWarned, BudgetExhausted, MachineStopped, StackDrifted}

// SignatureHeader carries a delivery's signature.
const SignatureHeader = "X-Kloud-Signature"

// Sign is the signature header's value of body under secret.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether sig is body's signature under secret, in
// constant time: what a receiver does.
func Verify(secret string, body []byte, sig string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(sig))
}

// Event is one thing that happened, for the webhooks of its owner and of
// admins.
type Event struct {
	ID      string         `json:"id"`
	Event   string         `json:"event"`
	At      time.Time      `json:"at"`
	OwnerID string         `json:"owner_id"`
	Data    map[string]any `json:"data"`
}

// Store is what the notifier keeps: webhooks and deliveries.
type Store interface {
	ListWebhooks(ctx context.Context, ownerID string) ([]*store.Webhook, error)
	GetWebhook(ctx context.Context, id string) (*store.Webhook, error)
	CreateDelivery(ctx context.Context, d *store.Delivery) error
	UpdateDelivery(ctx context.Context, d *store.Delivery, prev int) error
	DueDeliveries(ctx context.Context, now time.Time, limit int) ([]*store.Delivery, error)
}

// Defaults of a Notifier.
const (
	DefaultBackoff    = 5 * time.Second
	DefaultMaxBackoff = 10 * time.Minute
	DefaultGiveUp     = time.Hour
	DefaultTimeout    = 10 * time.Second
	// MaxResponse is how much of a receiver's answer is read (and
	// dropped).
	MaxResponse = 64 << 10
	// maxError is how much of an attempt's error is kept.
	maxError = 300
	// dueBatch is how many deliveries one pass tries at most, parallel
	// how many at once.
	dueBatch = 50
	parallel = 10
)

// Config is what a Notifier needs; zero values take the defaults.
type Config struct {
	Store Store
	// AllScopes reports whether a webhook of ownerID gets every owner's
	// events (an admin's webhook).
	AllScopes func(ctx context.Context, ownerID string) bool
	// Backoff is the wait after a first failed attempt, doubled after
	// each further one up to MaxBackoff; a delivery is failed once its
	// next attempt would come GiveUp after the event.
	Backoff, MaxBackoff, GiveUp time.Duration
	// Timeout bounds one attempt.
	Timeout time.Duration
	// Client sends the requests (default: one with Timeout that follows
	// no redirects).
	Client *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	Log *slog.Logger
}

// Notifier turns events into deliveries and tries due deliveries.
type Notifier struct {
	cfg Config
}

// New returns a notifier on cfg.
func New(cfg Config) *Notifier {
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.GiveUp <= 0 {
		cfg.GiveUp = DefaultGiveUp
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.AllScopes == nil {
		cfg.AllScopes = func(context.Context, string) bool { return false }
	}
	return &Notifier{cfg: cfg}
}

func (n *Notifier) now() time.Time { return n.cfg.Now().UTC() }

// Notify records a delivery of ev to every webhook that asks for it: the
// webhooks of ev's owner and of admins. It returns how many.
func (n *Notifier) Notify(ctx context.Context, ev Event) (int, error) {
	if ev.ID == "" {
		ev.ID = store.NewID("evt-")
	}
	if ev.At.IsZero() {
		ev.At = n.now()
	}
	if ev.Data == nil {
		ev.Data = map[string]any{}
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return 0, fmt.Errorf("notify %s: %w", ev.Event, err)
	}
	hooks, err := n.cfg.Store.ListWebhooks(ctx, "")
	if err != nil {
		return 0, fmt.Errorf("notify %s: %w", ev.Event, err)
	}
	sent := 0
	var errs []error
	for _, h := range hooks {
		if !slices.Contains(h.Events, ev.Event) {
			continue
		}
		if h.OwnerID != ev.OwnerID && !n.cfg.AllScopes(ctx, h.OwnerID) {
			continue
		}
		d := &store.Delivery{WebhookID: h.ID, Event: ev.Event, Body: body, Status: store.DeliveryPending, CreatedAt: ev.At, NextAt: ev.At}
		if err := n.cfg.Store.CreateDelivery(ctx, d); err != nil {
			errs = append(errs, fmt.Errorf("notify %s to webhook %s: %w", ev.Event, h.ID, err))
			continue
		}
		sent++
	}
	return sent, errors.Join(errs...)
}

// DeliverDue tries the deliveries due now (at most dueBatch, parallel
// at most parallel at once), once each, and returns how many it tried.
// Delivery is at least once: a receiver dedupes by X-Kloud-Delivery.
func (n *Notifier) DeliverDue(ctx context.Context) (int, error) {
	due, err := n.cfg.Store.DueDeliveries(ctx, n.now(), dueBatch)
	if err != nil {
		return 0, fmt.Errorf("deliver webhooks: %w", err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, parallel)
	)
	for _, d := range due {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := n.attempt(ctx, d); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return len(due), errors.Join(errs...)
}

// attempt sends d once and records the attempt.
func (n *Notifier) attempt(ctx context.Context, d *store.Delivery) error {
	prev := len(d.Attempts)
	hook, err := n.cfg.Store.GetWebhook(ctx, d.WebhookID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted meanwhile: its deliveries go with it
	}
	if err != nil {
		return fmt.Errorf("deliver %s: %w", d.ID, err)
	}
	at := n.now()
	code, sendErr := n.send(ctx, hook, d)
	a := store.Attempt{At: at, StatusCode: code}
	if sendErr != nil {
		msg := sendErr.Error()
		if len(msg) > maxError {
			msg = msg[:maxError] + "…"
		}
		a.Error = msg
	}
	d.Attempts = append(d.Attempts, a)
	switch next := at.Add(n.backoff(len(d.Attempts))); {
	case sendErr == nil && code >= 200 && code < 300:
		d.Status, d.NextAt = store.DeliveryDelivered, time.Time{}
	case next.After(d.CreatedAt.Add(n.cfg.GiveUp)):
		d.Status, d.NextAt = store.DeliveryFailed, time.Time{}
	default:
		d.NextAt = next
	}
	if err := n.cfg.Store.UpdateDelivery(ctx, d, prev); err != nil {
		return fmt.Errorf("deliver %s: %w", d.ID, err)
	}
	n.cfg.Log.Debug("webhook delivery attempted", "delivery", d.ID, "webhook", hook.ID, "event", d.Event, "status", code, "outcome", d.Status)
	return nil
}

// backoff is the wait after the n-th failed attempt.
func (n *Notifier) backoff(attempts int) time.Duration {
	b := n.cfg.Backoff
	for i := 1; i < attempts && b < n.cfg.MaxBackoff; i++ {
		b *= 2
	}
	return min(b, n.cfg.MaxBackoff)
}

// send posts the delivery's body to the webhook and returns the status.
func (n *Notifier) send(ctx context.Context, hook *store.Webhook, d *store.Delivery) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(d.Body))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Kloud-Webhook/1")
	req.Header.Set(SignatureHeader, Sign(hook.Secret.Reveal(), d.Body))
	req.Header.Set("X-Kloud-Event", d.Event)
	req.Header.Set("X-Kloud-Delivery", d.ID)
	resp, err := n.cfg.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponse))
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("receiver answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}
