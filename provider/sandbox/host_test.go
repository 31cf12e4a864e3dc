package sandbox

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/provider/sandbox/sandboxapi"
	"github.com/kloud/kloud/provider/sandbox/sandboxvm"
)

// TestHostAPI drives the control API with its client: a token reaches only
// its credential's machines, every field is checked, bodies are bounded,
// and a released grant reaches nothing.
func TestHostAPI(t *testing.T) {
	h := startHost(t, HostConfig{Root: t.TempDir(), Agent: []string{testenv.Klient(t)}})
	t.Cleanup(func() { testenv.NoProcesses(t, h.Root()) })
	ctx := context.Background()
	mineDir, _ := CredentialDir(h, "cr-mine", nil)
	theirDir, _ := CredentialDir(h, "cr-theirs", nil)
	if mineDir != filepath.Join(h.Root(), "cr-mine") {
		t.Fatalf("credential dir = %s", mineDir)
	}
	mineTok, release := h.Grant(ctx, "cr-mine", mineDir)
	theirTok, releaseTheirs := h.Grant(ctx, "cr-theirs", theirDir)
	defer releaseTheirs()
	mine := &sandboxapi.Client{Endpoint: h.Endpoint(), Token: mineTok}
	theirs := &sandboxapi.Client{Endpoint: h.Endpoint(), Token: theirTok}

	m, err := mine.Create(ctx, sandboxapi.CreateRequest{Name: "m", Size: "medium", AgentToken: "tok", UserData: "true\n"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if vm, err := h.VM(mineDir, m.ID); err == nil {
			vm.Destroy(context.Background())
		}
	})
	if m.State != "running" || m.PID == 0 || m.Size != "medium" || m.AgentToken != "tok" || m.UserData != "true\n" {
		t.Fatalf("created = %+v", m)
	}
	if got, err := mine.Get(ctx, m.ID); err != nil || got.ID != m.ID || got.PID != m.PID {
		t.Fatalf("get = %+v, %v", got, err)
	}
	// Another credential's token finds nothing of that id, and changes nothing.
	if _, err := theirs.Get(ctx, m.ID); !errors.Is(err, sandboxapi.ErrNotFound) {
		t.Errorf("their get: %v, want not found", err)
	}
	name := "stolen"
	if _, err := theirs.Update(ctx, m.ID, sandboxapi.UpdateRequest{Name: &name}); !errors.Is(err, sandboxapi.ErrNotFound) {
		t.Errorf("their update: %v, want not found", err)
	}
	if err := theirs.Delete(ctx, m.ID); err != nil {
		t.Errorf("their delete: %v", err)
	}
	if got, err := mine.Get(ctx, m.ID); err != nil || got.State != "running" || got.Name != "m" {
		t.Fatalf("after their attempts: %+v, %v", got, err)
	}
	// Tags change in place, without a reboot.
	tags := map[string]string{"kloud_stack_id": "stk-1"}
	if got, err := mine.Update(ctx, m.ID, sandboxapi.UpdateRequest{Tags: &tags}); err != nil || got.Tags["kloud_stack_id"] != "stk-1" || got.PID != m.PID {
		t.Fatalf("update tags: %+v, %v", got, err)
	}

	bad := []struct {
		name  string
		req   sandboxapi.CreateRequest
		field string
	}{
		{"no name", sandboxapi.CreateRequest{}, "name"},
		{"two lines", sandboxapi.CreateRequest{Name: "a\nb"}, "name"},
		{"size", sandboxapi.CreateRequest{Name: "a", Size: "huge"}, "size"},
		{"url", sandboxapi.CreateRequest{Name: "a", KloudURL: "file:///etc/passwd"}, "kloud_url"},
		{"token", sandboxapi.CreateRequest{Name: "a", AgentToken: "a b"}, "agent_token"},
		{"heartbeat", sandboxapi.CreateRequest{Name: "a", Heartbeat: "1ns"}, "heartbeat"},
		{"user data", sandboxapi.CreateRequest{Name: "a", UserData: strings.Repeat("x", sandboxapi.MaxUserData+1)}, "user_data"},
		{"tag", sandboxapi.CreateRequest{Name: "a", Tags: map[string]string{"k": "a\nb"}}, "tags"},
	}
	for _, tt := range bad {
		_, err := mine.Create(ctx, tt.req)
		var fe *sandboxapi.FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%s: %v, want an error naming %s", tt.name, err, tt.field)
		}
	}
	raw := []struct {
		name, method, path, body string
		status                   int
	}{
		{"bad id", "GET", "/v1/machines/..%2Fx", "", 422},
		{"unknown field", "POST", "/v1/machines", `{"name":"a","agent":["/bin/sh"]}`, 400},
		{"body too large", "POST", "/v1/machines", `{"name":"` + strings.Repeat("x", sandboxapi.MaxBody) + `"}`, 413},
	}
	for _, tt := range raw {
		req, _ := http.NewRequest(tt.method, h.Endpoint()+tt.path, strings.NewReader(tt.body))
		req.Header.Set("Authorization", "Bearer "+mineTok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s: %d, want %d", tt.name, resp.StatusCode, tt.status)
		}
	}
	if vms, _ := sandboxvm.List(mineDir); len(vms) != 1 {
		t.Errorf("machines after refused creates: %d, want 1", len(vms))
	}

	release()
	if _, err := mine.Get(ctx, m.ID); !errors.Is(err, sandboxapi.ErrUnauthorized) {
		t.Errorf("get after release: %v, want unauthorized", err)
	}
	if h.Busy("cr-mine", mineDir) || !h.Busy("cr-theirs", theirDir) {
		t.Errorf("busy after release: mine %v, theirs %v", h.Busy("cr-mine", mineDir), h.Busy("cr-theirs", theirDir))
	}
	// A grant ends with its context too.
	cctx, cancel := context.WithCancel(ctx)
	tok, _ := h.Grant(cctx, "cr-mine", mineDir)
	cancel()
	c := &sandboxapi.Client{Endpoint: h.Endpoint(), Token: tok}
	if _, err := c.Get(ctx, m.ID); !errors.Is(err, sandboxapi.ErrUnauthorized) {
		t.Errorf("get after the grant's context ended: %v", err)
	}
}
