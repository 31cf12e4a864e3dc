// Package sandboxapi is the sandbox's control API, as a cloud's API: the
// request and answer types, their checks, and the client the Terraform
// plugin uses. Kloud serves it (sandbox.Host) on a loopback listener; every
// request carries a per-run token that Kloud grants to one credential's
// machines for the duration of one Terraform run.
package sandboxapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kloud/kloud/provider/sandbox/sandboxvm"
)

// Limits of a request.
const (
	MaxBody       = 256 << 10 // bytes of a request body
	MaxName       = 255
	MaxUserData   = 64 << 10
	MaxKloudURL   = 2048
	MaxAgentToken = 512
	MinHeartbeat  = 100 * time.Millisecond
	MaxHeartbeat  = time.Hour
)

// MaxTags bounds a machine's tags, MaxTag each key and value.
const (
	MaxTags = 50
	MaxTag  = 255
)

// Errors the client returns.
var (
	// ErrNotFound: no machine of that id among the granted credential's.
	ErrNotFound = errors.New("sandbox machine not found")
	// ErrUnauthorized: the token is unknown, revoked or expired.
	ErrUnauthorized = errors.New("sandbox token refused")
)

// FieldError names the field of a request that is wrong.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"error"`
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Message) }

// Quote quotes at most 64 characters of user input for a message.
func Quote(s string) string {
	if utf8.RuneCountInString(s) > 64 {
		r := []rune(s)
		return fmt.Sprintf("%q…", string(r[:64]))
	}
	return fmt.Sprintf("%q", s)
}

// CreateRequest is POST /v1/machines.
type CreateRequest struct {
	Name       string `json:"name"`
	Size       string `json:"size,omitempty"`
	UserData   string `json:"user_data,omitempty"`
	AlwaysOn   bool   `json:"always_on,omitempty"`
	KloudURL   string `json:"kloud_url,omitempty"`
	AgentToken string `json:"agent_token,omitempty"`
	// Heartbeat is the agent's heartbeat interval as a Go duration; the
	// agent's default when empty.
	Heartbeat string `json:"heartbeat,omitempty"`
	// Tags label the machine (Kloud's kloud_stack_id, kloud_owner and
	// kloud_template_id among them).
	Tags map[string]string `json:"tags,omitempty"`
}

// Valid checks every field.
func (r *CreateRequest) Valid() error {
	return errors.Join(validName(r.Name), validSize(r.Size, true), validUserData(r.UserData),
		validKloudURL(r.KloudURL), validToken(r.AgentToken), validHeartbeat(r.Heartbeat), validTags(r.Tags))
}

// HeartbeatDuration is the parsed Heartbeat (0 when empty).
func (r *CreateRequest) HeartbeatDuration() time.Duration {
	d, _ := time.ParseDuration(r.Heartbeat)
	return d
}

// UpdateRequest is PATCH /v1/machines/{id}; nil fields stay as they are.
type UpdateRequest struct {
	Name       *string `json:"name,omitempty"`
	Size       *string `json:"size,omitempty"`
	AlwaysOn   *bool   `json:"always_on,omitempty"`
	KloudURL   *string `json:"kloud_url,omitempty"`
	AgentToken *string `json:"agent_token,omitempty"`
	// Tags, when given, replace the machine's tags.
	Tags *map[string]string `json:"tags,omitempty"`
}

// Valid checks every field given.
func (r *UpdateRequest) Valid() error {
	var errs []error
	if r.Name != nil {
		errs = append(errs, validName(*r.Name))
	}
	if r.Size != nil {
		errs = append(errs, validSize(*r.Size, false))
	}
	if r.KloudURL != nil {
		errs = append(errs, validKloudURL(*r.KloudURL))
	}
	if r.AgentToken != nil {
		errs = append(errs, validToken(*r.AgentToken))
	}
	if r.Tags != nil {
		errs = append(errs, validTags(*r.Tags))
	}
	return errors.Join(errs...)
}

