package sandbox

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
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
	"github.com/kloud/kloud/templates"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestRegistered(t *testing.T) {
	p, err := provider.Get(Name)
	if err != nil {
		t.Fatal(err)
	}
	if p.TerraformType() != "sandbox_machine" || p.Source != Source || !p.NoCloudInit || p.Userdata != "user_data" {
		t.Errorf("registration = %+v", p)
	}
	d, err := p.Describe()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(d)
	want := `{"name":"sandbox","resource_type":"sandbox_machine","credential":[{"name":"data_dir","label":"Data directory","type":"string","secret":false,"required":false}],"bootstrap":[{"name":"network","label":"Network","type":"string","secret":false,"required":true},{"name":"key_id","label":"Key ID","type":"string","secret":false,"required":true}]}`
	if string(b) != want {
		t.Errorf("description\n got %s\nwant %s", b, want)
	}
	md := p.Schema.NewMetadata(&stack.Machine{}).(*Metadata)
	if md.Region != "local" || md.Image != "sandbox" {
		t.Errorf("new metadata = %+v", md)
	}
}

func TestCredentialDecode(t *testing.T) {
	tests := []struct {
		data  string
		field string // "" when valid
	}{
		{`{}`, ""},
		{`{"data_dir": "/var/lib/kloud/sandbox"}`, ""},
		{`{"data_dir": "relative/dir"}`, "data_dir"},
		{`{"data_dir": "/a/../b"}`, "data_dir"},
		{`{"data_dir": "/a/"}`, "data_dir"},
		{`{"data_dir": "/a\nb"}`, "data_dir"},
		{`{"data_dir": 3}`, "data_dir"},
		{`{"dir": "/x"}`, "dir"},
	}
	for _, tt := range tests {
		_, err := provider.Decode(Schema.NewCredential, []byte(tt.data))
		var fe *provider.FieldError
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("%s: %v", tt.data, err)
		case tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field):
			t.Errorf("%s: err = %v, want a FieldError naming %s", tt.data, err, tt.field)
		}
	}
}

func newStack(t *testing.T, cred *Credential, kloudDir string) *Stack {
	t.Helper()
	p, err := provider.Get(Name)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(cred)
	st, err := p.Stack(&provider.BaseStack{
		Provider:   p,
		Credential: &stack.Credential{ID: "cr-1", OwnerID: "u-1", Provider: Name, Data: data},
		Cred:       cred,
		DataDir:    kloudDir,
		Service:    testHost(t, kloudDir),
	})
	if err != nil {
		t.Fatal(err)
	}
	return st.(*Stack)
}

// testHost is a sandbox host rooted in kloudDir/sandbox (a temp dir when
// kloudDir is empty) that also lets a credential name any temp dir.
func testHost(t *testing.T, kloudDir string) *Host {
	t.Helper()
	root := filepath.Join(kloudDir, SubDir)
	if kloudDir == "" {
		root = t.TempDir()
	}
	return startHost(t, HostConfig{Root: root, AllowedRoots: []string{os.TempDir()}})
}

