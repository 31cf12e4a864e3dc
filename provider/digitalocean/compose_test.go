package digitalocean

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
	"github.com/kloud/kloud/templates"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const testSecret = stack.Secret("4f1c0ffee5ecret00000000000000000000000000000000000000000000beef")

// composeStack is a Stack for a stack with the given template, the fixed
// bootstrap, and a credential whose endpoint is a proxy.
func composeStack(t *testing.T, content string, format stack.Format) *Stack {
	t.Helper()
	p := NewProvider(Options{})
	bs := &provider.BaseStack{
		Provider:    p,
		Stack:       &stack.Stack{ID: "stk-1", OwnerID: "usr-1", TemplateID: "tpl-1", CredentialID: "cred-1", Provider: Name, Variables: map[string]string{}},
		Template:    &stack.Template{ID: "tpl-1", Title: "web+db", Provider: Name, Format: format, Content: content},
		Credential:  &stack.Credential{ID: "cred-1", OwnerID: "usr-1", Provider: Name, Bootstrapped: true},
		Cred:        &Credential{Token: stack.Secret(testToken), Region: "nyc3", Endpoint: "https://do-proxy.example.com"},
		Bootstrap:   fixedBootstrap(t),
		KloudURL:    "https://kloud.example.com",
		AgentSecret: testSecret,
	}
	st, err := p.Stack(bs)
	if err != nil {
		t.Fatal(err)
	}
	return st.(*Stack)
}

func apply(t *testing.T, s *Stack) (*stack.Template, error) {
	t.Helper()
	return s.ApplyTemplate(context.Background(), s.Credential)
}

// dump is the golden form of a composed template: every generated file,
// then the environment's variable names (their values are secrets).
func dump(tpl *stack.Template) []byte {
	var buf bytes.Buffer
	names := make([]string, 0, len(tpl.Generated))
	for n := range tpl.Generated {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&buf, "=== %s ===\n%s", n, tpl.Generated[n])
	}
	buf.WriteString("=== env ===\n")
	env := make([]string, 0, len(tpl.Env))
	for n := range tpl.Env {
		env = append(env, n)
	}
	slices.Sort(env)
	for _, n := range env {
		fmt.Fprintf(&buf, "TF_VAR_%s=%s\n", n, tpl.Env[n])
	}
	return buf.Bytes()
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("composed files differ from %s (run with -update if intended):\n%s", path, got)
	}
}

// assertNoSecret checks that neither the token nor the agent secret is in
// any file Terraform reads, and that both reach it through the environment.
func assertNoSecret(t *testing.T, tpl *stack.Template, secrets ...string) {
	t.Helper()
	for name, content := range tpl.Generated {
		for _, s := range secrets {
			if bytes.Contains(content, []byte(s)) {
				t.Errorf("%s holds a secret", name)
			}
		}
	}
	if strings.Contains(tpl.Content, testToken) {
		t.Error("the template holds the token")
	}
}

// TestApplyExampleGolden composes templates/digitalocean/main.tf (web and
// db droplets) and compares every generated file with the golden file.
func TestApplyExampleGolden(t *testing.T) {
	content, err := templates.Example(Name)
	if err != nil {
		t.Fatal(err)
	}
	s := composeStack(t, string(content), stack.FormatHCL)
	s.Stack.Variables["web_count"] = "2"
	tpl, err := apply(t, s)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, tpl, testToken, testSecret.Reveal())
	if tpl.Env[TokenVar].Reveal() != testToken || tpl.Env[terraform.AgentSecretVar] != testSecret {
		t.Errorf("env = %v", tpl.Env)
	}
	if tpl.Content != string(content) {
		t.Error("the user's template was changed")
	}
	golden(t, "apply_example.golden", dump(tpl))
}

// TestApplyJSONTemplate composes a JSON template: the user's ssh_keys,
// region and tags are merged, expressed from the JSON.
func TestApplyJSONTemplate(t *testing.T) {
	content := `{
  "resource": {
    "digitalocean_droplet": {
      "app": {
        "for_each": {"a": "s-1vcpu-1gb", "b": "s-1vcpu-2gb"},
        "name": "app-${each.key}",
        "size": "${each.value}",
        "image": "debian-12-x64",
        "region": "ams3",
        "ssh_keys": ["${var.extra_key}"],
        "tags": ["app"]
      }
    }
  },
  "variable": {"extra_key": {"type": "string", "default": "12345"}}
}`
	tpl, err := apply(t, composeStack(t, content, stack.FormatJSON))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "apply_json.golden", dump(tpl))
}

