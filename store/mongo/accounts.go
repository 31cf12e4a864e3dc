package mongo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	mgo "go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/user"
)

// ---- users ----------------------------------------------------------------------

type userDoc struct {
	ID        string `bson:"_id"`
	Name      string `bson:"name"`
	Role      string `bson:"role"`
	TokenHash string `bson:"token_hash"` // emptyKey(id) when the user has no token
	CreatedAt int64  `bson:"created_at"`
}

func (d *userDoc) user() *user.User {
	return &user.User{ID: d.ID, Name: d.Name, Role: user.Role(d.Role), TokenHash: fromKey(d.TokenHash), CreatedAt: store.FromNanos(d.CreatedAt)}
}

// CreateUser stores a new user; the unique indexes on name and token hash
// refuse duplicates (ErrConflict).
func (s *Store) CreateUser(ctx context.Context, u *user.User) error {
	w, err := store.CheckUser(u, s.now())
	if err != nil {
		return err
	}
	id, created, cn := w.ID, w.CreatedAt, w.Created
	hash := u.TokenHash
	if hash == "" {
		hash = emptyKey(id)
	}
	if _, err := s.users.InsertOne(ctx, userDoc{ID: id, Name: u.Name, Role: string(u.Role), TokenHash: hash, CreatedAt: cn}); err != nil {
		return fmt.Errorf("create user %s: %w", u.Name, mapErr(err))
	}
	u.ID, u.CreatedAt = id, created
	return nil
}

// GetUser returns the user with id.
func (s *Store) GetUser(ctx context.Context, id string) (*user.User, error) {
	if err := store.CheckKey("get user", "id", id); err != nil {
		return nil, err
	}
	var d userDoc
	if err := one(ctx, s.users, byID(id), &d, "user "+id); err != nil {
		return nil, fmt.Errorf("get user: %w", err)
	}
	return d.user(), nil
}

// GetUserByTokenHash returns the user whose token hashes to hash.
func (s *Store) GetUserByTokenHash(ctx context.Context, hash string) (*user.User, error) {
	if err := store.CheckKey("get user by token", "hash", hash); err != nil {
		return nil, err
	}
	if fromKey(hash) == "" {
		return nil, fmt.Errorf("get user by token: %w", store.NotFoundf("user with that token"))
	}
	var d userDoc
	if err := one(ctx, s.users, bson.D{{Key: "token_hash", Value: hash}}, &d, "user with that token"); err != nil {
		return nil, fmt.Errorf("get user by token: %w", err)
	}
	return d.user(), nil
}

// ListUsers returns every user, oldest first.
func (s *Store) ListUsers(ctx context.Context) ([]*user.User, error) {
	docs, err := allOf[userDoc](ctx, s.users, bson.D{}, options.Find().SetSort(sortBy("created_at", "_id")))
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	out := make([]*user.User, len(docs))
	for i := range docs {
		out[i] = docs[i].user()
	}
	return out, nil
}

// ---- credentials --------------------------------------------------------------

type credentialDoc struct {
	ID           string `bson:"_id"`
	OwnerID      string `bson:"owner_id"`
	Provider     string `bson:"provider"`
	Title        string `bson:"title"`
	Data         []byte `bson:"data"`      // sealed
	Bootstrap    []byte `bson:"bootstrap"` // sealed
	Verified     bool   `bson:"verified"`
	VerifyMsg    string `bson:"verify_msg"`
	Bootstrapped bool   `bson:"bootstrapped"`
	CreatedAt    int64  `bson:"created_at"`
	UpdatedAt    int64  `bson:"updated_at"`
}

