package kloud

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/kloud/kloud/user"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

func credentialView(c *stack.Credential) client.Credential {
	return client.Credential{
		ID: c.ID, OwnerID: c.OwnerID, Provider: c.Provider, Title: c.Title,
		Verified: c.Verified, VerifyMessage: c.VerifyMsg, Bootstrapped: c.Bootstrapped, CreatedAt: c.CreatedAt,
	}
}

func (s *Server) handleCreateCredential(w http.ResponseWriter, r *http.Request) {
	var req client.CreateCredentialRequest
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := s.createCredential(r.Context(), actorFrom(r.Context()), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, credentialView(c))
}

// createCredential checks the data against the provider's credential schema
// and stores it (encrypted by the store).
func (s *Server) createCredential(ctx context.Context, actor *user.User, req client.CreateCredentialRequest) (*stack.Credential, error) {
	p, err := requestProvider(req.Provider)
	if err != nil {
		return nil, err
	}
	title := strings.TrimSpace(req.Title)
	if title == "" {
		title = req.Provider
	}
	if len(title) > 200 {
		return nil, unprocessable("title", "title is longer than 200 characters")
	}
	data := req.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	cred, err := provider.Decode(p.Schema.NewCredential, data)
	if err != nil {
		return nil, err
	}
	if err := s.checkCredential(p, cred, actor); err != nil {
		return nil, err
	}
	now := s.now()
	c := &stack.Credential{OwnerID: actor.ID, Provider: p.Name, Title: title, Data: data, CreatedAt: now, UpdatedAt: now}
	if err := s.st.CreateCredential(ctx, c); err != nil {
		return nil, fmt.Errorf("create credential: %w", err)
	}
	return c, nil
}

// credentialFor returns the credential id names when actor may see it.
func (s *Server) credentialFor(ctx context.Context, actor *user.User, id string) (*stack.Credential, error) {
	return owned(ctx, actor, "credential", id, s.st.GetCredential, func(c *stack.Credential) string { return c.OwnerID })
}

func (s *Server) handleListCredentials(w http.ResponseWriter, r *http.Request) {
	creds, err := s.st.ListCredentials(r.Context(), ownerFilter(actorFrom(r.Context())))
	writeList(s, w, r, creds, err, credentialView)
}

func (s *Server) handleGetCredential(w http.ResponseWriter, r *http.Request) {
	c, err := s.credentialFor(r.Context(), actorFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, credentialView(c))
}

func (s *Server) handleDeleteCredential(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, err := s.credentialFor(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if c.Bootstrapped {
		s.writeError(w, r, fmt.Errorf("credential %s is bootstrapped; destroy its bootstrap first (DELETE /api/v1/credentials/%s/bootstrap): %w", c.ID, c.ID, store.ErrConflict))
		return
	}
	if err := s.st.DeleteCredential(ctx, c.ID); err != nil {
		s.writeError(w, r, fmt.Errorf("delete credential %s: %w", c.ID, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleVerifyCredential(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, err := s.credentialFor(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.verifyCredential(ctx, c)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// verifyCredential asks the provider and stores the answer.
func (s *Server) verifyCredential(ctx context.Context, c *stack.Credential) (*client.VerifyResult, error) {
	bs, p, err := s.baseStack(c, nil, nil)
	if err != nil {
		return nil, err
	}
	st, err := p.Stack(bs)
	if err != nil {
		return nil, fmt.Errorf("verify credential %s: %w", c.ID, err)
	}
	res := &client.VerifyResult{Verified: true, Message: "credential verified"}
	if verr := st.VerifyCredential(ctx, c); verr != nil {
		res = &client.VerifyResult{Verified: false, Message: bs.Mask(verr.Error())}
	}
	c.Verified, c.VerifyMsg, c.UpdatedAt = res.Verified, res.Message, s.now()
	if err := s.st.UpdateCredential(ctx, c); err != nil {
		return nil, fmt.Errorf("verify credential %s: %w", c.ID, err)
	}
	return res, nil
}

func (s *Server) handleBootstrap(w http.ResponseWriter, r *http.Request) {
	s.credentialJob(w, r, jobs.KindBootstrap)
}

func (s *Server) handleUnbootstrap(w http.ResponseWriter, r *http.Request) {
	s.credentialJob(w, r, jobs.KindUnbootstrap)
}

func (s *Server) credentialJob(w http.ResponseWriter, r *http.Request, kind jobs.Kind) {
	ctx := r.Context()
	actor := actorFrom(ctx)
	c, err := s.credentialFor(ctx, actor, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	job, err := s.enqueue(ctx, &jobs.Job{Kind: kind, OwnerID: c.OwnerID, Target: "credential/" + c.ID, CredentialID: c.ID})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, client.JobRef{JobID: job.ID})
}

// baseStack decodes a credential for its provider and fills a BaseStack.
// stk and tpl are nil for credential-only work.
func (s *Server) baseStack(c *stack.Credential, stk *store.StackRecord, tpl *stack.Template) (*provider.BaseStack, *provider.Provider, error) {
	p, err := provider.Get(c.Provider)
	if err != nil {
		return nil, nil, err
	}
	cred, boot, err := p.DecodeCredential(c)
	if err != nil {
		return nil, nil, err
	}
	bs := &provider.BaseStack{
		Provider: p, Log: s.log.With("provider", p.Name, "credential", c.ID),
		Template: tpl, Credential: c, Cred: cred, Bootstrap: boot,
		KloudURL: s.cfg.URL, DataDir: s.cfg.DataDir, Service: s.service(p),
	}
	if stk != nil {
		st := stk.Stack
		bs.Stack = &st
		bs.AgentSecret = stk.AgentSecret
	}
	return bs, p, nil
}