// overrideAttrs returns the attributes Kloud sets on droplet name across
// both override files.
func overrideAttrs(t *testing.T, tpl *stack.Template, name string) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, file := range []string{terraform.FileOverride, FileDropletOverride} {
		var o struct {
			Resource map[string]map[string]map[string]any `json:"resource"`
		}
		if err := json.Unmarshal(tpl.Generated[file], &o); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for k, v := range o.Resource["digitalocean_droplet"][name] {
			if _, dup := out[k]; dup {
				t.Errorf("%s set in both override files", k)
			}
			out[k] = v
		}
	}
	return out
}

// TestDropletAttributes checks the per-droplet composition rules table by
// table: ssh_keys (Kloud's key first), vpc_uuid (only where the region is
// the VPC's), region (only where unset), tags (appended).
func TestDropletAttributes(t *testing.T) {
	tests := []struct {
		name, body string
		want       map[string]any // attribute → value; nil value: must be absent
	}{
		{"bare", ``, map[string]any{
			"ssh_keys": []any{"${var.kloud_key_id}"},
			"vpc_uuid": "${var.kloud_vpc_uuid}",
			"region":   "${var.kloud_region}",
			"tags":     []any{"kloud_owner:usr-1", "kloud_stack_id:stk-1", "kloud_template_id:tpl-1"},
		}},
		{"user keys", `ssh_keys = [digitalocean_ssh_key.mine.id, "ab:cd"]`, map[string]any{
			"ssh_keys": `${concat([var.kloud_key_id], tolist([digitalocean_ssh_key.mine.id, "ab:cd"]))}`,
		}},
		{"user region", `region = "AMS3"`, map[string]any{
			"vpc_uuid": `${lower("AMS3") == var.kloud_region ? var.kloud_vpc_uuid : null}`,
			"region":   nil,
		}},
		{"user vpc", `vpc_uuid = "c0ffee00-0000-4000-8000-000000000000"`, map[string]any{"vpc_uuid": nil, "region": "${var.kloud_region}"}},
		{"user tags", `tags = ["web", var.env]`, map[string]any{
			"tags": `${concat(["web", var.env], ["kloud_owner:usr-1", "kloud_stack_id:stk-1", "kloud_template_id:tpl-1"])}`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := `variable "env" { default = "dev" }
resource "digitalocean_ssh_key" "mine" {
  name       = "mine"
  public_key = "ssh-ed25519 AAAA"
}
resource "digitalocean_droplet" "web" {
  name  = "web"
  size  = "s-1vcpu-1gb"
  image = var.kloud_image
  ` + tt.body + `
}
`
			tpl, err := apply(t, composeStack(t, content, stack.FormatHCL))
			if err != nil {
				t.Fatal(err)
			}
			attrs := overrideAttrs(t, tpl, "web")
			for k, want := range tt.want {
				got, ok := attrs[k]
				if want == nil {
					if ok {
						t.Errorf("%s = %v, want it left to the user", k, got)
					}
					continue
				}
				gb, _ := json.Marshal(got)
				wb, _ := json.Marshal(want)
				if !bytes.Equal(gb, wb) {
					t.Errorf("%s = %s, want %s", k, gb, wb)
				}
			}
		})
	}
}

