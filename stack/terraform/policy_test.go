package terraform

import (
	"strconv"
	"strings"
	"testing"

	"github.com/kloud/kloud/stack"
)

// policyCase is a template and the diagnostics the policy must give it:
// each as "line:col:substring of the message".
type policyCase struct {
	name    string
	format  stack.Format
	content string
	want    []string
}

var policyCases = []policyCase{
	// HCL native syntax.
	{"hcl local-exec", stack.FormatHCL, `resource "sandbox_machine" "web" {
  size = "small"
  provisioner "local-exec" {
    command = "id"
  }
}
`, []string{`3:3:provisioner "local-exec" is not allowed`}},
	{"hcl remote-exec", stack.FormatHCL, `resource "sandbox_machine" "web" {
  provisioner "remote-exec" {
    inline = ["id"]
  }
}
`, []string{`2:3:provisioner "remote-exec" is not allowed`}},
	{"hcl provisioner in data", stack.FormatHCL, `data "x" "y" {
  provisioner "local-exec" {}
}`, []string{`2:3:provisioner "local-exec"`}},
	{"hcl file provisioner outside", stack.FormatHCL, `resource "a" "b" {
  provisioner "file" {
    source      = "/etc/passwd"
    destination = "/tmp/p"
  }
}`, []string{`3:19:provisioner "file" source "/etc/passwd" is absolute`}},
	{"hcl external data", stack.FormatHCL, `locals { a = 1 }

data "external" "x" {
  program = ["id"]
}
`, []string{`3:1:data "external" is not allowed`}},
	{"hcl backend", stack.FormatHCL, `terraform {
  required_version = ">= 1.5"
  backend "s3" {
    bucket = "b"
  }
}
`, []string{`3:3:terraform { backend } is not allowed`}},
	{"hcl cloud", stack.FormatHCL, `terraform {
  cloud {
    organization = "o"
  }
}
`, []string{`2:3:terraform { cloud } is not allowed`}},
	{"hcl module", stack.FormatHCL, `module "m" {
  source = "./m"
}
`, []string{`1:1:module blocks are not allowed`}},
	{"hcl file absolute", stack.FormatHCL, `resource "a" "b" {
  user_data = file("/etc/passwd")
}
`, []string{`2:15:file() path "/etc/passwd" is absolute`}},
	{"hcl file dotdot", stack.FormatHCL, `resource "a" "b" {
  user_data = "x${filebase64("${path.module}/../secret")}y"
}
`, []string{`2:19:filebase64() path "../secret" contains ".."`}},
	{"hcl file home", stack.FormatHCL, `locals {
  k = filesha256("~/.ssh/id_rsa")
}
`, []string{`2:7:filesha256() path "~/.ssh/id_rsa" is in a home directory`}},
	{"hcl templatefile expression", stack.FormatHCL, `locals {
  p = "x"
  t = templatefile(local.p, {})
}
`, []string{`3:7:templatefile() path must be a literal path`}},
	{"hcl fileset pattern", stack.FormatHCL, `locals {
  s = fileset(path.module, "../**")
}
`, []string{`2:7:fileset() pattern "../**" contains ".."`}},
	{"hcl core namespace", stack.FormatHCL, `locals {
  s = core::file("/etc/hosts")
}
`, []string{`2:7:file() path "/etc/hosts" is absolute`}},
	{"hcl expanded args", stack.FormatHCL, `locals {
  s = file(["a"]...)
}
`, []string{`2:7:file() with expanded arguments`}},
	{"hcl path.cwd", stack.FormatHCL, `locals {
  s = file("${path.cwd}/x")
}
`, []string{`2:7:file() path must be a literal path`}},
	{"hcl heredoc nested", stack.FormatHCL, `resource "a" "b" {
  user_data = <<-EOT
    #!/bin/sh
    echo ${base64encode(file("/etc/shadow"))}
  EOT
}
`, []string{`4:25:file() path "/etc/shadow" is absolute`}},
	{"hcl several", stack.FormatHCL, `terraform {
  backend "local" {}
}
resource "a" "b" {
  provisioner "local-exec" {
    command = file("../x")
  }
}
`, []string{`2:3:backend`, `5:3:local-exec`, `6:15:file() path "../x"`}},
	{"hcl allowed", stack.FormatHCL, `resource "a" "b" {
  user_data = file("${path.module}/main.tf")
  other     = filesha256("./main.tf")
  set       = fileset(path.module, "*.sh")
  provisioner "file" {
    source      = "main.tf"
    destination = "/etc/app.conf"
  }
}
data "http" "x" {}
terraform {
  required_providers {
    sandbox = { source = "kloud.local/kloud/sandbox" }
  }
}
`, nil},

	// JSON syntax: the same constructs, pointed at in the JSON source.
	{"json local-exec", stack.FormatJSON, `{
  "resource": {
    "sandbox_machine": {
      "web": {
        "size": "small",
        "provisioner": [
          {"local-exec": {"command": "id"}}
        ]
      }
    }
  }
}`, []string{`7:12:provisioner "local-exec" is not allowed`}},
	{"json remote-exec object", stack.FormatJSON, `{"resource": {"a": {"b": {
  "provisioner": {"remote-exec": {"inline": ["id"]}}
}}}}`, []string{`2:19:provisioner "remote-exec" is not allowed`}},
	{"json external", stack.FormatJSON, `{
  "data": [
    {"external": {"x": {"program": ["id"]}}}
  ]
}`, []string{`3:6:data "external" is not allowed`}},
	{"json backend and cloud", stack.FormatJSON, `{
  "terraform": {
    "backend": {"s3": {}}
  },
  "terraform ": {},
  "module": {"m": {"source": "./m"}}
}`, []string{`3:5:terraform { backend }`, `6:3:module blocks`}},
	{"json cloud in array", stack.FormatJSON, `{"terraform": [{}, {
 "cloud": {}}]}`, []string{`2:2:terraform { cloud }`}},
	{"json file absolute", stack.FormatJSON, `{
  "resource": {"a": {"b": {
    "user_data": "${file(\"/etc/passwd\")}"
  }}}
}`, []string{`3:21:file() path "/etc/passwd" is absolute`}},
	{"json file after escapes", stack.FormatJSON, `{
  "locals": {
    "x": "a\"b\\c\u00e9${templatefile(\"../t\", {})}"
  }
}`, []string{`3:26:templatefile() path "../t" contains ".."`}},
	{"json function in key", stack.FormatJSON, `{"locals": {"m": {"${file(\"/k\")}": 1}}}`, []string{`1:22:file() path "/k" is absolute`}},
	{"json file provisioner", stack.FormatJSON, `{"resource": {"a": {"b": {"provisioner": {"file": {"source": "/etc/x", "destination": "/y"}}}}}}`,
		[]string{`1:62:provisioner "file" source "/etc/x" is absolute`}},
	{"json comment with a template", stack.FormatJSON, `{"//": "${file(\"/etc/passwd\")}", "locals": {}}`,
		[]string{`1:2:a "//" comment may not hold ${ or %{`, `1:11:file() path "/etc/passwd" is absolute`}},
	{"json comment", stack.FormatJSON, `{"//": "cost is $5 {}", "locals": {"x": {"//": ["a", {"b": "c"}]}}}`, nil},
	{"json allowed", stack.FormatJSON, `{
  "resource": {"a": {"b": {
    "user_data": "${file(\"${path.module}/main.tf\")}",
    "plain": "cost is $5 and ${var.x}",
    "provisioner": {"file": {"source": "main.tf"}}
  }}},
  "data": {"http": {"x": {}}}
}`, nil},
}

