package aws

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/kloud/kloud/stack/terraform"
)

// accessKeyInTextRe finds an access key id anywhere in a template's text.
var accessKeyInTextRe = regexp.MustCompile(`(?:^|[^A-Za-z0-9])((?:AKIA|ASIA)[A-Z0-9]{16})(?:[^A-Za-z0-9]|$)`)

// credentialAttrs are the provider "aws" arguments that hold keys: a
// template may not set them to a constant (Kloud sets them itself, from
// the credential, through sensitive variables).
var credentialAttrs = []string{"access_key", "secret_key", "token"}

// hostFileAttrs are the provider "aws" arguments that read credentials
// from Kloud's host; a template may not set them at all.
var hostFileAttrs = []string{"profile", "shared_credentials_files", "shared_config_files"}

// CheckTemplate looks for credentials written into a template: an access
// key id (AKIA.../ASIA...) anywhere in its text, a provider "aws" block
// that sets access_key, secret_key or token to a constant or to a variable
// whose default is a constant, and provider settings that would read
// credentials from Kloud's host (profile, shared_credentials_files,
// shared_config_files). Each finding is an error diagnostic at its line.
// ApplyTemplate refuses a template with any; Kloud may also call it when a
// template is created.
func CheckTemplate(p *terraform.Parsed) terraform.Diagnostics {
	if p == nil || p.File == nil {
		return nil
	}
	var diags terraform.Diagnostics
	lines := map[int]bool{}
	add := func(r hcl.Range, msg string) {
		lines[r.Start.Line] = true
		diags = append(diags, terraform.Diagnostic{File: r.Filename, Line: r.Start.Line, Column: r.Start.Column, Severity: terraform.SeverityError, Message: msg})
	}
	content, _, _ := p.File.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
		{Type: "provider", LabelNames: []string{"name"}},
		{Type: "variable", LabelNames: []string{"name"}},
	}})
	defaults := map[string]*hcl.Attribute{}
	for _, b := range content.Blocks {
		if b.Type != "variable" {
			continue
		}
		vc, _, _ := b.Body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "default"}}})
		if a, ok := vc.Attributes["default"]; ok {
			defaults[b.Labels[0]] = a
		}
	}
	schema := &hcl.BodySchema{}
	for _, name := range slices.Concat(credentialAttrs, hostFileAttrs) {
		schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: name})
	}
	for _, b := range content.Blocks {
		if b.Type != "provider" || b.Labels[0] != Name {
			continue
		}
		pc, _, _ := b.Body.PartialContent(schema)
		for _, name := range hostFileAttrs {
			if a, ok := pc.Attributes[name]; ok {
				add(a.NameRange, fmt.Sprintf(`provider "aws" sets %s: Kloud configures the provider with the credential's keys; profiles and credential files on Kloud's host are not the template's to use`, name))
			}
		}
		for _, name := range credentialAttrs {
			a, ok := pc.Attributes[name]
			if !ok {
				continue
			}
			if constant(a.Expr) {
				add(a.NameRange, fmt.Sprintf(`provider "aws" sets %s to a literal value: keys must not be written in a template; Kloud sets %s from the credential`, name, name))
				continue
			}
			for _, tr := range a.Expr.Variables() {
				if tr.RootName() != "var" || len(tr) < 2 {
					continue
				}
				attr, ok := tr[1].(hcl.TraverseAttr)
				if !ok {
					continue
				}
				if d, ok := defaults[attr.Name]; ok && constant(d.Expr) {
					add(d.NameRange, fmt.Sprintf(`variable %q has a literal default and sets provider "aws" %s: keys must not be written in a template; Kloud sets %s from the credential`, attr.Name, name, name))
				}
			}
		}
	}
	for i, line := range strings.Split(string(p.Content), "\n") {
		if lines[i+1] {
			continue
		}
		if m := accessKeyInTextRe.FindStringSubmatchIndex(line); m != nil {
			add(hcl.Range{Filename: p.Name, Start: hcl.Pos{Line: i + 1, Column: m[2] + 1}},
				"the template contains an AWS access key id ("+line[m[2]:m[2]+4]+"…): keys must not be written in a template; Kloud passes the credential's keys to Terraform itself")
		}
	}
	slices.SortStableFunc(diags, func(a, b terraform.Diagnostic) int { return a.Line - b.Line })
	return diags
}

// constant reports whether expr is a non-null value that references no
// variable (a literal, or functions of literals).
func constant(expr hcl.Expression) bool {
	if len(expr.Variables()) > 0 {
		return false
	}
	v, diags := expr.Value(nil)
	return diags.HasErrors() || !v.IsNull()
}