// TestUserDataMerge checks how the agent's start-up joins the user's user
// data: alone when there is none, in a multipart archive (Kloud's part
// first) with cloud-config or a shell script, and refused, naming the
// line, when it cannot be merged.
func TestUserDataMerge(t *testing.T) {
	tokenExpr := `${sha256("${var.kloud_agent_secret}|digitalocean_droplet.web")}`
	tests := []struct {
		name, userData string
		line           int // the line a refusal names; 0: accepted
		contains       []string
		kloudFirst     string // a fragment of the user's part that must come after Kloud's
	}{
		{"none", ``, 0, []string{"#!/bin/sh\n# Kloud agent (klient) set-up", "KLIENT_TOKEN=" + tokenExpr, "KLIENT_KLOUD_URL=${var.kloud_url}"}, ""},
		{"cloud-config", "user_data = <<-EOT\n    #cloud-config\n    packages: [nginx]\n  EOT", 0,
			[]string{"Content-Type: multipart/mixed", "Content-Type: text/x-shellscript", "KLIENT_TOKEN=" + tokenExpr, `startswith(trimspace(`}, "#cloud-config"},
		{"shell", "user_data = \"#!/bin/bash\\necho hi\\n\"", 0,
			[]string{"Content-Type: multipart/mixed", "KLIENT_TOKEN="}, "#!/bin/bash"},
		{"computed", `user_data = file("${path.module}/main.tf")`, 0, []string{"Content-Type: multipart/mixed"}, "main.tf"},
		{"include", "user_data = \"#include\\nhttps://example.com/x\"", 8, nil, ""},
		{"mime", "user_data = \"Content-Type: multipart/mixed; boundary=x\\n\"", 8, nil, ""},
		{"indented shebang", "user_data = \"  #!/bin/sh\\necho\"", 8, nil, ""},
		{"too large", "user_data = \"#!/bin/sh\\n" + strings.Repeat("echo 0123456789abcdef\\n", 3200) + "\"", 8, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := "resource \"digitalocean_droplet\" \"web\" {\n  name  = \"web\"\n  size  = \"s-1vcpu-1gb\"\n  image = \"ubuntu-24-04-x64\"\n\n\n\n  " + tt.userData + "\n}\n"
			tpl, err := apply(t, composeStack(t, content, stack.FormatHCL))
			if tt.line != 0 {
				if !errors.Is(err, ErrUserDataConflict) {
					t.Fatalf("err = %v, want ErrUserDataConflict", err)
				}
				var te *terraform.TemplateError
				if !errors.As(err, &te) || te.Diagnostics[0].Line != tt.line || te.Diagnostics[0].File != "main.tf" {
					t.Fatalf("err = %v, want a diagnostic on main.tf:%d", err, tt.line)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ud, _ := overrideAttrs(t, tpl, "web")["user_data"].(string)
			for _, c := range tt.contains {
				if !strings.Contains(ud, c) {
					t.Errorf("user_data lacks %q:\n%s", c, ud)
				}
			}
			if tt.kloudFirst != "" {
				k, u := strings.Index(ud, "# Kloud agent (klient) set-up"), strings.Index(ud, tt.kloudFirst)
				if k < 0 || u < 0 || k > u {
					t.Errorf("Kloud's part at %d, the user's at %d; want Kloud's first:\n%s", k, u, ud)
				}
			}
		})
	}
}

// TestLiteralCredentialsRefused checks that a token in the user's template
// is refused, naming the line, without repeating the token; a reference to
// a variable is fine.
func TestLiteralCredentialsRefused(t *testing.T) {
	legacy := strings.Repeat("ab12", 16)
	dropletBlock := "resource \"digitalocean_droplet\" \"web\" {\n  name  = \"web\"\n  size  = \"s-1vcpu-1gb\"\n  image = \"ubuntu-24-04-x64\"\n}\n"
	otherToken := "dop_v1_" + strings.Repeat("7e", 32)
	tests := []struct {
		name, content string
		format        stack.Format
		credToken     string
		line          int // 0: accepted
	}{
		{"token in provider block", "provider \"digitalocean\" {\n  token = \"not-a-dop-token-but-literal\"\n}\n" + dropletBlock, stack.FormatHCL, "", 2},
		{"spaces key in provider block", "provider \"digitalocean\" {\n  spaces_access_id  = var.id\n  spaces_secret_key = \"s3cr3t\"\n}\nvariable \"id\" {}\n" + dropletBlock, stack.FormatHCL, "", 3},
		{"dop token anywhere", dropletBlock + "\nresource \"terraform_data\" \"x\" {\n  input = \"" + otherToken + "\"\n}\n", stack.FormatHCL, "", 8},
		{"token as variable default", "variable \"t\" {\n  default = \"" + otherToken + "\"\n}\n" + dropletBlock, stack.FormatHCL, "", 2},
		{"the credential's own legacy token", "locals {\n  x = \"" + legacy + "\"\n}\n" + dropletBlock, stack.FormatHCL, legacy, 2},
		{"json provider token", `{"provider": {"digitalocean": {"token": "abc"}}, "resource": {"digitalocean_droplet": {"web": {"name": "w", "size": "s", "image": "i"}}}}`, stack.FormatJSON, "", 1},
		{"token from a variable", "variable \"t\" {\n  sensitive = true\n}\nprovider \"digitalocean\" {\n  token = var.t\n}\n" + dropletBlock, stack.FormatHCL, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := composeStack(t, tt.content, tt.format)
			if tt.credToken != "" {
				s.Cred.(*Credential).Token = stack.Secret(tt.credToken)
			}
			tpl, err := apply(t, s)
			if tt.line == 0 {
				if err != nil {
					t.Fatal(err)
				}
				// The user's provider block gets Kloud's token too.
				if !strings.Contains(string(tpl.Generated[terraform.FileOverride]), `"token": "${var.kloud_do_token}"`) {
					t.Errorf("override = %s", tpl.Generated[terraform.FileOverride])
				}
				return
			}
			if !errors.Is(err, ErrLiteralCredential) {
				t.Fatalf("err = %v, want ErrLiteralCredential", err)
			}
			var te *terraform.TemplateError
			if !errors.As(err, &te) || te.Diagnostics[0].Line != tt.line {
				t.Fatalf("err = %v, want line %d", err, tt.line)
			}
			for _, secret := range []string{otherToken, legacy, "s3cr3t", testToken} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error repeats a secret: %v", err)
				}
			}
		})
	}
}

