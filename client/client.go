package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls one Kloud server as one user.
type Client struct {
	URL   string // e.g. http://127.0.0.1:8080
	Token string
	HTTP  *http.Client
}

// New returns a client of the server at baseURL using token.
func New(baseURL, token string) *Client {
	return &Client{URL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{}}
}

// WithToken returns a copy of c acting with another token.
func (c *Client) WithToken(token string) *Client {
	cp := *c
	cp.Token = token
	return &cp
}

// Do sends a request with a JSON body (when in is not nil) and decodes a JSON
// answer into out (when not nil). A status >= 400 is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if w, ok := out.(io.Writer); ok {
		_, err = io.Copy(w, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s answer: %w", method, path, err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		e := &Error{Status: resp.StatusCode}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(b))
		}
		return nil, e
	}
	return resp, nil
}

// list GETs a list endpoint and every next page the server links to
// (Link: <…>; rel="next"), and returns the items of all pages in order.
// Pagination lives here once: the list methods all use it.
// call sends one request (in is the JSON body, nil for none) and decodes
// the answer into a new T.
func call[T any](ctx context.Context, c *Client, method, path string, in any) (*T, error) {
	var out T
	if err := c.Do(ctx, method, path, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func list[T any](ctx context.Context, c *Client, path string) ([]T, error) {
	var out []T
	for seen := map[string]bool{}; path != "" && !seen[path]; {
		seen[path] = true
		resp, err := c.send(ctx, http.MethodGet, path, nil)
		if err != nil {
			return nil, err
		}
		var page []T
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("decode GET %s answer: %w", path, err)
		}
		if out == nil {
			out = page
		} else {
			out = append(out, page...)
		}
		path = nextPage(c.URL, resp.Header.Get("Link"))
	}
	return out, nil
}

// nextPage returns the path (below base) of a Link header's rel="next"
// target, or "" when there is none.
func nextPage(base, link string) string {
	for _, part := range strings.Split(link, ",") {
		target, params, ok := strings.Cut(part, ";")
		if !ok || !strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) {
			continue
		}
		target = strings.Trim(strings.TrimSpace(target), "<>")
		if rest, ok := strings.CutPrefix(target, base); ok && strings.HasPrefix(rest, "/") {
			return rest
		}
		u, err := url.Parse(target)
		if err != nil || target == "" {
			return ""
		}
		return u.RequestURI()
	}
	return ""
}

// Health calls GET /healthz.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var h Health
	return &h, c.Do(ctx, http.MethodGet, "/healthz", nil, &h)
}

// Providers lists the providers with their credential descriptions.
func (c *Client) Providers(ctx context.Context) ([]Provider, error) {
	return list[Provider](ctx, c, "/api/v1/providers")
}

// CreateUser makes a user and returns it with its token.
func (c *Client) CreateUser(ctx context.Context, r CreateUserRequest) (*User, error) {
	var u User
	return &u, c.Do(ctx, http.MethodPost, "/api/v1/users", r, &u)
}

// Users lists the users (admin); tokens are never shown again.
func (c *Client) Users(ctx context.Context) ([]User, error) {
	return list[User](ctx, c, "/api/v1/users")
}

// CreateCredential adds a credential.
func (c *Client) CreateCredential(ctx context.Context, r CreateCredentialRequest) (*Credential, error) {
	return call[Credential](ctx, c, http.MethodPost, "/api/v1/credentials", r)
}

// Credentials lists credentials.
func (c *Client) Credentials(ctx context.Context) ([]Credential, error) {
	return list[Credential](ctx, c, "/api/v1/credentials")
}

// Credential shows one credential.
func (c *Client) Credential(ctx context.Context, id string) (*Credential, error) {
	return call[Credential](ctx, c, http.MethodGet, "/api/v1/credentials/"+url.PathEscape(id), nil)
}

// DeleteCredential deletes a credential.
func (c *Client) DeleteCredential(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/credentials/"+url.PathEscape(id), nil, nil)
}

// VerifyCredential checks a credential with its provider.
func (c *Client) VerifyCredential(ctx context.Context, id string) (*VerifyResult, error) {
	return call[VerifyResult](ctx, c, http.MethodPost, "/api/v1/credentials/"+url.PathEscape(id)+"/verify", nil)
}

// BootstrapCredential starts the bootstrap job of a credential; destroy
// starts the job that removes the bootstrap resources.
func (c *Client) BootstrapCredential(ctx context.Context, id string, destroy bool) (*JobRef, error) {
	method := http.MethodPost
	if destroy {
		method = http.MethodDelete
	}
	return call[JobRef](ctx, c, method, "/api/v1/credentials/"+url.PathEscape(id)+"/bootstrap", nil)
}

// CreateTemplate stores a template after its parse and policy check.
func (c *Client) CreateTemplate(ctx context.Context, r CreateTemplateRequest) (*Template, error) {
	return call[Template](ctx, c, http.MethodPost, "/api/v1/templates", r)
}

// Templates lists templates.
func (c *Client) Templates(ctx context.Context) ([]Template, error) {
	return list[Template](ctx, c, "/api/v1/templates")
}

// Template shows one template.
func (c *Client) Template(ctx context.Context, id string) (*Template, error) {
	return call[Template](ctx, c, http.MethodGet, "/api/v1/templates/"+url.PathEscape(id), nil)
}

