package kloud

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/kloud/kloud/user"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
)

// maxTemplate bounds a template's content.
const maxTemplate = 512 << 10

func templateView(t *stack.Template) client.Template {
	return client.Template{ID: t.ID, OwnerID: t.OwnerID, Title: t.Title, Provider: t.Provider, Format: string(t.Format), Content: t.Content,
		CreatedAt: t.CreatedAt, ActiveVersion: max(t.ActiveVersion, 1)}
}

func (s *Server) handleCreateTemplate(w http.ResponseWriter, r *http.Request) {
	var req client.CreateTemplateRequest
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	t, err := s.createTemplate(r.Context(), actorFrom(r.Context()), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, templateView(t))
}

// createTemplate parses the template and checks its policy before storing
// it as version 1.
func (s *Server) createTemplate(ctx context.Context, actor *user.User, req client.CreateTemplateRequest) (*stack.Template, error) {
	p, err := requestProvider(req.Provider)
	if err != nil {
		return nil, err
	}
	format, err := checkTemplateContent(p, req.Format, req.Content)
	if err != nil {
		return nil, err
	}
	title := strings.TrimSpace(req.Title)
	if title == "" {
		return nil, unprocessable("title", "title is required")
	}
	t := &stack.Template{OwnerID: actor.ID, Title: title, Provider: p.Name, Format: format, Content: req.Content, CreatedAt: s.now(), ActiveVersion: 1}
	if err := s.st.CreateTemplate(ctx, t); err != nil {
		return nil, fmt.Errorf("create template: %w", err)
	}
	v := &stack.TemplateVersion{TemplateID: t.ID, Version: 1, Format: format, Content: t.Content, CreatedBy: actor.ID, CreatedAt: t.CreatedAt}
	if err := s.st.CreateTemplateVersion(ctx, v); err != nil {
		return nil, fmt.Errorf("create template: %w", err)
	}
	return t, nil
}

// checkTemplateContent checks a template's format, size, syntax and policy
// for provider p, and that it declares a machine, and returns its format.
func checkTemplateContent(p *provider.Provider, rawFormat, content string) (stack.Format, error) {
	format := stack.Format(rawFormat)
	switch format {
	case "":
		format = stack.FormatHCL
	case stack.FormatHCL, stack.FormatJSON:
	default:
		return "", unprocessable("format", "format %s is not one of hcl, json", quote(rawFormat))
	}
	if strings.TrimSpace(content) == "" {
		return "", unprocessable("content", "content is required")
	}
	if len(content) > maxTemplate {
		return "", unprocessable("content", "content is larger than %d bytes", maxTemplate)
	}
	probe := &stack.Template{Format: format}
	parsed, _, err := terraform.ValidateTemplateWith(probe.FileName(), []byte(content), format, p.PolicyOptions())
	if err != nil {
		return "", err
	}
	if p.CheckTemplate != nil {
		if diags := p.CheckTemplate(parsed); diags.HasErrors() {
			return "", &terraform.TemplateError{Diagnostics: diags}
		}
	}
	if len(terraform.MachineResources(parsed, p.TerraformType())) == 0 {
		return "", unprocessable("content", "the template declares no %s resource; a %s stack needs at least one machine", p.TerraformType(), p.Name)
	}
	return format, nil
}

func (s *Server) templateFor(ctx context.Context, actor *user.User, id string) (*stack.Template, error) {
	return owned(ctx, actor, "template", id, s.st.GetTemplate, func(t *stack.Template) string { return t.OwnerID })
}

func (s *Server) handleListTemplates(w http.ResponseWriter, r *http.Request) {
	ts, err := s.st.ListTemplates(r.Context(), ownerFilter(actorFrom(r.Context())))
	writeList(s, w, r, ts, err, templateView)
}

func (s *Server) handleGetTemplate(w http.ResponseWriter, r *http.Request) {
	t, err := s.templateFor(r.Context(), actorFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, templateView(t))
}

func (s *Server) handlePlanTemplate(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	actor := actorFrom(ctx)
	var req client.PlanRequest
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	t, err := s.templateFor(ctx, actor, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.CredentialID == "" {
		s.writeError(w, r, unprocessable("credential_id", "credential_id is required"))
		return
	}
	c, err := s.credentialFor(ctx, actor, req.CredentialID)
	if err != nil {
		s.writeError(w, r, unprocessableNotFound("credential_id", err))
		return
	}
	res, err := s.planTemplate(ctx, t, c, req.Variables)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// unprocessableNotFound turns a referenced record that does not exist into
// a 422 naming the field that referenced it.
func unprocessableNotFound(field string, err error) error {
	if errorsIsNotFound(err) {
		return unprocessable(field, "%s: %v", field, err)
	}
	return err
}
