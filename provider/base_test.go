package provider

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
)

const baseTemplate = `variable "web_count" {
  type    = number
  default = 1
}

resource "t-base_machine" "web" {
  count = var.web_count
  tags  = { Name = "web" }
}
`

func newBaseStack() *BaseStack {
	return &BaseStack{
		Provider: newFake("t-base"),
		Stack: &stack.Stack{
			ID: "st-1", OwnerID: "u-1", TemplateID: "tp-1",
			Variables: map[string]string{"web_count": "2"},
		},
		Template:    &stack.Template{ID: "tp-1", Title: "web", Format: stack.FormatHCL, Content: baseTemplate},
		Credential:  &stack.Credential{ID: "cr-1", OwnerID: "u-1"},
		Cred:        &testCredential{AccessKey: "AKIA", SecretKey: "secret-key-value", Region: "eu-west-1"},
		Bootstrap:   &testBootstrap{Network: "net-1", KeyID: "key-secret-42"},
		KloudURL:    "http://127.0.0.1:9000",
		AgentSecret: "agent-secret-0123456789",
		DataDir:     "/var/lib/kloud",
	}
}

func TestBaseStackCompose(t *testing.T) {
	bs := newBaseStack()
	credVars, err := StructVariables("kloud_", bs.Cred)
	if err != nil {
		t.Fatal(err)
	}
	bootVars, err := bs.BootstrapVariables()
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := bs.Compose(ComposeOptions{
		ProviderConfig:      map[string]terraform.Value{"access_key": terraform.Var("kloud_access_key"), "secret_key": terraform.Var("kloud_secret_key")},
		Variables:           append(credVars, bootVars...),
		Defaults:            map[string]terraform.Value{"network": terraform.Var("kloud_network")},
		KloudURLAttribute:   "kloud_url",
		AgentTokenAttribute: "agent_token",
		TagsAttribute:       "tags",
		Tags:                map[string]string{"extra": "x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if tpl == bs.Template || tpl.Content != bs.Template.Content || tpl.ID != "tp-1" || bs.Template.Generated != nil {
		t.Error("Compose must return a copy holding the user's content unchanged")
	}
	for _, name := range []string{terraform.FileProviders, terraform.FileVariables, terraform.FileVarValues, terraform.FileOverride} {
		if _, ok := tpl.Generated[name]; !ok {
			t.Errorf("%s not generated", name)
		}
	}
	// Secrets reach Terraform only through the environment.
	wantEnv := map[string]string{
		terraform.AgentSecretVar: "agent-secret-0123456789",
		"kloud_secret_key":       "secret-key-value",
		"kloud_key_id":           "key-secret-42",
	}
	for k, v := range wantEnv {
		if tpl.Env[k].Reveal() != v {
			t.Errorf("Env[%s] = %q, want %q", k, tpl.Env[k].Reveal(), v)
		}
	}
	if len(tpl.Env) != len(wantEnv) {
		t.Errorf("Env has %v", keys(tpl.Env))
	}
	for name, b := range tpl.Generated {
		for _, secret := range wantEnv {
			if strings.Contains(string(b), secret) {
				t.Errorf("%s holds a secret", name)
			}
		}
	}
	var values map[string]any
	if err := json.Unmarshal(tpl.Generated[terraform.FileVarValues], &values); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"web_count": "2", "kloud_url": "http://127.0.0.1:9000", "kloud_access_key": "AKIA", "kloud_region": "eu-west-1", "kloud_network": "net-1"} {
		if values[k] != v {
			t.Errorf("tfvars %s = %v, want %v", k, values[k], v)
		}
	}
	override := string(tpl.Generated[terraform.FileOverride])
	for _, want := range []string{
		`"agent_token": "${sha256(\"${var.kloud_agent_secret}|t-base_machine.web[${count.index}]\")}"`,
		`"kloud_url": "${var.kloud_url}"`,
		`"network": "${var.kloud_network}"`,
		`"tags": "${merge({ Name = \"web\" }, {\"extra\" = \"x\", \"kloud_owner\" = \"u-1\", \"kloud_stack_id\" = \"st-1\", \"kloud_template_id\" = \"tp-1\"})}"`,
	} {
		if !strings.Contains(override, want) {
			t.Errorf("override lacks %s:\n%s", want, override)
		}
	}
}

func TestBaseStackComposeErrors(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*BaseStack, *ComposeOptions)
		is   error
		msg  string
	}{
		{"no template", func(bs *BaseStack, _ *ComposeOptions) { bs.Template = nil }, ErrNoTemplate, ""},
		{"policy", func(bs *BaseStack, _ *ComposeOptions) {
			bs.Template.Content += "data \"external\" \"x\" {}\n"
		}, terraform.ErrInvalidTemplate, "main.tf:10:1"},
		{"no agent secret", func(bs *BaseStack, o *ComposeOptions) { bs.AgentSecret = ""; o.AgentTokenAttribute = "agent_token" }, nil, "no agent secret"},
		{"undeclared variable", func(bs *BaseStack, _ *ComposeOptions) { bs.Stack.Variables["nope"] = "1" }, terraform.ErrUndeclaredVariable, "nope"},
		{"secret masked in error", func(bs *BaseStack, o *ComposeOptions) {
			o.Inject = map[string]terraform.Value{"x": terraform.Expr("agent-secret-0123456789 +")}
		}, terraform.ErrCompose, "********"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := newBaseStack()
			var opts ComposeOptions
			tt.mod(bs, &opts)
			_, err := bs.Compose(opts)
			if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v; want %v containing %q", err, tt.is, tt.msg)
			}
			if strings.Contains(err.Error(), "agent-secret-0123456789") {
				t.Errorf("error leaks the agent secret: %v", err)
			}
		})
	}
}

