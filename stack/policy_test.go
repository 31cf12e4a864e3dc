package stack

import (
	"strconv"
	"strings"
	"testing"
)

// policyCase is a template and the diagnostics the policy must give it:
// each as "line:col:substring of the message".
type policyCase struct {
	name    string
	format  Format
	content string
	want    []string
}

var policyCases = []policyCase{
	// HCL native syntax.
	{"hcl local-exec", FormatHCL, `resource "sandbox_machine" "web" {
  size = "small"
  provisioner "local-exec" {
    command = "id"
  }
}
`, []string{`3:3:provisioner "local-exec" is not allowed`}},
	{"hcl remote-exec", FormatHCL, `resource "sandbox_machine" "web" {
  provisioner "remote-exec" {
    inline = ["id"]
  }
}
`, []string{`2:3:provisioner "remote-exec" is not allowed`}},
	{"hcl provisioner in data", FormatHCL, `data "x" "y" {
  provisioner "local-exec" {}
}`, []string{`2:3:provisioner "local-exec"`}},
	{"hcl file provisioner outside", FormatHCL, `resource "a" "b" {
  provisioner "file" {
    source      = "/etc/passwd"
    destination = "/tmp/p"
  }
}`, []string{`3:19:provisioner "file" source "/etc/passwd" is absolute`}},
	{"hcl external data", FormatHCL, `locals { a = 1 }

data "external" "x" {
  program = ["id"]
}
`, []string{`3:1:data "external" is not allowed`}},
	{"hcl backend", FormatHCL, `terraform {
  required_version = ">= 1.5"
  backend "s3" {
    bucket = "b"
  }
}
`, []string{`3:3:terraform { backend } is not allowed`}},
	{"hcl cloud", FormatHCL, `terraform {
  cloud {
    organization = "o"
  }
}
`, []string{`2:3:terraform { cloud } is not allowed`}},
	{"hcl module", FormatHCL, `module "m" {
  source = "./m"
}
`, []string{`1:1:module blocks are not allowed`}},
	{"hcl file absolute", FormatHCL, `resource "a" "b" {
  user_data = file("/etc/passwd")
}
`, []string{`2:15:file() path "/etc/passwd" is absolute`}},
	{"hcl file dotdot", FormatHCL, `resource "a" "b" {
  user_data = "x${filebase64("${path.module}/../secret")}y"
}
`, []string{`2:19:filebase64() path "../secret" contains ".."`}},
	{"hcl file home", FormatHCL, `locals {
  k = filesha256("~/.ssh/id_rsa")
}
`, []string{`2:7:filesha256() path "~/.ssh/id_rsa" is in a home directory`}},
	{"hcl templatefile expression", FormatHCL, `locals {
  p = "x"
  t = templatefile(local.p, {})
}
`, []string{`3:7:templatefile() path must be a literal path`}},
	{"hcl fileset pattern", FormatHCL, `locals {
  s = fileset(path.module, "../**")
}
`, []string{`2:7:fileset() pattern "../**" contains ".."`}},
	{"hcl core namespace", FormatHCL, `locals {
  s = core::file("/etc/hosts")
}
`, []string{`2:7:file() path "/etc/hosts" is absolute`}},
	{"hcl expanded args", FormatHCL, `locals {
  s = file(["a"]...)
}
`, []string{`2:7:file() with expanded arguments`}},
	{"hcl path.cwd", FormatHCL, `locals {
  s = file("${path.cwd}/x")
}
`, []string{`2:7:file() path must be a literal path`}},
	{"hcl heredoc nested", FormatHCL, `resource "a" "b" {
  user_data = <<-EOT
    #!/bin/sh
    echo ${base64encode(file("/etc/shadow"))}
  EOT
}
`, []string{`4:25:file() path "/etc/shadow" is absolute`}},
	{"hcl several", FormatHCL, `terraform {
  backend "local" {}
}
resource "a" "b" {
  provisioner "local-exec" {
    command = file("../x")
  }
}
`, []string{`2:3:backend`, `5:3:local-exec`, `6:15:file() path "../x"`}},
	{"hcl allowed", FormatHCL, `resource "a" "b" {
  user_data = file("${path.module}/init.sh")
  other     = templatefile("tpl/a.tftpl", { x = 1 })
  set       = fileset(path.module, "*.sh")
  provisioner "file" {
    source      = "conf/app.conf"
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
	{"json local-exec", FormatJSON, `{
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
	{"json remote-exec object", FormatJSON, `{"resource": {"a": {"b": {
  "provisioner": {"remote-exec": {"inline": ["id"]}}
}}}}`, []string{`2:19:provisioner "remote-exec" is not allowed`}},
	{"json external", FormatJSON, `{
  "data": [
    {"external": {"x": {"program": ["id"]}}}
  ]
}`, []string{`3:6:data "external" is not allowed`}},
	{"json backend and cloud", FormatJSON, `{
  "terraform": {
    "backend": {"s3": {}}
  },
  "terraform ": {},
  "module": {"m": {"source": "./m"}}
}`, []string{`3:5:terraform { backend }`, `6:3:module blocks`}},
	{"json cloud in array", FormatJSON, `{"terraform": [{}, {
 "cloud": {}}]}`, []string{`2:2:terraform { cloud }`}},
	{"json file absolute", FormatJSON, `{
  "resource": {"a": {"b": {
    "user_data": "${file(\"/etc/passwd\")}"
  }}}
}`, []string{`3:21:file() path "/etc/passwd" is absolute`}},
	{"json file after escapes", FormatJSON, `{
  "locals": {
    "x": "a\"b\\c\u00e9${templatefile(\"../t\", {})}"
  }
}`, []string{`3:26:templatefile() path "../t" contains ".."`}},
	{"json function in key", FormatJSON, `{"locals": {"m": {"${file(\"/k\")}": 1}}}`, []string{`1:22:file() path "/k" is absolute`}},
	{"json file provisioner", FormatJSON, `{"resource": {"a": {"b": {"provisioner": {"file": {"source": "/etc/x", "destination": "/y"}}}}}}`,
		[]string{`1:62:provisioner "file" source "/etc/x" is absolute`}},
	{"json comment skipped", FormatJSON, `{"//": "${file(\"/etc/passwd\")}", "locals": {}}`, nil},
	{"json allowed", FormatJSON, `{
  "resource": {"a": {"b": {
    "user_data": "${file(\"${path.module}/init.sh\")}",
    "plain": "cost is $5 and ${var.x}",
    "provisioner": {"file": {"source": "a/b"}}
  }}},
  "data": {"http": {"x": {}}}
}`, nil},
}

func TestCheckPolicy(t *testing.T) {
	for _, tt := range policyCases {
		t.Run(tt.name, func(t *testing.T) {
			p, diags := ParseTemplate("main.tf", []byte(tt.content), tt.format)
			if diags.HasErrors() {
				t.Fatalf("parse: %s", diags.Error())
			}
			got := CheckPolicy(p)
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
