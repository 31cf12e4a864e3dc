package storetest

import (
	"bytes"
	"maps"
	"testing"
	"time"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/user"
)

var userCases = []testCase{
	{"CreateGetList", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		a := &user.User{Name: "alice", Role: user.RoleAdmin, TokenHash: "hash-a", CreatedAt: t0}
		ok(t, s.CreateUser(ctx, a))
		hasPrefix(t, "user", a.ID, "usr-")
		b := &user.User{Name: "bob", Role: user.RoleMember, TokenHash: "hash-b", CreatedAt: t0.Add(time.Second)}
		ok(t, s.CreateUser(ctx, b))
		c := &user.User{Name: "carol", Role: user.RoleMember}
		ok(t, s.CreateUser(ctx, c))
		if c.CreatedAt.IsZero() || c.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt filled in as %v, want now in UTC", c.CreatedAt)
		}
		got, err := s.GetUser(ctx, a.ID)
		ok(t, err)
		eq(t, "name", got.Name, "alice")
		eq(t, "role", got.Role, user.RoleAdmin)
		eq(t, "token hash", got.TokenHash, "hash-a")
		sameTime(t, "created_at", got.CreatedAt, t0)
		got, err = s.GetUserByTokenHash(ctx, "hash-b")
		ok(t, err)
		eq(t, "user by token", got.ID, b.ID)
		all, err := s.ListUsers(ctx)
		ok(t, err)
		if len(all) != 3 || all[0].ID != c.ID || all[1].ID != a.ID || all[2].ID != b.ID {
			t.Fatalf("ListUsers = %v, want carol (created now), alice, bob: oldest first", all)
		}
	}},
	{"ExplicitID", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.CreateUser(ctx, &user.User{ID: "usr-fixed", Name: "x", Role: user.RoleMember}))
		got, err := s.GetUser(ctx, "usr-fixed")
		ok(t, err)
		eq(t, "name", got.Name, "x")
		is(t, s.CreateUser(ctx, &user.User{ID: "usr-fixed", Name: "y", Role: user.RoleMember}), store.ErrConflict, "duplicate id")
	}},
	{"Conflict", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.CreateUser(ctx, &user.User{Name: "alice", Role: user.RoleAdmin, TokenHash: "h1"}))
		is(t, s.CreateUser(ctx, &user.User{Name: "alice", Role: user.RoleMember, TokenHash: "h2"}), store.ErrConflict, "duplicate name")
		is(t, s.CreateUser(ctx, &user.User{Name: "other", Role: user.RoleMember, TokenHash: "h1"}), store.ErrConflict, "duplicate token hash")
		// Users without a token do not collide on the empty hash.
		ok(t, s.CreateUser(ctx, &user.User{Name: "n1", Role: user.RoleMember}))
		ok(t, s.CreateUser(ctx, &user.User{Name: "n2", Role: user.RoleMember}))
	}},
	{"NotFound", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		_, err := s.GetUser(ctx, "usr-missing")
		is(t, err, store.ErrNotFound, "GetUser")
		_, err = s.GetUserByTokenHash(ctx, "nope")
		is(t, err, store.ErrNotFound, "GetUserByTokenHash")
		all, err := s.ListUsers(ctx)
		ok(t, err)
		eq(t, "users in empty store", len(all), 0)
	}},
}

func newCredential(owner string) *stack.Credential {
	return &stack.Credential{
		OwnerID:   owner,
		Provider:  "aws",
		Title:     "main account",
		Data:      []byte(`{"access_key":"AKIAEXAMPLE","secret_key":"wJalrXUtnFEMI/K7MDENG"}`),
		CreatedAt: t0,
	}
}

func newTemplate(owner string) *stack.Template {
	return &stack.Template{OwnerID: owner, Title: "web", Provider: "aws", Format: stack.FormatHCL,
		Content: "resource \"aws_instance\" \"web\" {}\n", CreatedAt: t0}
}

func newStack(owner, tplID, credID string) *store.StackRecord {
	return &store.StackRecord{
		Stack: stack.Stack{OwnerID: owner, Title: "dev", TemplateID: tplID, CredentialID: credID, Provider: "aws",
			Variables: map[string]string{"region": "eu-west-1", "size": "t3.small"}, CreatedAt: t0},
		AgentSecret: "agent-secret-value",
	}
}

