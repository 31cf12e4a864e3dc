package aws

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	hcljson "github.com/hashicorp/hcl/v2/json"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
	"github.com/kloud/kloud/templates"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const testAgentSecret = stack.Secret("0123456789abcdef0123456789abcdef")

func testBootstrap() *Bootstrap {
	return &Bootstrap{VPC: "vpc-0a1b2c3d4e5f60718", Subnet: "subnet-0a1b2c3d4e5f60718", SecurityGroup: "sg-0a1b2c3d4e5f60718",
		KeyPair: "kloud-cr-1", AMI: "ami-0a1b2c3d4e5f60718", InternetGateway: "igw-0a1b2c3d4e5f60718",
		RouteTable: "rtb-0a1b2c3d4e5f60718", AvailabilityZone: "eu-west-1a", CIDRBlock: "10.73.0.0/16"}
}

// composeStack is a Stack as Kloud builds it to apply a stack: credential
// cr-1 of user u-1, stack st-1 of template tp-1.
func composeStack(t testing.TB, cred *Credential, boot *Bootstrap, content string, format stack.Format, vars map[string]string) *Stack {
	t.Helper()
	p, err := provider.Get(Name)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(map[string]any{"access_key": cred.AccessKey, "secret_key": cred.SecretKey.Reveal(), "region": cred.Region})
	bs := &provider.BaseStack{
		Provider:    p,
		Credential:  &stack.Credential{ID: "cr-1", OwnerID: "u-1", Provider: Name, Data: data, Bootstrapped: boot != nil},
		Cred:        cred,
		Stack:       &stack.Stack{ID: "st-1", OwnerID: "u-1", TemplateID: "tp-1", CredentialID: "cr-1", Provider: Name, Variables: vars},
		Template:    &stack.Template{ID: "tp-1", Title: "test", Provider: Name, Format: format, Content: content},
		KloudURL:    "https://kloud.example.com",
		AgentSecret: testAgentSecret,
	}
	if boot != nil {
		bs.Bootstrap = boot
	}
	st, err := p.Stack(bs)
	if err != nil {
		t.Fatal(err)
	}
	return st.(*Stack)
}

func testCredential() *Credential {
	return &Credential{AccessKey: testAccessKey, SecretKey: testSecretKey, Region: "eu-west-1"}
}

// checkComposed checks what holds for every composition: the user's file
// is unchanged, every generated file is Terraform JSON, no secret is in a
// file, and the secrets are in the environment.
func checkComposed(t *testing.T, s *Stack, tpl *stack.Template, cred *Credential) {
	t.Helper()
	if s.Template != nil && tpl.Content != s.Template.Content {
		t.Error("the user's template was changed")
	}
	for name, b := range tpl.Generated {
		if _, diags := hcljson.Parse(b, name); diags.HasErrors() {
			t.Errorf("%s does not parse: %s", name, diags.Error())
		}
		for _, secret := range []string{cred.SecretKey.Reveal(), cred.AccessKey, testAgentSecret.Reveal()} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s holds a secret", name)
			}
		}
	}
	if tpl.Env[VarAccessKey].Reveal() != cred.AccessKey || tpl.Env[VarSecretKey].Reveal() != cred.SecretKey.Reveal() {
		t.Errorf("the keys are not in the environment: %v", keys(tpl.Env))
	}
}

