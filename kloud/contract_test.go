package kloud_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/kloudtest"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
)

// raw sends a request with token and returns the status and body.
func raw(t *testing.T, h *kloudtest.Harness, token, method, path, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// Every list endpoint answers a JSON array, [] when there is nothing to
// list, never null.
func TestListEndpointsAnswerLists(t *testing.T) {
	h := kloudtest.New(t)
	member, err := h.Admin.CreateUser(context.Background(), client.CreateUserRequest{Name: "mia", Role: "member"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path  string
		empty bool // empty on a fresh server, for a member
		admin bool // admins only
	}{
		{"/api/v1/providers", false, false},
		{"/api/v1/users", false, true},
		{"/api/v1/credentials", true, false},
		{"/api/v1/templates", true, false},
		{"/api/v1/stacks", true, false},
		{"/api/v1/machines", true, false},
		{"/api/v1/machines?stack_id=stk-none", true, false},
		{"/api/v1/rating/modules", false, false},
		{"/api/v1/rating/modules/hashmap/services", true, false},
		{"/api/v1/rating/modules/hashmap/fields", true, false},
		{"/api/v1/rating/modules/hashmap/groups", true, false},
		{"/api/v1/rating/modules/hashmap/mappings", true, false},
		{"/api/v1/rating/modules/hashmap/thresholds", true, false},
		{"/api/v1/rating/dataframes", true, false},
		{"/api/v1/rating/dataframes?begin=2020-01-01T00:00:00Z&end=2020-01-02T00:00:00Z", true, false},
		{"/api/v1/reports", true, false},
	} {
		t.Run(c.path, func(t *testing.T) {
			token := member.Token
			if c.admin {
				token = h.AdminToken
			}
			status, body := raw(t, h, token, "GET", c.path, "")
			var list []json.RawMessage
			if status != http.StatusOK || json.Unmarshal(body, &list) != nil || list == nil {
				t.Fatalf("%d %s, want 200 and a JSON array", status, body)
			}
			if c.empty && strings.TrimSpace(string(body)) != "[]" {
				t.Errorf("body %s, want []", body)
			}
		})
	}
}

// An error quotes at most 64 characters of what the caller sent, whatever
// the endpoint.
func TestErrorsQuoteInputShort(t *testing.T) {
	h := kloudtest.New(t)
	long := strings.Repeat("x", 5000)
	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/api/v1/machines/" + long, "", 404},
		{"POST", "/api/v1/machines/" + long + "/start", "", 404},
		{"GET", "/api/v1/stacks/" + long, "", 404},
		{"POST", "/api/v1/stacks/" + long + "/apply", "", 404},
		{"GET", "/api/v1/credentials/" + long, "", 404},
		{"DELETE", "/api/v1/credentials/" + long, "", 404},
		{"GET", "/api/v1/templates/" + long, "", 404},
		{"GET", "/api/v1/jobs/" + long, "", 404},
		{"GET", "/api/v1/jobs/" + long + "/events", "", 404},
		{"GET", "/api/v1/rating/modules/" + long, "", 404},
		{"GET", "/api/v1/rating/modules/hashmap/services/" + long, "", 404},
		{"DELETE", "/api/v1/rating/modules/hashmap/mappings/" + long, "", 404},
		{"GET", "/api/v1/reports/" + long, "", 400},
		{"GET", "/api/v1/reports/kloud-" + long + ".csv", "", 400},
		{"GET", "/api/v1/" + long, "", 404},
		{"GET", "/api/v1/rating/summary?begin=" + long, "", 400},
		{"GET", "/api/v1/rating/dataframes?filters=" + long, "", 400},
		{"POST", "/api/v1/users", `{"name":"u","role":"` + long + `"}`, 422},
		{"POST", "/api/v1/users", `{"` + long + `":1}`, 400},
		{"POST", "/api/v1/templates", `{"title":"t","provider":"sandbox","format":"` + long + `","content":"x"}`, 422},
		{"POST", "/api/v1/rating/quote", `{"points":[{"service":"s","qty":"` + long + `"}]}`, 422},
	} {
		name := c.method + " " + strings.ReplaceAll(c.path, long, "<5000 x>") + strings.ReplaceAll(c.body, long, "<5000 x>")
		t.Run(name, func(t *testing.T) {
			status, body := raw(t, h, h.AdminToken, c.method, c.path, c.body)
			var e client.Error
			if err := json.Unmarshal(body, &e); err != nil || status != c.status || e.Message == "" {
				t.Fatalf("%d %.200s, want %d and an error", status, body, c.status)
			}
			if strings.Contains(e.Message, strings.Repeat("x", 65)) || len(e.Field) > 70 {
				t.Fatalf("error quotes more than 64 characters of the input: %.300s (field %.100s)", e.Message, e.Field)
			}
		})
	}
}

func TestErrorMessagesSayItOnce(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	for _, c := range []struct {
		call func() error
		want string
	}{
		{func() error { _, err := h.Admin.Machine(ctx, "m-nope"); return err }, "machine m-nope: not found"},
		{func() error { _, err := h.Admin.Stack(ctx, "stk-nope"); return err }, "stack stk-nope: not found"},
		{func() error { _, err := h.Admin.Job(ctx, "job-nope"); return err }, "job job-nope: not found"},
		{func() error { _, err := h.Admin.Machine(ctx, "a b"); return err }, `machine "a b": not found`},
	} {
		var e *client.Error
		if err := c.call(); !errors.As(err, &e) || e.Status != http.StatusNotFound || e.Message != c.want {
			t.Errorf("err = %v, want 404 %q", err, c.want)
		}
	}
}

func TestDuplicateNamesAreConflicts(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	if _, err := h.Admin.CreateUser(ctx, client.CreateUserRequest{Name: "bob"}); err != nil {
		t.Fatal(err)
	}
	_, err := h.Admin.CreateUser(ctx, client.CreateUserRequest{Name: "bob"})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusConflict || e.Message != `user name "bob" is taken` || e.Field != "name" {
		t.Fatalf("duplicate user: %v (%+v), want 409 naming the name", err, e)
	}
	svc := map[string]string{"name": "instance"}
	if err := h.Admin.Do(ctx, "POST", "/api/v1/rating/modules/hashmap/services", svc, nil); err != nil {
		t.Fatal(err)
	}
	err = h.Admin.Do(ctx, "POST", "/api/v1/rating/modules/hashmap/services", svc, nil)
	if !errors.As(err, &e) || e.Status != http.StatusConflict || e.Message != `service name "instance" is taken` {
		t.Fatalf("duplicate service: %v, want 409", err)
	}
}

// A stack whose credential was deleted (once the stack was destroyed) is
// refused at the request, naming the credential.
func TestApplyWithDeletedCredentialRefused(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	credID, tplID := setup(t, h.Admin)
	st, err := h.Admin.CreateStack(ctx, client.CreateStackRequest{Title: "gone", TemplateID: tplID, CredentialID: credID})
	if err != nil {
		t.Fatal(err)
	}
	// As a destroy would leave it, without running Terraform.
	if err := h.Store.SetStackStatus(ctx, st.ID, machinestate.StackDestroyed, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := h.Admin.DeleteCredential(ctx, credID); err != nil {
		t.Fatal(err)
	}
	_, err = h.Admin.ApplyStack(ctx, st.ID)
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusConflict || !strings.Contains(e.Message, credID) || e.Field != "credential_id" {
		t.Fatalf("apply: %v (%+v), want 409 naming credential %s", err, e, credID)
	}
}

// A refused machine method offers only what Kloud implements.
func TestStoppedMachineOffersOnlyImplementedMethods(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	credID, tplID := setup(t, h.Admin)
	st, err := h.Admin.CreateStack(ctx, client.CreateStackRequest{Title: "seeded", TemplateID: tplID, CredentialID: credID})
	if err != nil {
		t.Fatal(err)
	}
	m := &stack.Machine{ID: "m-seeded", StackID: st.ID, OwnerID: st.OwnerID, Provider: "sandbox", Label: "sandbox_machine.db",
		State: machinestate.Stopped, CreatedAt: time.Now(), UpdatedAt: time.Now(), StateSince: time.Now()}
	if err := h.Store.PutMachine(ctx, m); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Store.SetStackStatus(ctx, st.ID, machinestate.StackDestroyed, "", time.Now()) })
	_, err = h.Admin.StopMachine(ctx, m.ID)
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusConflict || strings.Join(e.Allowed, ",") != "start,destroy" ||
		e.Message != "machine m-seeded: cannot stop: machine is Stopped; allowed: start, destroy" {
		t.Fatalf("stop a stopped machine: %v (%+v), want 409 allowing start, destroy", err, e)
	}
}
