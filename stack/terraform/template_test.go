package terraform

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/kloud/kloud/stack"
)

const webDBHCL = `variable "web_count" {
  type    = number
  default = 1
}

variable "secret_word" {
  sensitive = true
}

resource "sandbox_machine" "web" {
  count = var.web_count
  size  = "small"
  tags  = { Name = "web-${count.index}" }
}

resource "sandbox_machine" "db" {
  size      = "medium"
  always_on = true
}

resource "sandbox_machine" "worker" {
  for_each = toset(["a", "b"])
}

resource "other_thing" "x" {}
`

const webDBJSON = `{
  "variable": {
    "web_count": {"type": "number", "default": 1}
  },
  "resource": {
    "sandbox_machine": {
      "web": {
        "count": "${var.web_count}",
        "size": "small",
        "tags": {"Name": "web-${count.index}", "quote\"d": "a\\b\nc"}
      },
      "db": [{"size": "medium", "always_on": true}]
    }
  }
}
`

func TestParseTemplateMachineResources(t *testing.T) {
	type want struct {
		name  string
		rep   Repetition
		line  int
		attrs []string
	}
	tests := []struct {
		name    string
		format  stack.Format
		content string
		want    []want
		vars    []string
	}{
		{
			name: "hcl", format: stack.FormatHCL, content: webDBHCL,
			want: []want{
				{"web", Count, 10, []string{"count", "size", "tags"}},
				{"db", Single, 16, []string{"size", "always_on"}},
				{"worker", ForEach, 21, []string{"for_each"}},
			},
			vars: []string{"secret_word", "web_count"},
		},
		{
			name: "json", format: stack.FormatJSON, content: webDBJSON,
			want: []want{
				{"web", Count, 7, []string{"count", "size", "tags"}},
				{"db", Single, 12, []string{"size", "always_on"}},
			},
			vars: []string{"web_count"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, diags := ParseTemplate("main.tf", []byte(tt.content), tt.format)
			if diags.HasErrors() {
				t.Fatalf("parse: %s", diags.Error())
			}
			got := MachineResources(p, "sandbox_machine")
			if len(got) != len(tt.want) {
				t.Fatalf("got %d machine resources, want %d", len(got), len(tt.want))
			}
			for i, w := range tt.want {
				r := got[i]
				if r.Name != w.name || r.Repetition != w.rep || r.Range.Start.Line != w.line {
					t.Errorf("resource %d = %s %v line %d; want %s %v line %d", i, r.Name, r.Repetition, r.Range.Start.Line, w.name, w.rep, w.line)
				}
				if len(r.Attributes) != len(w.attrs) {
					t.Errorf("%s: attributes %v, want %v", r.Name, r.Attributes, w.attrs)
				}
				for _, a := range w.attrs {
					if !r.Has(a) {
						t.Errorf("%s: attribute %q not found", r.Name, a)
					}
				}
			}
			if got := strings.Join(p.VariableNames(), ","); got != strings.Join(tt.vars, ",") {
				t.Errorf("variables = %s, want %s", got, strings.Join(tt.vars, ","))
			}
			if len(MachineResources(p, "nothing")) != 0 {
				t.Error("resources of an absent type found")
			}
		})
	}
}

func TestParseTemplateVariables(t *testing.T) {
	p, diags := ParseTemplate("main.tf", []byte(webDBHCL), stack.FormatHCL)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	wc, ok := p.Variable("web_count")
	if !ok || wc.Type != "number" || !wc.HasDefault || wc.Sensitive {
		t.Errorf("web_count = %+v", wc)
	}
	sw, ok := p.Variable("secret_word")
	if !ok || sw.Type != "" || sw.HasDefault || !sw.Sensitive {
		t.Errorf("secret_word = %+v", sw)
	}
	if _, ok := p.Variable("nope"); ok {
		t.Error("undeclared variable found")
	}
}