func golden(t *testing.T, name string, tpl *stack.Template) {
	t.Helper()
	var got bytes.Buffer
	for _, n := range keys(tpl.Generated) {
		fmt.Fprintf(&got, "=== %s ===\n%s", n, tpl.Generated[n])
	}
	fmt.Fprintf(&got, "=== env ===\n")
	for _, k := range keys(tpl.Env) {
		fmt.Fprintf(&got, "TF_VAR_%s (secret, %d bytes)\n", k, len(tpl.Env[k].Reveal()))
	}
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("composed files differ from %s:\n%s", path, got.Bytes())
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestApplyTemplateGolden composes the embedded example
// (templates/aws/main.tf) with a bootstrapped credential.
func TestApplyTemplateGolden(t *testing.T) {
	example, err := templates.Example(Name)
	if err != nil {
		t.Fatal(err)
	}
	cred := testCredential()
	s := composeStack(t, cred, testBootstrap(), string(example), stack.FormatHCL, map[string]string{"web_count": "2"})
	tpl, err := s.ApplyTemplate(context.Background(), s.Credential)
	if err != nil {
		t.Fatal(err)
	}
	checkComposed(t, s, tpl, cred)
	golden(t, "apply_example", tpl)
}

// TestBootstrapTemplatesGolden composes the bootstrap of a credential with
// an endpoint: the provider block points EC2 and STS at it, default tags
// name the credential, the public key is the credential's derived one.
func TestBootstrapTemplatesGolden(t *testing.T) {
	cred := testCredential()
	cred.Endpoint = "http://127.0.0.1:4566"
	s := composeStack(t, cred, nil, "", stack.FormatHCL, nil)
	s.Template, s.BaseStack.Stack = nil, nil
	tpls, err := s.BootstrapTemplates(context.Background(), s.Credential)
	if err != nil {
		t.Fatal(err)
	}
	if len(tpls) != 1 {
		t.Fatalf("%d templates", len(tpls))
	}
	tpl := tpls[0]
	content, _, _ := templates.Bootstrap(Name)
	if tpl.Content != string(content) || tpl.FileName() != "main.tf.json" || tpl.Provider != Name {
		t.Errorf("template %q %s", tpl.Title, tpl.FileName())
	}
	checkComposed(t, s, tpl, cred)
	var vars map[string]string
	if err := json.Unmarshal(tpl.Generated[terraform.FileVarValues], &vars); err != nil {
		t.Fatal(err)
	}
	key, _ := KeyPair(cred, "cr-1")
	if vars[VarPublicKey] != AuthorizedKey(key.Public().(ed25519.PublicKey), "kloud-cr-1") || vars[VarKeyName] != "kloud-cr-1" || vars[VarCredentialID] != "cr-1" {
		t.Errorf("tfvars = %v", vars)
	}
	if bytes.Contains(tpl.Generated[terraform.FileVarValues], PrivateKeyPEM(key, "")[40:80]) {
		t.Error("the private key reached a file")
	}
	// Destroy composes the same: re-applying or destroying the bootstrap
	// passes the same key.
	again, err := s.BootstrapTemplates(context.Background(), s.Credential)
	if err != nil || !bytes.Equal(again[0].Generated[terraform.FileVarValues], tpl.Generated[terraform.FileVarValues]) {
		t.Errorf("a second composition differs: %v", err)
	}
	golden(t, "bootstrap", tpl)

	// The bootstrap's outputs, as Terraform reports them, are the
	// credential's Bootstrap.
	p, _ := provider.Get(Name)
	outputs := map[string]json.RawMessage{}
	b, _ := json.Marshal(testBootstrap())
	_ = json.Unmarshal(b, &outputs)
	v, stored, err := p.DecodeBootstrapOutputs(outputs)
	if err != nil {
		t.Fatal(err)
	}
	if *v.(*Bootstrap) != *testBootstrap() || !json.Valid(stored) {
		t.Errorf("bootstrap = %+v", v)
	}
	var names []string
	parsed, _ := terraform.ParseTemplate("main.tf.json", content, stack.FormatJSON)
	body, _, _ := parsed.File.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "output", LabelNames: []string{"name"}}}})
	for _, blk := range body.Blocks {
		names = append(names, blk.Labels[0])
	}
	sort.Strings(names)
	if want := keys(outputs); !slices.Equal(names, want) {
		t.Errorf("the template's outputs %v are not the Bootstrap's fields %v", names, want)
	}
}

