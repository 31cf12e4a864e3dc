package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/kloudtest"
)

// TestMachineSSHAndShares: kloud machine ssh runs a command on a sandbox
// machine, prints its output and exits with its status; share, shares and
// unshare manage who else may use the machine.
func TestMachineSSHAndShares(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	ms := kloudtest.ApplySandbox(t, h.Admin, "resource \"sandbox_machine\" \"m\" {\n  name = \"ssh\"\n}\n")
	if len(ms) != 1 {
		t.Fatalf("machines = %v", ms)
	}
	m := ms[0].ID
	as := []string{"--server", h.URL, "--token", h.AdminToken}

	// The agent opens its tunnel a moment after the machine boots.
	var out, errOut string
	var code int
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, errOut, code = kloudCmd(t, append(as, "machine", "ssh", m, "--", "sh", "-c", "echo hi; exit 3")...)
		if !strings.Contains(errOut, "(503)") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code != 3 || !strings.Contains(out, "hi") {
		t.Fatalf("ssh = exit %d, stdout %q, stderr %q; want hi and exit 3", code, out, errOut)
	}
	out, errOut, code = kloudCmd(t, append(as, "machine", "ssh", m, "--", "true")...)
	if code != 0 {
		t.Fatalf("ssh true = exit %d, %q %q", code, out, errOut)
	}
	var sessions []client.TerminalSession
	out, _, code = kloudCmd(t, append(as, "machine", "sessions", m, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), &sessions); err != nil || code != 0 || len(sessions) < 2 {
		t.Errorf("sessions = %d %q (%v), want the ssh sessions", code, out, err)
	}
	if out, _, code = kloudCmd(t, append(as, "machine", "sessions", m)...); code != 0 || !strings.Contains(out, "EXIT") || !strings.Contains(out, "3") {
		t.Errorf("sessions table = %d %q", code, out)
	}
	if _, errOut, code = kloudCmd(t, append(as, "machine", "ssh")...); code != exitUsage || !strings.Contains(errOut, "missing argument ID") {
		t.Errorf("ssh without an id = %d %q", code, errOut)
	}

	mem, err := h.Admin.CreateUser(ctx, client.CreateUserRequest{Name: "friend", Role: "member"})
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code = kloudCmd(t, append(as, "machine", "share", m, "--user", mem.ID, "--permission", "control")...)
	if code != 0 || !strings.Contains(out, "control") || !strings.Contains(out, mem.ID) {
		t.Fatalf("share = %d %q %q", code, out, errOut)
	}
	var shares []client.Share
	out, _, code = kloudCmd(t, append(as, "machine", "shares", m, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), &shares); err != nil || code != 0 || len(shares) != 1 || shares[0].UserID != mem.ID {
		t.Fatalf("shares = %d %q (%v)", code, out, err)
	}
	_, errOut, code = kloudCmd(t, append(as, "machine", "share", m, "--user", mem.ID, "--permission", "root")...)
	if code != exitError || !strings.Contains(errOut, "(422)") || !strings.Contains(errOut, "permission") {
		t.Errorf("share with a bad permission = %d %q", code, errOut)
	}
	// The friend sees it, shared, and may run commands on it.
	fs := []string{"--server", h.URL, "--token", mem.Token}
	var list []client.Machine
	out, _, _ = kloudCmd(t, append(fs, "machine", "list", "-o", "json")...)
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || !list[0].Shared || list[0].Permission != "control" {
		t.Fatalf("friend's machine list = %s (%v)", out, err)
	}
	if out, errOut, code = kloudCmd(t, append(fs, "machine", "ssh", m, "--", "echo", "friend")...); code != 0 || !strings.Contains(out, "friend") {
		t.Fatalf("friend's ssh = %d %q %q", code, out, errOut)
	}
	if out, errOut, code = kloudCmd(t, append(as, "machine", "unshare", m, "--user", mem.ID)...); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("unshare = %d %q %q", code, out, errOut)
	}
	if _, errOut, code = kloudCmd(t, append(fs, "machine", "ssh", m, "--", "true")...); code != exitError || !strings.Contains(errOut, "(404)") {
		t.Errorf("ssh after unshare = %d %q, want a 404", code, errOut)
	}
}
