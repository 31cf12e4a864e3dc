package stack

import "time"

// TemplateVersion is one version of a template's content. Version 1 is the
// content the template was created with; each push adds the next one. The
// variables a version declares are read from its content, not stored.
type TemplateVersion struct {
	TemplateID string    `json:"template_id"`
	Version    int       `json:"version"`
	Format     Format    `json:"format"`
	Content    string    `json:"content"`
	Message    string    `json:"message,omitempty"`
	CreatedBy  string    `json:"created_by,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

// VariableSpec is a variable a template declares, as its variable block
// says: Default is the default's source text (empty with Required).
type VariableSpec struct {
	Name        string               `json:"name"`
	Type        string               `json:"type,omitempty"`
	Default     string               `json:"default,omitempty"`
	Required    bool                 `json:"required"`
	Description string               `json:"description,omitempty"`
	Sensitive   bool                 `json:"sensitive"`
	Validations []VariableValidation `json:"validations,omitempty"`
}

// VariableValidation is one validation block of a variable: Terraform
// evaluates Condition at plan and fails with ErrorMessage when it is false.
type VariableValidation struct {
	Condition    string `json:"condition"`
	ErrorMessage string `json:"error_message"`
}
