package kloud_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/kloudtest"
)

// TestAuditRecordsAndScopes: state-changing calls are recorded with their
// actor, target, owner, outcome and request id; members see their own
// actions and those on what they own, admins everything.
func TestAuditRecordsAndScopes(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	ann := h.Member(t, "ann")
	bob := h.Member(t, "bob")
	annCred, err := ann.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Title: "ann's", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Title: "bob's", Data: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	// Bob may not see ann's credential: a refused call is recorded too.
	if err := bob.DeleteCredential(ctx, annCred.ID); err == nil {
		t.Fatal("bob deleted ann's credential")
	}
	// The admin deletes it: ann, its owner, sees that.
	if err := h.Admin.DeleteCredential(ctx, annCred.ID); err != nil {
		t.Fatal(err)
	}
	// Reads are not recorded.
	if _, err := ann.Credentials(ctx); err != nil {
		t.Fatal(err)
	}

	show := func(es []client.AuditEntry) string {
		var b strings.Builder
		for _, e := range es {
			b.WriteString(e.Action + " " + e.Target + " " + e.Outcome + "\n")
		}
		return b.String()
	}
	all, err := h.Admin.Audit(ctx, client.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"credential.delete credential/" + annCred.ID + " ok\n",
		"credential.delete credential/" + annCred.ID + " error: 404 Not Found\n",
		"credential.create  ok\n",
		"user.create  ok\n",
	} {
		if !strings.Contains(show(all), want) {
			t.Errorf("admin's audit lacks %q:\n%s", want, show(all))
		}
	}
	for _, e := range all {
		if e.RequestID == "" || e.Actor == "" || e.At.IsZero() {
			t.Errorf("entry without request id, actor or time: %+v", e)
		}
		if strings.HasPrefix(e.Action, "credential.list") || strings.Contains(e.Action, "get") {
			t.Errorf("a read was recorded: %+v", e)
		}
	}

	annSees, err := ann.Audit(ctx, client.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	got := show(annSees)
	if !strings.Contains(got, "credential.delete credential/"+annCred.ID+" ok\n") || !strings.Contains(got, "credential.create  ok\n") {
		t.Errorf("ann sees:\n%s\nwant her credential's creation and the admin's delete of it", got)
	}
	if strings.Contains(got, "user.create") || strings.Contains(got, "error: 404") {
		t.Errorf("ann sees others' entries:\n%s", got)
	}
	bobSees, err := bob.Audit(ctx, client.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(bobSees); n != 2 {
		t.Errorf("bob sees %d entries, want his create and his refused delete:\n%s", n, show(bobSees))
	}

	// Pages: limit 1, then the next one before it, never repeating.
	first, err := h.Admin.Audit(ctx, client.AuditQuery{Limit: 1})
	if err != nil || len(first) != 1 {
		t.Fatalf("first page = %v, %v", first, err)
	}
	second, err := h.Admin.Audit(ctx, client.AuditQuery{Limit: 1, Before: first[0].ID})
	if err != nil || len(second) != 1 || second[0].ID == first[0].ID || second[0].ID != all[1].ID {
		t.Fatalf("second page = %v, %v; want %s", second, err, all[1].ID)
	}

	for _, tt := range []struct{ query, field string }{
		{"?limit=0", "limit"},
		{"?limit=5000", "limit"},
		{"?since=yesterday", "since"},
		{"?bogus=1", "bogus"},
		{"?before=aud-nothing", ""},
	} {
		t.Run(tt.query, func(t *testing.T) {
			err := h.Admin.Do(ctx, http.MethodGet, "/api/v1/audit"+tt.query, nil, nil)
			var ce *client.Error
			if !errors.As(err, &ce) || ce.Status/100 != 4 || (tt.field != "" && ce.Field != tt.field) {
				t.Errorf("GET /api/v1/audit%s = %v, want a 4xx naming %q", tt.query, err, tt.field)
			}
		})
	}
}

// TestRequestIDs: every response carries X-Request-Id, the client's own
// when it is sane, a new one otherwise, and the audit entry of a call
// names it.
func TestRequestIDs(t *testing.T) {
	h := kloudtest.New(t)
	for _, tt := range []struct {
		name, sent string
		kept       bool
	}{
		{"none", "", false},
		{"a sane one", "trace-42.a:b_c", true},
		{"too long", strings.Repeat("x", 65), false},
		{"with spaces", "a b", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, h.URL+"/api/v1/users", strings.NewReader(`{"name":"u-`+strings.ReplaceAll(tt.name, " ", "-")+`","role":"member"}`))
			req.Header.Set("Authorization", "Bearer "+h.AdminToken)
			if tt.sent != "" {
				req.Header.Set("X-Request-Id", tt.sent)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			id := resp.Header.Get("X-Request-Id")
			if id == "" || (tt.kept && id != tt.sent) || (!tt.kept && id == tt.sent) {
				t.Fatalf("X-Request-Id = %q (sent %q)", id, tt.sent)
			}
			es, err := h.Admin.Audit(context.Background(), client.AuditQuery{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(es, func(e client.AuditEntry) bool { return e.RequestID == id && e.Action == "user.create" }) {
				t.Errorf("no user.create entry names request %s", id)
			}
		})
	}
	// A 404 for no route carries one too.
	resp, err := http.Get(h.URL + "/api/v1/nothing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("a 404 has no X-Request-Id")
	}
}