func TestComposeBootstrap(t *testing.T) {
	bs := newBaseStack()
	bs.Stack, bs.Template, bs.Bootstrap = nil, nil, nil
	content := `{
  "variable": {"kloud_credential_id": {"type": "string"}},
  "resource": {"terraform_data": {"key": {"input": "${var.kloud_credential_id}"}}},
  "output": {"key_id": {"value": "${terraform_data.key.id}"}}
}`
	tpl, err := bs.ComposeBootstrap("bootstrap", []byte(content), stack.FormatJSON, ComposeOptions{
		Variables:           []terraform.Variable{{Name: "kloud_credential_id", Value: "cr-1"}},
		AgentTokenAttribute: "ignored",
	})
	if err != nil {
		t.Fatal(err)
	}
	if tpl.FileName() != "main.tf.json" || tpl.Content != content || tpl.Provider != "t-base" || tpl.OwnerID != "u-1" {
		t.Errorf("template = %+v", tpl)
	}
	// No resource of the provider: no provider requirement, no plugin.
	if _, ok := tpl.Generated[terraform.FileProviders]; ok {
		t.Error("a bootstrap of builtin resources requires the provider")
	}
	if _, ok := tpl.Generated[terraform.FileVariables]; ok {
		t.Error("the template's own variable was declared again")
	}
	if string(tpl.Generated[terraform.FileVarValues]) != "{\n  \"kloud_credential_id\": \"cr-1\"\n}\n" {
		t.Errorf("tfvars = %s", tpl.Generated[terraform.FileVarValues])
	}
	if len(tpl.Env) != 0 {
		t.Errorf("env = %v", keys(tpl.Env))
	}
}