// PlanTemplate runs terraform plan of a template with a credential.
func (c *Client) PlanTemplate(ctx context.Context, id string, r PlanRequest) (*PlanResult, error) {
	return call[PlanResult](ctx, c, http.MethodPost, "/api/v1/templates/"+url.PathEscape(id)+"/plan", r)
}

// CreateStack creates a stack.
func (c *Client) CreateStack(ctx context.Context, r CreateStackRequest) (*Stack, error) {
	return call[Stack](ctx, c, http.MethodPost, "/api/v1/stacks", r)
}

// Stacks lists stacks.
func (c *Client) Stacks(ctx context.Context) ([]Stack, error) {
	return list[Stack](ctx, c, "/api/v1/stacks")
}

// Stack shows one stack with its machines.
func (c *Client) Stack(ctx context.Context, id string) (*Stack, error) {
	return call[Stack](ctx, c, http.MethodGet, "/api/v1/stacks/"+url.PathEscape(id), nil)
}

// ApplyStack starts an apply job.
func (c *Client) ApplyStack(ctx context.Context, id string) (*JobRef, error) {
	return call[JobRef](ctx, c, http.MethodPost, "/api/v1/stacks/"+url.PathEscape(id)+"/apply", nil)
}

// DestroyStack starts a destroy job.
func (c *Client) DestroyStack(ctx context.Context, id string) (*JobRef, error) {
	return call[JobRef](ctx, c, http.MethodPost, "/api/v1/stacks/"+url.PathEscape(id)+"/destroy", nil)
}

// Job shows a job.
func (c *Client) Job(ctx context.Context, id string) (*Job, error) {
	return call[Job](ctx, c, http.MethodGet, "/api/v1/jobs/"+url.PathEscape(id), nil)
}

// Cancel cancels a queued job (it fails at once) or a running one (it is
// stopped, then fails with the reason), and returns the job as it is now.
// An ended job is a 409 naming its status.
func (c *Client) Cancel(ctx context.Context, jobID string) (*Job, error) {
	return call[Job](ctx, c, http.MethodPost, "/api/v1/jobs/"+url.PathEscape(jobID)+"/cancel", nil)
}

// JobEvents lists a job's events so far.
func (c *Client) JobEvents(ctx context.Context, id string) ([]Event, error) {
	return list[Event](ctx, c, "/api/v1/jobs/"+url.PathEscape(id)+"/events")
}

// FollowJob streams a job's events (text/event-stream) to fn until the job
// ends, then returns the job as it ended.
func (c *Client) FollowJob(ctx context.Context, id string, fn func(Event)) (*Job, error) {
	resp, err := c.send(ctx, http.MethodGet, "/api/v1/jobs/"+url.PathEscape(id)+"/events?follow=1", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var ev Event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return nil, fmt.Errorf("decode event: %w", err)
		}
		if fn != nil {
			fn(ev)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("follow job %s: %w", id, err)
	}
	return c.Job(ctx, id)
}

// WaitJob polls a job until it ends or ctx is done.
func (c *Client) WaitJob(ctx context.Context, id string) (*Job, error) {
	for {
		j, err := c.Job(ctx, id)
		if err != nil {
			return nil, err
		}
		if j.Done() {
			return j, nil
		}
		select {
		case <-ctx.Done():
			return j, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Machines lists machines.
func (c *Client) Machines(ctx context.Context) ([]Machine, error) {
	return list[Machine](ctx, c, "/api/v1/machines")
}

// Machine shows one machine.
func (c *Client) Machine(ctx context.Context, id string) (*Machine, error) {
	return call[Machine](ctx, c, http.MethodGet, "/api/v1/machines/"+url.PathEscape(id), nil)
}

// StartMachine starts a start job.
func (c *Client) StartMachine(ctx context.Context, id string) (*JobRef, error) {
	return call[JobRef](ctx, c, http.MethodPost, "/api/v1/machines/"+url.PathEscape(id)+"/start", nil)
}

// StopMachine starts a stop job.
func (c *Client) StopMachine(ctx context.Context, id string) (*JobRef, error) {
	return call[JobRef](ctx, c, http.MethodPost, "/api/v1/machines/"+url.PathEscape(id)+"/stop", nil)
}

// AgentRegister is a machine's agent announcing itself; c carries the
// machine's own token.
func (c *Client) AgentRegister(ctx context.Context, r AgentReport) (*AgentAck, error) {
	return call[AgentAck](ctx, c, http.MethodPost, "/api/v1/agent/register", r)
}

// AgentHeartbeat is a machine's agent reporting it is alive; c carries the
// machine's own token.
func (c *Client) AgentHeartbeat(ctx context.Context, r AgentReport) (*AgentAck, error) {
	return call[AgentAck](ctx, c, http.MethodPost, "/api/v1/agent/heartbeat", r)
}

// KlientBinary copies the server's agent binary for goos/arch ("" for the
// server's defaults) to w.
func (c *Client) KlientBinary(ctx context.Context, goos, arch string, w io.Writer) error {
	q := url.Values{}
	if goos != "" {
		q.Set("os", goos)
	}
	if arch != "" {
		q.Set("arch", arch)
	}
	return c.Do(ctx, http.MethodGet, withQuery("/api/v1/agent/klient", q), nil, w)
}
