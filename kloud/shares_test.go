package kloud_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/kloudtest"
)

// status is the HTTP status of a client error, 0 for none.
func status(err error) int {
	var ae *client.Error
	if errors.As(err, &ae) {
		return ae.Status
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestMachineSharing: an owner shares a machine for use, then for
// control; the user sees it shared, opens terminals, may stop and start it
// only with control, never re-shares it or sees the owner's stack; a
// revocation closes their open session within a second; a third member
// sees nothing of it.
func TestMachineSharing(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	owner := h.Member(t, "owner")
	friend := h.Member(t, "friend")
	stranger := h.Member(t, "stranger")
	m := machineOf(t, owner)
	friendUser := userOf(t, h, "friend")
	ownerUser := userOf(t, h, "owner")

	// Bad shares are 422s naming the field.
	for _, c := range []struct {
		name  string
		req   client.ShareRequest
		field string
	}{
		{"unknown user", client.ShareRequest{UserID: "usr-nobody", Permission: "use"}, "user_id"},
		{"no user", client.ShareRequest{Permission: "use"}, "user_id"},
		{"yourself", client.ShareRequest{UserID: ownerUser, Permission: "use"}, "user_id"},
		{"bad permission", client.ShareRequest{UserID: friendUser, Permission: "admin"}, "permission"},
	} {
		_, err := owner.ShareMachine(ctx, m.ID, c.req)
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Status != 422 || ae.Field != c.field {
			t.Errorf("share with %s = %v, want 422 naming %s", c.name, err, c.field)
		}
	}
	if _, err := stranger.ShareMachine(ctx, m.ID, client.ShareRequest{UserID: friendUser, Permission: "use"}); status(err) != 404 {
		t.Errorf("a stranger sharing the machine = %v, want 404", err)
	}

	sh, err := owner.ShareMachine(ctx, m.ID, client.ShareRequest{UserID: friendUser, Permission: "use"})
	if err != nil || sh.Permission != "use" || sh.OwnerID != ownerUser {
		t.Fatalf("share = %+v, %v", sh, err)
	}
	list, err := friend.Machines(ctx)
	if err != nil || len(list) != 1 || !list[0].Shared || list[0].OwnerID != ownerUser || list[0].Permission != "use" {
		t.Fatalf("friend's machines = %+v, %v; want the shared machine", list, err)
	}
	if got, err := friend.Machine(ctx, m.ID); err != nil || !got.Shared {
		t.Fatalf("friend's machine = %+v, %v", got, err)
	}
	if own, err := owner.Machines(ctx); err != nil || len(own) != 1 || own[0].Shared {
		t.Fatalf("owner's machines = %+v, %v; want theirs, not marked shared", own, err)
	}

	// use: terminals, but no stop, no re-share, nothing of the owner's.
	term := openTerminal(t, friend, m.ID, client.TerminalOptions{})
	out := readTerminal(t, term)
	io.WriteString(term, "echo FRIEND-$((1+1))\n")
	out.wait("FRIEND-2")
	if mine, err := friend.MachineSessions(ctx, m.ID, true); err != nil || len(mine) != 1 || mine[0].UserID != friendUser {
		t.Errorf("friend's open sessions = %+v, %v; want their one", mine, err)
	}
	if _, err := friend.StopMachine(ctx, m.ID); status(err) != 403 && status(err) != 404 {
		t.Errorf("stop with use = %v, want 403 or 404", err)
	}
	if _, err := friend.ShareMachine(ctx, m.ID, client.ShareRequest{UserID: userOf(t, h, "stranger"), Permission: "use"}); status(err) != 403 {
		t.Errorf("re-share by the friend = %v, want 403", err)
	}
	if _, err := friend.MachineShares(ctx, m.ID); status(err) != 403 {
		t.Errorf("friend listing shares = %v, want 403", err)
	}
	if _, err := friend.Stack(ctx, m.StackID); status(err) != 404 {
		t.Errorf("friend reading the owner's stack = %v, want 404", err)
	}
	if _, err := friend.DestroyStack(ctx, m.StackID); status(err) != 404 {
		t.Errorf("friend destroying the owner's stack = %v, want 404", err)
	}
	if creds, err := friend.Credentials(ctx); err != nil || len(creds) != 0 {
		t.Errorf("friend's credentials = %v, %v; want none of the owner's", creds, err)
	}

	// A stranger: 404 for the machine and its terminal.
	if _, err := stranger.Machine(ctx, m.ID); status(err) != 404 {
		t.Errorf("stranger's machine = %v, want 404", err)
	}
	if _, err := stranger.Terminal(ctx, m.ID, client.TerminalOptions{}); status(err) != 404 {
		t.Errorf("stranger's terminal = %v, want 404", err)
	}
	if ms, err := stranger.Machines(ctx); err != nil || len(ms) != 0 {
		t.Errorf("stranger's machines = %v, %v", ms, err)
	}

	// control: stop and start.
	if _, err := owner.ShareMachine(ctx, m.ID, client.ShareRequest{UserID: friendUser, Permission: "control"}); err != nil {
		t.Fatal(err)
	}
	if shares, err := owner.MachineShares(ctx, m.ID); err != nil || len(shares) != 1 || shares[0].Permission != "control" {
		t.Fatalf("shares = %+v, %v", shares, err)
	}
	kloudtest.WaitJob(t, friend, mustJob(t)(friend.StopMachine(ctx, m.ID)).JobID)
	out.ended(10 * time.Second) // the machine's agent stopped with it
	if _, err := friend.Terminal(ctx, m.ID, client.TerminalOptions{}); status(err) != 409 {
		t.Errorf("terminal on the stopped machine = %v, want 409", err)
	}
	kloudtest.WaitJob(t, friend, mustJob(t)(friend.StartMachine(ctx, m.ID)).JobID)

	// Revoking closes the friend's open session within a second.
	term = openTerminal(t, friend, m.ID, client.TerminalOptions{})
	out = readTerminal(t, term)
	io.WriteString(term, "echo AGAIN-$((2+2))\n")
	out.wait("AGAIN-4")
	if err := owner.UnshareMachine(ctx, m.ID, friendUser); err != nil {
		t.Fatal(err)
	}
	if !out.ended(time.Second) {
		t.Fatal("the friend's session was still open a second after the revocation")
	}
	if code, reason := term.CloseReason(); code != 1008 || reason == "" {
		t.Errorf("close after revocation = %d %q, want 1008 with a reason", code, reason)
	}
	if _, err := friend.Machine(ctx, m.ID); status(err) != 404 {
		t.Errorf("friend's machine after revocation = %v, want 404", err)
	}
	// The owner sees the friend's sessions, every one closed now.
	deadline := time.Now().Add(10 * time.Second)
	for {
		open, err := owner.MachineSessions(ctx, m.ID, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(open) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions still open after the revocation: %+v", open)
		}
		time.Sleep(20 * time.Millisecond)
	}
	all, err := owner.MachineSessions(ctx, m.ID, false)
	if err != nil || len(all) < 2 || all[0].UserID != friendUser || all[0].ClosedAt == nil {
		t.Errorf("owner's view of the sessions = %+v, %v", all, err)
	}
	if err := owner.UnshareMachine(ctx, m.ID, friendUser); status(err) != 404 {
		t.Errorf("revoking again = %v, want 404", err)
	}
	// An admin may share any machine.
	if _, err := h.Admin.ShareMachine(ctx, m.ID, client.ShareRequest{UserID: friendUser, Permission: "use"}); err != nil {
		t.Errorf("admin share = %v", err)
	}
}

// userOf is the id of the user named name.
func userOf(t *testing.T, h *kloudtest.Harness, name string) string {
	t.Helper()
	users, err := h.Admin.Users(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if u.Name == name {
			return u.ID
		}
	}
	t.Fatalf("no user %s", name)
	return ""
}