// TestNoImageRefused checks that a droplet without an image is refused
// naming its block and Kloud's default variable (Terraform requires the
// argument before override files merge, so Kloud cannot fill it in).
func TestNoImageRefused(t *testing.T) {
	content := "resource \"digitalocean_droplet\" \"ok\" {\n  name = \"a\"\n  size = \"s-1vcpu-1gb\"\n  image = var.kloud_image\n}\n\nresource \"digitalocean_droplet\" \"bare\" {\n  name = \"b\"\n  size = \"s-1vcpu-1gb\"\n}\n"
	_, err := apply(t, composeStack(t, content, stack.FormatHCL))
	var te *terraform.TemplateError
	if !errors.Is(err, ErrNoImage) || !errors.As(err, &te) {
		t.Fatalf("err = %v, want ErrNoImage", err)
	}
	if len(te.Diagnostics) != 1 || te.Diagnostics[0].Line != 7 || !strings.Contains(te.Diagnostics[0].Message, "digitalocean_droplet.bare") ||
		!strings.Contains(te.Diagnostics[0].Message, "var.kloud_image") {
		t.Errorf("diagnostics = %+v", te.Diagnostics)
	}
}

// TestNotBootstrapped checks that a credential without its bootstrap is
// refused with the way out.
func TestNotBootstrapped(t *testing.T) {
	s := composeStack(t, "resource \"digitalocean_droplet\" \"w\" {\n  name = \"w\"\n  size = \"s\"\n  image = \"i\"\n}\n", stack.FormatHCL)
	s.Bootstrap = nil
	s.Credential.Bootstrapped = false
	_, err := apply(t, s)
	if !errors.Is(err, ErrNotBootstrapped) || !strings.Contains(err.Error(), "/api/v1/credentials/cred-1/bootstrap") {
		t.Fatalf("err = %v", err)
	}
}