var credentialCases = []testCase{
	{"CreateGetList", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		c := newCredential("usr-1")
		ok(t, s.CreateCredential(ctx, c))
		hasPrefix(t, "credential", c.ID, "cred-")
		sameTime(t, "updated_at defaults to created_at", c.UpdatedAt, t0)
		got, err := s.GetCredential(ctx, c.ID)
		ok(t, err)
		if !bytes.Equal(got.Data, c.Data) {
			t.Errorf("data = %s, want %s", got.Data, c.Data)
		}
		if len(got.Bootstrap) != 0 {
			t.Errorf("bootstrap = %s, want none", got.Bootstrap)
		}
		eq(t, "owner", got.OwnerID, "usr-1")
		eq(t, "provider", got.Provider, "aws")
		eq(t, "title", got.Title, "main account")
		sameTime(t, "created_at", got.CreatedAt, t0)
		ok(t, s.CreateCredential(ctx, newCredential("usr-2")))
		mine, err := s.ListCredentials(ctx, "usr-1")
		ok(t, err)
		if len(mine) != 1 || mine[0].ID != c.ID || !bytes.Equal(mine[0].Data, c.Data) {
			t.Errorf("ListCredentials(usr-1) = %v", mine)
		}
		all, err := s.ListCredentials(ctx, "")
		ok(t, err)
		eq(t, "every owner's credentials", len(all), 2)
	}},
	{"Update", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		c := newCredential("usr-1")
		ok(t, s.CreateCredential(ctx, c))
		upd := *c
		upd.Title, upd.Verified, upd.VerifyMsg, upd.Bootstrapped = "renamed", true, "ok: account 1234", true
		upd.Bootstrap = []byte(`{"vpc_id":"vpc-1"}`)
		upd.Data = []byte(`{"ignored":true}`) // Data is not replaced
		upd.OwnerID = "usr-9"                 // nor the owner
		ok(t, s.UpdateCredential(ctx, &upd))
		got, err := s.GetCredential(ctx, c.ID)
		ok(t, err)
		eq(t, "title", got.Title, "renamed")
		eq(t, "verified", got.Verified, true)
		eq(t, "verify msg", got.VerifyMsg, "ok: account 1234")
		eq(t, "bootstrapped", got.Bootstrapped, true)
		eq(t, "bootstrap", string(got.Bootstrap), `{"vpc_id":"vpc-1"}`)
		eq(t, "data unchanged", string(got.Data), string(c.Data))
		eq(t, "owner unchanged", got.OwnerID, "usr-1")
		upd.Bootstrap, upd.Bootstrapped = nil, false
		ok(t, s.UpdateCredential(ctx, &upd))
		got, err = s.GetCredential(ctx, c.ID)
		ok(t, err)
		if len(got.Bootstrap) != 0 || got.Bootstrapped {
			t.Errorf("bootstrap not cleared: %s %v", got.Bootstrap, got.Bootstrapped)
		}
		is(t, s.UpdateCredential(ctx, &stack.Credential{ID: "cred-missing"}), store.ErrNotFound, "update missing")
	}},
	{"Delete", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		c := newCredential("usr-1")
		ok(t, s.CreateCredential(ctx, c))
		ok(t, s.DeleteCredential(ctx, c.ID))
		_, err := s.GetCredential(ctx, c.ID)
		is(t, err, store.ErrNotFound, "get deleted")
		is(t, s.DeleteCredential(ctx, c.ID), store.ErrNotFound, "delete twice")
	}},
	{"DeleteInUse", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		c := newCredential("usr-1")
		ok(t, s.CreateCredential(ctx, c))
		tpl := newTemplate("usr-1")
		ok(t, s.CreateTemplate(ctx, tpl))
		st := newStack("usr-1", tpl.ID, c.ID)
		ok(t, s.CreateStack(ctx, st))
		for _, status := range []machinestate.StackState{machinestate.StackNotInitialized, machinestate.StackBuilding,
			machinestate.StackInitialized, machinestate.StackDestroying} {
			ok(t, s.SetStackStatus(ctx, st.ID, status, "", t0))
			is(t, s.DeleteCredential(ctx, c.ID), store.ErrConflict, "delete credential of a "+string(status)+" stack")
		}
		ok(t, s.SetStackStatus(ctx, st.ID, machinestate.StackDestroyed, "", t0))
		ok(t, s.DeleteCredential(ctx, c.ID))
	}},
	{"NotFound", func(t *testing.T, s store.Store) {
		_, err := s.GetCredential(t.Context(), "cred-missing")
		is(t, err, store.ErrNotFound, "GetCredential")
	}},
	{"DuplicateID", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		c := newCredential("usr-1")
		c.ID = "cred-1"
		ok(t, s.CreateCredential(ctx, c))
		d := newCredential("usr-1")
		d.ID = "cred-1"
		is(t, s.CreateCredential(ctx, d), store.ErrConflict, "duplicate id")
	}},
}