func TestCheckPolicy(t *testing.T) {
	runPolicyCases(t, policyCases, PolicyOptions{})
}

// The attacks of issue 14 on the policy, and the rules added with them.
var attackCases = []policyCase{
	// File functions read only the template's own file.
	{"templatefile of the variables file", stack.FormatHCL, `locals {
  t = templatefile("terraform.tfvars.json", {})
}
`, []string{`2:7:templatefile() path "terraform.tfvars.json" is a file Kloud generates`}},
	{"templatefile of the template with a file call in a comment", stack.FormatHCL, `# ${filebase64("/x/secret.key")}
locals {
  t = templatefile("main.tf", {})
}
`, []string{`1:5:filebase64() path "/x/secret.key" is absolute; only the template's own file can be read (evaluated when templatefile() at main.tf:3:7 renders main.tf)`}},
	{"templatefile rendering itself", stack.FormatHCL, `# ${templatefile("./main.tf", {})} ${file("main.tf")}
locals {
  t = templatefile("${path.module}/main.tf", {})
}
`, nil},
	{"templatefile of a template that does not render", stack.FormatHCL, `# %{ if
locals {
  t = templatefile("main.tf", {})
}
`, []string{`3:7:templatefile() renders main.tf, which cannot be checked as a template`}},
	{"templatefile of the template, a file call in a string", stack.FormatHCL, `locals {
  a = "${file("/etc/shadow")}"
  t = templatefile("main.tf", {})
}
`, []string{`2:10:file() path "/etc/shadow" is absolute; only the template's own file can be read`}},
	{"file of generated and other files", stack.FormatHCL, `locals {
  a = file("kloud_override.tf.json")
  b = file("./.terraform/providers/x")
  c = filesha1("other.tf")
  d = fileexists("terraform.tfstate")
  e = fileset("sub", "*")
  f = fileset(path.module, "/etc/*")
}
`, []string{
		`2:7:file() path "kloud_override.tf.json" is a file Kloud generates`,
		`3:7:file() path ".terraform/providers/x" is a file Kloud generates`,
		`4:7:filesha1() path "other.tf" is not a file of the template; a template is one file (main.tf)`,
		`5:7:fileexists() path "terraform.tfstate" is a file Kloud generates`,
		`6:7:fileset() path "sub" is not the template's directory`,
		`7:7:fileset() pattern "/etc/*" is absolute`,
	}},
	{"templatestring", stack.FormatHCL, `locals {
  t = templatestring(var.x, {})
}
`, []string{`2:7:templatestring() is not allowed`}},
	{"provisioner file source directory", stack.FormatHCL, `resource "a" "b" {
  provisioner "file" {
    source      = "${path.module}/"
    destination = "/tmp"
  }
}
`, []string{`3:19:provisioner "file" source "." is not a file of the template`}},
	{"json templatefile of the variables file", stack.FormatJSON, `{"locals": {
  "t": "${templatefile(\"terraform.tfvars.json\", {})}"
}}`, []string{`2:11:templatefile() path "terraform.tfvars.json" is a file Kloud generates`}},
	{"json templatefile of the template", stack.FormatJSON, `{"locals": {
  "t": "${templatefile(\"main.tf\", {})}"
}}`, []string{`2:11:templatefile() renders main.tf, which cannot be checked as a template`}},

	// "//" keys where Terraform evaluates them.
	{"json comment nested in an expression", stack.FormatJSON, `{"locals": {"x": {
  "//": "${file(\"/etc/shadow\")}"
}}}`, []string{`2:3:a "//" comment may not hold`, `2:12:file() path "/etc/shadow" is absolute`}},
	{"json comment with a directive deep inside", stack.FormatJSON, `{"resource": {"a": {"b": {
  "tags": {"//": [{"k": "%{ if true }x%{ endif }"}]}
}}}}`, []string{`2:12:a "//" comment may not hold`}},

	// Nested blocks are checked wherever they are.
	{"hcl external data inside check", stack.FormatHCL, `check "c" {
  data "external" "x" {
    program = ["id"]
  }
  assert {
    condition     = true
    error_message = "x"
  }
}
`, []string{`2:3:data "external" is not allowed`}},
	{"hcl provisioner inside dynamic", stack.FormatHCL, `resource "a" "b" {
  dynamic "x" {
    for_each = [1]
    content {
      provisioner "local-exec" {
        command = "id"
      }
    }
  }
}
`, []string{`5:7:provisioner "local-exec" is not allowed`}},
	{"hcl file in lifecycle", stack.FormatHCL, `resource "a" "b" {
  lifecycle {
    precondition {
      condition     = fileexists("/etc/shadow")
      error_message = "x"
    }
  }
}
`, []string{`4:23:fileexists() path "/etc/shadow" is absolute`}},
	{"json external data inside check", stack.FormatJSON, `{"check": {"c": {
  "data": {"external": {"x": {"program": ["id"]}}},
  "assert": {"condition": true, "error_message": "x"}
}}}`, []string{`2:12:data "external" is not allowed`}},
	{"json provisioner inside dynamic", stack.FormatJSON, `{"resource": {"a": {"b": {
  "dynamic": {"x": {"for_each": [1], "content": {
    "provisioner": [{"remote-exec": {"inline": ["id"]}}]
  }}}
}}}}`, []string{`3:22:provisioner "remote-exec" is not allowed`}},

	// Remote state, removed and import blocks.
	{"hcl remote state", stack.FormatHCL, `data "terraform_remote_state" "other" {
  backend = "local"
  config  = { path = "../stk-other/terraform.tfstate" }
}
`, []string{`1:1:data "terraform_remote_state" is not allowed`}},
	{"json remote state", stack.FormatJSON, `{"data": {"terraform_remote_state": {"o": {"backend": "http"}}}}`,
		[]string{`1:11:data "terraform_remote_state" is not allowed`}},
	{"hcl removed", stack.FormatHCL, `removed {
  from = sandbox_machine.web
}
`, []string{`1:1:removed blocks are not allowed`}},
	{"json removed", stack.FormatJSON, `{"removed": [{"from": "sandbox_machine.web"}]}`, []string{`1:2:removed blocks are not allowed`}},
	{"hcl import literal", stack.FormatHCL, `import {
  to = sandbox_machine.web
  id = "sbx-123"
}
import {
  to = sandbox_machine.db["a"]
  id = "sbx-456"
}
`, nil},
	{"hcl import refused", stack.FormatHCL, `import {
  to       = sandbox_machine.web[each.key]
  id       = "sbx-${each.value}"
  for_each = var.ids
}
import {
  to = data.sandbox_machine.web
  id = var.id
}
import {
  to = module.m.sandbox_machine.web
  id = "x"
}
`, []string{
		`2:14:import "to" must be a plain resource address`,
		`3:14:import "id" must be a literal string`,
		`4:3:import argument "for_each" is not allowed`,
		`7:8:import "to" must be a plain resource address`,
		`8:8:import "id" must be a literal string`,
		`11:8:import "to" must be a plain resource address`,
	}},
	{"json import", stack.FormatJSON, `{"import": [
  {"to": "sandbox_machine.web", "id": "sbx-1"},
  {"to": "sandbox_machine.db", "id": "${var.id}"},
  {"to": "data.x.y", "id": "a"}
]}`, []string{`3:38:import "id" must be a literal string`, `4:10:import "to" must be a plain resource address`}},
}

