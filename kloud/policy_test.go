package kloud_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/kloudtest"
	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
	"github.com/kloud/kloud/templates"
)

// aMachine makes a template valid apart from what a test adds to it.
const aMachine = `resource "sandbox_machine" "web" {
  size = "small"
}
`

// TestTemplatePolicyAttacks posts the attacks of issue 14 on the template
// policy: each is a 422 naming the exact place, and the server lives on.
func TestTemplatePolicyAttacks(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	tests := []struct {
		name, format, content string
		at                    string // line:col of the first diagnostic
		msg                   string
	}{
		{"hcl nesting", "hcl", aMachine + "locals {\n  x = " + strings.Repeat("(", 260000) + "1" + strings.Repeat(")", 260000) + "\n}\n",
			"5:70", "nesting deeper than 64 levels at main.tf:5:70"},
		{"json nesting", "json", `{"resource": {"sandbox_machine": {"web": {"size": "small"}}}, "locals": {"x": ` +
			strings.Repeat("[", 260000) + "1" + strings.Repeat("]", 260000) + "}}",
			"1:141", "nesting deeper than 64 levels at main.tf.json:1:141"},
		{"templatefile of the variables file", "hcl", aMachine + "locals {\n  t = templatefile(\"terraform.tfvars.json\", {})\n}\n",
			"5:7", `templatefile() path "terraform.tfvars.json" is a file Kloud generates`},
		{"templatefile of the template with a file call in a comment", "hcl", "# ${filebase64(\"/x/secret.key\")}\n" + aMachine + "locals {\n  t = templatefile(\"main.tf\", {})\n}\n",
			"1:5", `filebase64() path "/x/secret.key" is absolute`},
		{"json comment nested in an expression", "json", `{"resource": {"sandbox_machine": {"web": {"size": "small", "tags": {"//": "${file(\"/etc/shadow\")}"}}}}}`,
			"1:69", `a "//" comment may not hold ${ or %{`},
		{"external data inside check", "hcl", aMachine + "check \"c\" {\n  data \"external\" \"x\" {\n    program = [\"id\"]\n  }\n  assert {\n    condition     = true\n    error_message = \"x\"\n  }\n}\n",
			"5:3", `data "external" is not allowed`},
		{"remote state", "hcl", aMachine + "data \"terraform_remote_state\" \"o\" {\n  backend = \"local\"\n}\n",
			"4:1", `data "terraform_remote_state" is not allowed`},
		{"import of an expression", "hcl", aMachine + "import {\n  to = sandbox_machine.web\n  id = var.victim\n}\n",
			"6:8", `import "id" must be a literal string`},
		{"removed", "hcl", aMachine + "removed {\n  from = sandbox_machine.old\n}\n",
			"4:1", `removed blocks are not allowed`},
		{"null provider", "hcl", "terraform {\n  required_providers {\n    null = { source = \"hashicorp/null\" }\n  }\n}\n" + aMachine,
			"3:5", `provider "null" (source "hashicorp/null") is not allowed`},
		{"another registered provider", "hcl", aMachine + "resource \"aws_instance\" \"x\" {}\n",
			"4:10", `resource "aws_instance" uses provider "aws"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.Admin.CreateTemplate(ctx, client.CreateTemplateRequest{Title: "attack", Provider: "sandbox", Content: tt.content, Format: tt.format})
			var e *client.Error
			if !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity {
				t.Fatalf("err = %v, want 422", err)
			}
			if len(e.Diagnostics) == 0 {
				t.Fatalf("no diagnostics: %+v", e)
			}
			d := e.Diagnostics[0]
			if got := fmt.Sprintf("%d:%d", d.Line, d.Column); got != tt.at || !strings.Contains(d.Message, tt.msg) {
				t.Errorf("diagnostic %s %s; want %s %q", got, d.Message, tt.at, tt.msg)
			}
			if _, err := h.Admin.Health(ctx); err != nil {
				t.Fatalf("the server is gone: %v", err)
			}
		})
	}
}

// TestStackVariableNesting: a stack variable's value Kloud parses as HCL
// is bounded too, and refused when the stack is created.
func TestStackVariableNesting(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	cred, err := h.Admin.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Title: "local", Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := h.Admin.CreateTemplate(ctx, client.CreateTemplateRequest{Title: "t", Provider: "sandbox", Format: "hcl",
		Content: "variable \"l\" {\n  type = list(any)\n}\n" + aMachine})
	if err != nil {
		t.Fatal(err)
	}
	deep := strings.Repeat("[", 260000) + strings.Repeat("]", 260000)
	_, err = h.Admin.CreateStack(ctx, client.CreateStackRequest{Title: "s", TemplateID: tpl.ID, CredentialID: cred.ID, Variables: map[string]string{"l": deep}})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity || e.Field != "variables.l" || !strings.Contains(e.Message, "nesting deeper than 64 levels at line 1, column 65") {
		t.Fatalf("err = %v (%+v), want 422 naming variables.l", err, e)
	}
	if _, err := h.Admin.Health(ctx); err != nil {
		t.Fatalf("the server is gone: %v", err)
	}
}

// TestShippedTemplatesPassPolicy checks every provider's example and
// bootstrap templates against the policy Kloud applies to them, providers
// included.
func TestShippedTemplatesPassPolicy(t *testing.T) {
	checked := 0
	for _, p := range provider.All() {
		if b, err := templates.Example(p.Name); err == nil {
			checked++
			if _, _, err := terraform.ValidateTemplateWith("main.tf", b, stack.FormatHCL, p.PolicyOptions()); err != nil {
				t.Errorf("%s example: %v", p.Name, err)
			}
		}
		if b, format, err := templates.Bootstrap(p.Name); err == nil {
			name := (&stack.Template{Format: format}).FileName()
			if _, _, err := terraform.ValidateTemplateWith(name, b, format, p.PolicyOptions()); err != nil {
				t.Errorf("%s bootstrap: %v", p.Name, err)
			}
		}
	}
	if checked < 3 {
		t.Errorf("%d providers' examples checked; want sandbox, aws and digitalocean", checked)
	}
}