func TestMasker(t *testing.T) {
	m := NewMasker("abc", "", "abcdef", `q"uote\`, "abc")
	tests := []struct{ in, want string }{
		{"x abcdef y abc z", "x ******** y ******** z"},
		{`json: "q\"uote\\"`, `json: "********"`},
		{`raw: q"uote\`, `raw: ********`},
		{"nothing here", "nothing here"},
	}
	for _, tt := range tests {
		if got := m.Mask(tt.in); got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if NewMasker().Mask("abc") != "abc" || (*Masker)(nil).Mask("abc") != "abc" {
		t.Error("an empty masker changed its input")
	}

	// MaskError is tested with the masker, in internal/secretmask.
}

func TestBaseStackMask(t *testing.T) {
	bs := newBaseStack()
	line := "secret-key-value agent-secret-0123456789 key-secret-42 AKIA net-1"
	if got := bs.Mask(line); got != "******** ******** ******** AKIA net-1" {
		t.Errorf("Mask = %q", got)
	}
	bm := &BaseMachine{Cred: bs.Cred, Bootstrap: bs.Bootstrap}
	if got := bm.Mask(line); got != "******** agent-secret-0123456789 ******** AKIA net-1" {
		t.Errorf("BaseMachine.Mask = %q", got)
	}
	if got := (&BaseStack{}).Mask("plain"); got != "plain" {
		t.Errorf("empty BaseStack Mask = %q", got)
	}
}

func TestStructVariables(t *testing.T) {
	vars, err := StructVariables("kloud_", &testCredential{AccessKey: "a", SecretKey: "s", Region: "us-east-1", Port: 0, Debug: true, Ratio: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]terraform.Variable{}
	for _, v := range vars {
		got[v.Name] = v
	}
	if _, ok := got["kloud_port"]; ok {
		t.Error("a zero optional field became a variable")
	}
	if v := got["kloud_secret_key"]; !v.IsSecret() || v.Value.(stack.Secret).Reveal() != "s" {
		t.Errorf("secret_key = %+v", v)
	}
	if v := got["kloud_region"]; v.Value != "us-east-1" || v.Type != "string" || v.Description != "Region" {
		t.Errorf("region = %+v", v)
	}
	if v := got["kloud_debug"]; v.Value != true || v.Type != "bool" {
		t.Errorf("debug = %+v", v)
	}
	if v := got["kloud_ratio"]; v.Value != 0.5 || v.Type != "number" {
		t.Errorf("ratio = %+v", v)
	}
	if vars, err := StructVariables("x_", nil); vars != nil || err != nil {
		t.Errorf("nil value: %v, %v", vars, err)
	}
	if _, err := StructVariables("x_", 3); err == nil {
		t.Error("a non-struct value was accepted")
	}
}

func TestProviderDecodeHelpers(t *testing.T) {
	p := newFake("t-decode")
	c := &stack.Credential{
		ID:           "cr-1",
		Data:         json.RawMessage(`{"access_key":"a","secret_key":"s","region":"eu-west-1","ratio":1}`),
		Bootstrap:    json.RawMessage(`{"network":"n","key_id":"k"}`),
		Bootstrapped: true,
	}
	cred, boot, err := p.DecodeCredential(c)
	if err != nil {
		t.Fatal(err)
	}
	if cred.(*testCredential).SecretKey.Reveal() != "s" || boot.(*testBootstrap).KeyID.Reveal() != "k" {
		t.Errorf("decoded %+v %+v", cred, boot)
	}
	c.Data = json.RawMessage(`{"access_key":"a"}`)
	var fe *FieldError
	if _, _, err := p.DecodeCredential(c); !errors.As(err, &fe) || fe.Field != "secret_key" {
		t.Errorf("bad credential: err = %v", err)
	}

	v, stored, err := p.DecodeBootstrapOutputs(map[string]json.RawMessage{"network": json.RawMessage(`"net"`), "key_id": json.RawMessage(`"kid"`)})
	if err != nil {
		t.Fatal(err)
	}
	if v.(*testBootstrap).KeyID.Reveal() != "kid" || !strings.Contains(string(stored), `"kid"`) {
		t.Errorf("bootstrap %+v stored %s: the secret must be stored, not masked", v, stored)
	}
	if _, _, err := p.DecodeBootstrapOutputs(map[string]json.RawMessage{"network": json.RawMessage(`"n"`), "extra": json.RawMessage(`1`)}); !errors.As(err, &fe) || fe.Field != "extra" {
		t.Errorf("unknown output: err = %v", err)
	}

	m := &stack.Machine{ID: "m-1", Metadata: json.RawMessage(`{"address":"127.0.0.1:1"}`)}
	meta, err := p.DecodeMetadata(m)
	if err != nil || meta.(*testMetadata).Address != "127.0.0.1:1" {
		t.Errorf("metadata %+v, %v", meta, err)
	}
	m.Metadata = nil
	if meta, err := p.DecodeMetadata(m); err != nil || meta.(*testMetadata).Address != "" {
		t.Errorf("empty metadata %+v, %v", meta, err)
	}
	m.Metadata = json.RawMessage(`[`)
	if _, err := p.DecodeMetadata(m); err == nil || !strings.Contains(err.Error(), "m-1") {
		t.Errorf("bad metadata: err = %v", err)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
