package dosim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

const token = "dop_v1_0000000000000000000000000000000000000000000000000000000000000001"

func call(t *testing.T, s *Server, method, path, tok, body string) (int, http.Header, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL()+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: body is not JSON: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, out
}

// TestWireErrors checks DigitalOcean's error bodies: 401 for a missing or
// unknown token, 404 for an unknown droplet or path, 422 for an action
// the droplet cannot take.
func TestWireErrors(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	s.AddAccount(token, Account{Email: "a@example.com"})
	d := s.AddDroplet(Droplet{Status: StatusOff})
	tests := []struct {
		name, method, path, tok, body string
		status                        int
		id, message                   string
	}{
		{"no token", "GET", "/v2/account", "", "", 401, "Unauthorized", "Unable to authenticate you"},
		{"unknown token", "GET", "/v2/account", "dop_v1_nope", "", 401, "Unauthorized", "Unable to authenticate you"},
		{"unknown droplet", "GET", "/v2/droplets/1", token, "", 404, "not_found", "The resource you were accessing could not be found."},
		{"bad droplet id", "GET", "/v2/droplets/abc", token, "", 404, "not_found", "The resource you were accessing could not be found."},
		{"unknown path", "GET", "/v2/volumes", token, "", 404, "not_found", "The resource you were accessing could not be found."},
		{"unknown action", "GET", "/v2/actions/99", token, "", 404, "not_found", "The resource you were accessing could not be found."},
		{"already off", "POST", "/v2/droplets/" + strconv.Itoa(d.ID) + "/actions", token, `{"type":"power_off"}`, 422, "unprocessable_entity", "Droplet is already powered off."},
		{"unsupported action", "POST", "/v2/droplets/" + strconv.Itoa(d.ID) + "/actions", token, `{"type":"rebuild"}`, 422, "unprocessable_entity", ""},
		{"bad body", "POST", "/v2/droplets/" + strconv.Itoa(d.ID) + "/actions", token, `{`, 400, "bad_request", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, h, body := call(t, s, tt.method, tt.path, tt.tok, tt.body)
			if status != tt.status || body["id"] != tt.id {
				t.Errorf("answer %d %v, want %d id %q", status, body, tt.status, tt.id)
			}
			if tt.message != "" && body["message"] != tt.message {
				t.Errorf("message = %v, want %q", body["message"], tt.message)
			}
			if body["request_id"] == "" || h.Get("ratelimit-limit") != "5000" {
				t.Errorf("request_id %v, ratelimit-limit %q", body["request_id"], h.Get("ratelimit-limit"))
			}
		})
	}
}

// TestActionLifecycle drives a droplet through power_on (in-progress, then
// completed after ActionPolls polls of either action path), a refused
// concurrent action, and a shutdown preempted by power_off.
func TestActionLifecycle(t *testing.T) {
	s := New(Options{ActionPolls: 2, ShutdownPolls: 5})
	defer s.Close()
	s.AddAccount(token, Account{})
	d := s.AddDroplet(Droplet{Status: StatusOff, Region: "fra1"})
	base := "/v2/droplets/" + strconv.Itoa(d.ID)

	status, _, body := call(t, s, "POST", base+"/actions", token, `{"type":"power_on"}`)
	act := body["action"].(map[string]any)
	if status != 201 || act["status"] != "in-progress" || act["type"] != "power_on" || act["resource_type"] != "droplet" || act["completed_at"] != nil || act["region_slug"] != "fra1" {
		t.Fatalf("POST = %d %v", status, body)
	}
	aid := strconv.Itoa(int(act["id"].(float64)))
	if status, _, body := call(t, s, "POST", base+"/actions", token, `{"type":"shutdown"}`); status != 422 || body["message"] != "Droplet already has a pending event." {
		t.Errorf("concurrent action = %d %v", status, body)
	}
	if _, _, body := call(t, s, "GET", base, token, ""); body["droplet"].(map[string]any)["locked"] != true {
		t.Errorf("droplet not locked during its action: %v", body)
	}
	// That GET was the first poll; this one completes the action.
	_, _, body = call(t, s, "GET", base+"/actions/"+aid, token, "")
	if a := body["action"].(map[string]any); a["status"] != "completed" || a["completed_at"] == nil {
		t.Errorf("action = %v", a)
	}
	_, _, body = call(t, s, "GET", base, token, "")
	dj := body["droplet"].(map[string]any)
	if dj["status"] != "active" || dj["size_slug"] != "s-1vcpu-1gb" || dj["locked"] != false {
		t.Errorf("droplet = %v", dj)
	}
	nets := dj["networks"].(map[string]any)["v4"].([]any)
	if len(nets) != 2 || nets[0].(map[string]any)["type"] != "public" || nets[1].(map[string]any)["type"] != "private" {
		t.Errorf("networks = %v", nets)
	}

	// A slow shutdown is cut short by power_off.
	_, _, body = call(t, s, "POST", base+"/actions", token, `{"type":"shutdown"}`)
	shutdownID := int(body["action"].(map[string]any)["id"].(float64))
	if status, _, _ := call(t, s, "POST", base+"/actions", token, `{"type":"power_off"}`); status != 201 {
		t.Fatalf("power_off during shutdown = %d", status)
	}
	if a, _ := s.Action(shutdownID); a.Status != ActionErrored {
		t.Errorf("preempted shutdown = %+v", a)
	}
	for range 2 {
		call(t, s, "GET", "/v2/actions/"+strconv.Itoa(shutdownID+1), token, "")
	}
	if dd, _ := s.Droplet(d.ID); dd.Status != StatusOff || dd.Locked {
		t.Errorf("droplet = %+v", dd)
	}
	if got := s.ActionTypes(); strings.Join(got, ",") != "power_on,shutdown,shutdown,power_off" {
		t.Errorf("action types = %v", got)
	}
}