func TestCheckPolicyAttacks(t *testing.T) {
	runPolicyCases(t, attackCases, PolicyOptions{})
}

// sandboxPolicy allows the sandbox provider, as Kloud does for a sandbox
// template.
var sandboxPolicy = PolicyOptions{AllowedProviders: map[string]string{"sandbox": "kloud.local/kloud/sandbox"}}

var providerCases = []policyCase{
	{"hcl null provider", stack.FormatHCL, `terraform {
  required_providers {
    null = { source = "hashicorp/null" }
  }
}
`, []string{`3:5:provider "null" (source "hashicorp/null") is not allowed: Kloud installs only its own providers; allowed: sandbox (kloud.local/kloud/sandbox), terraform (builtin)`}},
	{"hcl allowed providers", stack.FormatHCL, `terraform {
  required_providers {
    sandbox   = { source = "KLOUD.LOCAL/kloud/Sandbox", version = ">= 0" }
    terraform = { source = "terraform.io/builtin/terraform" }
  }
}
terraform {
  required_providers {
    sandbox = {
      "source"              = "kloud.local/kloud/sandbox"
      configuration_aliases = [sandbox.other]
    }
  }
}
provider "sandbox" {
  alias = "other"
}
resource "sandbox_machine" "web" {
  provider = sandbox.other
}
resource "terraform_data" "x" {}
data "sandbox_machine" "y" {}
import {
  to = sandbox_machine.web
  id = "sbx-1"
}
`, nil},
	{"hcl providers refused", stack.FormatHCL, `terraform {
  required_providers {
    sandbox = { source = "registry.terraform.io/hashicorp/sandbox" }
    aws     = "~> 5.0"
  }
}
terraform {
  required_providers {
    sandbox = { source = var.src }
  }
}
provider "null" {}
resource "null_resource" "x" {}
resource "sandbox_machine" "y" {
  provider = null.z
}
data "http" "z" {}
import {
  to = aws_instance.x
  id = "i-1"
}
locals {
  f = provider::null::f(1)
}
`, []string{
		`3:5:provider "sandbox" has source "registry.terraform.io/hashicorp/sandbox"; Kloud installs it only from "kloud.local/kloud/sandbox"`,
		`4:5:provider "aws" is not allowed`,
		`9:26:required_providers entry "sandbox": source must be a literal string`,
		`12:10:provider block uses provider "null"`,
		`13:10:resource "null_resource" uses provider "null"`,
		`15:14:resource "sandbox_machine" uses provider "null"`,
		`17:6:data "http" uses provider "http"`,
		`19:8:import of "aws_instance" uses provider "aws"`,
		`23:7:provider::null::f() uses provider "null"`,
	}},
	{"json providers", stack.FormatJSON, `{
  "terraform": {"required_providers": {"null": {"source": "registry.terraform.io/hashicorp/null"}, "sandbox": {"source": "kloud.local/kloud/sandbox"}}},
  "provider": {"aws": {}},
  "resource": {"null_resource": {"x": {}}, "sandbox_machine": {"w": {"provider": "aws.x"}}, "terraform_data": {"d": {}}},
  "data": {"check": {"c": {}}}
}`, []string{
		`2:40:provider "null" (source "registry.terraform.io/hashicorp/null") is not allowed`,
		`3:16:provider block uses provider "aws"`,
		`4:16:resource "null_resource" uses provider "null"`,
		`4:82:resource "sandbox_machine" uses provider "aws"`,
		`5:12:data "check" uses provider "check"`,
	}},
}

