package digitalocean

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/provider/digitalocean/dosim"
	"github.com/kloud/kloud/stack"
)

// closedEndpoint returns a loopback URL nothing listens on.
func closedEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// TestVerifyCredential verifies credentials against the simulator through
// godo: a good token, a refused one (401) and an endpoint that does not
// answer are told apart, as are an answer that is not the API's and a
// locked account. No error shows the token.
func TestVerifyCredential(t *testing.T) {
	e := newEnv(t, dosim.Options{})
	e.sim.AddAccount("dop_v1_"+strings.Repeat("9", 64), dosim.Account{Email: "locked@example.com", Status: "locked", StatusMsg: "billing overdue"})
	notAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html>hello</html>"))
	}))
	t.Cleanup(notAPI.Close)
	badToken := "dop_v1_" + strings.Repeat("f", 64)
	tests := []struct {
		name     string
		cred     Credential
		want     error
		contains []string
	}{
		{"good token", Credential{Token: stack.Secret(testToken), Region: "nyc3", Endpoint: e.sim.URL()}, nil, nil},
		{"token refused", Credential{Token: stack.Secret(badToken), Region: "nyc3", Endpoint: e.sim.URL()}, ErrUnauthorized,
			[]string{"401 Unauthorized", "Unable to authenticate you"}},
		{"endpoint unreachable", Credential{Token: stack.Secret(testToken), Region: "nyc3", Endpoint: closedEndpoint(t)}, ErrUnreachable,
			[]string{"unreachable at http://127.0.0.1:", "connection refused"}},
		{"not the API", Credential{Token: stack.Secret(testToken), Region: "nyc3", Endpoint: notAPI.URL}, ErrUnexpectedResponse,
			[]string{"is it the DigitalOcean API?"}},
		{"account locked", Credential{Token: stack.Secret("dop_v1_" + strings.Repeat("9", 64)), Region: "nyc3", Endpoint: e.sim.URL()}, ErrAccountLocked,
			[]string{"locked@example.com", "billing overdue"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			s := e.stack(t, &tt.cred)
			s.Log = slog.New(slog.NewTextHandler(&logs, nil))
			err := s.VerifyCredential(context.Background(), s.Credential)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(logs.String(), "dev@example.com") || !strings.Contains(logs.String(), "b6fc48db") {
					t.Errorf("log does not name the account: %s", logs.String())
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			for _, w := range []error{ErrUnauthorized, ErrUnreachable, ErrUnexpectedResponse, ErrAccountLocked} {
				if w != tt.want && errors.Is(err, w) {
					t.Errorf("err %v also matches %v", err, w)
				}
			}
			for _, c := range tt.contains {
				if !strings.Contains(err.Error(), c) {
					t.Errorf("err = %q, want it to contain %q", err, c)
				}
			}
			if strings.Contains(err.Error(), tt.cred.Token.Reveal()) || strings.Contains(logs.String(), tt.cred.Token.Reveal()) {
				t.Errorf("the token leaked: %v / %s", err, logs.String())
			}
		})
	}
	// Only authenticated calls reached the API's handlers, each with the
	// bearer token (the simulator refused the others with 401).
	for _, r := range e.sim.Requests() {
		if r.Path != "/v2/account" || r.Method != http.MethodGet {
			t.Errorf("unexpected request %+v", r)
		}
	}
}

