package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// ---- credentials --------------------------------------------------------------

const credentialCols = `id, owner_id, provider, title, data, bootstrap, verified, verify_msg, bootstrapped, created_at, updated_at`

func (s *Store) scanCredential(sc scanner) (*stack.Credential, error) {
	var c stack.Credential
	var data, boot []byte
	var created, updated int64
	if err := sc.Scan(&c.ID, &c.OwnerID, &c.Provider, &c.Title, &data, &boot, &c.Verified, &c.VerifyMsg, &c.Bootstrapped, &created, &updated); err != nil {
		return nil, err
	}
	d, err := s.open("credential "+c.ID+" data", data)
	if err != nil {
		return nil, err
	}
	b, err := s.open("credential "+c.ID+" bootstrap", boot)
	if err != nil {
		return nil, err
	}
	c.Data, c.Bootstrap = d, b
	c.CreatedAt, c.UpdatedAt = store.FromNanos(created), store.FromNanos(updated)
	return &c, nil
}

// CreateCredential stores a new credential, its Data and Bootstrap sealed.
func (s *Store) CreateCredential(ctx context.Context, c *stack.Credential) error {
	w, err := store.CheckNewCredential(c, s.now())
	if err != nil {
		return err
	}
	id, cn, un := w.ID, w.Created, w.Updated
	data, err := s.seal("credential data", c.Data)
	if err != nil {
		return fmt.Errorf("create credential: %w", err)
	}
	boot, err := s.seal("credential bootstrap", c.Bootstrap)
	if err != nil {
		return fmt.Errorf("create credential: %w", err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO credentials (`+credentialCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, c.OwnerID, c.Provider, c.Title, data, boot, c.Verified, c.VerifyMsg, c.Bootstrapped, cn, un)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("create credential %s: %w", id, err)
	}
	c.ID, c.CreatedAt, c.UpdatedAt = id, store.FromNanos(cn), store.FromNanos(un)
	return nil
}

// GetCredential returns the credential with id, secrets opened.
func (s *Store) GetCredential(ctx context.Context, id string) (*stack.Credential, error) {
	if err := store.CheckKey("get credential", "id", id); err != nil {
		return nil, err
	}
	c, err := s.scanCredential(s.r.QueryRowContext(ctx, `SELECT `+credentialCols+` FROM credentials WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get credential: %w", noRows(err, "credential "+id))
	}
	return c, nil
}

// ListCredentials returns an owner's credentials (every owner's when
// ownerID is empty), oldest first.
func (s *Store) ListCredentials(ctx context.Context, ownerID string) ([]*stack.Credential, error) {
	out, err := list(ctx, s.r, s.scanCredential,
		`SELECT `+credentialCols+` FROM credentials WHERE ?1 = '' OR owner_id = ?1 ORDER BY created_at, id`, ownerID)
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	return out, nil
}

// UpdateCredential replaces title, verified, verify message, bootstrap and
// bootstrapped, and sets UpdatedAt.
func (s *Store) UpdateCredential(ctx context.Context, c *stack.Credential) error {
	updated, un, err := store.CheckCredentialUpdate(c, s.now())
	if err != nil {
		return err
	}
	boot, err := s.seal("credential bootstrap", c.Bootstrap)
	if err != nil {
		return fmt.Errorf("update credential %s: %w", c.ID, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE credentials SET title = ?, verified = ?, verify_msg = ?, bootstrap = ?, bootstrapped = ?, updated_at = ? WHERE id = ?`,
			c.Title, c.Verified, c.VerifyMsg, boot, c.Bootstrapped, un, c.ID)
		if err != nil {
			return mapErr(err)
		}
		return mustAffect(res, "credential "+c.ID)
	})
	if err != nil {
		return fmt.Errorf("update credential %s: %w", c.ID, err)
	}
	c.UpdatedAt = updated
	return nil
}

// DeleteCredential deletes a credential no live (not destroyed) stack uses.
func (s *Store) DeleteCredential(ctx context.Context, id string) error {
	if err := store.CheckKey("delete credential", "id", id); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		var stackID string
		err := tx.QueryRowContext(ctx, `SELECT id FROM stacks WHERE credential_id = ? AND status <> ? ORDER BY created_at LIMIT 1`,
			id, string(machinestate.StackDestroyed)).Scan(&stackID)
		switch {
		case err == nil:
			return fmt.Errorf("stack %s uses it: %w", stackID, store.ErrConflict)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM credentials WHERE id = ?`, id)
		if err != nil {
			return mapErr(err)
		}
		return mustAffect(res, "credential "+id)
	})
	if err != nil {
		return fmt.Errorf("delete credential %s: %w", id, err)
	}
	return nil
}

// ---- templates ----------------------------------------------------------------

const templateCols = `id, owner_id, title, provider, format, content, created_at, active_version`

func scanTemplate(sc scanner) (*stack.Template, error) {
	var t stack.Template
	var format string
	var created int64
	if err := sc.Scan(&t.ID, &t.OwnerID, &t.Title, &t.Provider, &format, &t.Content, &created, &t.ActiveVersion); err != nil {
		return nil, err
	}
	t.Format = stack.Format(format)
	t.CreatedAt = store.FromNanos(created)
	return &t, nil
}

// CreateTemplate stores a user's template (its Content; Generated and Env
// belong to composed templates and are not stored).
func (s *Store) CreateTemplate(ctx context.Context, t *stack.Template) error {
	w, err := store.CheckNewTemplate(t, s.now())
	if err != nil {
		return err
	}
	id, created, cn := w.ID, w.CreatedAt, w.Created
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO templates (`+templateCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			id, t.OwnerID, t.Title, t.Provider, string(t.Format), t.Content, cn, max(t.ActiveVersion, 1))
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("create template %s: %w", id, err)
	}
	t.ID, t.CreatedAt, t.ActiveVersion = id, created, max(t.ActiveVersion, 1)
	return nil
}

// GetTemplate returns the template with id.
func (s *Store) GetTemplate(ctx context.Context, id string) (*stack.Template, error) {
	if err := store.CheckKey("get template", "id", id); err != nil {
		return nil, err
	}
	t, err := scanTemplate(s.r.QueryRowContext(ctx, `SELECT `+templateCols+` FROM templates WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get template: %w", noRows(err, "template "+id))
	}
	return t, nil
}

// ListTemplates returns an owner's templates (every owner's when ownerID is
// empty), oldest first.
func (s *Store) ListTemplates(ctx context.Context, ownerID string) ([]*stack.Template, error) {
	out, err := list(ctx, s.r, scanTemplate,
		`SELECT `+templateCols+` FROM templates WHERE ?1 = '' OR owner_id = ?1 ORDER BY created_at, id`, ownerID)
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	return out, nil
}

// DeleteTemplate deletes a template no stack uses.
func (s *Store) DeleteTemplate(ctx context.Context, id string) error {
	if err := store.CheckKey("delete template", "id", id); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		var stackID string
		err := tx.QueryRowContext(ctx, `SELECT id FROM stacks WHERE template_id = ? ORDER BY created_at LIMIT 1`, id).Scan(&stackID)
		switch {
		case err == nil:
			return fmt.Errorf("stack %s uses it: %w", stackID, store.ErrConflict)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM templates WHERE id = ?`, id)
		if err != nil {
			return mapErr(err)
		}
		return mustAffect(res, "template "+id)
	})
	if err != nil {
		return fmt.Errorf("delete template %s: %w", id, err)
	}
	return nil
}

// ---- stacks -------------------------------------------------------------------

const stackCols = `id, owner_id, title, template_id, credential_id, provider, variables, status, reason, agent_secret, created_at, updated_at, template_version, secret_variables`

func (s *Store) scanStack(sc scanner) (*store.StackRecord, error) {
	var r store.StackRecord
	var vars, status string
	var secret, secretVars []byte
	var created, updated int64
	if err := sc.Scan(&r.ID, &r.OwnerID, &r.Title, &r.TemplateID, &r.CredentialID, &r.Provider, &vars, &status, &r.Reason, &secret, &created, &updated, &r.TemplateVersion, &secretVars); err != nil {
		return nil, err
	}
	if err := s.openSecretVariables(&r, secretVars); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(vars), &r.Variables); err != nil {
		return nil, fmt.Errorf("decode stack %s variables: %w", r.ID, err)
	}
	plain, err := s.open("stack "+r.ID+" agent secret", secret)
	if err != nil {
		return nil, err
	}
	r.AgentSecret = stack.Secret(plain)
	r.Status = machinestate.StackState(status)
	r.CreatedAt, r.UpdatedAt = store.FromNanos(created), store.FromNanos(updated)
	return &r, nil
}

// CreateStack stores a new stack (status not_initialized when empty), its
// agent secret sealed.
func (s *Store) CreateStack(ctx context.Context, r *store.StackRecord) error {
	w, status, err := store.CheckNewStack(r, s.now())
	if err != nil {
		return err
	}
	id, cn, un := w.ID, w.Created, w.Updated
	vj, err := store.JSONObject(r.Variables)
	if err != nil {
		return fmt.Errorf("create stack: encode variables: %w", err)
	}
	secret, err := s.seal("stack agent secret", []byte(r.AgentSecret.Reveal()))
	if err != nil {
		return fmt.Errorf("create stack: %w", err)
	}
	secretVars, err := s.sealSecretVariables(r.SecretVariables)
	if err != nil {
		return fmt.Errorf("create stack: %w", err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO stacks (`+stackCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, r.OwnerID, r.Title, r.TemplateID, r.CredentialID, r.Provider, string(vj), string(status), r.Reason, secret, cn, un, max(r.TemplateVersion, 1), secretVars)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("create stack %s: %w", id, err)
	}
	r.ID, r.Status, r.CreatedAt, r.UpdatedAt = id, status, store.FromNanos(cn), store.FromNanos(un)
	r.TemplateVersion = max(r.TemplateVersion, 1)
	return nil
}