func TestCheckPolicyProviders(t *testing.T) {
	runPolicyCases(t, providerCases, sandboxPolicy)
}

func TestNormalizeProviderSource(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"hashicorp/aws", "hashicorp/aws"},
		{"registry.terraform.io/hashicorp/aws", "hashicorp/aws"},
		{" Registry.Terraform.IO/HashiCorp/AWS ", "hashicorp/aws"},
		{"aws", "hashicorp/aws"},
		{"kloud.local/kloud/sandbox", "kloud.local/kloud/sandbox"},
		{"registry.opentofu.org/hashicorp/aws", "registry.opentofu.org/hashicorp/aws"},
	} {
		if got := NormalizeProviderSource(tt.in); got != tt.want {
			t.Errorf("NormalizeProviderSource(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func runPolicyCases(t *testing.T, cases []policyCase, opts PolicyOptions) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			p, diags := ParseTemplate("main.tf", []byte(tt.content), tt.format)
			if diags.HasErrors() {
				t.Fatalf("parse: %s", diags.Error())
			}
			got := CheckPolicyWith(p, opts)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d diagnostics %v; want %d: %v", len(got), got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				parts := strings.SplitN(w, ":", 3)
				d := got[i]
				if pos := parts[0] + ":" + parts[1]; pos != strconv.Itoa(d.Line)+":"+strconv.Itoa(d.Column) || !strings.Contains(d.Message, parts[2]) {
					t.Errorf("diagnostic %d = %s; want %s", i, d, w)
				}
				if d.File != "main.tf" || d.Severity != SeverityError {
					t.Errorf("diagnostic %d = %s: wrong file or severity", i, d)
				}
			}
		})
	}
}

