package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Readiness is GET /readyz's answer: ready when every check is; each check
// not ok says why.
type Readiness struct {
	Ready  bool         `json:"ready"`
	Checks []ReadyCheck `json:"checks"`
}

// ReadyCheck is one condition of readiness (store, workers, singletons).
type ReadyCheck struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
}

// Ready calls GET /readyz. A server that is not ready answers 503 with its
// checks; Ready returns them (Ready false) with a nil error.
func (c *Client) Ready(ctx context.Context) (*Readiness, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/readyz", nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /readyz: %w", err)
	}
	defer resp.Body.Close()
	var r Readiness
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return nil, &Error{Status: resp.StatusCode}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("decode GET /readyz answer: %w", err)
	}
	return &r, nil
}

// Metrics copies the server's Prometheus metrics (text format) to w; on
// the API they are for admins.
func (c *Client) Metrics(ctx context.Context, w io.Writer) error {
	return c.Do(ctx, http.MethodGet, "/metrics", nil, w)
}

// OpenAPI copies the API's OpenAPI 3.1 description (JSON) to w.
func (c *Client) OpenAPI(ctx context.Context, w io.Writer) error {
	return c.Do(ctx, http.MethodGet, "/api/v1/openapi.json", nil, w)
}
