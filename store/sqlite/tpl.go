package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// ---- template versions -----------------------------------------------------------

const versionCols = `template_id, version, format, content, message, created_by, created_at`

func scanVersion(sc scanner) (*stack.TemplateVersion, error) {
	var v stack.TemplateVersion
	var format string
	var created int64
	if err := sc.Scan(&v.TemplateID, &v.Version, &format, &v.Content, &v.Message, &v.CreatedBy, &created); err != nil {
		return nil, err
	}
	v.Format, v.CreatedAt = stack.Format(format), store.FromNanos(created)
	return &v, nil
}

// CreateTemplateVersion stores a version of an existing template.
func (s *Store) CreateTemplateVersion(ctx context.Context, v *stack.TemplateVersion) error {
	cn, err := store.CheckTemplateVersion(v, s.now())
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		var id string
		if err := tx.QueryRowContext(ctx, `SELECT id FROM templates WHERE id = ?`, v.TemplateID).Scan(&id); err != nil {
			return noRows(err, "template "+v.TemplateID)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO template_versions (`+versionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			v.TemplateID, v.Version, string(v.Format), v.Content, v.Message, v.CreatedBy, cn)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("create template %s version %d: %w", v.TemplateID, v.Version, err)
	}
	return nil
}

// GetTemplateVersion returns one version of a template.
func (s *Store) GetTemplateVersion(ctx context.Context, templateID string, version int) (*stack.TemplateVersion, error) {
	if err := store.CheckKey("get template version", "template_id", templateID); err != nil {
		return nil, err
	}
	v, err := scanVersion(s.r.QueryRowContext(ctx, `SELECT `+versionCols+` FROM template_versions WHERE template_id = ? AND version = ?`, templateID, version))
	if err != nil {
		return nil, fmt.Errorf("get template version: %w", noRows(err, fmt.Sprintf("template %s version %d", templateID, version)))
	}
	return v, nil
}

// ListTemplateVersions returns a template's versions, oldest first.
func (s *Store) ListTemplateVersions(ctx context.Context, templateID string) ([]*stack.TemplateVersion, error) {
	if err := store.CheckKey("list template versions", "template_id", templateID); err != nil {
		return nil, err
	}
	out, err := list(ctx, s.r, scanVersion, `SELECT `+versionCols+` FROM template_versions WHERE template_id = ? ORDER BY version`, templateID)
	if err != nil {
		return nil, fmt.Errorf("list template versions: %w", err)
	}
	return out, nil
}

// UpdateTemplate replaces a template's title, active version, format and
// content.
func (s *Store) UpdateTemplate(ctx context.Context, t *stack.Template) error {
	if err := store.CheckTemplateUpdate(t); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE templates SET title = ?, active_version = ?, format = ?, content = ? WHERE id = ?`,
			t.Title, t.ActiveVersion, string(t.Format), t.Content, t.ID)
		if err != nil {
			return mapErr(err)
		}
		return mustAffect(res, "template "+t.ID)
	})
	if err != nil {
		return fmt.Errorf("update template %s: %w", t.ID, err)
	}
	return nil
}

// ---- stack updates ------------------------------------------------------------

func (s *Store) sealSecretVariables(m map[string]stack.Secret) (any, error) {
	b, err := store.SecretVariablesJSON(m)
	if err != nil {
		return nil, err
	}
	return s.sealSecretJSON(b)
}

// sealSecretJSON seals a stack's secret variables' JSON (nil for none).
func (s *Store) sealSecretJSON(b []byte) (any, error) {
	if b == nil {
		return nil, nil
	}
	return s.seal("stack secret variables", b)
}

func (s *Store) openSecretVariables(r *store.StackRecord, sealed []byte) error {
	return store.OpenSecretVariables(r, sealed, s.open)
}

// UpdateStack replaces a stack's title, template version and variables.
func (s *Store) UpdateStack(ctx context.Context, r *store.StackRecord) error {
	u, err := store.CheckStackUpdate(r, s.now())
	if err != nil {
		return err
	}
	un, vj := u.Updated, u.Variables
	secretVars, err := s.sealSecretJSON(u.Secret)
	if err != nil {
		return fmt.Errorf("update stack %s: %w", r.ID, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE stacks SET title = ?, template_version = ?, variables = ?, secret_variables = ?, updated_at = ? WHERE id = ?`,
			r.Title, r.TemplateVersion, vj, secretVars, un, r.ID)
		if err != nil {
			return mapErr(err)
		}
		return mustAffect(res, "stack "+r.ID)
	})
	if err != nil {
		return fmt.Errorf("update stack %s: %w", r.ID, err)
	}
	r.UpdatedAt = store.FromNanos(un)
	return nil
}

// DeleteStack removes a stack with its saved plans and drift record.
func (s *Store) DeleteStack(ctx context.Context, id string) error {
	if err := store.CheckKey("delete stack", "id", id); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM stacks WHERE id = ?`, id)
		if err != nil {
			return mapErr(err)
		}
		if err := mustAffect(res, "stack "+id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM stack_plans WHERE stack_id = ?`, id); err != nil {
			return mapErr(err)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM stack_drift WHERE stack_id = ?`, id)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("delete stack %s: %w", id, err)
	}
	return nil
}