// TestNewAndIgnoredShutdown checks that a new droplet becomes active after
// NewPolls polls and that a droplet ignoring shutdown stays active with the
// action errored.
func TestNewAndIgnoredShutdown(t *testing.T) {
	s := New(Options{NewPolls: 2})
	defer s.Close()
	s.AddAccount(token, Account{})
	d := s.AddDroplet(Droplet{Status: StatusNew, IgnoreShutdown: true})
	path := "/v2/droplets/" + strconv.Itoa(d.ID)
	if _, _, b := call(t, s, "GET", path, token, ""); b["droplet"].(map[string]any)["status"] != "new" {
		t.Errorf("first poll: %v", b)
	}
	if _, _, b := call(t, s, "GET", path, token, ""); b["droplet"].(map[string]any)["status"] != "active" {
		t.Errorf("second poll: %v", b)
	}
	_, _, b := call(t, s, "POST", path+"/actions", token, `{"type":"shutdown"}`)
	id := strconv.Itoa(int(b["action"].(map[string]any)["id"].(float64)))
	_, _, b = call(t, s, "GET", "/v2/actions/"+id, token, "")
	if b["action"].(map[string]any)["status"] != "errored" {
		t.Errorf("ignored shutdown = %v", b)
	}
	if dd, _ := s.Droplet(d.ID); dd.Status != StatusActive {
		t.Errorf("droplet = %+v", dd)
	}
}

// TestFaults checks throttling (429 with Retry-After and the rate-limit
// headers), injected server errors, and delays that a cancelled request
// cuts short.
func TestFaults(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s := New(Options{Now: func() time.Time { return now }})
	defer s.Close()
	s.AddAccount(token, Account{})
	s.Throttle(Throttling{Requests: 1, RetryAfter: 2500 * time.Millisecond})
	status, h, body := call(t, s, "GET", "/v2/account", token, "")
	if status != 429 || body["id"] != "too_many_requests" || h.Get("Retry-After") != "3" || h.Get("ratelimit-remaining") != "0" ||
		h.Get("ratelimit-reset") != strconv.FormatInt(now.Add(2500*time.Millisecond).Unix(), 10) {
		t.Errorf("throttled answer = %d %v %v", status, body, h)
	}
	status, h, body = call(t, s, "GET", "/v2/account", token, "")
	if status != 200 || h.Get("ratelimit-remaining") != "4999" || body["account"].(map[string]any)["status"] != "active" {
		t.Errorf("after throttling = %d %v %v", status, body, h)
	}
	s.Fail(1, 503)
	if status, _, body := call(t, s, "GET", "/v2/account", token, ""); status != 503 || body["id"] != "server_error" {
		t.Errorf("failure = %d %v", status, body)
	}
	s.SetDelay(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL()+"/v2/account", nil)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Error("a delayed request answered before its deadline")
	}
	s.SetDelay(0)
	reqs := s.Requests()
	if len(reqs) < 3 || reqs[0].Status != 429 || reqs[1].Status != 200 || reqs[2].Status != 503 {
		t.Errorf("requests = %+v", reqs)
	}
}
