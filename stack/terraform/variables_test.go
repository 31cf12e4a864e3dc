package terraform

import (
	"errors"
	"strings"
	"testing"

	"github.com/kloud/kloud/stack"
)

func TestVariableSpecs(t *testing.T) {
	const src = `
variable "count" {
  type        = number
  default     = 3
  description = "How many machines."
  validation {
    condition     = var.count <= 10
    error_message = "count must be at most 10."
  }
}

variable "db_password" {
  type      = string
  sensitive = true
}
`
	p, diags := ParseTemplate("main.tf", []byte(src), stack.FormatHCL)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	specs := p.VariableSpecs()
	if len(specs) != 2 {
		t.Fatalf("specs = %+v", specs)
	}
	c := specs[0]
	if c.Name != "count" || c.Type != "number" || c.Default != "3" || c.Required || c.Description != "How many machines." || c.Sensitive {
		t.Errorf("count = %+v", c)
	}
	if len(c.Validations) != 1 || c.Validations[0].Condition != "var.count <= 10" || c.Validations[0].ErrorMessage != "count must be at most 10." {
		t.Errorf("count validations = %+v", c.Validations)
	}
	if d := specs[1]; d.Name != "db_password" || !d.Required || !d.Sensitive {
		t.Errorf("db_password = %+v", d)
	}
}

func TestCheckVariableValue(t *testing.T) {
	for _, tc := range []struct {
		typ, raw string
		bad      string
	}{
		{"number", "5", ""},
		{"number", "1.5e3", ""},
		{"number", "abc", `variable "n" (type number): "abc" is not a number`},
		{"number", "", "is not a number"},
		{"bool", "true", ""},
		{"bool", "yes", "is not true or false"},
		{"string", "abc", ""},
		{"", "anything", ""},
	} {
		err := CheckVariableValue(VariableDecl{Name: "n", Type: tc.typ}, tc.raw)
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("%s %q: %v", tc.typ, tc.raw, err)
		case tc.bad != "" && (err == nil || !errors.Is(err, ErrInvalidVariable) || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("%s %q: err = %v, want %q", tc.typ, tc.raw, err, tc.bad)
		}
	}
}
