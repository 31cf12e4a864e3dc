package mongo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	mgo "go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// ---- template versions -----------------------------------------------------------

type versionDoc struct {
	ID         string `bson:"_id"` // <template id>/<version>
	TemplateID string `bson:"template_id"`
	Version    int    `bson:"version"`
	Format     string `bson:"format"`
	Content    string `bson:"content"`
	Message    string `bson:"message"`
	CreatedBy  string `bson:"created_by"`
	CreatedAt  int64  `bson:"created_at"`
}

func (d *versionDoc) version() *stack.TemplateVersion {
	return &stack.TemplateVersion{TemplateID: d.TemplateID, Version: d.Version, Format: stack.Format(d.Format), Content: d.Content,
		Message: d.Message, CreatedBy: d.CreatedBy, CreatedAt: store.FromNanos(d.CreatedAt)}
}

// CreateTemplateVersion stores a version of an existing template; the
// unique (template_id, version) index refuses a second one of a number.
func (s *Store) CreateTemplateVersion(ctx context.Context, v *stack.TemplateVersion) error {
	cn, err := store.CheckTemplateVersion(v, s.now())
	if err != nil {
		return err
	}
	if _, err := s.GetTemplate(ctx, v.TemplateID); err != nil {
		return fmt.Errorf("create template %s version %d: %w", v.TemplateID, v.Version, err)
	}
	d := versionDoc{ID: fmt.Sprintf("%s/%d", v.TemplateID, v.Version), TemplateID: v.TemplateID, Version: v.Version, Format: string(v.Format),
		Content: v.Content, Message: v.Message, CreatedBy: v.CreatedBy, CreatedAt: cn}
	if _, err := s.tplVersions.InsertOne(ctx, d); err != nil {
		return fmt.Errorf("create template %s version %d: %w", v.TemplateID, v.Version, mapErr(err))
	}
	return nil
}

// GetTemplateVersion returns one version of a template.
func (s *Store) GetTemplateVersion(ctx context.Context, templateID string, version int) (*stack.TemplateVersion, error) {
	if err := store.CheckKey("get template version", "template_id", templateID); err != nil {
		return nil, err
	}
	var d versionDoc
	filter := bson.D{{Key: "template_id", Value: templateID}, {Key: "version", Value: version}}
	if err := one(ctx, s.tplVersions, filter, &d, fmt.Sprintf("template %s version %d", templateID, version)); err != nil {
		return nil, fmt.Errorf("get template version: %w", err)
	}
	return d.version(), nil
}

// ListTemplateVersions returns a template's versions, oldest first.
func (s *Store) ListTemplateVersions(ctx context.Context, templateID string) ([]*stack.TemplateVersion, error) {
	if err := store.CheckKey("list template versions", "template_id", templateID); err != nil {
		return nil, err
	}
	docs, err := allOf[versionDoc](ctx, s.tplVersions, bson.D{{Key: "template_id", Value: templateID}}, options.Find().SetSort(sortBy("version")))
	if err != nil {
		return nil, fmt.Errorf("list template versions: %w", err)
	}
	out := make([]*stack.TemplateVersion, len(docs))
	for i := range docs {
		out[i] = docs[i].version()
	}
	return out, nil
}

// UpdateTemplate replaces a template's title, active version, format and
// content in its one document.
func (s *Store) UpdateTemplate(ctx context.Context, t *stack.Template) error {
	if err := store.CheckTemplateUpdate(t); err != nil {
		return err
	}
	res, err := s.templates.UpdateOne(ctx, byID(t.ID), bson.D{{Key: "$set", Value: bson.D{
		{Key: "title", Value: t.Title}, {Key: "active_version", Value: t.ActiveVersion},
		{Key: "format", Value: string(t.Format)}, {Key: "content", Value: t.Content},
	}}})
	if err != nil {
		return fmt.Errorf("update template %s: %w", t.ID, mapErr(err))
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("update template %s: %w", t.ID, store.NotFoundf("template %s", t.ID))
	}
	return nil
}

// ---- stack updates ------------------------------------------------------------

