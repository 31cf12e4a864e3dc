package terraform

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kloud/kloud/stack"
)

// deepParens is the attack of issue 14: about 260,000 nested parentheses,
// under the API's body limit, overflowed the HCL parser's stack.
func deepParens(n int) string { return strings.Repeat("(", n) + "1" + strings.Repeat(")", n) }

func deepBrackets(n int) string { return strings.Repeat("[", n) + "1" + strings.Repeat("]", n) }

func TestNestingRefused(t *testing.T) {
	tests := []struct {
		name    string
		format  stack.Format
		content string
		at      string // line:col
	}{
		{"hcl parentheses", stack.FormatHCL, "locals {\n  x = " + deepParens(260000) + "\n}\n", "2:70"},
		{"hcl parentheses at top", stack.FormatHCL, "# the attack\n\nx = " + deepParens(260000) + "\n", "3:69"},
		{"hcl brackets and braces", stack.FormatHCL, "locals {\n  x = " + strings.Repeat("[{a=", 40) + "1" + strings.Repeat("}]", 40) + "\n}\n", "2:132"},
		{"hcl unary operators", stack.FormatHCL, "locals {\n  x = " + strings.Repeat("!", 300000) + "true\n}\n", "2:70"},
		{"hcl negations", stack.FormatHCL, "locals {\n  x = " + strings.Repeat("-", 300000) + "1\n}\n", "2:70"},
		{"hcl conditionals", stack.FormatHCL, "locals {\n  x = (" + strings.Repeat("a ? b :\n", 100000) + "c)\n}\n", "64:3"},
		{"hcl splats", stack.FormatHCL, "locals {\n  x = y" + strings.Repeat("[*]", 200000) + "\n}\n", "2:195"},
		{"hcl attribute splats", stack.FormatHCL, "locals {\n  x = y" + strings.Repeat(".*", 200000) + "\n}\n", "2:135"},
		{"hcl interpolations", stack.FormatHCL, "locals {\n  x = " + strings.Repeat(`"${`, 100) + "1" + strings.Repeat(`}"`, 100) + "\n}\n", "2:197"},
		{"hcl template ifs", stack.FormatHCL, "locals {\n  x = <<EOT\n" + strings.Repeat("%{ if a }", 100) + strings.Repeat("%{ endif }", 100) + "\nEOT\n}\n", "3:559"},
		{"hcl in a heredoc", stack.FormatHCL, "locals {\n  x = <<-EOT\n    ${" + deepParens(1000) + "}\n  EOT\n}\n", "3:69"},
		{"json brackets", stack.FormatJSON, `{"locals": {"x": ` + deepBrackets(260000) + "}}", "1:80"},
		{"json string template", stack.FormatJSON, `{"locals": {"x": "${` + deepParens(100) + `}"}}`, "1:84"},
		{"json key template", stack.FormatJSON, "{\"locals\": {\n\"${" + deepParens(100) + `}": 1}}`, "2:67"},
		{"json string ended by a newline", stack.FormatJSON, "{\"a\": \"x\n" + deepBrackets(260000) + "}", "2:64"},
		// U+0600 is a prepend character: HCL's JSON scanner takes it and
		// the backslash after it as one character, so the quote after
		// them ends the string.
		{"json escape taken by a grapheme cluster", stack.FormatJSON, "{\"a\": \"\u0600\\\", \"b\": " + deepBrackets(260000) + "}", "1:81"},
		{"json string unary", stack.FormatJSON, `{"locals": {"x": "${` + strings.Repeat("!", 100000) + `true}"}}`, "1:84"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, hd := ParseTemplate("main.tf", []byte(tt.content), tt.format)
			if p != nil {
				t.Fatal("a too deep template parsed")
			}
			diags := DiagnosticsFromHCL(hd)
			if len(diags) != 1 {
				t.Fatalf("diagnostics = %v, want one", diags)
			}
			d := diags[0]
			want := fmt.Sprintf("nesting deeper than 64 levels at main.tf:%s", tt.at)
			if fmt.Sprintf("%d:%d", d.Line, d.Column) != tt.at || !strings.Contains(d.Message, want) || d.File != "main.tf" {
				t.Errorf("diagnostic %s; want one at %s saying %q", d, tt.at, want)
			}
			if _, _, err := ValidateTemplate("main.tf", []byte(tt.content), tt.format); err == nil {
				t.Error("ValidateTemplate accepted it")
			}
		})
	}
}

