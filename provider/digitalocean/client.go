package digitalocean

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/digitalocean/godo"

	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
)

// Sentinel errors of calls to the DigitalOcean API; every error the
// provider returns from a call wraps one of them.
var (
	// ErrUnauthorized: the API refused the token (401).
	ErrUnauthorized = provider.Kind("DigitalOcean refused the token", provider.ErrCredentialRefused)
	// ErrForbidden: the token lacks the scope for the call (403).
	ErrForbidden = errors.New("the token is not allowed to do this")
	// ErrNotFound: the droplet, action or path does not exist (404).
	ErrNotFound = errors.New("not found")
	// ErrUnreachable: no HTTP answer at all (DNS, connection, TLS, timeout).
	ErrUnreachable = provider.Kind("DigitalOcean API unreachable", provider.ErrUnreachable)
	// ErrThrottled: still rate limited (429) after every retry.
	ErrThrottled = errors.New("DigitalOcean API rate limit exceeded")
	// ErrUnexpectedResponse: an answer that is not the API's JSON.
	ErrUnexpectedResponse = errors.New("unexpected answer from the DigitalOcean API")
	// ErrAPI: any other error status (422, 5xx after retries, ...).
	ErrAPI = errors.New("DigitalOcean API error")
)

// Options tune how the provider talks to the API and how long it waits.
// Zero values take the defaults noted.
type Options struct {
	// HTTPClient carries the API calls; its Transport is wrapped to add
	// the bearer token. Default: a client with a 30 s timeout.
	HTTPClient *http.Client
	// PollInterval is the first wait between polls of an action or a
	// droplet (default 2 s); each wait is 1.5 times the previous, up to
	// MaxPollInterval (default 15 s).
	PollInterval    time.Duration
	MaxPollInterval time.Duration
	// ActionTimeout bounds the wait for a power_on or power_off action
	// and for the droplet to reach its status (default 5 min).
	ActionTimeout time.Duration
	// ShutdownTimeout bounds a graceful shutdown before Stop powers the
	// droplet off (default 2 min).
	ShutdownTimeout time.Duration
	// MaxRetries is how many times a throttled (429) call, or a GET that
	// failed with a 5xx, is retried (default 6). RetryBase is the first
	// backoff when the API names no wait (default 1 s), MaxRetryWait caps
	// any one wait (default 60 s).
	MaxRetries   int
	RetryBase    time.Duration
	MaxRetryWait time.Duration
	// Now and Sleep are the clock (time.Now and a timer by default).
	// Tests inject a clock whose Sleep advances Now, so waits and
	// timeouts run without sleeping.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

func (o Options) withDefaults() Options {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 2 * time.Second
	}
	if o.MaxPollInterval <= 0 {
		o.MaxPollInterval = 15 * time.Second
	}
	if o.MaxPollInterval < o.PollInterval {
		o.MaxPollInterval = o.PollInterval
	}
	if o.ActionTimeout <= 0 {
		o.ActionTimeout = 5 * time.Minute
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 2 * time.Minute
	}
	if o.MaxRetries <= 0 {
		o.MaxRetries = 6
	}
	if o.RetryBase <= 0 {
		o.RetryBase = time.Second
	}
	if o.MaxRetryWait <= 0 {
		o.MaxRetryWait = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	return o
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// bearerTransport adds the token to every request. The token lives only
// here and in the request headers, never in a URL or an error.
type bearerTransport struct {
	token stack.Secret
	base  http.RoundTripper
}

func (b *bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	r2.Header.Set("Authorization", "Bearer "+b.token.Reveal())
	return b.base.RoundTrip(r2)
}

// api is one credential's godo client with retries and error mapping.
type api struct {
	do       *godo.Client
	endpoint string // for messages
	opts     Options
	log      *slog.Logger
}

func newAPI(cred *Credential, opts Options, log *slog.Logger) (*api, error) {
	if cred == nil {
		return nil, errors.New("no digitalocean credential")
	}
	base, _, err := endpointURLs(cred.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("digitalocean endpoint: %w", err)
	}
	transport := opts.HTTPClient.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	hc := *opts.HTTPClient
	hc.Transport = &bearerTransport{token: cred.Token, base: transport}
	c, err := godo.New(&hc, godo.SetBaseURL(base), godo.SetUserAgent("kloud-digitalocean"))
	if err != nil {
		return nil, fmt.Errorf("digitalocean client: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &api{do: c, endpoint: strings.TrimSuffix(base, "/"), opts: opts, log: log}, nil
}

// call runs f, retrying a throttled answer (429) after the wait the API
// names (Retry-After, else ratelimit-reset) and, when idempotent, a 5xx
// after an exponential backoff. Other failures are mapped to the
// package's sentinel errors.
func (a *api) call(ctx context.Context, op string, idempotent bool, f func(context.Context) (*godo.Response, error)) error {
	backoff := a.opts.RetryBase
	for attempt := 0; ; attempt++ {
		resp, err := f(ctx)
		if err == nil {
			return nil
		}
		status := 0
		if resp != nil && resp.Response != nil {
			status = resp.StatusCode
		}
		var wait time.Duration
		switch {
		case status == http.StatusTooManyRequests:
			wait = a.throttleWait(resp.Response, backoff)
		case status >= 500 && idempotent:
			wait = backoff
		default:
			return a.mapError(ctx, op, err)
		}
		if attempt >= a.opts.MaxRetries {
			if status == http.StatusTooManyRequests {
				return fmt.Errorf("%s: %w after %d attempts", op, ErrThrottled, attempt+1)
			}
			return a.mapError(ctx, op, err)
		}
		wait = min(wait, a.opts.MaxRetryWait)
		a.log.Debug("digitalocean API call retried", "op", op, "status", status, "wait", wait, "attempt", attempt+1)
		if err := a.opts.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("%s: waiting to retry after %d: %w", op, status, err)
		}
		backoff = min(2*backoff, a.opts.MaxRetryWait)
	}
}

// throttleWait reads how long a 429 asks to wait: Retry-After (seconds or
// an HTTP date), else ratelimit-reset (a Unix time), else the backoff.
func (a *api) throttleWait(r *http.Response, backoff time.Duration) time.Duration {
	now := a.opts.Now()
	if v := strings.TrimSpace(r.Header.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs >= 0 {
			return time.Duration(secs) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0)
		}
	}
	if v := strings.TrimSpace(r.Header.Get("RateLimit-Reset")); v != "" {
		if unix, err := strconv.ParseInt(v, 10, 64); err == nil {
			if d := time.Unix(unix, 0).Sub(now); d > 0 {
				return d
			}
			return 0
		}
	}
	return backoff
}

// mapError turns a failed call into an error wrapping one sentinel, with
// the status and the API's message. URLs carry no secret, but the error
// names the endpoint rather than repeating godo's full request line.
func (a *api) mapError(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %w", op, ctxErr)
	}
	var er *godo.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		e := &APIError{Op: op, Status: er.Response.StatusCode, Message: strings.TrimSpace(er.Message), RequestID: er.RequestID}
		switch e.Status {
		case http.StatusUnauthorized:
			e.Kind = ErrUnauthorized
		case http.StatusForbidden:
			e.Kind = ErrForbidden
		case http.StatusNotFound:
			e.Kind = ErrNotFound
		case http.StatusTooManyRequests:
			e.Kind = ErrThrottled
		default:
			e.Kind = ErrAPI
		}
		return e
	}
	// The HTTP client wraps every transport failure (DNS, connection,
	// TLS, timeout) in a *url.Error; anything else is an answer godo
	// could not read.
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w at %s: %v", op, ErrUnreachable, a.endpoint, ue.Err)
	}
	return fmt.Errorf("%s: %w from %s (is it the DigitalOcean API?): %v", op, ErrUnexpectedResponse, a.endpoint, err)
}