func (s *Store) credential(d *credentialDoc) (*stack.Credential, error) {
	data, err := s.open("credential "+d.ID+" data", d.Data)
	if err != nil {
		return nil, err
	}
	boot, err := s.open("credential "+d.ID+" bootstrap", d.Bootstrap)
	if err != nil {
		return nil, err
	}
	return &stack.Credential{ID: d.ID, OwnerID: d.OwnerID, Provider: d.Provider, Title: d.Title, Data: data, Bootstrap: boot,
		Verified: d.Verified, VerifyMsg: d.VerifyMsg, Bootstrapped: d.Bootstrapped,
		CreatedAt: store.FromNanos(d.CreatedAt), UpdatedAt: store.FromNanos(d.UpdatedAt)}, nil
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
	d := credentialDoc{ID: id, OwnerID: c.OwnerID, Provider: c.Provider, Title: c.Title, Data: data, Bootstrap: boot,
		Verified: c.Verified, VerifyMsg: c.VerifyMsg, Bootstrapped: c.Bootstrapped, CreatedAt: cn, UpdatedAt: un}
	if _, err := s.credentials.InsertOne(ctx, d); err != nil {
		return fmt.Errorf("create credential %s: %w", id, mapErr(err))
	}
	c.ID, c.CreatedAt, c.UpdatedAt = id, store.FromNanos(cn), store.FromNanos(un)
	return nil
}

// GetCredential returns the credential with id, secrets opened.
func (s *Store) GetCredential(ctx context.Context, id string) (*stack.Credential, error) {
	if err := store.CheckKey("get credential", "id", id); err != nil {
		return nil, err
	}
	var d credentialDoc
	if err := one(ctx, s.credentials, byID(id), &d, "credential "+id); err != nil {
		return nil, fmt.Errorf("get credential: %w", err)
	}
	c, err := s.credential(&d)
	if err != nil {
		return nil, fmt.Errorf("get credential: %w", err)
	}
	return c, nil
}

func ownerFilter(ownerID string) bson.D {
	if ownerID == "" {
		return bson.D{}
	}
	return bson.D{{Key: "owner_id", Value: ownerID}}
}

// ListCredentials returns an owner's credentials (every owner's when
// ownerID is empty), oldest first.
func (s *Store) ListCredentials(ctx context.Context, ownerID string) ([]*stack.Credential, error) {
	docs, err := allOf[credentialDoc](ctx, s.credentials, ownerFilter(ownerID), options.Find().SetSort(sortBy("created_at", "_id")))
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	out := make([]*stack.Credential, len(docs))
	for i := range docs {
		if out[i], err = s.credential(&docs[i]); err != nil {
			return nil, fmt.Errorf("list credentials: %w", err)
		}
	}
	return out, nil
}

// UpdateCredential replaces title, verified, verify message, bootstrap and
// bootstrapped, and sets UpdatedAt. The fields are replaced together in one
// document, so concurrent updates leave one caller's values, as in SQLite.
func (s *Store) UpdateCredential(ctx context.Context, c *stack.Credential) error {
	updated, un, err := store.CheckCredentialUpdate(c, s.now())
	if err != nil {
		return err
	}
	boot, err := s.seal("credential bootstrap", c.Bootstrap)
	if err != nil {
		return fmt.Errorf("update credential %s: %w", c.ID, err)
	}
	res, err := s.credentials.UpdateOne(ctx, byID(c.ID), bson.D{{Key: "$set", Value: bson.D{
		{Key: "title", Value: c.Title}, {Key: "verified", Value: c.Verified}, {Key: "verify_msg", Value: c.VerifyMsg},
		{Key: "bootstrap", Value: boot}, {Key: "bootstrapped", Value: c.Bootstrapped}, {Key: "updated_at", Value: un},
	}}})
	if err != nil {
		return fmt.Errorf("update credential %s: %w", c.ID, mapErr(err))
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("update credential %s: %w", c.ID, store.NotFoundf("credential %s", c.ID))
	}
	c.UpdatedAt = updated
	return nil
}

// DeleteCredential deletes a credential no live (not destroyed) stack
// uses.
//
// SQLite checks and deletes in one transaction. Here the check comes first
// and the delete, by _id, is the single atomic step. CreateStack and
// SetStackStatus never read credentials, so a stack created (or revived)
// with this credential between the two steps orders after the delete, the
// same outcome SQLite gives when the stack write commits second.
func (s *Store) DeleteCredential(ctx context.Context, id string) error {
	if err := store.CheckKey("delete credential", "id", id); err != nil {
		return err
	}
	var user struct {
		ID string `bson:"_id"`
	}
	err := s.stacks.FindOne(ctx, bson.D{{Key: "credential_id", Value: id}, {Key: "status", Value: bson.D{{Key: "$ne", Value: string(machinestate.StackDestroyed)}}}},
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}}).SetSort(sortBy("created_at"))).Decode(&user)
	switch {
	case err == nil:
		return fmt.Errorf("delete credential %s: stack %s uses it: %w", id, user.ID, store.ErrConflict)
	case !errors.Is(err, mgo.ErrNoDocuments):
		return fmt.Errorf("delete credential %s: %w", id, mapErr(err))
	}
	res, err := s.credentials.DeleteOne(ctx, byID(id))
	if err != nil {
		return fmt.Errorf("delete credential %s: %w", id, mapErr(err))
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("delete credential %s: %w", id, store.NotFoundf("credential %s", id))
	}
	return nil
}