var templateCases = []testCase{
	{"CreateGetListDelete", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		a := newTemplate("usr-1")
		ok(t, s.CreateTemplate(ctx, a))
		hasPrefix(t, "template", a.ID, "tpl-")
		b := newTemplate("usr-2")
		b.Format, b.Content = stack.FormatJSON, `{"resource":{}}`
		ok(t, s.CreateTemplate(ctx, b))
		got, err := s.GetTemplate(ctx, b.ID)
		ok(t, err)
		eq(t, "format", got.Format, stack.FormatJSON)
		eq(t, "content", got.Content, `{"resource":{}}`)
		eq(t, "title", got.Title, "web")
		eq(t, "provider", got.Provider, "aws")
		sameTime(t, "created_at", got.CreatedAt, t0)
		mine, err := s.ListTemplates(ctx, "usr-1")
		ok(t, err)
		if len(mine) != 1 || mine[0].ID != a.ID {
			t.Errorf("ListTemplates(usr-1) = %v", mine)
		}
		all, err := s.ListTemplates(ctx, "")
		ok(t, err)
		eq(t, "all templates", len(all), 2)
		ok(t, s.DeleteTemplate(ctx, a.ID))
		_, err = s.GetTemplate(ctx, a.ID)
		is(t, err, store.ErrNotFound, "get deleted")
		is(t, s.DeleteTemplate(ctx, a.ID), store.ErrNotFound, "delete twice")
	}},
	{"DeleteInUse", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		tpl := newTemplate("usr-1")
		ok(t, s.CreateTemplate(ctx, tpl))
		st := newStack("usr-1", tpl.ID, "cred-x")
		ok(t, s.CreateStack(ctx, st))
		is(t, s.DeleteTemplate(ctx, tpl.ID), store.ErrConflict, "delete used template")
		ok(t, s.SetStackStatus(ctx, st.ID, machinestate.StackDestroyed, "", t0))
		is(t, s.DeleteTemplate(ctx, tpl.ID), store.ErrConflict, "delete template of a destroyed stack")
	}},
}

var stackCases = []testCase{
	{"CreateGetList", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		st := newStack("usr-1", "tpl-1", "cred-1")
		ok(t, s.CreateStack(ctx, st))
		hasPrefix(t, "stack", st.ID, "stk-")
		eq(t, "default status", st.Status, machinestate.StackNotInitialized)
		got, err := s.GetStack(ctx, st.ID)
		ok(t, err)
		eq(t, "status", got.Status, machinestate.StackNotInitialized)
		eq(t, "agent secret", got.AgentSecret.Reveal(), "agent-secret-value")
		eq(t, "template", got.TemplateID, "tpl-1")
		eq(t, "credential", got.CredentialID, "cred-1")
		eq(t, "provider", got.Provider, "aws")
		eq(t, "title", got.Title, "dev")
		if !maps.Equal(got.Variables, st.Variables) {
			t.Errorf("variables = %v, want %v", got.Variables, st.Variables)
		}
		sameTime(t, "created_at", got.CreatedAt, t0)
		other := newStack("usr-2", "tpl-1", "cred-1")
		other.AgentSecret, other.Variables = "", nil
		ok(t, s.CreateStack(ctx, other))
		got, err = s.GetStack(ctx, other.ID)
		ok(t, err)
		eq(t, "empty agent secret", got.AgentSecret.Reveal(), "")
		mine, err := s.ListStacks(ctx, "usr-1")
		ok(t, err)
		if len(mine) != 1 || mine[0].ID != st.ID || mine[0].AgentSecret.Reveal() != "agent-secret-value" {
			t.Errorf("ListStacks(usr-1) = %v", mine)
		}
		all, err := s.ListStacks(ctx, "")
		ok(t, err)
		eq(t, "all stacks", len(all), 2)
	}},
	{"SetStatus", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		st := newStack("usr-1", "tpl-1", "cred-1")
		ok(t, s.CreateStack(ctx, st))
		later := t0.Add(90 * time.Second)
		ok(t, s.SetStackStatus(ctx, st.ID, machinestate.StackNotInitialized, "apply failed: quota", later))
		got, err := s.GetStack(ctx, st.ID)
		ok(t, err)
		eq(t, "status", got.Status, machinestate.StackNotInitialized)
		eq(t, "reason", got.Reason, "apply failed: quota")
		sameTime(t, "updated_at", got.UpdatedAt, later)
		is(t, s.SetStackStatus(ctx, "stk-missing", machinestate.StackBuilding, "", later), store.ErrNotFound, "set status of missing stack")
		_, err = s.GetStack(ctx, "stk-missing")
		is(t, err, store.ErrNotFound, "GetStack")
	}},
}
