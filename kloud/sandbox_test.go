package kloud_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/kloud/kloudtest"
	"github.com/kloud/kloud/provider/sandbox/sandboxvm"
	"github.com/kloud/kloud/store/secretbox"
	"github.com/kloud/kloud/store/sqlite"
)

// sandboxID is the sandbox machine id in a machine's metadata.
func sandboxID(t *testing.T, m client.Machine) string {
	t.Helper()
	var md struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(m.Metadata, &md); err != nil || md.ID == "" {
		t.Fatalf("metadata of %s = %s, %v", m.ID, m.Metadata, err)
	}
	return md.ID
}

// applyOne creates a credential, a template and a stack for c and applies
// it, returning the credential and the stack as applied.
func applyOne(t *testing.T, c *client.Client, content string) (*client.Credential, *client.Stack, *client.Job) {
	t.Helper()
	ctx := context.Background()
	cred, err := c.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := c.CreateTemplate(ctx, client.CreateTemplateRequest{Title: "t", Provider: "sandbox", Content: content})
	if err != nil {
		t.Fatalf("create template: %v", err)
	}
	st, err := c.CreateStack(ctx, client.CreateStackRequest{Title: "s", TemplateID: tpl.ID, CredentialID: cred.ID})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := c.ApplyStack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	job, err := c.FollowJob(wctx, ref.JobID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st, err = c.Stack(ctx, st.ID); err != nil {
		t.Fatal(err)
	}
	return cred, st, job
}

// TestSandboxMachinesConfined plays a hostile member: from a sandbox
// machine's user data, it is not root and cannot read Kloud's data dir, the
// secret key, kloud.db, another member's machine or another process's
// environment; an import of the other member's machine fails as not found
// and leaves it running; a member may not point a credential at a host
// directory.
func TestSandboxMachinesConfined(t *testing.T) {
	h := kloudtest.New(t, kloudtest.Confined(t))
	ctx := context.Background()
	victim := h.Member(t, "victim")
	mallory := h.Member(t, "mallory")

	vCred, vStack, job := applyOne(t, victim, "resource \"sandbox_machine\" \"v\" {\n  name = \"v\"\n  user_data = \"echo victim-secret > secret.txt\\n\"\n}\n")
	if job.Status != "succeeded" || len(vStack.Machines) != 1 {
		t.Fatalf("victim's apply: %+v, %d machines", job, len(vStack.Machines))
	}
	victimID := sandboxID(t, vStack.Machines[0])
	root := filepath.Join(h.DataDir, "sandbox")
	victimDir := sandboxvm.MachineDir(filepath.Join(root, vCred.ID), victimID)
	if _, err := os.Stat(victimDir); err != nil {
		t.Fatalf("victim's machine is not under <root>/<credential>: %v", err)
	}

	// A file probe reads the file; a directory probe lists it looking for
	// what it holds on the host (bwrap makes the parents of the machine's
	// own directory as empty directories, so the path may exist inside).
	probes := []struct{ name, path, entry string }{
		{"data dir", h.DataDir, sqlite.FileName},
		{"secret key", filepath.Join(h.DataDir, secretbox.KeyFile), ""},
		{"kloud.db", filepath.Join(h.DataDir, sqlite.FileName), ""},
		{"victim machine", victimDir, sandboxvm.MetaFile},
		{"victim disk", filepath.Join(victimDir, sandboxvm.DiskDir, "secret.txt"), ""},
		{"victim token", filepath.Join(victimDir, sandboxvm.TokenFile), ""},
		{"kloud environ", "/proc/" + strconv.Itoa(os.Getpid()) + "/environ", ""},
	}
	var script strings.Builder
	script.WriteString("id -u > uid.txt\n")
	for i, p := range probes {
		test := fmt.Sprintf("cat %q >/dev/null 2>&1", p.path)
		if p.entry != "" {
			test = fmt.Sprintf("ls -A %q 2>/dev/null | grep -qx %q", p.path, p.entry)
		}
		fmt.Fprintf(&script, "if %s; then echo read > probe-%d; else echo denied > probe-%d; fi\n", test, i, i)
	}
	script.WriteString("echo done > probes-done\n")
	content := fmt.Sprintf("resource \"sandbox_machine\" \"m\" {\n  name = \"m\"\n  user_data = %s\n}\n", strconv.Quote(script.String()))
	mCred, mStack, job := applyOne(t, mallory, content)
	if job.Status != "succeeded" || len(mStack.Machines) != 1 {
		t.Fatalf("mallory's apply: %+v", job)
	}
	disk := filepath.Join(sandboxvm.MachineDir(filepath.Join(root, mCred.ID), sandboxID(t, mStack.Machines[0])), sandboxvm.DiskDir)
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(filepath.Join(disk, "probes-done")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(disk, sandboxvm.UserDataLogFile))
			t.Fatalf("the user data did not finish; its log:\n%s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b, err := os.ReadFile(filepath.Join(disk, "uid.txt")); err != nil || strings.TrimSpace(string(b)) == "0" || len(b) == 0 {
		t.Errorf("user data ran as uid %q (%v), want not root", b, err)
	}
	for i, p := range probes {
		b, err := os.ReadFile(filepath.Join(disk, fmt.Sprintf("probe-%d", i)))
		if got := strings.TrimSpace(string(b)); err != nil || got != "denied" {
			t.Errorf("user data reading %s (%s): %q, %v; want denied", p.name, p.path, got, err)
		}
	}

	// The takeover: import the victim's machine with one's own credential.
	imp := fmt.Sprintf("import {\n  to = sandbox_machine.x\n  id = %q\n}\n\nresource \"sandbox_machine\" \"x\" {\n  name = \"x\"\n}\n", victimID)
	tpl, err := mallory.CreateTemplate(ctx, client.CreateTemplateRequest{Title: "takeover", Provider: "sandbox", Content: imp})
	if err == nil {
		st, err := mallory.CreateStack(ctx, client.CreateStackRequest{Title: "takeover", TemplateID: tpl.ID, CredentialID: mCred.ID})
		if err != nil {
			t.Fatal(err)
		}
		ref, err := mallory.ApplyStack(ctx, st.ID)
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		j, err := mallory.FollowJob(wctx, ref.JobID, nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if j.Status != "failed" || !strings.Contains(j.Error, "non-existent") {
			t.Errorf("import of another credential's machine: %s %q, want failed as non-existent", j.Status, j.Error)
		}
	} else if ce := (*client.Error)(nil); !errors.As(err, &ce) || ce.Status != 422 {
		t.Fatalf("import template refused with %v, want 422", err)
	}
	vm, err := sandboxvm.Load(filepath.Join(root, vCred.ID), victimID)
	if err != nil {
		t.Fatalf("victim's machine after the import: %v", err)
	}
	if st, err := vm.Status(ctx); err != nil || st.State != sandboxvm.Running {
		t.Errorf("victim's machine after the import: %+v, %v; want running", st, err)
	}

	// Kloud stops and starts the victim's machine: it boots confined again.
	for _, do := range []func(context.Context, string) (*client.JobRef, error){victim.StopMachine, victim.StartMachine} {
		ref, err := do(ctx, vStack.Machines[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		kloudtest.WaitJob(t, victim, ref.JobID)
	}
	if st, err := vm.Status(ctx); err != nil || st.State != sandboxvm.Running {
		t.Fatalf("victim's machine after stop and start: %+v, %v", st, err)
	} else if status, err := os.ReadFile("/proc/" + strconv.Itoa(st.PID) + "/status"); err != nil || strings.Contains(string(status), "\nUid:\t0\t") {
		t.Errorf("restarted agent %d runs as root (%v)", st.PID, err)
	}

	// A member's credential may not name a host directory.
	for _, tt := range []struct {
		who    *client.Client
		dir    string
		status int
	}{
		{mallory, "/etc", 403},
		{mallory, filepath.Join(root, vCred.ID), 403},
		{h.Admin, h.DataDir, 422},
		{h.Admin, "/var/lib", 422},
	} {
		_, err := tt.who.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Data: json.RawMessage(`{"data_dir":` + strconv.Quote(tt.dir) + `}`)})
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Status != tt.status || ce.Field != "data_dir" {
			t.Errorf("credential with data_dir %s: %v, want %d naming data_dir", tt.dir, err, tt.status)
		}
	}
	if _, err := h.Admin.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Data: json.RawMessage(`{"data_dir":` + strconv.Quote(filepath.Join(root, "shared")) + `}`)}); err != nil {
		t.Errorf("admin's credential inside the sandbox root: %v", err)
	}

	// A template may not point the plugin at an endpoint or token of its own.
	own := "provider \"sandbox\" {\n  endpoint = \"http://127.0.0.1:1\"\n  token    = \"sbt_guess\"\n}\n\nresource \"sandbox_machine\" \"m\" {\n  name = \"m\"\n}\n"
	_, err = mallory.CreateTemplate(ctx, client.CreateTemplateRequest{Title: "own endpoint", Provider: "sandbox", Content: own})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 422 || len(ce.Diagnostics) != 2 || ce.Diagnostics[0].Line != 2 {
		t.Errorf("template setting the sandbox endpoint: %v (%+v), want 422 at lines 2 and 3", err, ce)
	}
}