// ---- templates ----------------------------------------------------------------

type templateDoc struct {
	ID        string `bson:"_id"`
	OwnerID   string `bson:"owner_id"`
	Title     string `bson:"title"`
	Provider  string `bson:"provider"`
	Format    string `bson:"format"`
	Content   string `bson:"content"`
	CreatedAt int64  `bson:"created_at"`
	// Active is the active version; 0 in a document written before
	// versions, which reads as 1.
	Active int `bson:"active_version"`
}

func (d *templateDoc) template() *stack.Template {
	return &stack.Template{ID: d.ID, OwnerID: d.OwnerID, Title: d.Title, Provider: d.Provider, Format: stack.Format(d.Format),
		Content: d.Content, CreatedAt: store.FromNanos(d.CreatedAt), ActiveVersion: max(d.Active, 1)}
}

// CreateTemplate stores a user's template.
func (s *Store) CreateTemplate(ctx context.Context, t *stack.Template) error {
	w, err := store.CheckNewTemplate(t, s.now())
	if err != nil {
		return err
	}
	id, created, cn := w.ID, w.CreatedAt, w.Created
	d := templateDoc{ID: id, OwnerID: t.OwnerID, Title: t.Title, Provider: t.Provider, Format: string(t.Format), Content: t.Content, CreatedAt: cn, Active: max(t.ActiveVersion, 1)}
	if _, err := s.templates.InsertOne(ctx, d); err != nil {
		return fmt.Errorf("create template %s: %w", id, mapErr(err))
	}
	t.ID, t.CreatedAt, t.ActiveVersion = id, created, max(t.ActiveVersion, 1)
	return nil
}

// GetTemplate returns the template with id.
func (s *Store) GetTemplate(ctx context.Context, id string) (*stack.Template, error) {
	if err := store.CheckKey("get template", "id", id); err != nil {
		return nil, err
	}
	var d templateDoc
	if err := one(ctx, s.templates, byID(id), &d, "template "+id); err != nil {
		return nil, fmt.Errorf("get template: %w", err)
	}
	return d.template(), nil
}

// ListTemplates returns an owner's templates (every owner's when ownerID is
// empty), oldest first.
func (s *Store) ListTemplates(ctx context.Context, ownerID string) ([]*stack.Template, error) {
	docs, err := allOf[templateDoc](ctx, s.templates, ownerFilter(ownerID), options.Find().SetSort(sortBy("created_at", "_id")))
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	out := make([]*stack.Template, len(docs))
	for i := range docs {
		out[i] = docs[i].template()
	}
	return out, nil
}

// DeleteTemplate deletes a template no stack uses. As for credentials, the
// check precedes the atomic delete by _id; CreateStack does not read
// templates, so a stack created in between orders after the delete.
func (s *Store) DeleteTemplate(ctx context.Context, id string) error {
	if err := store.CheckKey("delete template", "id", id); err != nil {
		return err
	}
	var user struct {
		ID string `bson:"_id"`
	}
	err := s.stacks.FindOne(ctx, bson.D{{Key: "template_id", Value: id}},
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}}).SetSort(sortBy("created_at"))).Decode(&user)
	switch {
	case err == nil:
		return fmt.Errorf("delete template %s: stack %s uses it: %w", id, user.ID, store.ErrConflict)
	case !errors.Is(err, mgo.ErrNoDocuments):
		return fmt.Errorf("delete template %s: %w", id, mapErr(err))
	}
	res, err := s.templates.DeleteOne(ctx, byID(id))
	if err != nil {
		return fmt.Errorf("delete template %s: %w", id, mapErr(err))
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("delete template %s: %w", id, store.NotFoundf("template %s", id))
	}
	return nil
}

// ---- stacks -------------------------------------------------------------------