// startHost makes a sandbox host with cfg and serves its API until the
// test ends.
func startHost(t *testing.T, cfg HostConfig) *Host {
	t.Helper()
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestVerifyCredential(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "a-file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		cred     *Credential
		kloudDir string
		want     string // "" for success; otherwise a part of the error
	}{
		{"existing dir", &Credential{DataDir: tmp}, "", ""},
		{"created dir", &Credential{DataDir: filepath.Join(tmp, "new", "deep")}, "", ""},
		{"default under kloud's data dir", &Credential{}, filepath.Join(tmp, "kloud"), ""},
		{"outside the roots", &Credential{DataDir: "/var/lib/elsewhere"}, "", "outside the sandbox root"},
		{"a file", &Credential{DataDir: file}, "", "sandbox data dir " + file + " cannot be created: not a directory"},
		{"under a file", &Credential{DataDir: filepath.Join(file, "sub")}, "", "sandbox data dir " + filepath.Join(file, "sub") + " cannot be created: not a directory"},
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(tmp, "read-only")
		if err := os.Mkdir(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			name     string
			cred     *Credential
			kloudDir string
			want     string
		}{"read-only", &Credential{DataDir: ro}, "", "sandbox data dir " + ro + " is not writable: permission denied"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t, tt.cred, tt.kloudDir)
			err := s.VerifyCredential(context.Background(), s.Credential)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				dir, _ := s.SandboxDir(s.Credential)
				probes, _ := filepath.Glob(filepath.Join(dir, ".kloud-probe-*"))
				if st, err := os.Stat(dir); err != nil || !st.IsDir() || len(probes) != 0 {
					t.Errorf("data dir %s: %v, probe files left: %v", dir, err, probes)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestBootstrapTemplates(t *testing.T) {
	dir := t.TempDir()
	s := newStack(t, &Credential{DataDir: dir}, "")
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
		t.Errorf("template = %+v", tpl)
	}
	if _, ok := tpl.Generated[terraform.FileProviders]; ok {
		t.Error("the bootstrap requires the sandbox plugin")
	}
	var vars map[string]string
	if err := json.Unmarshal(tpl.Generated[terraform.FileVarValues], &vars); err != nil {
		t.Fatal(err)
	}
	if vars["kloud_credential_id"] != "cr-1" || vars["kloud_data_dir"] != dir {
		t.Errorf("tfvars = %v", vars)
	}
	if testing.Short() {
		return
	}
	// Apply it with a real Terraform: the outputs decode into a Bootstrap.
	outputs := terraformApply(t, tpl, "")
	p, _ := provider.Get(Name)
	raw := map[string]json.RawMessage{}
	for k, o := range outputs {
		raw[k] = o.Value
	}
	v, stored, err := p.DecodeBootstrapOutputs(raw)
	if err != nil {
		t.Fatal(err)
	}
	b := v.(*Bootstrap)
	if b.Network != "kloud-cr-1" || !regexp.MustCompile(`^[0-9a-f-]{36}$`).MatchString(b.KeyID) {
		t.Errorf("bootstrap = %+v", b)
	}
	if !json.Valid(stored) {
		t.Errorf("stored %s", stored)
	}
}

type tfOutput struct {
	Value json.RawMessage `json:"value"`
}

// terraformApply writes tpl into a fresh directory and runs terraform init
// and apply in it (with the sandbox plugin mirror when pluginDir is set),
// returning the outputs. The working directory is returned through
// t.Cleanup-driven destroy when destroy is needed by the caller.
func terraformApply(t *testing.T, tpl *stack.Template, pluginDir string) map[string]tfOutput {
	t.Helper()
	work := t.TempDir()
	writeTemplate(t, work, tpl)
	return runTerraform(t, work, tpl, pluginDir, "apply")
}

func writeTemplate(t *testing.T, dir string, tpl *stack.Template) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, tpl.FileName()), []byte(tpl.Content), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, b := range tpl.Generated {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// runTerraform runs init (once) and then apply or destroy in dir.
func runTerraform(t *testing.T, dir string, tpl *stack.Template, pluginDir, verb string) map[string]tfOutput {
	t.Helper()
	tf := testenv.Terraform(t)
	mirror := pluginDir
	if mirror == "" {
		mirror = t.TempDir()
	}
	env := testenv.TerraformEnv(testenv.CLIConfig(t, mirror))
	for k, v := range tpl.Env {
		env = append(env, "TF_VAR_"+k+"="+v.Reveal())
	}
	for k, v := range tpl.ProviderEnv {
		env = append(env, k+"="+v.Reveal())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run := func(args ...string) []byte {
		cmd := exec.CommandContext(ctx, tf, args...)
		cmd.Dir, cmd.Env = dir, env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("terraform %s: %v\n%s%s", args[0], err, stdout.Bytes(), stderr.Bytes())
		}
		for _, v := range tpl.Env {
			if bytes.Contains(stdout.Bytes(), []byte(v.Reveal())) || bytes.Contains(stderr.Bytes(), []byte(v.Reveal())) {
				t.Errorf("terraform %s printed a secret", args[0])
			}
		}
		return stdout.Bytes()
	}
	if _, err := os.Stat(filepath.Join(dir, ".terraform.lock.hcl")); err != nil {
		run("init", "-input=false", "-no-color")
	}
	run(verb, "-input=false", "-auto-approve", "-no-color")
	if verb == "destroy" {
		return nil
	}
	var outputs map[string]tfOutput
	if err := json.Unmarshal(run("output", "-json"), &outputs); err != nil {
		t.Fatal(err)
	}
	return outputs
}

// TestApplyTemplateGolden composes the embedded example
// (templates/sandbox/main.tf) as a stack would be applied, with a
// bootstrapped credential, and compares the generated files.
func TestApplyTemplateGolden(t *testing.T) {
	dataDir := t.TempDir()
	s := newStack(t, &Credential{DataDir: dataDir}, "")
	example, err := templates.Example(Name)
	if err != nil {
		t.Fatal(err)
	}
	s.Stack = &stack.Stack{ID: "st-1", OwnerID: "u-1", TemplateID: "tp-1", Variables: map[string]string{"web_count": "2"}}
	s.Template = &stack.Template{ID: "tp-1", Title: "web and db", Provider: Name, Format: stack.FormatHCL, Content: string(example)}
	s.Bootstrap = &Bootstrap{Network: "kloud-cr-1", KeyID: "0b7e2a44-5ad4-4c1e-9d55-31c7c1f0e2aa"}
	s.KloudURL = "http://127.0.0.1:8080"
	s.AgentSecret = "0123456789abcdef0123456789abcdef"

	tpl, err := s.ApplyTemplate(context.Background(), s.Credential)
	if err != nil {
		t.Fatal(err)
	}
	if tpl.Content != string(example) {
		t.Error("the user's template was changed")
	}
	var got bytes.Buffer
	names := make([]string, 0, len(tpl.Generated))
	for n := range tpl.Generated {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		g := bytes.ReplaceAll(tpl.Generated[n], []byte(dataDir), []byte("$DATA_DIR"))
		g = bytes.ReplaceAll(g, []byte(s.Service.(*Host).Endpoint()), []byte("$SANDBOX_ENDPOINT"))
		fmt.Fprintf(&got, "=== %s ===\n%s", n, g)
		if bytes.Contains(tpl.Generated[n], []byte(s.AgentSecret.Reveal())) {
			t.Errorf("%s holds the agent secret", n)
		}
	}
	fmt.Fprintf(&got, "=== env ===\n%s\n", strings.Join(keys(tpl.Env), "\n"))
	fmt.Fprintf(&got, "=== provider env ===\n%s\n", strings.Join(keys(tpl.ProviderEnv), "\n"))
	golden := filepath.Join("testdata", "apply_example.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("composed files differ from %s:\n%s", golden, got.Bytes())
	}

	rec, err := os.ReadFile(NetworkRecordFile(dataDir, "kloud-cr-1"))
	if err != nil {
		t.Fatal(err)
	}
	var nr NetworkRecord
	if err := json.Unmarshal(rec, &nr); err != nil || nr != (NetworkRecord{Network: "kloud-cr-1", KeyID: "0b7e2a44-5ad4-4c1e-9d55-31c7c1f0e2aa", CredentialID: "cr-1"}) {
		t.Errorf("network record %s: %v", rec, err)
	}
}

func TestApplyTemplateErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		vars    map[string]string
		boot    *Bootstrap
		want    error
	}{
		{"policy", "resource \"sandbox_machine\" \"a\" {\n  user_data = file(\"/etc/passwd\")\n}\n", nil, nil, terraform.ErrInvalidTemplate},
		{"undeclared variable", "resource \"sandbox_machine\" \"a\" {}\n", map[string]string{"x": "1"}, nil, terraform.ErrUndeclaredVariable},
		{"bad network", "resource \"sandbox_machine\" \"a\" {}\n", nil, &Bootstrap{Network: "../x", KeyID: "k"}, provider.ErrInvalidField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t, &Credential{DataDir: t.TempDir()}, "")
			s.Stack = &stack.Stack{ID: "st-1", Variables: tt.vars}
			s.Template = &stack.Template{Format: stack.FormatHCL, Content: tt.content}
			s.AgentSecret = "secret"
			if tt.boot != nil {
				s.Bootstrap = tt.boot
			}
			if _, err := s.ApplyTemplate(context.Background(), s.Credential); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
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

func TestCheckTemplate(t *testing.T) {
	tests := []struct {
		name, content string
		lines         []int
	}{
		{"none", "resource \"sandbox_machine\" \"m\" {\n  name = \"m\"\n}\n", nil},
		{"empty block", "provider \"sandbox\" {}\n", nil},
		{"endpoint and token", "provider \"sandbox\" {\n  endpoint = \"http://x\"\n  token = var.t\n}\n", []int{2, 3}},
		{"aliased data_dir", "provider \"sandbox\" {\n  alias = \"b\"\n  data_dir = \"/\"\n}\n", []int{3}},
		{"other provider", "provider \"aws\" {\n  token = \"x\"\n}\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := terraform.ParseTemplate("main.tf", []byte(tt.content), stack.FormatHCL)
			if err != nil {
				t.Fatal(err)
			}
			var lines []int
			for _, d := range CheckTemplate(p) {
				lines = append(lines, d.Line)
			}
			if fmt.Sprint(lines) != fmt.Sprint(tt.lines) {
				t.Errorf("diagnostics at lines %v, want %v", lines, tt.lines)
			}
		})
	}
}