// TestAccount checks what the account call reports.
func TestAccount(t *testing.T) {
	e := newEnv(t, dosim.Options{})
	a, err := e.stack(t, e.cred).Account(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Email != "dev@example.com" || a.UUID != "b6fc48dbf6d9906cace5f9a4bf7a8d1e3c8e5c5a" || a.Status != "active" || a.DropletLimit != 25 {
		t.Errorf("account = %+v", a)
	}
}

// TestThrottleRetried checks that a 429 is retried after the wait the API
// names: Retry-After when sent, else ratelimit-reset; and that a call still
// throttled after every retry fails with ErrThrottled.
func TestThrottleRetried(t *testing.T) {
	t.Run("Retry-After", func(t *testing.T) {
		e := newEnv(t, dosim.Options{})
		e.sim.Throttle(dosim.Throttling{Requests: 2, RetryAfter: 3 * time.Second})
		if err := e.stack(t, e.cred).VerifyCredential(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		if got := e.clock.Sleeps(); len(got) != 2 || got[0] != 3*time.Second || got[1] != 3*time.Second {
			t.Errorf("waits = %v, want [3s 3s]", got)
		}
		if n := len(e.sim.Requests()); n != 3 {
			t.Errorf("%d requests, want 3", n)
		}
	})
	t.Run("ratelimit-reset", func(t *testing.T) {
		e := newEnv(t, dosim.Options{})
		e.sim.Throttle(dosim.Throttling{Requests: 1, RetryAfter: 7 * time.Second, NoRetryAfter: true})
		if err := e.stack(t, e.cred).VerifyCredential(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		if got := e.clock.Sleeps(); len(got) != 1 || got[0] != 7*time.Second {
			t.Errorf("waits = %v, want [7s]", got)
		}
	})
	t.Run("exhausted", func(t *testing.T) {
		e := newEnv(t, dosim.Options{})
		e.sim.Throttle(dosim.Throttling{Requests: 100, RetryAfter: time.Second})
		err := e.stack(t, e.cred).VerifyCredential(context.Background(), nil)
		if !errors.Is(err, ErrThrottled) {
			t.Fatalf("err = %v, want ErrThrottled", err)
		}
		// MaxRetries is 4 in tests: five attempts.
		if n := len(e.sim.Requests()); n != 5 {
			t.Errorf("%d requests, want 5", n)
		}
	})
	t.Run("long wait capped", func(t *testing.T) {
		e := newEnv(t, dosim.Options{})
		e.sim.Throttle(dosim.Throttling{Requests: 1, RetryAfter: time.Hour})
		if err := e.stack(t, e.cred).VerifyCredential(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		if got := e.clock.Sleeps(); len(got) != 1 || got[0] != 30*time.Second {
			t.Errorf("waits = %v, want [30s] (MaxRetryWait)", got)
		}
	})
}

// TestServerErrors checks that a GET failing with a 5xx is retried with
// backoff, and that a POST of an action is not (the action may have been
// taken): its error wraps ErrAPI and names the status.
func TestServerErrors(t *testing.T) {
	e := newEnv(t, dosim.Options{})
	d := e.sim.AddDroplet(dosim.Droplet{Status: dosim.StatusOff})
	m := e.machine(t, d.ID)
	e.sim.Fail(2, http.StatusServiceUnavailable)
	st, _, err := m.Info(context.Background())
	if err != nil || st.String() != "Stopped" {
		t.Fatalf("Info = %v, %v", st, err)
	}
	if got := e.clock.Sleeps(); len(got) != 2 || got[0] != time.Second || got[1] != 2*time.Second {
		t.Errorf("backoff = %v, want [1s 2s]", got)
	}

	before := len(e.sim.Requests())
	// The GET of Start passes; its power_on POST meets the 500.
	failPost := &failingTransport{base: http.DefaultTransport, method: http.MethodPost, status: http.StatusInternalServerError}
	opts := testOptions(e.clock)
	opts.HTTPClient = &http.Client{Transport: failPost}
	p := NewProvider(opts)
	mm, err := p.Machine(&provider.BaseMachine{Provider: p, Machine: m.BaseMachine.Machine, Cred: e.cred, Metadata: m.Metadata})
	if err != nil {
		t.Fatal(err)
	}
	_, err = mm.Start(context.Background())
	if !errors.Is(err, ErrAPI) || !strings.Contains(err.Error(), "500") {
		t.Fatalf("Start err = %v, want ErrAPI with 500", err)
	}
	if failPost.posts != 1 {
		t.Errorf("%d POSTs, want 1 (no retry)", failPost.posts)
	}
	if got := len(e.sim.Requests()) - before; got != 1 {
		t.Errorf("%d requests reached the simulator, want 1 (the GET)", got)
	}
}

// failingTransport answers every request of one method with a status
// (DigitalOcean's error body) without sending it on.
type failingTransport struct {
	base   http.RoundTripper
	method string
	status int
	posts  int
}

func (f *failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != f.method {
		return f.base.RoundTrip(r)
	}
	f.posts++
	body := `{"id":"server_error","message":"Server was unable to give you a response."}`
	return &http.Response{
		StatusCode: f.status, Status: http.StatusText(f.status), Request: r,
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   nopCloser{strings.NewReader(body)}, ContentLength: int64(len(body)),
	}, nil
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }

// TestRealAccount verifies a real DigitalOcean token when
// KLOUD_TEST_DO_TOKEN is set (KLOUD_TEST_DO_ENDPOINT optionally points it
// elsewhere); it is skipped otherwise. It only reads the account.
func TestRealAccount(t *testing.T) {
	token := os.Getenv("KLOUD_TEST_DO_TOKEN")
	if token == "" {
		t.Skip("set KLOUD_TEST_DO_TOKEN to verify a real DigitalOcean token")
	}
	data := `{"token":` + quote(token) + `,"region":"nyc3"`
	if ep := os.Getenv("KLOUD_TEST_DO_ENDPOINT"); ep != "" {
		data += `,"endpoint":` + quote(ep)
	}
	v, err := provider.Decode(Schema.NewCredential, []byte(data+"}"))
	if err != nil {
		t.Fatal(err)
	}
	p := Provider()
	st, err := p.Stack(&provider.BaseStack{Provider: p, Cred: v})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := st.(*Stack).Account(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("account %s (%s), status %s, droplet limit %d", a.Email, a.UUID, a.Status, a.DropletLimit)
	bad := *v.(*Credential)
	bad.Token = stack.Secret("dop_v1_" + strings.Repeat("0", 64))
	st2, _ := p.Stack(&provider.BaseStack{Provider: p, Cred: &bad})
	if err := st2.VerifyCredential(ctx, nil); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("a made-up token: err = %v, want ErrUnauthorized", err)
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
