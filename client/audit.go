package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// AuditEntry is one audited action: who (a user id, or "system"), what
// (a dotted action such as "stack.apply"), on what, and how it ended.
type AuditEntry struct {
	ID        string    `json:"id"`
	At        time.Time `json:"at"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	Target    string    `json:"target,omitempty"`
	OwnerID   string    `json:"owner_id,omitempty"`
	Outcome   string    `json:"outcome"`
	RequestID string    `json:"request_id,omitempty"`
	Detail    string    `json:"detail,omitempty"`
}

// AuditQuery selects audit entries; empty fields select everything. Before
// is the id of the last entry of the previous page.
type AuditQuery struct {
	Actor  string
	Target string
	Since  time.Time
	Limit  int
	Before string
}

func (q AuditQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"actor": q.Actor, "target": q.Target, "before": q.Before} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// Audit answers one page of the audit log, newest first (admins: every
// entry; members: their own actions and those on what they own). The next
// page is AuditQuery{..., Before: the last entry's ID}.
func (c *Client) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	out, err := call[[]AuditEntry](ctx, c, http.MethodGet, withQuery("/api/v1/audit", q.values()), nil)
	if err != nil {
		return nil, err
	}
	return *out, nil
}
