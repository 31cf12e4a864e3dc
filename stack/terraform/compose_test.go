package terraform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hcljson "github.com/hashicorp/hcl/v2/json"

	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/stack"
)

// The -update flag rewrites golden files. It is looked up rather than
// declared with flag.Bool so that another test file of the package may
// declare the same flag.
var _ = func() bool {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files in testdata")
	}
	return true
}()

func updatingGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// goldenCompose renders composed files (and the names of the secret
// variables, never their values) as one text to compare with a golden file.
func goldenCompose(c *Composed) []byte {
	var buf bytes.Buffer
	for _, name := range c.FileNames() {
		fmt.Fprintf(&buf, "=== %s ===\n%s", name, c.Files[name])
	}
	fmt.Fprintf(&buf, "=== env ===\n")
	for _, k := range sortedKeys(c.Env) {
		fmt.Fprintf(&buf, "TF_VAR_%s (secret, %d bytes)\n", k, len(c.Env[k].Reveal()))
	}
	return buf.Bytes()
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if updatingGolden() {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("composed files differ from %s (run with -update if intended):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

const testSecret = stack.Secret("agent-secret-d41d8cd98f00b204e9800998ecf8427e")

// sandboxOptions is composition as the sandbox provider does it, with a
// secret provider attribute to show that secrets stay out of files.
func sandboxOptions(userVars map[string]string) ComposeOptions {
	return ComposeOptions{
		ResourceType: "sandbox_machine",
		Provider: ProviderBlock{
			Name: "sandbox", Source: "kloud.local/kloud/sandbox", Version: ">= 0.1.0",
			Config: map[string]Value{
				"data_dir": Literal("/var/lib/kloud/sandbox"),
				"api_key":  Var("kloud_api_key"),
			},
		},
		Variables: []Variable{
			{Name: AgentSecretVar, Value: testSecret},
			{Name: "kloud_api_key", Description: "API key", Value: stack.Secret("api-key-value-123")},
			{Name: "kloud_url", Value: "http://127.0.0.1:8080"},
			{Name: "kloud_network", Value: "net-${weird}"},
		},
		UserVariables:       userVars,
		Inject:              map[string]Value{"kloud_url": Var("kloud_url")},
		Defaults:            map[string]Value{"size": Literal("small"), "labels": Literal(map[string]any{"a": "${not-a-template}"})},
		AgentTokenAttribute: "agent_token",
		NameAttribute:       "name",
		Tags:                map[string]string{"kloud_stack_id": "st-1", "kloud_owner": "u-1"},
		TagsAttribute:       "tags",
	}
}

func TestComposeGolden(t *testing.T) {
	tests := []struct {
		name    string
		format  stack.Format
		content string
		opts    ComposeOptions
	}{
		{"compose_hcl", stack.FormatHCL, webDBHCL, sandboxOptions(map[string]string{"web_count": "3", "secret_word": "not-in-env"})},
		{"compose_json", stack.FormatJSON, webDBJSON, sandboxOptions(map[string]string{"web_count": "2"})},
		{"compose_user_provider", stack.FormatHCL, `terraform {
  required_providers {
    sandbox = { source = "kloud.local/kloud/sandbox" }
  }
}

provider "sandbox" {
  data_dir = "/tmp/mine"
}

provider "sandbox" {
  alias    = "other"
  data_dir = "/"
}

variable "kloud_url" {}

variable "kloud_agent_secret" {
  sensitive = true
}

variable "list" {
  type = list(string)
}

resource "sandbox_machine" "web" {
  provider = sandbox.other
  tags     = merge(var.extra, { Name = "x" })
}
`, sandboxOptions(map[string]string{"list": `["a", "b"]`})},
		{"compose_cloudinit", stack.FormatHCL, `resource "cloud_instance" "web" {
  for_each  = { a = 1, b = 2 }
  user_data = file("${path.module}/main.tf")
  tags      = ["team:web"]
}

resource "cloud_instance" "db" {}
`, ComposeOptions{
			ResourceType: "cloud_instance",
			Provider:     ProviderBlock{Name: "cloud", Source: "example/cloud"},
			Variables:    []Variable{{Name: AgentSecretVar, Value: testSecret}, {Name: "kloud_url", Value: "http://k"}},
			UserData: &UserData{
				Attribute: "user_data",
				Script:    "#!/bin/sh\nexport KLIENT_TOKEN=${kloud_agent_token}\nexport KLIENT_KLOUD_URL=${var.kloud_url}\necho $${HOME}\n",
				CloudInit: true,
			},
			Tags:          map[string]string{"kloud_stack_id": "st-1"},
			TagsAttribute: "tags",
			TagsStyle:     TagsList,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _, err := ValidateTemplate(map[stack.Format]string{stack.FormatHCL: "main.tf", stack.FormatJSON: "main.tf.json"}[tt.format], []byte(tt.content), tt.format)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Compose(p, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tt.name, goldenCompose(c))
			checkNoSecretInFiles(t, c)
			for name, b := range c.Files {
				if _, diags := hcljson.Parse(b, name); diags.HasErrors() {
					t.Errorf("%s does not parse: %s", name, diags.Error())
				}
			}
		})
	}
}

func checkNoSecretInFiles(t *testing.T, c *Composed) {
	t.Helper()
	for name, b := range c.Files {
		for k, v := range c.Env {
			if strings.Contains(string(b), v.Reveal()) {
				t.Errorf("%s holds the value of secret %s", name, k)
			}
		}
	}
}

func TestComposeSecretsOnlyInEnv(t *testing.T) {
	p, _, err := ValidateTemplate("main.tf", []byte(webDBHCL), stack.FormatHCL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compose(p, sandboxOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Env[AgentSecretVar] != testSecret || c.Env["kloud_api_key"].Reveal() != "api-key-value-123" {
		t.Errorf("env = %v", sortedKeys(c.Env))
	}
	if _, ok := c.Env["kloud_url"]; ok {
		t.Error("a non-secret variable is in the environment")
	}
	var decls struct {
		Variable map[string]struct {
			Sensitive bool `json:"sensitive"`
		} `json:"variable"`
	}
	if err := json.Unmarshal(c.Files[FileVariables], &decls); err != nil {
		t.Fatal(err)
	}
	if !decls.Variable[AgentSecretVar].Sensitive || !decls.Variable["kloud_api_key"].Sensitive || decls.Variable["kloud_url"].Sensitive {
		t.Errorf("sensitive flags wrong: %+v", decls.Variable)
	}
	checkNoSecretInFiles(t, c)
}

func TestComposeVariableErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		vars    map[string]string
		extra   []Variable
		want    error
		msg     string
	}{
		{"undeclared", webDBHCL, map[string]string{"nope": "1"}, nil, ErrUndeclaredVariable, `"nope"; the template declares: secret_word, web_count`},
		{"reserved", webDBHCL, map[string]string{"kloud_url": "x"}, nil, ErrReservedVariable, "set by Kloud"},
		{"secret declared not sensitive", "variable \"kloud_agent_secret\" {}\n", nil, nil, ErrReservedVariable, "without sensitive = true; Kloud passes a secret in it (main.tf:1)"},
		{"bad list", "variable \"l\" {\n  type = list(string)\n}\n", map[string]string{"l": "[a"}, nil, ErrInvalidVariable, `variable "l"`},
		{"list with reference", "variable \"l\" {\n  type = list(string)\n}\n", map[string]string{"l": "[var.x]"}, nil, ErrInvalidVariable, "Variables not allowed"},
		{"injected twice", webDBHCL, nil, []Variable{{Name: "kloud_url", Value: "y"}}, ErrCompose, "injected twice"},
		{"bad name", webDBHCL, nil, []Variable{{Name: "a b", Value: "y"}}, ErrCompose, "not an identifier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _, err := ValidateTemplate("main.tf", []byte(tt.content), stack.FormatHCL)
			if err != nil {
				t.Fatal(err)
			}
			opts := sandboxOptions(tt.vars)
			opts.Variables = append(opts.Variables, tt.extra...)
			_, err = Compose(p, opts)
			if !errors.Is(err, tt.want) || !strings.Contains(fmt.Sprint(err), tt.msg) {
				t.Errorf("err = %v; want %v containing %q", err, tt.want, tt.msg)
			}
		})
	}
}

func TestComposeUserVariableTypes(t *testing.T) {
	content := `variable "s" {}
variable "n" { type = number }
variable "m" { type = map(number) }
variable "o" { type = object({ a = string }) }
variable "t" { type = string }
`
	p, _, err := ValidateTemplate("main.tf", []byte(content), stack.FormatHCL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compose(p, ComposeOptions{UserVariables: map[string]string{
		"s": "${not a template}", "n": "42", "m": `{ x = 1, y = 2 }`, "o": `{ a = "b" }`, "t": `{ a = "b" }`,
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"m":{"x":1,"y":2},"n":"42","o":{"a":"b"},"s":"${not a template}","t":"{ a = \"b\" }"}`
	var got bytes.Buffer
	if err := json.Compact(&got, c.Files[FileVarValues]); err != nil {
		t.Fatal(err)
	}
	if got.String() != want {
		t.Errorf("tfvars = %s\nwant     %s", got.String(), want)
	}
	if _, ok := c.Files[FileProviders]; ok {
		t.Error("provider file written without a provider")
	}
	if _, ok := c.Files[FileOverride]; ok {
		t.Error("override written without machines")
	}
}

func TestComposeBadOptions(t *testing.T) {
	p, _, err := ValidateTemplate("main.tf", []byte(webDBHCL), stack.FormatHCL)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		mod  func(*ComposeOptions)
	}{
		{"bad expression", func(o *ComposeOptions) { o.Inject["x"] = Expr("var.") }},
		{"bad provider name", func(o *ComposeOptions) { o.Provider.Name = "a b" }},
		{"bad user data", func(o *ComposeOptions) { o.UserData = &UserData{Attribute: "user_data", Script: "${"} }},
		{"unencodable literal", func(o *ComposeOptions) { o.Defaults["x"] = Literal(func() {}) }},
		{"empty value", func(o *ComposeOptions) { o.Inject["x"] = Value{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := sandboxOptions(nil)
			tt.mod(&opts)
			if _, err := Compose(p, opts); !errors.Is(err, ErrCompose) {
				t.Errorf("err = %v, want ErrCompose", err)
			}
		})
	}
	if _, err := Compose(nil, ComposeOptions{}); !errors.Is(err, ErrCompose) {
		t.Errorf("nil template: err = %v", err)
	}
}

// TestComposeTerraformApply runs a composed template through a real
// Terraform (builtin terraform_data only, so no plugin and no network) and
// checks, in the resulting state, that the override merged the tags with
// the user's, that the user's own attribute values were kept, and that
// every instance's injected agent token equals AgentToken of its address.
func TestComposeTerraformApply(t *testing.T) {
	if testing.Short() {
		t.Skip("runs terraform")
	}
	tf := testenv.Terraform(t)
	content := `variable "n" {
  type    = number
  default = 1
}

resource "terraform_data" "web" {
  count = var.n
  input = { Name = "web-${count.index}" }
}

resource "terraform_data" "db" {
  for_each = toset(["a", "b<c>", "q\"uote"])
}

resource "terraform_data" "one" {}

variable "s" {
  type = string
}

output "s" {
  value = var.s
}
`
	p, _, err := ValidateTemplate("main.tf", []byte(content), stack.FormatHCL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compose(p, ComposeOptions{
		ResourceType:        "terraform_data",
		Variables:           []Variable{{Name: AgentSecretVar, Value: testSecret}},
		UserVariables:       map[string]string{"n": "2", "s": "${literal} %{ also }"},
		AgentTokenAttribute: "triggers_replace",
		Tags:                map[string]string{"kloud_stack_id": "st-9"},
		TagsAttribute:       "input",
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, b := range c.Files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cliConfig := filepath.Join(t.TempDir(), "terraformrc")
	if err := os.WriteFile(cliConfig, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	env := testenv.TerraformEnv(cliConfig)
	for k, v := range c.Env {
		env = append(env, "TF_VAR_"+k+"="+v.Reveal())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, args := range [][]string{{"init", "-input=false", "-no-color"}, {"apply", "-input=false", "-auto-approve", "-no-color"}} {
		cmd := exec.CommandContext(ctx, tf, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("terraform %s: %v\n%s", args[0], err, out)
		}
		t.Logf("terraform %s:\n%s", args[0], out)
		if strings.Contains(string(out), testSecret.Reveal()) {
			t.Errorf("terraform %s printed the secret", args[0])
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "terraform.tfstate"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(testSecret.Reveal())) {
		t.Error("the state holds the agent secret")
	}
	var state struct {
		Outputs map[string]struct {
			Value string `json:"value"`
		} `json:"outputs"`
		Resources []struct {
			Type, Name string
			Instances  []struct {
				IndexKey   any `json:"index_key"`
				Attributes struct {
					Input struct {
						Value any `json:"value"`
					} `json:"input"`
					TriggersReplace struct {
						Value string `json:"value"`
					} `json:"triggers_replace"`
				} `json:"attributes"`
			} `json:"instances"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(raw, &state); err != nil {
		t.Fatal(err)
	}
	if got := state.Outputs["s"].Value; got != "${literal} %{ also }" {
		t.Errorf("string variable reached Terraform as %q", got)
	}
	seen := map[string]bool{}
	tokens := map[string]string{}
	for _, r := range state.Resources {
		for _, inst := range r.Instances {
			addr := InstanceAddress(r.Type, r.Name, inst.IndexKey)
			seen[addr] = true
			tokens[addr] = inst.Attributes.TriggersReplace.Value
			if want := AgentToken(testSecret, addr).Reveal(); inst.Attributes.TriggersReplace.Value != want {
				t.Errorf("%s: token %q, want AgentToken %q", addr, inst.Attributes.TriggersReplace.Value, want)
			}
			input, _ := json.Marshal(inst.Attributes.Input.Value)
			var want string
			switch r.Name {
			case "web":
				want = fmt.Sprintf(`{"Name":"web-%v","kloud_stack_id":"st-9"}`, inst.IndexKey)
			case "db", "one":
				want = `{"kloud_stack_id":"st-9"}`
			}
			if string(input) != want {
				t.Errorf("%s: input %s, want %s", addr, input, want)
			}
		}
	}
	for _, addr := range []string{`terraform_data.web[0]`, `terraform_data.web[1]`, `terraform_data.db["a"]`, `terraform_data.db["b\u003cc\u003e"]`, `terraform_data.db["q\"uote"]`, `terraform_data.one`} {
		if !seen[addr] {
			t.Errorf("instance %s not in the state (have %v)", addr, sortedKeys(seen))
		}
	}
	// Terraform's own spelling of an address gives the same token.
	if tokens[`terraform_data.db["b\u003cc\u003e"]`] != AgentToken(testSecret, `terraform_data.db["b<c>"]`).Reveal() {
		t.Error(`the token of terraform_data.db["b<c>"], as Terraform spells it, differs`)
	}
}

// BenchmarkCompose50 parses, checks and composes a template of 50 machine
// blocks (25 single, 25 with count).
func BenchmarkCompose50(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("variable \"n\" {\n  default = 2\n}\n")
	for i := range 50 {
		fmt.Fprintf(&sb, "resource \"sandbox_machine\" \"m%d\" {\n", i)
		if i%2 == 0 {
			sb.WriteString("  count = var.n\n")
		}
		fmt.Fprintf(&sb, "  size = \"small\"\n  tags = { Name = \"m%d\" }\n  user_data = <<-EOT\n    #!/bin/sh\n    echo %d > index.html\n  EOT\n}\n\n", i, i)
	}
	content := []byte(sb.String())
	opts := sandboxOptions(map[string]string{"n": "3"})
	b.ReportAllocs()
	b.SetBytes(int64(len(content)))
	start := time.Now()
	for b.Loop() {
		p, _, err := ValidateTemplate("main.tf", content, stack.FormatHCL)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Compose(p, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), "µs/template")
}

// TestComposeTagsMerge evaluates the tags Compose generates against the
// user's own, written in several shapes.
func TestComposeTagsMerge(t *testing.T) {
	tests := []struct {
		name, tags string
		want       string
	}{
		{"object", `{ Name = "web" }`, `{"Name":"web","kloud_stack_id":"st-1"}`},
		{"multiline with comment", "{\n    Name = \"web\" # the name\n    // another\n    Team = \"a\"\n  }", `{"Name":"web","Team":"a","kloud_stack_id":"st-1"}`},
		{"overrides kloud's", `{ kloud_stack_id = "forged" }`, `{"kloud_stack_id":"st-1"}`},
		{"function", `merge({ a = "1" }, { b = "2" })`, `{"a":"1","b":"2","kloud_stack_id":"st-1"}`},
		{"heredoc", "{ Doc = <<-EOT\n    text\n  EOT\n  }", `{"Doc":"text\n","kloud_stack_id":"st-1"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := "resource \"m_x\" \"a\" {\n  tags = " + tt.tags + "\n}\n"
			p, _, err := ValidateTemplate("main.tf", []byte(content), stack.FormatHCL)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Compose(p, ComposeOptions{ResourceType: "m_x", Tags: map[string]string{"kloud_stack_id": "st-1"}, TagsAttribute: "tags"})
			if err != nil {
				t.Fatal(err)
			}
			var o struct {
				Resource map[string]map[string]map[string]string
			}
			if err := json.Unmarshal(c.Files[FileOverride], &o); err != nil {
				t.Fatal(err)
			}
			tmpl := o.Resource["m_x"]["a"]["tags"]
			expr := strings.TrimSuffix(strings.TrimPrefix(tmpl, "${"), "}")
			if got := evalString(t, expr, nil); got != tt.want {
				t.Errorf("tags = %s, want %s", got, tt.want)
			}
		})
	}
}