// TestNestingAllowed checks that what a template really holds is not
// mistaken for nesting: long flat lists, many conditionals or negations
// one per line or item, binary operators, 64 levels exactly.
func TestNestingAllowed(t *testing.T) {
	var manyAttrs, manyItems strings.Builder
	for i := range 200 {
		fmt.Fprintf(&manyAttrs, "  a%d = !var.x ? -1 : -2\n", i)
		fmt.Fprintf(&manyItems, "    k%d = var.x ? !var.y : -var.z\n", i)
	}
	tests := []struct {
		name    string
		format  stack.Format
		content string
	}{
		{"hcl 64 levels", stack.FormatHCL, "x = " + deepParens(64) + "\n"},
		{"hcl 63 levels in a block", stack.FormatHCL, "locals {\n  x = " + deepParens(63) + "\n}\n"},
		{"hcl many attributes", stack.FormatHCL, "locals {\n" + manyAttrs.String() + "}\n"},
		{"hcl many object items", stack.FormatHCL, "locals {\n  o = {\n" + manyItems.String() + "  }\n}\n"},
		{"hcl long list", stack.FormatHCL, "locals {\n  l = [" + strings.Repeat("!true, -1, a ? b : c, x[*].y, ", 1000) + "]\n}\n"},
		{"hcl binary operators", stack.FormatHCL, "locals {\n  x = 1" + strings.Repeat(" - 1", 1000) + "\n}\n"},
		{"hcl brackets in strings and comments", stack.FormatHCL, "# " + strings.Repeat("(", 200) + "\nlocals {\n  x = \"" + strings.Repeat("([{", 200) + "\"\n  y = <<EOT\n" + strings.Repeat("[", 200) + "\nEOT\n}\n"},
		{"json 64 levels", stack.FormatJSON, `{"locals": {"x": ` + deepBrackets(62) + "}}"},
		{"json brackets in strings", stack.FormatJSON, `{"locals": {"x": "` + strings.Repeat("[{(!", 200) + `"}}`},
		{"json shell script", stack.FormatJSON, `{"resource": {"a": {"b": {"user_data": "#!/bin/sh\n` + strings.Repeat(`[ ! -f /x ] && echo \"why? (${var.x})\" || apt-get -y -q install z\n`, 100) + `"}}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, hd := ParseTemplate("main.tf", []byte(tt.content), tt.format); hd.HasErrors() {
				t.Errorf("refused: %s", hd.Error())
			}
		})
	}
}

func TestCheckExpressionNesting(t *testing.T) {
	tests := []struct {
		src  string
		want string // "" for accepted
	}{
		{`["a", "b"]`, ""},
		{`{a = [1, 2], b = {c = "("}}`, ""},
		{deepBrackets(64), ""},
		{deepBrackets(260000), "nesting deeper than 64 levels at line 1, column 65"},
		{"[\n" + strings.Repeat("!", 1000) + "true]", "nesting deeper than 64 levels at line 2, column 64"},
	}
	for _, tt := range tests {
		err := CheckExpressionNesting(tt.src)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%.20q: %v", tt.src, err)
		case tt.want != "" && (err == nil || err.Error() != tt.want):
			t.Errorf("%.20q: err = %v, want %q", tt.src, err, tt.want)
		}
	}
}

// TestVariableValueNesting checks that a stack variable's value, which
// Kloud parses as HCL for complex types, is bounded too.
func TestVariableValueNesting(t *testing.T) {
	decl := VariableDecl{Name: "l", Type: "list(any)"}
	if err := CheckVariableValue(decl, `[["a"], ["b"]]`); err != nil {
		t.Errorf("valid value: %v", err)
	}
	err := CheckVariableValue(decl, deepBrackets(260000))
	if err == nil || !strings.Contains(err.Error(), "nesting deeper than 64 levels") {
		t.Errorf("deep value: err = %v", err)
	}
}