// TestReconcileSandbox: a machine no record and no state knows is
// destroyed; one its stack's state holds, although its record is gone, is
// kept; recorded machines are left alone.
func TestReconcileSandbox(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	cred, st, job := applyOne(t, h.Admin, "resource \"sandbox_machine\" \"m\" {\n  count = 2\n  name = \"m-${count.index}\"\n}\n")
	if job.Status != "succeeded" || len(st.Machines) != 2 {
		t.Fatalf("apply: %+v", job)
	}
	dir := filepath.Join(h.DataDir, "sandbox", cred.ID)
	recorded, stateOnly := sandboxID(t, st.Machines[0]), sandboxID(t, st.Machines[1])
	if err := h.Store.DeleteMachine(ctx, st.Machines[1].ID); err != nil {
		t.Fatal(err)
	}
	orphan, err := sandboxvm.Create(ctx, dir, sandboxvm.Spec{Name: "orphan", Agent: []string{os.Getenv("KLOUD_KLIENT")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := orphan.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Server.Checker().ReconcileSandbox(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sandboxvm.Load(dir, orphan.ID()); !errors.Is(err, sandboxvm.ErrNotFound) {
		t.Errorf("orphan after reconcile: %v, want destroyed", err)
	}
	for _, id := range []string{recorded, stateOnly} {
		vm, err := sandboxvm.Load(dir, id)
		if err != nil {
			t.Fatalf("%s after reconcile: %v", id, err)
		}
		if s, err := vm.Status(ctx); err != nil || s.State != sandboxvm.Running {
			t.Errorf("%s after reconcile: %+v, %v", id, s, err)
		}
	}
	for _, a := range testenv.Agents(filepath.Join(h.DataDir, "sandbox")) {
		if a.MachineID == orphan.ID() {
			t.Errorf("orphan's agent %d still runs", a.PID)
		}
	}
}
