package terraform

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"
	tfjson "github.com/hashicorp/terraform-json"

	"github.com/kloud/kloud/internal/confine"
	"github.com/kloud/kloud/internal/secretmask"
	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/provider/sandbox/sandboxhost"
	"github.com/kloud/kloud/stack"
)

// hangGuard bounds how long a test waits for something that should happen
// at once; it only turns a hang into a failure.
const hangGuard = 2 * time.Minute

// memBackend is an in-memory StateBackend that, like the store, refuses a
// serial that does not increase.
type memBackend struct {
	mu       sync.Mutex
	versions map[string][]memVersion
}

type memVersion struct {
	serial  int64
	lineage string
	state   []byte
}

var errStaleSerial = errors.New("stale serial")

func newMemBackend() *memBackend { return &memBackend{versions: map[string][]memVersion{}} }

func (b *memBackend) LoadState(_ context.Context, key string) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v := b.versions[key]
	if len(v) == 0 {
		return nil, nil
	}
	return bytes.Clone(v[len(v)-1].state), nil
}

func (b *memBackend) SaveState(_ context.Context, key string, serial int64, lineage string, state []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	v := b.versions[key]
	if len(v) > 0 && serial <= v[len(v)-1].serial {
		return fmt.Errorf("save serial %d after %d: %w", serial, v[len(v)-1].serial, errStaleSerial)
	}
	b.versions[key] = append(v, memVersion{serial: serial, lineage: lineage, state: bytes.Clone(state)})
	return nil
}

func (b *memBackend) saved(key string) []memVersion {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]memVersion(nil), b.versions[key]...)
}

func (b *memBackend) latest(t *testing.T, key string) *rawState {
	t.Helper()
	v := b.saved(key)
	if len(v) == 0 {
		t.Fatalf("no state saved for %s", key)
	}
	s, err := decodeRawState(v[len(v)-1].state)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// lines collects a run's output.
type lines struct {
	mu  sync.Mutex
	all []string
	// watch, if set, is called with each line (under mu).
	watch func(string)
}

func (l *lines) output(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, line)
	if l.watch != nil {
		l.watch(line)
	}
}

func (l *lines) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n")
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestRunner(t *testing.T, backend StateBackend, mod ...func(*RunnerConfig)) *Runner {
	t.Helper()
	cfg := RunnerConfig{
		TerraformPath: testenv.Terraform(t),
		WorkRoot:      t.TempDir(),
		Backend:       backend,
		Log:           quietLog(),
	}
	for _, m := range mod {
		m(&cfg)
	}
	r, err := NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func hclTemplate(content string, env map[string]stack.Secret) *stack.Template {
	return &stack.Template{Format: stack.FormatHCL, Content: content, Env: env}
}

func addresses[T any](items []T, addr func(T) string) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, addr(it))
	}
	sort.Strings(out)
	return out
}

func stateAddrs(res []StateResource) []string {
	return addresses(res, func(r StateResource) string { return r.Address })
}

const twoData = `
resource "terraform_data" "a" {
  count = 2
  input = "a-${count.index}"
}
resource "terraform_data" "b" {
  input = { name = "b", n = 3 }
}
output "first" { value = terraform_data.a[0].output }
`