// GetStack returns the stack with id.
func (s *Store) GetStack(ctx context.Context, id string) (*store.StackRecord, error) {
	if err := store.CheckKey("get stack", "id", id); err != nil {
		return nil, err
	}
	r, err := s.scanStack(s.r.QueryRowContext(ctx, `SELECT `+stackCols+` FROM stacks WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get stack: %w", noRows(err, "stack "+id))
	}
	return r, nil
}

// ListStacks returns an owner's stacks (every owner's when ownerID is
// empty), oldest first.
func (s *Store) ListStacks(ctx context.Context, ownerID string) ([]*store.StackRecord, error) {
	out, err := list(ctx, s.r, s.scanStack,
		`SELECT `+stackCols+` FROM stacks WHERE ?1 = '' OR owner_id = ?1 ORDER BY created_at, id`, ownerID)
	if err != nil {
		return nil, fmt.Errorf("list stacks: %w", err)
	}
	return out, nil
}

// SetStackStatus sets a stack's status and reason at at (now when zero).
func (s *Store) SetStackStatus(ctx context.Context, id string, status machinestate.StackState, reason string, at time.Time) error {
	an, err := store.CheckStackStatus(id, status, s.nowOr(at))
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE stacks SET status = ?, reason = ?, updated_at = ? WHERE id = ?`, string(status), reason, an, id)
		if err != nil {
			return mapErr(err)
		}
		return mustAffect(res, "stack "+id)
	})
	if err != nil {
		return fmt.Errorf("set stack %s status: %w", id, err)
	}
	return nil
}