// APIError is an error status the API answered.
type APIError struct {
	Op        string // what was asked: "get droplet 42"
	Status    int
	Message   string // the API's message
	RequestID string
	// Kind is the sentinel the error wraps (ErrUnauthorized, ErrNotFound, ...).
	Kind error
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("%s: %v (%d %s", e.Op, e.Kind, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RequestID != "" {
		s += "; request " + e.RequestID
	}
	return s + ")"
}

// Unwrap lets errors.Is match the sentinel.
func (e *APIError) Unwrap() error { return e.Kind }

// isUnprocessable reports whether err is a 422 whose message contains text
// (DigitalOcean's "Droplet already has a pending event.", "Droplet is
// already powered off.").
func isUnprocessable(err error, text string) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusUnprocessableEntity &&
		strings.Contains(strings.ToLower(e.Message), strings.ToLower(text))
}

func (a *api) account(ctx context.Context) (*godo.Account, error) {
	var acct *godo.Account
	err := a.call(ctx, "get account", true, func(ctx context.Context) (*godo.Response, error) {
		var resp *godo.Response
		var err error
		acct, resp, err = a.do.Account.Get(ctx)
		return resp, err
	})
	if err == nil && acct == nil {
		err = fmt.Errorf("get account: %w from %s: no account in the answer", ErrUnexpectedResponse, a.endpoint)
	}
	return acct, err
}