func TestRunnerPlanShowsResources(t *testing.T) {
	backend := newMemBackend()
	r := newTestRunner(t, backend)
	// A file left from an earlier template must not be part of this run.
	if err := os.MkdirAll(r.WorkDir("plan1"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.WorkDir("plan1"), "stale.tf"), []byte(`resource "terraform_data" "stale" {}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out lines
	res, err := r.Plan(context.Background(), Run{Key: "plan1", Template: hclTemplate(twoData, nil), Output: out.output})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changes {
		t.Error("Changes = false, want true for a plan that creates resources")
	}
	got := addresses(res.Resources, func(p PlannedResource) string { return p.Address + " " + p.Action })
	want := []string{"terraform_data.a[0] create", "terraform_data.a[1] create", "terraform_data.b create"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("planned = %q, want %q", got, want)
	}
	for _, p := range res.Resources {
		if p.Type != "terraform_data" {
			t.Errorf("%s: Type = %q", p.Address, p.Type)
		}
		if p.Address == "terraform_data.a[1]" {
			if p.Index != 1 || p.Name != "a" || p.Values["input"] != "a-1" {
				t.Errorf("a[1] = %+v, want index 1, name a, input a-1", p)
			}
		}
	}
	if !strings.Contains(out.text(), "Plan: 3 to add") {
		t.Errorf("output lacks the plan summary:\n%s", out.text())
	}
	if len(backend.saved("plan1")) != 0 {
		t.Error("a plan saved a state")
	}
	if _, err := os.Stat(filepath.Join(r.WorkDir("plan1"), planFileName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("plan file left in the working dir (stat err %v)", err)
	}
}

func TestRunnerApplyVersionsState(t *testing.T) {
	backend := newMemBackend()
	r := newTestRunner(t, backend)
	ctx := context.Background()
	run := Run{Key: "st-1", Template: hclTemplate(twoData, nil)}

	res, err := r.Apply(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := stateAddrs(res.Resources), []string{"terraform_data.a[0]", "terraform_data.a[1]", "terraform_data.b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("resources = %q, want %q", got, want)
	}
	if res.Outputs["first"] != "a-0" {
		t.Errorf("output first = %v, want a-0", res.Outputs["first"])
	}
	if n := len(ResourcesOfType(res.Resources, "terraform_data")); n != 3 {
		t.Errorf("ResourcesOfType(terraform_data) = %d, want 3", n)
	}
	if n := len(ResourcesOfType(res.Resources, "sandbox_machine")); n != 0 {
		t.Errorf("ResourcesOfType(sandbox_machine) = %d, want 0", n)
	}
	v1 := backend.saved(run.Key)
	if len(v1) != 1 || v1[0].serial != res.Serial || v1[0].lineage != res.Lineage || res.Lineage == "" {
		t.Fatalf("after the first apply: saved %d versions, result serial %d lineage %q", len(v1), res.Serial, res.Lineage)
	}

	// A changed template: a new, higher serial of the same lineage.
	run.Template = hclTemplate(strings.Replace(twoData, `"a-${count.index}"`, `"A-${count.index}"`, 1), nil)
	res2, err := r.Apply(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	v2 := backend.saved(run.Key)
	if len(v2) != 2 || v2[1].serial <= v2[0].serial || v2[1].lineage != v2[0].lineage {
		t.Fatalf("after the second apply: versions %+v", v2)
	}
	if res2.Outputs["first"] != "A-0" {
		t.Errorf("output first = %v, want A-0", res2.Outputs["first"])
	}

	// Unchanged: Terraform keeps the serial, nothing is saved again.
	if _, err := r.Apply(ctx, run); err != nil {
		t.Fatal(err)
	}
	if n := len(backend.saved(run.Key)); n != 2 {
		t.Errorf("a no-op apply saved a state: %d versions", n)
	}
}

func TestRunnerFailedApplySavesState(t *testing.T) {
	backend := newMemBackend()
	r := newTestRunner(t, backend)
	// b's precondition depends on a's id, known only once a is created, so
	// it fails during the apply, after a exists.
	const failing = `
resource "terraform_data" "a" {
  input = "made"
}
resource "terraform_data" "b" {
  input = terraform_data.a.id
  lifecycle {
    precondition {
      condition     = terraform_data.a.id == "never"
      error_message = "b refuses to be created."
    }
  }
}
`
	var out lines
	res, err := r.Apply(context.Background(), Run{Key: "fail", Template: hclTemplate(failing, nil), Output: out.output})
	if err == nil {
		t.Fatal("apply succeeded, want the precondition to fail")
	}
	if !errors.Is(err, ErrTerraformFailed) {
		t.Errorf("error %v does not wrap ErrTerraformFailed", err)
	}
	if !strings.Contains(err.Error(), "b refuses to be created.") {
		t.Errorf("error %q does not carry Terraform's message", err)
	}
	if res == nil {
		t.Fatal("no result with the error")
	}
	if got := stateAddrs(res.Resources); !reflect.DeepEqual(got, []string{"terraform_data.a"}) {
		t.Errorf("resources = %q, want terraform_data.a", got)
	}
	saved := backend.latest(t, "fail")
	var instances []string
	for _, r := range saved.Resources {
		for range r.Instances {
			instances = append(instances, r.Name)
		}
	}
	if saved.Serial != res.Serial || !reflect.DeepEqual(instances, []string{"a"}) {
		t.Errorf("saved state serial %d holds instances of %q, want serial %d holding a", saved.Serial, instances, res.Serial)
	}
}

func TestRunnerRestoreOnFreshWorkRoot(t *testing.T) {
	backend := newMemBackend()
	ctx := context.Background()
	run := Run{Key: "moved", Template: hclTemplate(twoData, nil)}
	first := newTestRunner(t, backend)
	if _, err := first.Apply(ctx, run); err != nil {
		t.Fatal(err)
	}

	// Another replica: its own, empty work root, the same backend.
	second := newTestRunner(t, backend)
	plan, err := second.Plan(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Changes {
		t.Error("plan on a fresh work root shows changes; the state was not restored")
	}
	for _, p := range plan.Resources {
		if p.Action != "no-op" {
			t.Errorf("%s: action %s, want no-op", p.Address, p.Action)
		}
	}
	if len(plan.Resources) != 3 {
		t.Errorf("plan lists %d resources, want 3", len(plan.Resources))
	}

	// Destroy on the second replica empties the state...
	res, err := second.Destroy(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Resources) != 0 {
		t.Errorf("after destroy: resources %q", stateAddrs(res.Resources))
	}
	saved := backend.saved(run.Key)
	if len(saved) != 2 || saved[1].serial <= saved[0].serial {
		t.Fatalf("destroy saved versions %+v", saved)
	}
	if s := backend.latest(t, run.Key); len(s.Resources) != 0 {
		t.Errorf("saved state after destroy holds %d resources", len(s.Resources))
	}

	// ...and the first replica's stale working directory does not win over
	// the backend: planning there creates everything anew.
	plan, err = first.Plan(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range plan.Resources {
		if p.Action != "create" {
			t.Errorf("stale replica: %s action %s, want create", p.Address, p.Action)
		}
	}
}

// TestRunnerSecrets checks that Template.Env reaches Terraform as TF_VAR_*,
// that no secret is written to any file of the working directory nor shown
// in an output line, and that the server's environment does not leak into
// Terraform's.
func TestRunnerSecrets(t *testing.T) {
	const secret = "s3cr3t-Ünïcode-\"quoted\"-token"
	const canary = "kloud-admin-canary-7d1f"
	t.Setenv("KLOUD_ADMIN_TOKEN", canary)
	backend := newMemBackend()
	r := newTestRunner(t, backend, func(c *RunnerConfig) { c.ExtraEnv = map[string]string{"KLOUD_EXTRA": "extra-value"} })
	ctx := context.Background()
	env := map[string]stack.Secret{"token": stack.Secret(secret)}
	const key = "secret-stack"

	// The plan prints the secret in a check's message: it must come out
	// masked. The plan file, which holds variable values, must be gone.
	shows := `
variable "token" { type = string }
resource "terraform_data" "h" { triggers_replace = sha256(var.token) }
check "shown" {
  assert {
    condition     = var.token == ""
    error_message = "token is ${var.token}"
  }
}
`
	var out lines
	if _, err := r.Plan(ctx, Run{Key: key, Template: hclTemplate(shows, env), Output: out.output}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.text(), "token is "+secretmask.Mask) {
		t.Errorf("the check message should be in the output, masked:\n%s", out.text())
	}
	assertNoSecret(t, r.WorkDir(key), out.text(), secret)

	// The apply stores only a hash of the secret and prints the process
	// environment: TF_VAR_token masked, the server's own variables absent.
	applies := `
variable "token" { type = string }
resource "terraform_data" "h" {
  triggers_replace = sha256(var.token)
  provisioner "local-exec" { command = "env" }
}
`
	out = lines{}
	res, err := r.Apply(ctx, Run{Key: key, Template: hclTemplate(applies, env), Output: out.output})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(secret))
	h := ResourcesOfType(res.Resources, "terraform_data")
	if len(h) != 1 {
		t.Fatalf("resources %q", stateAddrs(res.Resources))
	}
	if got := h[0].Values["triggers_replace"]; !reflect.DeepEqual(got, map[string]any{"value": hex.EncodeToString(sum[:]), "type": "string"}) {
		t.Errorf("triggers_replace = %v: the secret did not reach Terraform through TF_VAR_token", got)
	}
	text := out.text()
	for _, want := range []string{"TF_VAR_token=" + secretmask.Mask, "KLOUD_EXTRA=extra-value", "HOME=" + r.WorkDir(key), "TF_IN_AUTOMATION=1"} {
		if !strings.Contains(text, want) {
			t.Errorf("terraform's environment lacks %q", want)
		}
	}
	if strings.Contains(text, canary) || strings.Contains(text, "KLOUD_ADMIN_TOKEN") {
		t.Error("the server's environment leaked into terraform's")
	}
	assertNoSecret(t, r.WorkDir(key), text, secret)

	out = lines{}
	if _, err := r.Destroy(ctx, Run{Key: key, Template: hclTemplate(applies, env), Output: out.output}); err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, r.WorkDir(key), out.text(), secret)
	for _, v := range backend.saved(key) {
		if bytes.Contains(v.state, []byte(secret)) {
			t.Errorf("saved state serial %d holds the secret", v.serial)
		}
	}
}

// assertNoSecret fails if the secret is in any file under dir or in text.
func assertNoSecret(t *testing.T, dir, text, secret string) {
	t.Helper()
	if strings.Contains(text, secret) {
		t.Error("an output line holds the secret")
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the secret", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRunnerCancel cancels an apply while a provisioner sleeps: the apply
// returns with the context's error, the state of what was created is saved,
// and no process is left. Meanwhile the same key is refused and another key
// runs.
func TestRunnerCancel(t *testing.T) {
	t.Run("unconfined", func(t *testing.T) { testRunnerCancel(t) })
	t.Run("confined", func(t *testing.T) { testRunnerCancel(t, confined(t)) })
}

func testRunnerCancel(t *testing.T, mod ...func(*RunnerConfig)) {
	backend := newMemBackend()
	r := newTestRunner(t, backend, mod...)
	const slow = `
resource "terraform_data" "a" {
  input = "first"
}
resource "terraform_data" "slow" {
  input = terraform_data.a.output
  provisioner "local-exec" {
    command = "sleep 30"
  }
}
`
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sleeping := make(chan struct{})
	var once sync.Once
	out := &lines{watch: func(l string) {
		if strings.Contains(l, "Executing:") {
			once.Do(func() { close(sleeping) })
		}
	}}
	type result struct {
		res *ApplyResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := r.Apply(ctx, Run{Key: "slow", Template: hclTemplate(slow, nil), Output: out.output})
		done <- result{res, err}
	}()
	select {
	case <-sleeping:
	case res := <-done:
		t.Fatalf("apply ended before the provisioner ran: %v\n%s", res.err, out.text())
	case <-time.After(hangGuard):
		t.Fatalf("the provisioner never started:\n%s", out.text())
	}

	if _, err := r.Plan(context.Background(), Run{Key: "slow", Template: hclTemplate(slow, nil)}); !errors.Is(err, ErrRunInProgress) {
		t.Errorf("a second run of the same key: err %v, want ErrRunInProgress", err)
	}
	if err := r.RemoveWorkDir("slow"); !errors.Is(err, ErrRunInProgress) {
		t.Errorf("RemoveWorkDir while running: err %v, want ErrRunInProgress", err)
	}
	if _, err := r.Apply(context.Background(), Run{Key: "other", Template: hclTemplate(twoData, nil)}); err != nil {
		t.Errorf("another key could not run meanwhile: %v", err)
	}

	cancel()
	var got result
	select {
	case got = <-done:
	case <-time.After(hangGuard):
		t.Fatal("a cancelled apply did not return")
	}
	if !errors.Is(got.err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", got.err)
	}
	testenv.NoProcesses(t, r.WorkDir("slow"))

	// What was created is in the saved state; the interrupted resource is
	// tainted or absent.
	if got.res == nil {
		t.Fatal("no result with the error")
	}
	saved := backend.latest(t, "slow")
	if saved.Serial != got.res.Serial {
		t.Errorf("saved serial %d, result serial %d", saved.Serial, got.res.Serial)
	}
	var names []string
	for _, res := range got.res.Resources {
		if res.Name == "slow" && !res.Tainted {
			t.Error("the interrupted resource is in the state untainted")
		}
		names = append(names, res.Name)
	}
	if len(names) == 0 || names[0] != "a" {
		t.Errorf("state after cancel holds %q, want a first", names)
	}

	// The key is free again and the state consistent: destroy cleans up.
	res, err := r.Destroy(context.Background(), Run{Key: "slow", Template: hclTemplate(slow, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Resources) != 0 {
		t.Errorf("after destroy: %q", stateAddrs(res.Resources))
	}
}

// fakeTerraform writes a shell script standing in for terraform: it reports
// version, and for any other command prints "started", ignores interrupts
// and waits on a child that holds its output open.
func fakeTerraform(t *testing.T, version string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "terraform")
	script := `#!/bin/sh
if [ "$1" = version ]; then
  echo '{"terraform_version":"` + version + `","platform":"linux_amd64","provider_selections":{},"terraform_outdated":false}'
  exit 0
fi
trap '' INT
echo started
sleep 30 &
wait
`
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRunnerKillsAfterGrace: a Terraform that ignores its interrupt is
// killed, with its process group, once the grace period is over.
func TestRunnerKillsAfterGrace(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc")
	}
	r, err := NewRunner(RunnerConfig{
		TerraformPath: fakeTerraform(t, "1.5.7"),
		WorkRoot:      t.TempDir(),
		Backend:       newMemBackend(),
		Log:           quietLog(),
		GracePeriod:   100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	var once sync.Once
	out := &lines{watch: func(l string) {
		if l == "started" {
			once.Do(func() { close(started) })
		}
	}}
	done := make(chan error, 1)
	go func() {
		_, err := r.Apply(ctx, Run{Key: "stubborn", Template: hclTemplate("", nil), Output: out.output})
		done <- err
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("the fake terraform ended early: %v", err)
	case <-time.After(hangGuard):
		t.Fatal("the fake terraform never started")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("a terraform ignoring its interrupt was never killed")
	}
	testenv.NoProcesses(t, r.WorkDir("stubborn"))
}

func TestRunnerNewChecks(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  RunnerConfig
		want string
		is   error
	}{
		{"no binary", RunnerConfig{WorkRoot: dir}, "TerraformPath is required", nil},
		{"missing binary", RunnerConfig{TerraformPath: filepath.Join(dir, "nope"), WorkRoot: dir}, "TerraformPath", nil},
		{"no work root", RunnerConfig{TerraformPath: fakeTerraform(t, "1.5.7")}, "WorkRoot is required", nil},
		{"old terraform", RunnerConfig{TerraformPath: fakeTerraform(t, "1.4.6"), WorkRoot: dir}, "1.4.6", ErrTerraformVersion},
		{"missing plugin dir", RunnerConfig{TerraformPath: fakeTerraform(t, "1.5.7"), WorkRoot: dir, PluginDir: filepath.Join(dir, "none")}, "PluginDir", nil},
		{"TF_VAR in ExtraEnv", RunnerConfig{TerraformPath: fakeTerraform(t, "1.5.7"), WorkRoot: dir, ExtraEnv: map[string]string{"TF_VAR_x": "1"}}, "TF_VAR_x", nil},
		{"TF_LOG in ExtraEnv", RunnerConfig{TerraformPath: fakeTerraform(t, "1.5.7"), WorkRoot: dir, ExtraEnv: map[string]string{"TF_LOG": "trace"}}, "TF_LOG", nil},
		{"CLI config in ExtraEnv", RunnerConfig{TerraformPath: fakeTerraform(t, "1.5.7"), WorkRoot: dir, ExtraEnv: map[string]string{"TF_CLI_CONFIG_FILE": "/x"}}, "TF_CLI_CONFIG_FILE", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRunner(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want %v", err, tt.is)
			}
		})
	}
	r, err := NewRunner(RunnerConfig{TerraformPath: fakeTerraform(t, "1.6.0-beta1"), WorkRoot: dir, PluginDir: dir, Log: quietLog()})
	if err != nil {
		t.Fatalf("a 1.6 prerelease was refused: %v", err)
	}
	if r.TerraformVersion() != "1.6.0-beta1" {
		t.Errorf("TerraformVersion = %q", r.TerraformVersion())
	}
	cfg, err := os.ReadFile(filepath.Join(dir, cliConfigName))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"filesystem_mirror", "path    = " + hclString(dir), `include = ["kloud.local/*/*"]`} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("CLI config lacks %q:\n%s", want, cfg)
		}
	}
	// No direct installation: init reaches no registry Kloud did not name.
	if strings.Contains(string(cfg), "direct") {
		t.Errorf("CLI config allows direct installation:\n%s", cfg)
	}
}

func TestRunnerCheckRun(t *testing.T) {
	good := func() *stack.Template { return hclTemplate(`resource "terraform_data" "a" {}`, nil) }
	with := func(f func(*stack.Template)) *stack.Template { tm := good(); f(tm); return tm }
	tests := []struct {
		name string
		run  Run
		want string // "" = valid
	}{
		{"valid", Run{Key: "stk_01.a-b", Template: with(func(tm *stack.Template) {
			tm.Generated = map[string][]byte{"variables.tf": nil, "main_override.tf.json": nil}
			tm.Env = map[string]stack.Secret{"token": "x", "aws-key_2": "y"}
		})}, ""},
		{"empty key", Run{Template: good()}, "key"},
		{"dot key", Run{Key: "..", Template: good()}, "key"},
		{"hidden key", Run{Key: ".terraformrc", Template: good()}, "key"},
		{"slash key", Run{Key: "a/b", Template: good()}, "key"},
		{"long key", Run{Key: strings.Repeat("k", 129), Template: good()}, "key"},
		{"no template", Run{Key: "k"}, "template is required"},
		{"generated path", Run{Key: "k", Template: with(func(tm *stack.Template) { tm.Generated = map[string][]byte{"../x.tf": nil} })}, "template.Generated"},
		{"generated hidden", Run{Key: "k", Template: with(func(tm *stack.Template) { tm.Generated = map[string][]byte{".terraform": nil} })}, "template.Generated"},
		{"generated main", Run{Key: "k", Template: with(func(tm *stack.Template) { tm.Generated = map[string][]byte{"main.tf": nil} })}, "template's own file"},
		{"generated state", Run{Key: "k", Template: with(func(tm *stack.Template) { tm.Generated = map[string][]byte{"terraform.tfstate": nil} })}, "reserved"},
		{"env name", Run{Key: "k", Template: with(func(tm *stack.Template) { tm.Env = map[string]stack.Secret{"bad=name": "x"} })}, "template.Env"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkRun(tt.run)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("err = %v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestRunnerSecretMasker(t *testing.T) {
	m := envMasker(map[string]stack.Secret{
		"short": "abc",
		"long":  "hunter22",
		"outer": "xhunter22x",
		"multi": "line-one\nline-two",
		"json":  `a"b\c`,
	})
	tests := []struct{ in, want string }{
		{"password is hunter22.", "password is ********."},
		{"xhunter22x", "********"},
		{"abc stays: too short to mask", "abc stays: too short to mask"},
		{"line-one", "********"},
		{"  line-two", "  ********"},
		{`raw a"b\c`, "raw ********"},
		{`json "a\"b\\c"`, `json "********"`},
		{"nothing here", "nothing here"},
	}
	for _, tt := range tests {
		if got := m.Mask(tt.in); got != tt.want {
			t.Errorf("mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := envMasker(nil).Mask("as is"); got != "as is" {
		t.Errorf("no secrets: %q", got)
	}
}

func TestRunnerLineWriter(t *testing.T) {
	var got []string
	sink := &lineSink{emit: func(l string) { got = append(got, l) }, mask: envMasker(map[string]stack.Secret{"s": "topsecret"}).Mask}
	w := &lineWriter{sink: sink}
	for _, chunk := range []string{"one\ntw", "o\r\nthree top", "sec", "ret\n", "\n", "tail"} {
		if n, err := w.Write([]byte(chunk)); err != nil || n != len(chunk) {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	w.Flush()
	want := []string{"one", "two", "three ********", "", "tail"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("lines = %q, want %q", got, want)
	}
}

func TestRunnerModuleAddresses(t *testing.T) {
	tests := []struct {
		addr, parent string
		ok           bool
	}{
		{"module.a", "", true},
		{"module.a.module.b", "module.a", true},
		{`module.a["x.y]"].module.b[2]`, `module.a["x.y]"]`, true},
		{"module.a[0].module.b.module.c", "module.a[0].module.b", true},
		{"modul.a", "", false},
		{`module.a["x`, "", false},
	}
	for _, tt := range tests {
		got, err := parentModule(tt.addr)
		if (err == nil) != tt.ok || got != tt.parent {
			t.Errorf("parentModule(%q) = %q, %v; want %q, ok %v", tt.addr, got, err, tt.parent, tt.ok)
		}
	}
	addrs := []struct {
		module string
		mode   tfjson.ResourceMode
		index  any
		want   string
	}{
		{"", tfjson.ManagedResourceMode, nil, "t.n"},
		{"", tfjson.DataResourceMode, nil, "data.t.n"},
		{"module.m", tfjson.ManagedResourceMode, json.Number("3"), "module.m.t.n[3]"},
		{"", tfjson.ManagedResourceMode, `a"b`, `t.n["a\"b"]`},
	}
	for _, tt := range addrs {
		if got := resourceAddress(tt.module, tt.mode, "t", "n", tt.index); got != tt.want {
			t.Errorf("resourceAddress = %q, want %q", got, tt.want)
		}
	}
	if got := providerName(`module.x.provider["registry.terraform.io/hashicorp/aws"].west`); got != "registry.terraform.io/hashicorp/aws" {
		t.Errorf("providerName = %q", got)
	}
}

func TestRunnerSensitiveValues(t *testing.T) {
	tests := []struct{ raw, want string }{
		{``, `{}`},
		{`[]`, `{}`},
		{`[[{"type":"get_attr","value":"password"}]]`, `{"password":true}`},
		{`[[{"type":"get_attr","value":"input"},{"type":"get_attr","value":"s"}],[{"type":"get_attr","value":"input"},{"type":"get_attr","value":"t"}]]`, `{"input":{"s":true,"t":true}}`},
		{`[[{"type":"get_attr","value":"disks"},{"type":"index","value":{"value":2,"type":"number"}},{"type":"get_attr","value":"key"}]]`, `{"disks":[false,false,{"key":true}]}`},
		{`[[{"type":"get_attr","value":"tags"},{"type":"index","value":{"value":"owner","type":"string"}}]]`, `{"tags":{"owner":true}}`},
		{`[[{"type":"get_attr","value":"a"}],[{"type":"get_attr","value":"a"},{"type":"get_attr","value":"b"}]]`, `{"a":true}`},
		{`"a future format"`, ``},
	}
	for _, tt := range tests {
		if got := string(sensitiveValues(json.RawMessage(tt.raw))); got != tt.want {
			t.Errorf("sensitiveValues(%s) = %s, want %s", tt.raw, got, tt.want)
		}
	}
}

func TestRunnerCLIConfigQuoting(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/srv/bin/plugins", `"/srv/bin/plugins"`},
		{`C:\x "y"`, `"C:\\x \"y\""`},
		{"/a/${b}/%{c}", `"/a/$${b}/%%{c}"`},
		{"/a/$b", `"/a/$b"`},
	}
	for _, tt := range tests {
		if got := hclString(tt.in); got != tt.want {
			t.Errorf("hclString(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestRunnerStateMatchesShow checks the state decoded from the state file
// against `terraform show -json` of the same state.
func TestRunnerStateMatchesShow(t *testing.T) {
	backend := newMemBackend()
	r := newTestRunner(t, backend)
	const key = "shape"
	tmpl := &stack.Template{
		Format: stack.FormatHCL,
		Content: `
variable "secret" {
  type      = string
  sensitive = true
}
resource "terraform_data" "c" {
  count = 2
  input = { n = count.index, s = var.secret, l = [1, "a"] }
}
resource "terraform_data" "f" {
  for_each = toset(["x", "y"])
  input    = each.key
}
module "m" {
  source = "../mod"
}
output "o" { value = terraform_data.f["x"].output }
output "s" {
  value     = var.secret
  sensitive = true
}
output "m" { value = module.m.v }
`,
		Env: map[string]stack.Secret{"secret": "hunter22"},
	}
	// A composed template is flat files; a local module sits beside the
	// working directory.
	modDir := filepath.Join(filepath.Dir(r.WorkDir(key)), "mod")
	if err := os.MkdirAll(modDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(modDir, "main.tf"), []byte(`
resource "terraform_data" "inner" { input = 5 }
output "v" { value = terraform_data.inner.output }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := r.Apply(context.Background(), Run{Key: key, Template: tmpl})
	if err != nil {
		t.Fatal(err)
	}

	want := showSaved(t, r, backend, key)
	got := res.State
	if got.TerraformVersion != want.TerraformVersion {
		t.Errorf("terraform version %q, show says %q", got.TerraformVersion, want.TerraformVersion)
	}
	compareModules(t, got.Values.RootModule, want.Values.RootModule)
	if len(got.Values.Outputs) != len(want.Values.Outputs) {
		t.Errorf("%d outputs, show has %d", len(got.Values.Outputs), len(want.Values.Outputs))
	}
	for name, w := range want.Values.Outputs {
		g := got.Values.Outputs[name]
		if g == nil || g.Sensitive != w.Sensitive || !reflect.DeepEqual(g.Value, w.Value) || !g.Type.Equals(w.Type) {
			t.Errorf("output %s = %+v, show says %+v", name, g, w)
		}
	}
	if got := stateAddrs(res.Resources); !reflect.DeepEqual(got, []string{
		"module.m.terraform_data.inner", "terraform_data.c[0]", "terraform_data.c[1]", `terraform_data.f["x"]`, `terraform_data.f["y"]`,
	}) {
		t.Errorf("resources %q", got)
	}
	for _, sr := range res.Resources {
		if sr.Address == "terraform_data.c[1]" && sr.Index != 1 {
			t.Errorf("c[1] index %v (%T), want int 1", sr.Index, sr.Index)
		}
		if sr.Address == `terraform_data.f["y"]` && sr.Index != "y" {
			t.Errorf(`f["y"] index %v, want "y"`, sr.Index)
		}
	}
}

func compareModules(t *testing.T, got, want *tfjson.StateModule) {
	t.Helper()
	if got.Address != want.Address {
		t.Errorf("module %q, show says %q", got.Address, want.Address)
	}
	if len(got.Resources) != len(want.Resources) {
		t.Fatalf("module %q: %d resources, show has %d", want.Address, len(got.Resources), len(want.Resources))
	}
	for i, w := range want.Resources {
		g := got.Resources[i]
		if g.Address != w.Address || g.Mode != w.Mode || g.Type != w.Type || g.Name != w.Name ||
			!reflect.DeepEqual(g.Index, w.Index) || g.ProviderName != w.ProviderName || g.SchemaVersion != w.SchemaVersion || g.Tainted != w.Tainted {
			t.Errorf("resource %+v, show says %+v", g, w)
			continue
		}
		if len(g.AttributeValues) != len(w.AttributeValues) {
			t.Errorf("%s: %d attributes, show has %d", w.Address, len(g.AttributeValues), len(w.AttributeValues))
		}
		for k, wv := range w.AttributeValues {
			gv := g.AttributeValues[k]
			if reflect.DeepEqual(gv, wv) {
				continue
			}
			// A dynamic attribute keeps the state file's wrapper.
			if m, ok := gv.(map[string]any); ok && len(m) == 2 && m["type"] != nil && reflect.DeepEqual(m["value"], wv) {
				continue
			}
			t.Errorf("%s.%s = %v, show says %v", w.Address, k, gv, wv)
		}
		if gs, ws := sensitiveLeaves(t, g.SensitiveValues), sensitiveLeaves(t, w.SensitiveValues); !reflect.DeepEqual(gs, ws) {
			t.Errorf("%s: sensitive %q, show says %q", w.Address, gs, ws)
		}
	}
	if len(got.ChildModules) != len(want.ChildModules) {
		t.Fatalf("module %q: %d children, show has %d", want.Address, len(got.ChildModules), len(want.ChildModules))
	}
	for i := range want.ChildModules {
		compareModules(t, got.ChildModules[i], want.ChildModules[i])
	}
}

// sensitiveLeaves lists the paths marked true in a sensitive_values tree.
func sensitiveLeaves(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var v any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
	}
	var out []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case bool:
			if x {
				out = append(out, path)
			}
		case map[string]any:
			for k, c := range x {
				walk(path+"."+k, c)
			}
		case []any:
			for i, c := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), c)
			}
		}
	}
	walk("", v)
	sort.Strings(out)
	return out
}

// sandboxMachines is a composed-looking template of n sandbox machines: the
// user's file plus a generated provider requirement, the way Kloud composes
// one.
func sandboxMachines(n int) *stack.Template {
	return &stack.Template{
		Format: stack.FormatHCL,
		Content: fmt.Sprintf(`
resource "sandbox_machine" "vm" {
  count       = %d
  name        = "vm-${count.index}"
  agent_token = var.agent_token
}
`, n),
		Generated: map[string][]byte{
			"kloud_provider.tf": []byte(`
terraform {
  required_providers {
    sandbox = { source = "kloud.local/kloud/sandbox" }
  }
}
variable "agent_token" {
  type      = string
  sensitive = true
}
`),
		},
		Env: map[string]stack.Secret{"agent_token": "agent-token-5f2c91"},
	}
}

// newSandboxRunner is a runner with the sandbox plugin mirror; machines live
// under the returned data dir, served by a sandbox host the plugin reaches
// through its environment fallbacks.
func newSandboxRunner(t testing.TB, backend StateBackend, confiner ...*confine.Confiner) (*Runner, string) {
	t.Helper()
	data := t.TempDir()
	var c *confine.Confiner
	if len(confiner) > 0 {
		c = confiner[0]
	}
	host, err := sandboxhost.New(sandboxhost.Config{Root: data, Agent: []string{testenv.Klient(t)}, Log: quietLog(), Confiner: c})
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	token, release := host.Grant(context.Background(), "cr-runner", data)
	t.Cleanup(release)
	r, err := NewRunner(RunnerConfig{
		TerraformPath: testenv.Terraform(t),
		PluginDir:     testenv.PluginDir(t),
		WorkRoot:      t.TempDir(),
		Backend:       backend,
		Log:           quietLog(),
		ExtraEnv:      map[string]string{"KLOUD_SANDBOX_ENDPOINT": host.Endpoint(), "KLOUD_SANDBOX_TOKEN": token},
		Confiner:      c,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r, data
}

// TestRunnerSandboxMachines applies two sandbox machines through the plugin
// mirror and destroys them, leaving no process.
func TestRunnerSandboxMachines(t *testing.T) {
	backend := newMemBackend()
	r, data := newSandboxRunner(t, backend)
	t.Cleanup(func() { testenv.NoProcesses(t, data) }) // runs last
	ctx := context.Background()
	run := Run{Key: "sbx", Template: sandboxMachines(2)}
	var out lines
	run.Output = out.output

	res, err := r.Apply(ctx, run)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.text())
	}
	destroyed := false
	t.Cleanup(func() {
		if destroyed {
			return
		}
		// Whatever failed below, no machine outlives the test.
		if _, err := r.Destroy(context.Background(), Run{Key: "sbx", Template: sandboxMachines(2)}); err != nil {
			t.Errorf("cleanup destroy: %v", err)
		}
	})
	vms := ResourcesOfType(res.Resources, "sandbox_machine")
	if got := stateAddrs(vms); !reflect.DeepEqual(got, []string{"sandbox_machine.vm[0]", "sandbox_machine.vm[1]"}) {
		t.Fatalf("machines %q", got)
	}
	for _, vm := range vms {
		id, _ := vm.Values["id"].(string)
		pid, _ := vm.Values["pid"].(json.Number).Int64()
		if !strings.HasPrefix(id, "sbx-") || vm.Values["state"] != "running" || pid <= 0 {
			t.Errorf("%s = %v", vm.Address, vm.Values)
		}
		if vm.ProviderName != "kloud.local/kloud/sandbox" {
			t.Errorf("%s provider %q", vm.Address, vm.ProviderName)
		}
		if got := sensitiveLeaves(t, vm.SensitiveValues); !reflect.DeepEqual(got, []string{".agent_token"}) {
			t.Errorf("%s sensitive %q, want .agent_token", vm.Address, got)
		}
	}
	if strings.Contains(out.text(), "agent-token-5f2c91") {
		t.Error("the agent token is in the output")
	}

	// For a provider without dynamic attributes the decoded state is show's.
	want := showSaved(t, r, backend, "sbx")
	compareModules(t, res.State.Values.RootModule, want.Values.RootModule)

	// A rebuilt plugin no longer matches the checksum in the lock file the
	// first init wrote: init is retried without it.
	lock := filepath.Join(r.WorkDir("sbx"), lockFileName)
	b, err := os.ReadFile(lock)
	if err != nil {
		t.Fatal(err)
	}
	stale := regexp.MustCompile(`"h1:[^"]+"`).ReplaceAll(b, []byte(`"h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="`))
	if bytes.Equal(stale, b) {
		t.Fatalf("no h1 checksum in the lock file:\n%s", b)
	}
	if err := os.WriteFile(lock, stale, 0o600); err != nil {
		t.Fatal(err)
	}
	out = lines{}
	run.Output = out.output
	res, err = r.Destroy(ctx, run)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.text())
	}
	destroyed = true
	if !strings.Contains(out.text(), "retrying terraform init without it") {
		t.Errorf("init was not retried without the stale lock file:\n%s", out.text())
	}
	if len(res.Resources) != 0 {
		t.Errorf("after destroy: %q", stateAddrs(res.Resources))
	}
	testenv.NoProcesses(t, r.WorkDir("sbx"))
}

// showSaved checks that no state stayed in key's working directory after
// its run, then runs `terraform show -json` on the version the backend
// saved.
func showSaved(t *testing.T, r *Runner, backend StateBackend, key string) *tfjson.State {
	t.Helper()
	statePath := filepath.Join(r.WorkDir(key), stateFileName)
	if _, err := os.Stat(statePath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a state file stayed in the working directory after the run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.WorkDir(key), backupFileName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a state backup stayed in the working directory after the run: %v", err)
	}
	saved, err := backend.LoadState(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(statePath, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(statePath)
	tf, err := tfexec.NewTerraform(r.WorkDir(key), r.tfPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := tf.SetEnv(r.baseEnv(r.WorkDir(key))); err != nil {
		t.Fatal(err)
	}
	want, err := tf.Show(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return want
}