// TestAttributeSource checks that an attribute's Source is an HCL
// expression with the value the user wrote, in both syntaxes.
func TestAttributeSource(t *testing.T) {
	tests := []struct {
		name    string
		format  stack.Format
		content string
	}{
		{"hcl", stack.FormatHCL, webDBHCL},
		{"json", stack.FormatJSON, webDBJSON},
	}
	wantTags := map[stack.Format]map[string]string{
		stack.FormatHCL:  {"Name": "web-3"},
		stack.FormatJSON: {"Name": "web-3", "quote\"d": "a\\b\nc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, diags := ParseTemplate("main.tf", []byte(tt.content), tt.format)
			if diags.HasErrors() {
				t.Fatal(diags.Error())
			}
			web := MachineResources(p, "sandbox_machine")[0]
			got := evalString(t, web.Attributes["tags"].Source, map[string]any{"count": map[string]any{"index": 3}})
			var m map[string]string
			if err := json.Unmarshal([]byte(got), &m); err != nil {
				t.Fatalf("tags %s: %v", got, err)
			}
			if len(m) != len(wantTags[tt.format]) {
				t.Fatalf("tags = %v, want %v", m, wantTags[tt.format])
			}
			for k, v := range wantTags[tt.format] {
				if m[k] != v {
					t.Errorf("tags[%q] = %q, want %q", k, m[k], v)
				}
			}
		})
	}
}

func TestParseTemplateDiagnostics(t *testing.T) {
	tests := []struct {
		name       string
		format     stack.Format
		content    string
		line, col  int
		msgContain string
	}{
		{"hcl syntax", stack.FormatHCL, "resource \"a\" \"b\" {\n  x = \n}\n", 2, 7, "Invalid expression"},
		{"hcl unclosed", stack.FormatHCL, "variable \"x\" {\n", 1, 14, "Unclosed"},
		{"json syntax", stack.FormatJSON, "{\n  \"resource\": {\n    \"a\": 1,\n  }\n}", 3, 11, "Trailing comma"},
		{"bad name", stack.FormatHCL, "resource \"sandbox_machine\" \"we b\" {}\n", 1, 28, "not a valid name"},
		{"count and for_each", stack.FormatHCL, "resource \"a\" \"b\" {\n  count = 1\n  for_each = {}\n}\n", 3, 3, "count and for_each"},
		{"unknown format", "yaml", "x", 1, 1, "allowed: hcl, json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, hd := ParseTemplate("main.tf", []byte(tt.content), tt.format)
			diags := DiagnosticsFromHCL(hd)
			if !diags.HasErrors() {
				t.Fatal("no error")
			}
			d := diags.Errors()[0]
			if d.File != "main.tf" || d.Line != tt.line || d.Column != tt.col || !strings.Contains(d.Message, tt.msgContain) {
				t.Errorf("diagnostic %s; want main.tf:%d:%d containing %q", d, tt.line, tt.col, tt.msgContain)
			}
		})
	}
}

func TestValidateTemplate(t *testing.T) {
	_, _, err := ValidateTemplate("main.tf", []byte("resource \"a\" \"b\" {\n  provisioner \"local-exec\" {}\n}\n"), stack.FormatHCL)
	var te *TemplateError
	if !errors.As(err, &te) || !errors.Is(err, ErrInvalidTemplate) {
		t.Fatalf("err = %v, want a *TemplateError", err)
	}
	if len(te.Diagnostics) != 1 || te.Diagnostics[0].Line != 2 {
		t.Errorf("diagnostics = %v", te.Diagnostics)
	}
	if !strings.Contains(err.Error(), "main.tf:2:3") {
		t.Errorf("error %q does not name main.tf:2:3", err)
	}
	b, _ := json.Marshal(te.Diagnostics[0])
	for _, key := range []string{`"file":"main.tf"`, `"line":2`, `"column":3`, `"severity":"error"`, `"message":`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}
	p, diags, err := ValidateTemplate("main.tf", []byte(webDBHCL), stack.FormatHCL)
	if err != nil || p == nil || len(diags) != 0 {
		t.Fatalf("valid template: %v %v", err, diags)
	}
}

