package kloud

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/secretmask"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/user"
)

// versionView shows a version with the variables its content declares.
func versionView(v *stack.TemplateVersion, active int) client.TemplateVersion {
	out := client.TemplateVersion{
		TemplateID: v.TemplateID, Version: v.Version, Format: string(v.Format), Content: v.Content, Message: v.Message,
		CreatedBy: v.CreatedBy, CreatedAt: v.CreatedAt, Active: v.Version == max(active, 1), Variables: []client.TemplateVariable{},
	}
	for _, spec := range versionVariables(v) {
		cv := client.TemplateVariable{Name: spec.Name, Type: spec.Type, Default: spec.Default, Required: spec.Required,
			Description: spec.Description, Sensitive: spec.Sensitive}
		for _, val := range spec.Validations {
			cv.Validations = append(cv.Validations, client.VariableValidation(val))
		}
		if spec.Sensitive && spec.Default != "" {
			cv.Default = secretmask.Mask
		}
		out.Variables = append(out.Variables, cv)
	}
	return out
}

// versionVariables parses what a version's variable blocks declare.
func versionVariables(v *stack.TemplateVersion) []stack.VariableSpec {
	t := &stack.Template{Format: v.Format}
	parsed, _ := terraform.ParseTemplate(t.FileName(), []byte(v.Content), v.Format)
	if parsed == nil {
		return nil
	}
	return parsed.VariableSpecs()
}

// versionTemplate is t with the format and content of version v: what a
// stack pinned to v composes.
func versionTemplate(t *stack.Template, v *stack.TemplateVersion) *stack.Template {
	cp := *t
	cp.Format, cp.Content = v.Format, v.Content
	return &cp
}

// templateVersion returns version n of t. A template stored before
// versions existed has none stored: its version 1 is its content.
func (s *Server) templateVersion(ctx context.Context, t *stack.Template, n int) (*stack.TemplateVersion, error) {
	n = max(n, 1)
	v, err := s.st.GetTemplateVersion(ctx, t.ID, n)
	if errors.Is(err, store.ErrNotFound) && n == 1 && max(t.ActiveVersion, 1) == 1 {
		return &stack.TemplateVersion{TemplateID: t.ID, Version: 1, Format: t.Format, Content: t.Content, CreatedBy: t.OwnerID, CreatedAt: t.CreatedAt}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", t.ID, err)
	}
	return v, nil
}

// templateVersions lists t's versions (version 1 from t itself for a
// template stored before versions existed).
func (s *Server) templateVersions(ctx context.Context, t *stack.Template) ([]*stack.TemplateVersion, error) {
	vs, err := s.st.ListTemplateVersions(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	if len(vs) == 0 {
		v, err := s.templateVersion(ctx, t, 1)
		if err != nil {
			return nil, err
		}
		vs = []*stack.TemplateVersion{v}
	}
	return vs, nil
}

func (s *Server) handleCreateTemplateVersion(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	actor := actorFrom(ctx)
	var req client.CreateTemplateVersionRequest
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	t, err := s.templateFor(ctx, actor, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v, err := s.createTemplateVersion(ctx, actor, t, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, versionView(v, t.ActiveVersion))
}

// maxMessage bounds a version's message, maxTemplateVersions how many
// versions a template keeps (each up to maxTemplate bytes).
const (
	maxMessage          = 1024
	maxTemplateVersions = 200
)

// createTemplateVersion checks the content as at creation and stores it as
// the template's next version. Two pushes at once may pick the same number:
// the second is a 409 and may be retried.
func (s *Server) createTemplateVersion(ctx context.Context, actor *user.User, t *stack.Template, req client.CreateTemplateVersionRequest) (*stack.TemplateVersion, error) {
	p, err := requestProvider(t.Provider)
	if err != nil {
		return nil, err
	}
	if req.Format == "" {
		req.Format = string(t.Format)
	}
	format, err := checkTemplateContent(p, req.Format, req.Content)
	if err != nil {
		return nil, err
	}
	msg := strings.TrimSpace(req.Message)
	if len(msg) > maxMessage {
		return nil, unprocessable("message", "message is longer than %d bytes", maxMessage)
	}
	vs, err := s.templateVersions(ctx, t)
	if err != nil {
		return nil, err
	}
	if len(vs) >= maxTemplateVersions {
		return nil, conflict("version", "template %s has %d versions, the most a template keeps; create a new template", t.ID, len(vs))
	}
	if len(vs) == 1 {
		// A template stored before versions: keep its version 1 first.
		if _, err := s.st.GetTemplateVersion(ctx, t.ID, 1); errors.Is(err, store.ErrNotFound) {
			if err := s.st.CreateTemplateVersion(ctx, vs[0]); err != nil && !errors.Is(err, store.ErrConflict) {
				return nil, fmt.Errorf("create template %s version 1: %w", t.ID, err)
			}
		}
	}
	next := vs[len(vs)-1].Version + 1
	v := &stack.TemplateVersion{TemplateID: t.ID, Version: next, Format: format, Content: req.Content, Message: msg, CreatedBy: actor.ID, CreatedAt: s.now()}
	if err := s.st.CreateTemplateVersion(ctx, v); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, conflict("version", "template %s: version %d was pushed at the same time; push again", t.ID, next)
		}
		return nil, fmt.Errorf("create template %s version: %w", t.ID, err)
	}
	return v, nil
}

func (s *Server) handleListTemplateVersions(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	t, err := s.templateFor(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	vs, err := s.templateVersions(ctx, t)
	writeList(s, w, r, vs, err, func(v *stack.TemplateVersion) client.TemplateVersion { return versionView(v, t.ActiveVersion) })
}

func (s *Server) handleGetTemplateVersion(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	t, err := s.templateFor(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	n, err := versionNumber("version", r.PathValue("n"))
	if err != nil {
		s.writeError(w, r, badRequest("version", "%v", err))
		return
	}
	v, err := s.templateVersion(ctx, t, n)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, versionView(v, t.ActiveVersion))
}

// versionNumber parses a version number (1 or more).
func versionNumber(field, raw string) (int, error) {
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s %s is not a version number (1, 2, …)", field, quote(raw))
	}
	return n, nil
}

func (s *Server) handleUpdateTemplate(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req client.UpdateTemplateRequest
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	t, err := s.templateFor(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.updateTemplate(ctx, t, req); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, templateView(t))
}

// updateTemplate renames t or makes another of its versions the active
// one, whose content the template then shows.
func (s *Server) updateTemplate(ctx context.Context, t *stack.Template, req client.UpdateTemplateRequest) error {
	if req.Title != nil {
		title := strings.TrimSpace(*req.Title)
		if title == "" {
			return unprocessable("title", "title may not be empty")
		}
		t.Title = title
	}
	if req.ActiveVersion != nil {
		v, err := s.templateVersion(ctx, t, max(*req.ActiveVersion, 1))
		if *req.ActiveVersion < 1 || errors.Is(err, store.ErrNotFound) {
			return unprocessable("active_version", "template %s has no version %d", t.ID, *req.ActiveVersion)
		}
		if err != nil {
			return err
		}
		t.ActiveVersion, t.Format, t.Content = v.Version, v.Format, v.Content
	}
	t.ActiveVersion = max(t.ActiveVersion, 1)
	if err := s.st.UpdateTemplate(ctx, t); err != nil {
		return fmt.Errorf("update template %s: %w", t.ID, err)
	}
	return nil
}

// handleDeleteTemplate deletes a template no stack uses: 409 naming the
// stack otherwise.
func (s *Server) handleDeleteTemplate(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	t, err := s.templateFor(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.st.DeleteTemplate(ctx, t.ID); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
