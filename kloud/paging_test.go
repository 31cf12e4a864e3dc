package kloud_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/kloudtest"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
)

// getPage GETs path as the admin and returns the answer's ids, its next
// link and its status.
func getPage(t *testing.T, h *kloudtest.Harness, path string) (ids []string, next string, status int, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+h.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&raw)
	var items []struct {
		ID string `json:"id"`
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &items); err != nil {
			t.Fatalf("GET %s: body is not a JSON array: %s", path, raw)
		}
	}
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	if link := resp.Header.Get("Link"); link != "" {
		target, rel, _ := strings.Cut(link, ";")
		if strings.TrimSpace(rel) != `rel="next"` {
			t.Fatalf("GET %s: Link %q is not rel=next", path, link)
		}
		next = strings.Trim(strings.TrimSpace(target), "<>")
	}
	return ids, next, resp.StatusCode, string(raw)
}

// TestMachinesPaginate: ?limit=2 answers 2 machines and a Link to the
// rest; following the links visits every machine once, the stack_id filter
// still selects, unknown parameters and bad pages are 400 naming them, and
// the typed client follows the pages.
func TestMachinesPaginate(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	const n = 7
	for i := range n {
		stk := "stk-a"
		if i%2 == 1 {
			stk = "stk-b"
		}
		m := &stack.Machine{ID: fmt.Sprintf("m-page-%02d", i), StackID: stk, OwnerID: "usr-x", Provider: "sandbox",
			Label: "sandbox_machine.p", State: machinestate.Stopped}
		if err := h.Store.PutMachine(ctx, m); err != nil {
			t.Fatal(err)
		}
	}

	ids, next, status, body := getPage(t, h, "/api/v1/machines?limit=2")
	if status != http.StatusOK || len(ids) != 2 || next == "" {
		t.Fatalf("?limit=2 = %d, %d machines, next %q: %s", status, len(ids), next, body)
	}
	seen := map[string]int{}
	for _, id := range ids {
		seen[id]++
	}
	for pages := 1; next != ""; pages++ {
		if pages > n {
			t.Fatalf("more pages than machines")
		}
		ids, next, status, body = getPage(t, h, next)
		if status != http.StatusOK || len(ids) > 2 {
			t.Fatalf("next page = %d, %d machines: %s", status, len(ids), body)
		}
		for _, id := range ids {
			seen[id]++
		}
	}
	if len(seen) != n {
		t.Errorf("the pages visited %d machines, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("machine %s visited %d times", id, k)
		}
	}

	// The filter keeps working across pages.
	var filtered []string
	for path := "/api/v1/machines?stack_id=stk-b&limit=1"; path != ""; {
		ids, path, _, _ = getPage(t, h, path)
		filtered = append(filtered, ids...)
	}
	if len(filtered) != 3 {
		t.Errorf("stack_id=stk-b over pages of 1 = %v, want the 3 of stk-b", filtered)
	}

	for _, c := range []struct{ path, field string }{
		{"/api/v1/machines?bogus=1", "bogus"},
		{"/api/v1/machines?limit=0", "limit"},
		{"/api/v1/machines?limit=1001", "limit"},
		{"/api/v1/machines?limit=x", "limit"},
		{"/api/v1/machines?after=not-a-cursor", "after"},
		{"/api/v1/stacks?state=running", "state"},
		{"/api/v1/credentials?owner=me", "owner"},
		{"/api/v1/rating/modules/hashmap/mappings?service=x", "service"},
	} {
		_, _, status, body := getPage(t, h, c.path)
		var e client.Error
		_ = json.Unmarshal([]byte(body), &e)
		if status != http.StatusBadRequest || e.Field != c.field || !strings.Contains(e.Message, c.field) {
			t.Errorf("GET %s = %d %s; want 400 naming %s", c.path, status, body, c.field)
		}
	}

	// The typed client follows pages (100 a page by default: one here).
	all, err := h.Admin.Machines(ctx)
	if err != nil || len(all) != n {
		t.Fatalf("client machines = %d, %v; want %d", len(all), err, n)
	}
}

// TestListsPaginate: the lists the store answers whole page the same way.
func TestListsPaginate(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	for i := range 5 {
		if _, err := h.Admin.CreateUser(ctx, client.CreateUserRequest{Name: fmt.Sprintf("member-%d", i), Role: "member"}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	pages := 0
	for path := "/api/v1/users?limit=2"; path != ""; pages++ {
		var ids []string
		var status int
		ids, path, status, _ = getPage(t, h, path)
		if status != http.StatusOK {
			t.Fatalf("users page = %d", status)
		}
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("user %s on two pages", id)
			}
			seen[id] = true
		}
	}
	if len(seen) != 6 || pages != 3 {
		t.Errorf("users: %d over %d pages, want the admin and 5 members over 3", len(seen), pages)
	}
	users, err := h.Admin.Users(ctx)
	if err != nil || len(users) != 6 {
		t.Errorf("client users = %d, %v", len(users), err)
	}

	// The audit log pages the same way: the 5 user creations, 2 a page.
	seen = map[string]bool{}
	for path := "/api/v1/audit?limit=2&target="; path != ""; {
		var ids []string
		var status int
		var body string
		ids, path, status, body = getPage(t, h, path)
		if status != http.StatusOK {
			t.Fatalf("audit page = %d %s", status, body)
		}
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("audit entry %s on two pages", id)
			}
			seen[id] = true
		}
	}
	if len(seen) != 5 {
		t.Errorf("audit pages visited %d entries, want the 5 user creations", len(seen))
	}
	if _, _, status, _ := getPage(t, h, "/api/v1/audit?bogus=1"); status != http.StatusBadRequest {
		t.Errorf("audit ?bogus=1 = %d, want 400", status)
	}
}