// evalUserData evaluates the composed user_data of resource name (index
// idx of a count) as Terraform would, with the functions it calls.
func evalUserData(t *testing.T, tpl *stack.Template, name string, idx int) string {
	t.Helper()
	var override struct {
		Resource map[string]map[string]map[string]any `json:"resource"`
	}
	if err := json.Unmarshal(tpl.Generated[terraform.FileOverride], &override); err != nil {
		t.Fatal(err)
	}
	src, ok := override.Resource["aws_instance"][name]["user_data"].(string)
	if !ok {
		t.Fatalf("no user_data for %s", name)
	}
	expr, diags := hclsyntax.ParseTemplate([]byte(src), "user_data", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	str := func(impl func(args []string) cty.Value, n int, ret cty.Type) function.Function {
		params := make([]function.Parameter, n)
		for i := range params {
			params[i] = function.Parameter{Name: fmt.Sprint("p", i), Type: cty.String}
		}
		return function.New(&function.Spec{Params: params, Type: function.StaticReturnType(ret),
			Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
				ss := make([]string, len(args))
				for i, a := range args {
					ss[i] = a.AsString()
				}
				return impl(ss), nil
			}})
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{
			"var": cty.ObjectVal(map[string]cty.Value{
				"kloud_agent_secret": cty.StringVal(testAgentSecret.Reveal()),
				"kloud_url":          cty.StringVal("https://kloud.example.com"),
				"kloud_klient_url":   cty.StringVal("https://kloud.example.com/api/v1/agent/klient"),
			}),
			"count": cty.ObjectVal(map[string]cty.Value{"index": cty.NumberIntVal(int64(idx))}),
		},
		Functions: map[string]function.Function{
			"sha256": str(func(a []string) cty.Value {
				sum := sha256.Sum256([]byte(a[0]))
				return cty.StringVal(hex.EncodeToString(sum[:]))
			}, 1, cty.String),
			"trimspace":  str(func(a []string) cty.Value { return cty.StringVal(strings.TrimSpace(a[0])) }, 1, cty.String),
			"startswith": str(func(a []string) cty.Value { return cty.BoolVal(strings.HasPrefix(a[0], a[1])) }, 2, cty.Bool),
		},
	}
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return v.AsString()
}

type part struct{ contentType, body string }

