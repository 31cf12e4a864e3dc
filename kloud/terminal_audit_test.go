package kloud_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/kloudtest"
)

// TestAuditOfAccess: shares, revocations and terminal sessions opened and
// closed are in the audit log with who, when, the machine and the session;
// admins see all, members their own and their machines'.
func TestAuditOfAccess(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	owner := h.Member(t, "owner")
	friend := h.Member(t, "friend")
	stranger := h.Member(t, "stranger")
	m := machineOf(t, owner)
	friendID, ownerID := userOf(t, h, "friend"), userOf(t, h, "owner")

	if _, err := owner.ShareMachine(ctx, m.ID, client.ShareRequest{UserID: friendID, Permission: "use"}); err != nil {
		t.Fatal(err)
	}
	term := openTerminal(t, friend, m.ID, client.TerminalOptions{Session: "audit"})
	out := readTerminal(t, term)
	io.WriteString(term, "exit 3\n")
	if !out.ended(10 * time.Second) {
		t.Fatal("the session did not end")
	}
	if err := owner.UnshareMachine(ctx, m.ID, friendID); err != nil {
		t.Fatal(err)
	}

	target := "machine/" + m.ID
	find := func(c *client.Client, action string) *client.AuditEntry {
		t.Helper()
		var got []client.AuditEntry
		deadline := time.Now().Add(10 * time.Second)
		for {
			var err error
			if got, err = c.Audit(ctx, client.AuditQuery{Target: target}); err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if got[i].Action == action {
					return &got[i]
				}
			}
			if time.Now().After(deadline) {
				return nil
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, c := range []struct {
		action, actor, detail string
	}{
		{"machine.share", ownerID, "user " + friendID + ", permission use"},
		{"machine.share.delete", ownerID, "user " + friendID},
		{"terminal.open", friendID, "named audit"},
		{"terminal.close", friendID, "exit 3"},
	} {
		e := find(h.Admin, c.action)
		if e == nil {
			t.Errorf("the admin sees no %s on %s", c.action, target)
			continue
		}
		if e.Actor != c.actor || e.OwnerID != ownerID || e.At.IsZero() || !strings.Contains(e.Detail, c.detail) {
			t.Errorf("%s = %+v, want actor %s, owner %s and detail with %q", c.action, e, c.actor, ownerID, c.detail)
		}
		if strings.HasPrefix(c.action, "terminal.") && !strings.Contains(e.Detail, "session term-") {
			t.Errorf("%s names no session: %q", c.action, e.Detail)
		}
		if find(owner, c.action) == nil {
			t.Errorf("the owner does not see %s on their machine", c.action)
		}
	}
	if find(friend, "terminal.open") == nil {
		t.Error("the friend does not see their own terminal session")
	}
	seen, err := friend.Audit(ctx, client.AuditQuery{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range seen {
		if e.Actor != friendID {
			t.Errorf("the friend sees the owner's entry %+v", e)
		}
	}
	if got, err := stranger.Audit(ctx, client.AuditQuery{Target: target}); err != nil || len(got) != 0 {
		t.Errorf("the stranger sees %d entries of the machine (%v)", len(got), err)
	}
}