func (a *api) droplet(ctx context.Context, id int) (*godo.Droplet, error) {
	var d *godo.Droplet
	err := a.call(ctx, fmt.Sprintf("get droplet %d", id), true, func(ctx context.Context) (*godo.Response, error) {
		var resp *godo.Response
		var err error
		d, resp, err = a.do.Droplets.Get(ctx, id)
		return resp, err
	})
	if err == nil && (d == nil || d.ID == 0) {
		err = fmt.Errorf("get droplet %d: %w from %s: no droplet in the answer", id, ErrUnexpectedResponse, a.endpoint)
	}
	return d, err
}

func (a *api) action(ctx context.Context, id int) (*godo.Action, error) {
	var act *godo.Action
	err := a.call(ctx, fmt.Sprintf("get action %d", id), true, func(ctx context.Context) (*godo.Response, error) {
		var resp *godo.Response
		var err error
		act, resp, err = a.do.Actions.Get(ctx, id)
		return resp, err
	})
	if err == nil && (act == nil || act.ID == 0) {
		err = fmt.Errorf("get action %d: %w from %s: no action in the answer", id, ErrUnexpectedResponse, a.endpoint)
	}
	return act, err
}

// dropletAction posts a power_on, power_off or shutdown action. A 5xx is
// not retried (the action may have been taken); a 429 is.
func (a *api) dropletAction(ctx context.Context, dropletID int, typ string) (*godo.Action, error) {
	var act *godo.Action
	err := a.call(ctx, fmt.Sprintf("%s droplet %d", typ, dropletID), false, func(ctx context.Context) (*godo.Response, error) {
		var resp *godo.Response
		var err error
		switch typ {
		case actionPowerOn:
			act, resp, err = a.do.DropletActions.PowerOn(ctx, dropletID)
		case actionPowerOff:
			act, resp, err = a.do.DropletActions.PowerOff(ctx, dropletID)
		case actionShutdown:
			act, resp, err = a.do.DropletActions.Shutdown(ctx, dropletID)
		default:
			return nil, fmt.Errorf("unknown droplet action %q", typ)
		}
		return resp, err
	})
	if err == nil && (act == nil || act.ID == 0) {
		err = fmt.Errorf("%s droplet %d: %w from %s: no action in the answer", typ, dropletID, ErrUnexpectedResponse, a.endpoint)
	}
	return act, err
}