// ---- saved plans -----------------------------------------------------------------

// PutPlan stores or replaces a saved plan, its file sealed.
func (s *Store) PutPlan(ctx context.Context, p *store.SavedPlan) error {
	cn, err := store.CheckSavedPlan(p, s.now())
	if err != nil {
		return err
	}
	file, err := s.seal("plan file", p.File)
	if err != nil {
		return fmt.Errorf("put plan %s: %w", p.ID, err)
	}
	result := string(p.Result)
	if result == "" {
		result = "{}"
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO stack_plans (id, stack_id, owner_id, template_version, state_serial, state_lineage, file, result, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, p.ID, p.StackID, p.OwnerID, p.TemplateVersion, p.StateSerial, p.StateLineage, file, result, cn)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("put plan %s: %w", p.ID, err)
	}
	return nil
}

// GetPlan returns a saved plan with its file.
func (s *Store) GetPlan(ctx context.Context, id string) (*store.SavedPlan, error) {
	if err := store.CheckKey("get plan", "id", id); err != nil {
		return nil, err
	}
	var p store.SavedPlan
	var file []byte
	var result string
	var created int64
	err := s.r.QueryRowContext(ctx, `SELECT id, stack_id, owner_id, template_version, state_serial, state_lineage, file, result, created_at FROM stack_plans WHERE id = ?`, id).
		Scan(&p.ID, &p.StackID, &p.OwnerID, &p.TemplateVersion, &p.StateSerial, &p.StateLineage, &file, &result, &created)
	if err != nil {
		return nil, fmt.Errorf("get plan: %w", noRows(err, "plan "+id))
	}
	if p.File, err = s.open("plan "+id+" file", file); err != nil {
		return nil, fmt.Errorf("get plan: %w", err)
	}
	p.Result, p.CreatedAt = json.RawMessage(result), store.FromNanos(created)
	return &p, nil
}

// ---- drift -----------------------------------------------------------------------

// PutDrift replaces a stack's drift record.
func (s *Store) PutDrift(ctx context.Context, d *store.Drift) error {
	at, res, err := store.CheckDrift(d)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO stack_drift (stack_id, checked_at, resources) VALUES (?, ?, ?)`, d.StackID, at, string(res))
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("put drift of stack %s: %w", d.StackID, err)
	}
	return nil
}

// GetDrift returns a stack's drift record.
func (s *Store) GetDrift(ctx context.Context, stackID string) (*store.Drift, error) {
	if err := store.CheckKey("get drift", "stack_id", stackID); err != nil {
		return nil, err
	}
	d := &store.Drift{StackID: stackID}
	var at int64
	var res string
	if err := s.r.QueryRowContext(ctx, `SELECT checked_at, resources FROM stack_drift WHERE stack_id = ?`, stackID).Scan(&at, &res); err != nil {
		return nil, fmt.Errorf("get drift: %w", noRows(err, "drift of stack "+stackID))
	}
	if err := json.Unmarshal([]byte(res), &d.Resources); err != nil {
		return nil, fmt.Errorf("get drift of stack %s: %w", stackID, err)
	}
	d.CheckedAt = store.FromNanos(at)
	return d, nil
}

// ---- job timings and a stack's jobs -------------------------------------------

// PutJobTimings replaces a job's phase timings.
func (s *Store) PutJobTimings(ctx context.Context, jobID string, ms map[string]int64) error {
	if err := store.CheckKey("put job timings", "job_id", jobID); err != nil {
		return err
	}
	if ms == nil {
		ms = map[string]int64{}
	}
	b, err := json.Marshal(ms)
	if err != nil {
		return fmt.Errorf("put job %s timings: %w", jobID, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO job_timings (job_id, timings) VALUES (?, ?)`, jobID, string(b))
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("put job %s timings: %w", jobID, err)
	}
	return nil
}

// GetJobTimings returns a job's phase timings (empty when none).
func (s *Store) GetJobTimings(ctx context.Context, jobID string) (map[string]int64, error) {
	if err := store.CheckKey("get job timings", "job_id", jobID); err != nil {
		return nil, err
	}
	var b string
	err := s.r.QueryRowContext(ctx, `SELECT timings FROM job_timings WHERE job_id = ?`, jobID).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return map[string]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get job %s timings: %w", jobID, err)
	}
	out := map[string]int64{}
	if err := json.Unmarshal([]byte(b), &out); err != nil {
		return nil, fmt.Errorf("get job %s timings: %w", jobID, err)
	}
	return out, nil
}

// ListStackJobs returns a stack's jobs, newest first.
func (s *Store) ListStackJobs(ctx context.Context, stackID string, limit int) ([]*jobs.Job, error) {
	if err := store.CheckKey("list stack jobs", "stack_id", stackID); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = -1
	}
	out, err := list(ctx, s.r, scanJob, `SELECT `+jobCols+` FROM jobs WHERE stack_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ?`, stackID, limit)
	if err != nil {
		return nil, fmt.Errorf("list jobs of stack %s: %w", stackID, err)
	}
	return out, nil
}