func TestJSONParserPositions(t *testing.T) {
	src := []byte("{\"a\\\"b\": [1, -2.5e3, true, false, null, \"x\\u00e9\\ud83d\\ude00y\"]}")
	v, err := parseJSONValue(src)
	if err != nil {
		t.Fatal(err)
	}
	key := v.props[0].key
	if key.str != `a"b` || string(src[key.start:key.end]) != `"a\"b"` {
		t.Errorf("key %q at %q", key.str, src[key.start:key.end])
	}
	s := v.props[0].val.elems[5]
	if s.str != "xé😀y" {
		t.Errorf("string = %q", s.str)
	}
	// 'y' comes after the surrogate pair; its offset points at it.
	if got := src[s.strOff[len(s.str)-1]]; got != 'y' {
		t.Errorf("offset of y points at %q", got)
	}
	for _, bad := range []string{"", "{", `{"a"}`, `[1,]`, `"\x"`, `tru`, `{"a":1}x`, `01x`, strings.Repeat("[", 600) + strings.Repeat("]", 600)} {
		if _, err := parseJSONValue([]byte(bad)); err == nil {
			t.Errorf("parseJSONValue(%.20q) accepted", bad)
		}
	}
}

func TestHCLString(t *testing.T) {
	for _, s := range []string{"plain", "with ${var.x} and %{if}", "quote\" back\\ nl\n tab\t ctl\x01", "é😀"} {
		got := evalString(t, HCLString(s), nil)
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil || back != s {
			t.Errorf("HCLString(%q) evaluates to %s", s, got)
		}
	}
}

func FuzzParseTemplate(f *testing.F) {
	f.Add([]byte(webDBHCL), false)
	f.Add([]byte(webDBJSON), true)
	f.Add([]byte(`resource "a" "b" { provisioner "local-exec" {} }`), false)
	f.Add([]byte(`{"resource":{"a":{"b":{"x":"${file(\"/etc/passwd\")}"}}}}`), true)
	f.Add([]byte(`{"data":[{"external":{"x":{}}}],"terraform":{"backend":{"s3":{}}}}`), true)
	f.Add([]byte("x = file(\"${path.module}/../a\")\nterraform {\n cloud {}\n}\n"), false)
	f.Fuzz(func(t *testing.T, content []byte, isJSON bool) {
		format := stack.FormatHCL
		if isJSON {
			format = stack.FormatJSON
		}
		p, diags := ParseTemplate("main.tf", content, format)
		_ = DiagnosticsFromHCL(diags)
		if p == nil {
			return
		}
		for _, d := range CheckPolicy(p) {
			if d.Line < 1 || d.Column < 1 {
				t.Errorf("diagnostic without a position: %s", d)
			}
		}
		for _, r := range p.Resources {
			for _, a := range r.Attributes {
				_ = a.Source
			}
		}
		secret := stack.Secret("s3cret-value")
		c, err := Compose(p, ComposeOptions{
			ResourceType:        "sandbox_machine",
			Provider:            ProviderBlock{Name: "sandbox", Source: "kloud.local/kloud/sandbox", Config: map[string]Value{"data_dir": Literal("/d")}},
			Variables:           []Variable{{Name: AgentSecretVar, Value: secret}},
			AgentTokenAttribute: "agent_token",
			Tags:                map[string]string{"kloud_stack_id": "s1"},
			TagsAttribute:       "tags",
		})
		if err != nil {
			return
		}
		for name, b := range c.Files {
			if strings.Contains(string(b), secret.Reveal()) {
				t.Errorf("%s holds the secret", name)
			}
		}
	})
}

// evalString evaluates HCL expression src with the given variables and
// returns its value as JSON.
func evalString(t *testing.T, src string, vars map[string]any) string {
	t.Helper()
	expr, diags := hclsyntax.ParseExpression([]byte(src), "test", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parse %s: %s", src, diags.Error())
	}
	v, diags := expr.Value(evalContext(t, vars))
	if diags.HasErrors() {
		t.Fatalf("eval %s: %s", src, diags.Error())
	}
	return ctyJSON(t, v)
}