func (s *Store) sealSecretVariables(m map[string]stack.Secret) ([]byte, error) {
	b, err := store.SecretVariablesJSON(m)
	if err != nil {
		return nil, err
	}
	return s.sealSecretJSON(b)
}

// sealSecretJSON seals a stack's secret variables' JSON (nil for none).
func (s *Store) sealSecretJSON(b []byte) ([]byte, error) {
	if b == nil {
		return nil, nil
	}
	return s.seal("stack secret variables", b)
}

func (s *Store) openSecretVariables(r *store.StackRecord, sealed []byte) error {
	return store.OpenSecretVariables(r, sealed, s.open)
}

// UpdateStack replaces a stack's title, template version and variables in
// its one document.
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
	res, err := s.stacks.UpdateOne(ctx, byID(r.ID), bson.D{{Key: "$set", Value: bson.D{
		{Key: "title", Value: r.Title}, {Key: "template_version", Value: r.TemplateVersion},
		{Key: "variables", Value: vj}, {Key: "secret_variables", Value: secretVars}, {Key: "updated_at", Value: un},
	}}})
	if err != nil {
		return fmt.Errorf("update stack %s: %w", r.ID, mapErr(err))
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("update stack %s: %w", r.ID, store.NotFoundf("stack %s", r.ID))
	}
	r.UpdatedAt = store.FromNanos(un)
	return nil
}

// DeleteStack removes a stack, then its saved plans and drift record
// (documents no reader finds without the stack).
func (s *Store) DeleteStack(ctx context.Context, id string) error {
	if err := store.CheckKey("delete stack", "id", id); err != nil {
		return err
	}
	res, err := s.stacks.DeleteOne(ctx, byID(id))
	if err != nil {
		return fmt.Errorf("delete stack %s: %w", id, mapErr(err))
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("delete stack %s: %w", id, store.NotFoundf("stack %s", id))
	}
	if _, err := s.plans.DeleteMany(ctx, bson.D{{Key: "stack_id", Value: id}}); err != nil {
		return fmt.Errorf("delete stack %s plans: %w", id, mapErr(err))
	}
	if _, err := s.drifts.DeleteOne(ctx, byID(id)); err != nil {
		return fmt.Errorf("delete stack %s drift: %w", id, mapErr(err))
	}
	return nil
}

// ---- saved plans -----------------------------------------------------------------

type planDoc struct {
	ID              string `bson:"_id"`
	StackID         string `bson:"stack_id"`
	OwnerID         string `bson:"owner_id"`
	TemplateVersion int    `bson:"template_version"`
	StateSerial     int64  `bson:"state_serial"`
	StateLineage    string `bson:"state_lineage"`
	File            []byte `bson:"file"` // sealed
	Result          string `bson:"result"`
	CreatedAt       int64  `bson:"created_at"`
}

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
	d := planDoc{ID: p.ID, StackID: p.StackID, OwnerID: p.OwnerID, TemplateVersion: p.TemplateVersion, StateSerial: p.StateSerial,
		StateLineage: p.StateLineage, File: file, Result: result, CreatedAt: cn}
	if _, err := s.plans.ReplaceOne(ctx, byID(p.ID), d, options.Replace().SetUpsert(true)); err != nil {
		return fmt.Errorf("put plan %s: %w", p.ID, mapErr(err))
	}
	return nil
}

// GetPlan returns a saved plan with its file.
func (s *Store) GetPlan(ctx context.Context, id string) (*store.SavedPlan, error) {
	if err := store.CheckKey("get plan", "id", id); err != nil {
		return nil, err
	}
	var d planDoc
	if err := one(ctx, s.plans, byID(id), &d, "plan "+id); err != nil {
		return nil, fmt.Errorf("get plan: %w", err)
	}
	file, err := s.open("plan "+id+" file", d.File)
	if err != nil {
		return nil, fmt.Errorf("get plan: %w", err)
	}
	return &store.SavedPlan{ID: d.ID, StackID: d.StackID, OwnerID: d.OwnerID, TemplateVersion: d.TemplateVersion, StateSerial: d.StateSerial,
		StateLineage: d.StateLineage, File: file, Result: json.RawMessage(d.Result), CreatedAt: store.FromNanos(d.CreatedAt)}, nil
}