// FuzzValidateTemplate checks that validation never panics whatever the
// template, and that its work stays bounded: every diagnostic points inside
// the template, there are about no more than its bytes, and
// a template nesting deeper than MaxNesting never reaches a parser (the
// nesting diagnostic is the only one).
func FuzzValidateTemplate(f *testing.F) {
	for _, cases := range [][]policyCase{policyCases, attackCases, providerCases} {
		for _, c := range cases {
			f.Add([]byte(c.content), c.format == stack.FormatJSON)
		}
	}
	f.Add([]byte("x = "+deepParens(100)), false)
	f.Add([]byte(`{"x": "${`+deepParens(100)+`}"}`), true)
	f.Add([]byte("# ${templatefile(\"main.tf\", {})}\nx = templatefile(\"main.tf\", {})\n"), false)
	f.Fuzz(func(t *testing.T, content []byte, isJSON bool) {
		format := stack.FormatHCL
		if isJSON {
			format = stack.FormatJSON
		}
		_, diags, err := ValidateTemplateWith("main.tf", content, format, sandboxPolicy)
		if err == nil && diags.HasErrors() {
			t.Fatalf("errors %v without an error", diags)
		}
		if len(diags) > len(content)+8 {
			t.Fatalf("%d diagnostics for %d bytes", len(diags), len(content))
		}
		// Whatever follows, a template that opens too many levels first
		// is refused at the first level too many, before any parser.
		prefix, at := "x = "+strings.Repeat("(", MaxNesting+1), 5+MaxNesting
		if isJSON {
			prefix, at = strings.Repeat("[", MaxNesting+1), 1+MaxNesting
		}
		_, deep, err := ValidateTemplateWith("main.tf", append([]byte(prefix), content...), format, sandboxPolicy)
		if err == nil || len(deep) != 1 || deep[0].Line != 1 || deep[0].Column != at || !strings.Contains(deep[0].Message, "nesting deeper than") {
			t.Fatalf("deep prefix: %v %v", err, deep)
		}
		lines := strings.Count(string(content), "\n") + 1
		for _, d := range diags {
			if d.Line < 1 || d.Line > lines || d.Column < 1 {
				t.Errorf("diagnostic outside the template: %s", d)
			}
			if strings.Contains(d.Message, "nesting deeper than") && len(diags) != 1 {
				t.Errorf("a too deep template reached a parser: %v", diags)
			}
		}
	})
}