// TestBootstrapTemplates composes the bootstrap template: a new key pair
// whose public half is a plain variable and whose private half reaches
// Terraform only through the environment; a bootstrapped credential keeps
// its pair (compared with the golden file).
func TestBootstrapTemplates(t *testing.T) {
	p := NewProvider(Options{})
	cred := &Credential{Token: stack.Secret(testToken), Region: "fra1"}
	c := &stack.Credential{ID: "cred-1", OwnerID: "usr-1", Provider: Name}
	st, _ := p.Stack(&provider.BaseStack{Provider: p, Credential: c, Cred: cred})
	tpls, err := st.BootstrapTemplates(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if len(tpls) != 1 {
		t.Fatalf("%d templates", len(tpls))
	}
	tpl := tpls[0]
	priv := tpl.Env[sshPrivateVar].Reveal()
	if !strings.HasPrefix(priv, sealedPrefix) {
		t.Fatalf("the private key in the environment is not sealed")
	}
	key, _, err := OpenPrivateKey(priv, testToken, "cred-1")
	if err != nil {
		t.Fatalf("private key in env: %v", err)
	}
	var vals map[string]string
	if err := json.Unmarshal(tpl.Generated[terraform.FileVarValues], &vals); err != nil {
		t.Fatal(err)
	}
	pub, err := ParseAuthorizedKey(vals[sshPublicVar])
	if err != nil || !bytes.Equal(pub, key.Public().(ed25519.PublicKey)) {
		t.Errorf("public key variable %q does not match the private key (%v)", vals[sshPublicVar], err)
	}
	if vals[nameVar] != "kloud-cred-1" || vals[RegionVar] != "fra1" {
		t.Errorf("values = %v", vals)
	}
	assertNoSecret(t, tpl, testToken, priv, "PRIVATE KEY")
	if tpl.Env[TokenVar].Reveal() != testToken {
		t.Error("the token is not in the environment")
	}

	// The outputs, as Terraform would give them, make a valid bootstrap.
	outputs := map[string]json.RawMessage{}
	for k, v := range map[string]string{
		"key_id": "41923115", "key_fingerprint": Fingerprint(pub), "vpc_uuid": "5a4981aa-9653-4bd1-bef5-d6bff52042e4",
		"region": "fra1", "public_key": vals[sshPublicVar], "private_key": priv,
	} {
		outputs[k], _ = json.Marshal(v)
	}
	boot, stored, err := p.DecodeBootstrapOutputs(outputs)
	if err != nil {
		t.Fatal(err)
	}
	if string(boot.(*Bootstrap).PrivateKey) != priv || !bytes.Contains(stored, []byte(sealedPrefix)) {
		t.Error("the sealed private key did not survive into the stored bootstrap")
	}
	if k, _, err := boot.(*Bootstrap).SSHKey(cred, "cred-1"); err != nil || !bytes.Equal(k, key) {
		t.Errorf("the stored bootstrap's key does not open: %v", err)
	}

	// Bootstrapping again keeps the pair.
	c.Bootstrapped, c.Bootstrap = true, stored
	st2, _ := p.Stack(&provider.BaseStack{Provider: p, Credential: c, Cred: cred})
	again, err := st2.BootstrapTemplates(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	var vals2 map[string]string
	_ = json.Unmarshal(again[0].Generated[terraform.FileVarValues], &vals2)
	if vals2[sshPublicVar] != vals[sshPublicVar] {
		t.Error("a bootstrapped credential got a new key pair")
	}

	// Golden: the fixed pair, a credential with an endpoint.
	fixed := fixedBootstrap(t)
	b, _ := json.Marshal(fixed)
	c3 := &stack.Credential{ID: "cred-1", OwnerID: "usr-1", Provider: Name, Bootstrapped: true, Bootstrap: b}
	cred3 := &Credential{Token: stack.Secret(testToken), Region: "nyc3", Endpoint: "http://127.0.0.1:4321"}
	st3, _ := p.Stack(&provider.BaseStack{Provider: p, Credential: c3, Cred: cred3})
	tpls3, err := st3.BootstrapTemplates(context.Background(), c3)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "bootstrap.golden", dump(tpls3[0]))
}

// TestResourceName checks the bootstrap resources' names.
func TestResourceName(t *testing.T) {
	for in, want := range map[string]string{
		"cred-0a1b2c3d4e5f6a7b":    "kloud-cred-0a1b2c3d4e5f6a7b",
		"65F2A1_b":                 "kloud-65f2a1-b",
		strings.Repeat("x", 80):    "kloud-" + strings.Repeat("x", 57),
		"trailing_":                "kloud-trailing",
		"with space/and:colon.dot": "kloud-with-space-and-colon.dot",
	} {
		if got := resourceName(in); got != want {
			t.Errorf("resourceName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestUserDataRendersWithTerraform renders the composed user data of the
// example's droplets with the real Terraform binary (builtin terraform_data
// resources stand in for the droplets, since the digitalocean plugin cannot
// be downloaded here) and reads it as cloud-init would: a MIME multipart
// archive whose first part is Kloud's start-up script holding the machine's
// agent token, and whose second is the user's own, typed from its first
// line. Skipped when no Terraform is installed.
func TestUserDataRendersWithTerraform(t *testing.T) {
	tf := testenv.Terraform(t)
	content, err := templates.Example(Name)
	if err != nil {
		t.Fatal(err)
	}
	s := composeStack(t, string(content), stack.FormatHCL)
	tpl, err := apply(t, s)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	stand := map[string]any{}
	for _, name := range []string{"web", "db"} {
		r := map[string]any{"input": overrideAttrs(t, tpl, name)["user_data"]}
		if name == "web" {
			r["count"] = 2
		}
		stand[name] = r
	}
	files := map[string]any{
		"main.tf.json": map[string]any{
			"resource": map[string]any{"terraform_data": stand},
			"output": map[string]any{
				"web": map[string]any{"value": "${terraform_data.web[*].output}", "sensitive": true},
				"db":  map[string]any{"value": "${terraform_data.db.output}", "sensitive": true},
			},
		},
	}
	for name, b := range files {
		data, _ := json.Marshal(b)
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{terraform.FileVariables, terraform.FileVarValues} {
		data := tpl.Generated[name]
		if name == terraform.FileVarValues {
			var vals map[string]any
			_ = json.Unmarshal(data, &vals)
			delete(vals, "web_count") // the stand-in declares no such variable
			data, _ = json.Marshal(vals)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := testenv.TerraformEnv(filepath.Join(dir, "none.tfrc"))
	for k, v := range tpl.Env {
		env = append(env, "TF_VAR_"+k+"="+v.Reveal())
	}
	run := func(args ...string) []byte {
		cmd := exec.Command(tf, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("terraform %v: %v\n%s%s", args, err, out, stderr)
		}
		return out
	}
	run("init", "-input=false", "-no-color")
	run("apply", "-auto-approve", "-input=false", "-no-color")
	var web []string
	if err := json.Unmarshal(run("output", "-json", "web"), &web); err != nil || len(web) != 2 {
		t.Fatalf("web user data: %v (%d)", err, len(web))
	}
	var db string
	if err := json.Unmarshal(run("output", "-json", "db"), &db); err != nil {
		t.Fatal(err)
	}
	check := func(ud, addr, userType, userStart string) {
		t.Helper()
		msg, err := mail.ReadMessage(strings.NewReader(ud))
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		if err != nil {
			t.Fatal(err)
		}
		mr := multipart.NewReader(msg.Body, params["boundary"])
		var types, bodies []string
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			b, _ := io.ReadAll(p)
			mt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
			types, bodies = append(types, mt), append(bodies, string(b))
		}
		if len(types) != 2 || types[0] != "text/x-shellscript" || types[1] != userType {
			t.Fatalf("%s: parts %v", addr, types)
		}
		token := terraform.AgentToken(testSecret, addr).Reveal()
		if !strings.HasPrefix(bodies[0], "#!/bin/sh\n") || !strings.Contains(bodies[0], "KLIENT_TOKEN="+token+"\n") ||
			!strings.Contains(bodies[0], "KLIENT_KLOUD_URL=https://kloud.example.com\n") {
			t.Errorf("%s: Kloud's part:\n%s", addr, bodies[0])
		}
		if !strings.HasPrefix(bodies[1], userStart) {
			t.Errorf("%s: the user's part:\n%s", addr, bodies[1])
		}
	}
	check(web[0], "digitalocean_droplet.web[0]", "text/cloud-config", "#cloud-config\npackages:")
	check(web[1], "digitalocean_droplet.web[1]", "text/cloud-config", "#cloud-config\npackages:")
	check(db, "digitalocean_droplet.db", "text/x-shellscript", "#!/bin/sh\nset -e\n")
	if !strings.Contains(web[1], "<title>web 1</title>") {
		t.Error("the user's cloud-config was not rendered per instance")
	}
}