// ---- drift -----------------------------------------------------------------------

type driftDoc struct {
	ID        string `bson:"_id"` // the stack id
	CheckedAt int64  `bson:"checked_at"`
	Resources string `bson:"resources"` // JSON
}

// PutDrift replaces a stack's drift record.
func (s *Store) PutDrift(ctx context.Context, d *store.Drift) error {
	at, res, err := store.CheckDrift(d)
	if err != nil {
		return err
	}
	doc := driftDoc{ID: d.StackID, CheckedAt: at, Resources: string(res)}
	if _, err := s.drifts.ReplaceOne(ctx, byID(d.StackID), doc, options.Replace().SetUpsert(true)); err != nil {
		return fmt.Errorf("put drift of stack %s: %w", d.StackID, mapErr(err))
	}
	return nil
}

// GetDrift returns a stack's drift record.
func (s *Store) GetDrift(ctx context.Context, stackID string) (*store.Drift, error) {
	if err := store.CheckKey("get drift", "stack_id", stackID); err != nil {
		return nil, err
	}
	var doc driftDoc
	if err := one(ctx, s.drifts, byID(stackID), &doc, "drift of stack "+stackID); err != nil {
		return nil, fmt.Errorf("get drift: %w", err)
	}
	d := &store.Drift{StackID: stackID, CheckedAt: store.FromNanos(doc.CheckedAt)}
	if err := json.Unmarshal([]byte(doc.Resources), &d.Resources); err != nil {
		return nil, fmt.Errorf("get drift of stack %s: %w", stackID, err)
	}
	return d, nil
}

// ---- job timings and a stack's jobs -------------------------------------------

type timingsDoc struct {
	ID      string `bson:"_id"` // the job id
	Timings string `bson:"timings"`
}

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
	if _, err := s.timings.ReplaceOne(ctx, byID(jobID), timingsDoc{ID: jobID, Timings: string(b)}, options.Replace().SetUpsert(true)); err != nil {
		return fmt.Errorf("put job %s timings: %w", jobID, mapErr(err))
	}
	return nil
}

// GetJobTimings returns a job's phase timings (empty when none).
func (s *Store) GetJobTimings(ctx context.Context, jobID string) (map[string]int64, error) {
	if err := store.CheckKey("get job timings", "job_id", jobID); err != nil {
		return nil, err
	}
	var d timingsDoc
	err := s.timings.FindOne(ctx, byID(jobID)).Decode(&d)
	if errors.Is(err, mgo.ErrNoDocuments) {
		return map[string]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get job %s timings: %w", jobID, mapErr(err))
	}
	out := map[string]int64{}
	if err := json.Unmarshal([]byte(d.Timings), &out); err != nil {
		return nil, fmt.Errorf("get job %s timings: %w", jobID, err)
	}
	return out, nil
}

// ListStackJobs returns a stack's jobs, newest first.
func (s *Store) ListStackJobs(ctx context.Context, stackID string, limit int) ([]*jobs.Job, error) {
	if err := store.CheckKey("list stack jobs", "stack_id", stackID); err != nil {
		return nil, err
	}
	opts := options.Find().SetSort(bson.D{{Key: "created_at", Value: -1}, {Key: "ord", Value: -1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	docs, err := allOf[jobDoc](ctx, s.jobs, bson.D{{Key: "stack_id", Value: stackID}}, opts)
	if err != nil {
		return nil, fmt.Errorf("list jobs of stack %s: %w", stackID, err)
	}
	ids := make([]string, len(docs))
	for i := range docs {
		ids[i] = docs[i].ID
	}
	out := make([]*jobs.Job, 0, len(docs))
	if len(docs) == 0 {
		return out, nil
	}
	ps, err := s.partsOf(ctx, ids...)
	if err != nil {
		return nil, fmt.Errorf("list jobs of stack %s: %w", stackID, err)
	}
	for i := range docs {
		out = append(out, assemble(&docs[i], ps[docs[i].ID]))
	}
	return out, nil
}