// Machine is what the API answers about a machine.
type Machine struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Size       string `json:"size"`
	AlwaysOn   bool   `json:"always_on"`
	KloudURL   string `json:"kloud_url,omitempty"`
	UserData   string `json:"user_data,omitempty"`
	AgentToken string `json:"agent_token,omitempty"`
	// Tags label the machine.
	Tags map[string]string `json:"tags,omitempty"`

	// State is running or stopped, as observed.
	State   string `json:"state"`
	PID     int    `json:"pid,omitempty"`
	Address string `json:"address,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// ErrorBody is an error answer.
type ErrorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// validTags bounds the tags: at most MaxTags, each key 1 to MaxTag
// characters and each value at most MaxTag, on one line.
func validTags(m map[string]string) error {
	if len(m) > MaxTags {
		return &FieldError{Field: "tags", Message: fmt.Sprintf("%d tags: want at most %d", len(m), MaxTags)}
	}
	for k, v := range m {
		for _, s := range []string{k, v} {
			if len(s) > MaxTag || strings.ContainsAny(s, "\x00\n\r") || !utf8.ValidString(s) {
				return &FieldError{Field: "tags", Message: fmt.Sprintf("tag %s: keys and values are at most %d characters on one line", Quote(k), MaxTag)}
			}
		}
		if k == "" {
			return &FieldError{Field: "tags", Message: "a tag key is empty"}
		}
	}
	return nil
}

func validName(s string) error {
	if s == "" || len(s) > MaxName || strings.ContainsAny(s, "\x00\n\r") || !utf8.ValidString(s) {
		return &FieldError{Field: "name", Message: fmt.Sprintf("%s: want 1-%d characters on one line", Quote(s), MaxName)}
	}
	return nil
}

func validSize(s string, emptyOK bool) error {
	if s == "" && emptyOK {
		return nil
	}
	if err := sandboxvm.ValidSize(s); err != nil {
		return &FieldError{Field: "size", Message: fmt.Sprintf("%s: want one of %s", Quote(s), strings.Join(sandboxvm.Sizes(), ", "))}
	}
	return nil
}

func validUserData(s string) error {
	if len(s) > MaxUserData || strings.ContainsRune(s, 0) {
		return &FieldError{Field: "user_data", Message: fmt.Sprintf("%d bytes: want at most %d, without NUL", len(s), MaxUserData)}
	}
	return nil
}

func validKloudURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if len(s) > MaxKloudURL || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &FieldError{Field: "kloud_url", Message: fmt.Sprintf("%s: want http(s)://host[:port]", Quote(s))}
	}
	return nil
}

func validToken(s string) error {
	if len(s) > MaxAgentToken {
		return &FieldError{Field: "agent_token", Message: fmt.Sprintf("%d bytes: want at most %d", len(s), MaxAgentToken)}
	}
	for _, c := range s {
		if c <= ' ' || c > '~' {
			return &FieldError{Field: "agent_token", Message: "want printable ASCII without spaces"}
		}
	}
	return nil
}

func validHeartbeat(s string) error {
	if s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < MinHeartbeat || d > MaxHeartbeat {
		return &FieldError{Field: "heartbeat", Message: fmt.Sprintf("%s: want a duration from %s to %s", Quote(s), MinHeartbeat, MaxHeartbeat)}
	}
	return nil
}

// ValidID checks a machine id of a request path.
func ValidID(id string) error {
	if sandboxvm.ValidID(id) != nil {
		return &FieldError{Field: "id", Message: fmt.Sprintf("%s: want 1-63 of a-z, 0-9, '-', '_'", Quote(id))}
	}
	return nil
}

// Client calls the API with a token.
type Client struct {
	Endpoint string
	Token    string
	HTTP     *http.Client
}

// Create makes and boots a machine.
func (c *Client) Create(ctx context.Context, req CreateRequest) (*Machine, error) {
	var m Machine
	if err := c.do(ctx, http.MethodPost, "/v1/machines", req, &m); err != nil {
		return nil, fmt.Errorf("create sandbox machine: %w", err)
	}
	return &m, nil
}

// Get reads a machine; ErrNotFound when the credential has none of that id.
func (c *Client) Get(ctx context.Context, id string) (*Machine, error) {
	var m Machine
	if err := c.do(ctx, http.MethodGet, "/v1/machines/"+url.PathEscape(id), nil, &m); err != nil {
		return nil, fmt.Errorf("read sandbox machine %s: %w", id, err)
	}
	return &m, nil
}

// Update changes a machine in place (a changed size, URL or token reboots
// its agent).
func (c *Client) Update(ctx context.Context, id string, req UpdateRequest) (*Machine, error) {
	var m Machine
	if err := c.do(ctx, http.MethodPatch, "/v1/machines/"+url.PathEscape(id), req, &m); err != nil {
		return nil, fmt.Errorf("update sandbox machine %s: %w", id, err)
	}
	return &m, nil
}

// Delete destroys a machine; a machine already gone is not an error.
func (c *Client) Delete(ctx context.Context, id string) error {
	err := c.do(ctx, http.MethodDelete, "/v1/machines/"+url.PathEscape(id), nil, nil)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("delete sandbox machine %s: %w", id, err)
	}
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.Endpoint, "/")+path, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&eb)
		switch resp.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("%w: %s", ErrNotFound, eb.Error)
		case http.StatusUnauthorized:
			return fmt.Errorf("%w: %s", ErrUnauthorized, eb.Error)
		}
		if eb.Field != "" {
			return &FieldError{Field: eb.Field, Message: eb.Error}
		}
		return fmt.Errorf("sandbox API answered %d: %s", resp.StatusCode, eb.Error)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}