func mimeParts(t *testing.T, userData string) []part {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(userData))
	if err != nil {
		t.Fatalf("user data is not a MIME message: %v\n%s", err, userData)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || msg.Header.Get("MIME-Version") != "1.0" {
		t.Fatalf("content type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	var out []part
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		out = append(out, part{ct, string(b)})
	}
}

// TestUserDataMerge evaluates the composed user data: Kloud's agent
// script carries the machine's own token; a user's shell script and a
// user's #cloud-config each become the second part of a cloud-init
// multipart archive; an instance without user data gets the script alone.
func TestUserDataMerge(t *testing.T) {
	example, _ := templates.Example(Name)
	content := string(example) + `
resource "aws_instance" "bare" {
  instance_type = "t3.nano"
}
`
	s := composeStack(t, testCredential(), testBootstrap(), content, stack.FormatHCL, map[string]string{"web_count": "2"})
	tpl, err := s.ApplyTemplate(context.Background(), s.Credential)
	if err != nil {
		t.Fatal(err)
	}
	agentPart := func(t *testing.T, body, addr string) {
		t.Helper()
		token := terraform.AgentToken(testAgentSecret, addr).Reveal()
		if !strings.HasPrefix(body, "#!/bin/sh\n") || !strings.Contains(body, "\nKLIENT_TOKEN="+token+"\n") ||
			!strings.Contains(body, "\nKLIENT_KLOUD_URL=https://kloud.example.com\n") || !strings.Contains(body, "\nhttps://kloud.example.com/api/v1/agent/klient\nKLOUD_EOF\n") || !strings.Contains(body, `"$url?os=linux&arch=$arch"`) {
			t.Errorf("agent part of %s:\n%s", addr, body)
		}
	}
	web := mimeParts(t, evalUserData(t, tpl, "web", 1))
	if len(web) != 2 || web[0].contentType != "text/x-shellscript" || web[1].contentType != "text/x-shellscript" {
		t.Fatalf("web parts %+v", web)
	}
	agentPart(t, web[0].body, "aws_instance.web[1]")
	if !strings.HasPrefix(web[1].body, "#!/bin/sh\n") || !strings.Contains(web[1].body, "Hello from web 1") {
		t.Errorf("web's own part:\n%s", web[1].body)
	}
	db := mimeParts(t, evalUserData(t, tpl, "db", 0))
	if len(db) != 2 || db[0].contentType != "text/x-shellscript" || db[1].contentType != "text/cloud-config" {
		t.Fatalf("db parts %+v", db)
	}
	agentPart(t, db[0].body, "aws_instance.db")
	if !strings.HasPrefix(db[1].body, "#cloud-config\n") || !strings.Contains(db[1].body, "- postgresql") {
		t.Errorf("db's own part:\n%s", db[1].body)
	}
	bare := evalUserData(t, tpl, "bare", 0)
	agentPart(t, bare, "aws_instance.bare")
}

// TestUserDataConflict: user_data_base64 cannot be merged with Kloud's.
func TestUserDataConflict(t *testing.T) {
	content := `resource "aws_instance" "web" {
  instance_type = "t3.micro"

  user_data_base64 = base64encode("#!/bin/sh\necho hi\n")
}
`
	s := composeStack(t, testCredential(), testBootstrap(), content, stack.FormatHCL, nil)
	_, err := s.ApplyTemplate(context.Background(), s.Credential)
	var te *terraform.TemplateError
	if !errors.As(err, &te) || len(te.Diagnostics) != 1 || te.Diagnostics[0].Line != 4 ||
		!strings.Contains(err.Error(), "main.tf:4:3: error: aws_instance.web sets user_data_base64") {
		t.Fatalf("err = %v", err)
	}
}

// TestLiteralCredentialsRefused: keys written in a template are refused
// with a diagnostic at their line, in HCL and in JSON.
func TestLiteralCredentialsRefused(t *testing.T) {
	const machine = "resource \"aws_instance\" \"web\" {\n  ami = \"ami-0a1b2c3d4e5f60718\"\n}\n"
	tests := []struct {
		name    string
		format  stack.Format
		content string
		lines   []int // the diagnostics' lines; none: accepted
		msg     string
	}{
		{"access key id in a tag", stack.FormatHCL, "resource \"aws_instance\" \"web\" {\n  ami = \"ami-0a1b2c3d4e5f60718\"\n  tags = { k = \"AKIAIOSFODNN7EXAMPLE\" }\n}\n",
			[]int{3}, "main.tf:3:17: error: the template contains an AWS access key id (AKIA…)"},
		{"temporary key id in a comment", stack.FormatHCL, "# ASIAIOSFODNN7EXAMPLE was mine\n" + machine, []int{1}, "access key id (ASIA…)"},
		{"literal provider keys", stack.FormatHCL, "provider \"aws\" {\n  region     = \"eu-west-1\"\n  access_key = \"AKIAIOSFODNN7EXAMPLE\"\n  secret_key = \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"\n}\n" + machine,
			[]int{3, 4}, `main.tf:3:3: error: provider "aws" sets access_key to a literal value`},
		{"literal key in an aliased provider", stack.FormatHCL, "provider \"aws\" {\n  alias = \"west\"\n  secret_key = join(\"\", [\"a\", \"b\"])\n}\n" + machine,
			[]int{3}, `provider "aws" sets secret_key to a literal value`},
		{"variable default", stack.FormatHCL, "variable \"sk\" {\n  type    = string\n  default = \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"\n}\nprovider \"aws\" {\n  secret_key = var.sk\n}\n" + machine,
			[]int{3}, `variable "sk" has a literal default and sets provider "aws" secret_key`},
		{"host profile", stack.FormatHCL, "provider \"aws\" {\n  profile = \"prod\"\n}\n" + machine, []int{2}, `provider "aws" sets profile`},
		{"json provider keys", stack.FormatJSON, `{
  "provider": {"aws": {
    "secret_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
  }},
  "resource": {"aws_instance": {"web": {"ami": "ami-0a1b2c3d4e5f60718"}}}
}`, []int{3}, `main.tf.json:3:5: error: provider "aws" sets secret_key to a literal value`},
		{"json provider list", stack.FormatJSON, `{
  "provider": {"aws": [
    {"region": "eu-west-1"},
    {"alias": "b", "token": "IQoJb3JpZ2luX2VjEJr"}
  ]},
  "resource": {"aws_instance": {"web": {"ami": "ami-0a1b2c3d4e5f60718"}}}
}`, []int{4}, `main.tf.json:4:20: error: provider "aws" sets token to a literal value`},
		{"json key id", stack.FormatJSON, `{"resource": {"aws_instance": {"web": {
  "ami": "ami-0a1b2c3d4e5f60718",
  "tags": {"k": "AKIAIOSFODNN7EXAMPLE"}
}}}}`, []int{3}, "main.tf.json:3:18: error: the template contains an AWS access key id"},
		{"keys through variables without defaults", stack.FormatHCL, "variable \"sk\" {\n  type      = string\n  sensitive = true\n}\nprovider \"aws\" {\n  secret_key = var.sk\n  access_key = null\n}\n" + machine, nil, ""},
		{"json keys through variables", stack.FormatJSON, `{"provider": {"aws": {"secret_key": "${var.sk}"}}, "variable": {"sk": {"type": "string"}},
  "resource": {"aws_instance": {"web": {"ami": "ami-0a1b2c3d4e5f60718"}}}}`, nil, ""},
		{"look-alike inside a longer word", stack.FormatHCL, "resource \"aws_instance\" \"web\" {\n  ami = \"ami-0a1b2c3d4e5f60718\"\n  tags = { k = \"XAKIAZZZZZZZZZZZZZZZZY\" }\n}\n", nil, ""},
		// Another provider is refused by the policy before its keys matter.
		{"another provider's keys", stack.FormatHCL, "provider \"other\" {\n  secret_key = \"x\"\n}\n" + machine, []int{1}, `provider block uses provider "other", which Kloud does not install`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := composeStack(t, testCredential(), testBootstrap(), tt.content, tt.format, nil)
			tpl, err := s.ApplyTemplate(context.Background(), s.Credential)
			if tt.lines == nil {
				if err != nil {
					t.Fatal(err)
				}
				checkComposed(t, s, tpl, testCredential())
				return
			}
			var te *terraform.TemplateError
			if !errors.As(err, &te) || !errors.Is(err, terraform.ErrInvalidTemplate) {
				t.Fatalf("err = %v, want a TemplateError", err)
			}
			var lines []int
			for _, d := range te.Diagnostics {
				lines = append(lines, d.Line)
			}
			if !slices.Equal(lines, tt.lines) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("diagnostics %v (%v), want lines %v and %q", te.Diagnostics, err, tt.lines, tt.msg)
			}
			if strings.Contains(err.Error(), "IOSFODNN7") || strings.Contains(err.Error(), "wJalrXUtnFEMI") {
				t.Errorf("the error repeats the key: %v", err)
			}
		})
	}
}