type stackDoc struct {
	ID           string `bson:"_id"`
	OwnerID      string `bson:"owner_id"`
	Title        string `bson:"title"`
	TemplateID   string `bson:"template_id"`
	CredentialID string `bson:"credential_id"`
	Provider     string `bson:"provider"`
	Variables    string `bson:"variables"` // JSON: keys may hold dots
	Status       string `bson:"status"`
	Reason       string `bson:"reason"`
	AgentSecret  []byte `bson:"agent_secret"` // sealed
	CreatedAt    int64  `bson:"created_at"`
	UpdatedAt    int64  `bson:"updated_at"`
	// Version is the pinned template version (0, before versions, reads
	// as 1); SecretVars the sealed sensitive variables.
	Version    int    `bson:"template_version"`
	SecretVars []byte `bson:"secret_variables,omitempty"`
}

func (s *Store) stackRecord(d *stackDoc) (*store.StackRecord, error) {
	r := &store.StackRecord{Stack: stack.Stack{ID: d.ID, OwnerID: d.OwnerID, Title: d.Title, TemplateID: d.TemplateID,
		CredentialID: d.CredentialID, Provider: d.Provider, Status: machinestate.StackState(d.Status), Reason: d.Reason,
		CreatedAt: store.FromNanos(d.CreatedAt), UpdatedAt: store.FromNanos(d.UpdatedAt), TemplateVersion: max(d.Version, 1)}}
	if err := s.openSecretVariables(r, d.SecretVars); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(d.Variables), &r.Variables); err != nil {
		return nil, fmt.Errorf("decode stack %s variables: %w", d.ID, err)
	}
	plain, err := s.open("stack "+d.ID+" agent secret", d.AgentSecret)
	if err != nil {
		return nil, err
	}
	r.AgentSecret = stack.Secret(plain)
	return r, nil
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
	d := stackDoc{ID: id, OwnerID: r.OwnerID, Title: r.Title, TemplateID: r.TemplateID, CredentialID: r.CredentialID,
		Provider: r.Provider, Variables: string(vj), Status: string(status), Reason: r.Reason, AgentSecret: secret,
		CreatedAt: cn, UpdatedAt: un, Version: max(r.TemplateVersion, 1), SecretVars: secretVars}
	if _, err := s.stacks.InsertOne(ctx, d); err != nil {
		return fmt.Errorf("create stack %s: %w", id, mapErr(err))
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
	var d stackDoc
	if err := one(ctx, s.stacks, byID(id), &d, "stack "+id); err != nil {
		return nil, fmt.Errorf("get stack: %w", err)
	}
	r, err := s.stackRecord(&d)
	if err != nil {
		return nil, fmt.Errorf("get stack: %w", err)
	}
	return r, nil
}

// ListStacks returns an owner's stacks (every owner's when ownerID is
// empty), oldest first.
func (s *Store) ListStacks(ctx context.Context, ownerID string) ([]*store.StackRecord, error) {
	docs, err := allOf[stackDoc](ctx, s.stacks, ownerFilter(ownerID), options.Find().SetSort(sortBy("created_at", "_id")))
	if err != nil {
		return nil, fmt.Errorf("list stacks: %w", err)
	}
	out := make([]*store.StackRecord, len(docs))
	for i := range docs {
		if out[i], err = s.stackRecord(&docs[i]); err != nil {
			return nil, fmt.Errorf("list stacks: %w", err)
		}
	}
	return out, nil
}

// SetStackStatus sets a stack's status, reason and updated_at together in
// its one document (the job holding the stack's target is their only
// writer).
func (s *Store) SetStackStatus(ctx context.Context, id string, status machinestate.StackState, reason string, at time.Time) error {
	an, err := store.CheckStackStatus(id, status, s.nowOr(at))
	if err != nil {
		return err
	}
	res, err := s.stacks.UpdateOne(ctx, byID(id), bson.D{{Key: "$set", Value: bson.D{
		{Key: "status", Value: string(status)}, {Key: "reason", Value: reason}, {Key: "updated_at", Value: an},
	}}})
	if err != nil {
		return fmt.Errorf("set stack %s status: %w", id, mapErr(err))
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("set stack %s status: %w", id, store.NotFoundf("stack %s", id))
	}
	return nil
}