// TestDefaults: the bootstrap's values go only where the user set none
// and where they cannot clash with what the user set.
func TestDefaults(t *testing.T) {
	all := []string{"ami", "key_name", "subnet_id", "vpc_security_group_ids"}
	tests := []struct {
		name  string
		attrs string
		want  []string
	}{
		{"nothing set", ``, all},
		{"own ami and key", "ami = \"ami-0fedcba9876543210\"\n  key_name = \"mine\"", []string{"subnet_id", "vpc_security_group_ids"}},
		{"own subnet", `subnet_id = "subnet-0fedcba9876543210"`, []string{"ami", "key_name"}},
		{"own security groups", `vpc_security_group_ids = ["sg-0fedcba9876543210"]`, []string{"ami", "key_name", "subnet_id"}},
		{"classic security group names", `security_groups = ["default"]`, []string{"ami", "key_name", "subnet_id"}},
		{"own zone", `availability_zone = "eu-west-1b"`, []string{"ami", "key_name"}},
		{"launch template", "launch_template {\n    id = \"lt-0fedcba9876543210\"\n  }", nil},
		{"network interface", "network_interface {\n    network_interface_id = \"eni-0fedcba9876543210\"\n    device_index = 0\n  }", []string{"ami", "key_name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := "resource \"aws_instance\" \"m\" {\n  " + tt.attrs + "\n}\n"
			s := composeStack(t, testCredential(), testBootstrap(), content, stack.FormatHCL, nil)
			tpl, err := s.ApplyTemplate(context.Background(), s.Credential)
			if err != nil {
				t.Fatal(err)
			}
			var override struct {
				Resource map[string]map[string]map[string]any `json:"resource"`
			}
			if err := json.Unmarshal(tpl.Generated[terraform.FileOverride], &override); err != nil {
				t.Fatal(err)
			}
			m := override.Resource["aws_instance"]["m"]
			var got []string
			for _, a := range all {
				if _, ok := m[a]; ok {
					got = append(got, a)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("defaults %v, want %v", got, tt.want)
			}
			if _, ok := m["tags"]; !ok {
				t.Error("no tags")
			}
			if slices.Contains(got, "vpc_security_group_ids") && fmt.Sprint(m["vpc_security_group_ids"]) != "[${var.kloud_sg}]" {
				t.Errorf("vpc_security_group_ids = %v", m["vpc_security_group_ids"])
			}
		})
	}
}

// TestApplyWithoutBootstrap: without a bootstrap nothing is defaulted; an
// instance without its own AMI is logged (not refused: the composition
// must still destroy the stack).
func TestApplyWithoutBootstrap(t *testing.T) {
	s := composeStack(t, testCredential(), nil, "resource \"aws_instance\" \"a\" {\n  ami = \"ami-0a1b2c3d4e5f60718\"\n}\n\nresource \"aws_instance\" \"b\" {\n  instance_type = \"t3.micro\"\n}\n", stack.FormatHCL, nil)
	var logs bytes.Buffer
	s.Log = slog.New(slog.NewTextHandler(&logs, nil))
	tpl, err := s.ApplyTemplate(context.Background(), s.Credential)
	if err != nil {
		t.Fatal(err)
	}
	checkComposed(t, s, tpl, testCredential())
	for _, name := range keys(tpl.Generated) {
		if bytes.Contains(tpl.Generated[name], []byte("kloud_subnet")) || bytes.Contains(tpl.Generated[name], []byte("kloud_ami")) {
			t.Errorf("bootstrap values without a bootstrap in %s:\n%s", name, tpl.Generated[name])
		}
	}
	if !strings.Contains(logs.String(), "resource=aws_instance.b line=5") || strings.Contains(logs.String(), "aws_instance.a") {
		t.Errorf("log: %s", logs.String())
	}
}

// TestUserProviderBlock: the user's own provider "aws" blocks, aliased
// ones too, get the credential's region and keys.
func TestUserProviderBlock(t *testing.T) {
	content := `provider "aws" {
  region = "us-west-2"
}

provider "aws" {
  alias  = "other"
  region = "ap-south-1"
}

resource "aws_instance" "web" {
  provider = aws.other
}
`
	cred := testCredential()
	cred.SessionToken = "FwoGZXIvYXdzEBYaDH"
	cred.AccessKey = "ASIAIOSFODNN7EXAMPLE"
	s := composeStack(t, cred, testBootstrap(), content, stack.FormatHCL, nil)
	tpl, err := s.ApplyTemplate(context.Background(), s.Credential)
	if err != nil {
		t.Fatal(err)
	}
	checkComposed(t, s, tpl, cred)
	var override struct {
		Provider map[string][]map[string]any `json:"provider"`
	}
	if err := json.Unmarshal(tpl.Generated[terraform.FileOverride], &override); err != nil {
		t.Fatal(err)
	}
	blocks := override.Provider["aws"]
	if len(blocks) != 2 {
		t.Fatalf("provider overrides %v", blocks)
	}
	for _, b := range blocks {
		if b["region"] != "eu-west-1" || b["access_key"] != "${var.kloud_aws_access_key}" || b["secret_key"] != "${var.kloud_aws_secret_key}" || b["token"] != "${var.kloud_aws_session_token}" {
			t.Errorf("provider override %v", b)
		}
	}
	if blocks[1]["alias"] != "other" || tpl.Env[VarSessionToken].Reveal() != "FwoGZXIvYXdzEBYaDH" {
		t.Errorf("alias %v, env %v", blocks[1]["alias"], keys(tpl.Env))
	}
	if _, ok := tpl.Generated[terraform.FileProviders]; !ok || bytes.Contains(tpl.Generated[terraform.FileProviders], []byte(`"provider"`)) {
		t.Errorf("providers file:\n%s", tpl.Generated[terraform.FileProviders])
	}
}
