package terraform

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kloud/kloud/internal/testenv"
)

// confined makes a runner confine Terraform, or skips the test where
// bubblewrap cannot run (outside CI).
func confined(t *testing.T) func(*RunnerConfig) {
	c := testenv.Confiner(t)
	return func(cfg *RunnerConfig) { cfg.Confiner = c }
}

// TestRunnerConfined runs a template that tries to read what it must not
// (Kloud's files beside the work root, another working directory, another
// process's environment) from a provisioner: Terraform and what it starts
// run as an unprivileged user that sees none of it. The provisioner is
// refused by Kloud's policy; the runner alone does not check policy, which
// is the point here: confinement holds even when the policy misses
// something.
func TestRunnerConfined(t *testing.T) {
	backend := newMemBackend()
	r := newTestRunner(t, backend, confined(t))
	dataDir := filepath.Dir(r.cfg.WorkRoot)
	secret := filepath.Join(dataDir, "secret.key")
	if err := os.WriteFile(secret, []byte("kloud-secret-key-7d1e"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(context.Background(), Run{Key: "victim", Template: hclTemplate(`resource "terraform_data" "v" { input = "victim's" }`, nil)}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.WorkDir("victim"), "notes.txt"), []byte("victim-notes-93b"), 0o600); err != nil {
		t.Fatal(err)
	}
	outside := testenv.OutsideProcess(t, "OUTSIDE_SECRET=outside-env-41c")

	probes := map[string]string{
		"uid":     "id -u",
		"secret":  "cat " + secret,
		"victim":  "cat " + filepath.Join(r.WorkDir("victim"), "notes.txt"),
		"environ": "cat /proc/" + strconv.Itoa(outside) + "/environ",
		"shadow":  "cat /etc/shadow",
	}
	var tpl strings.Builder
	for name, cmd := range probes {
		tpl.WriteString(`resource "terraform_data" "` + name + `" {
  provisioner "local-exec" {
    command = "(` + cmd + `) > ` + name + `.out 2>&1 || true"
  }
}
`)
	}
	out := &lines{}
	if _, err := r.Apply(context.Background(), Run{Key: "attacker", Template: hclTemplate(tpl.String(), nil), Output: out.output}); err != nil {
		t.Fatalf("apply: %v\n%s", err, out.text())
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(r.WorkDir("attacker"), name+".out"))
		if err != nil {
			t.Fatalf("probe %s wrote nothing: %v\n%s", name, err, out.text())
		}
		return strings.TrimSpace(string(b))
	}
	t.Logf("confined probes: uid %q, secret %q, environ %q", read("uid"), read("secret"), read("environ"))
	if uid := read("uid"); uid == "0" || uid == "" {
		t.Errorf("terraform's provisioner runs as uid %q", uid)
	}
	for name, leak := range map[string]string{"secret": "kloud-secret-key-7d1e", "victim": "victim-notes-93b", "environ": "outside-env-41c", "shadow": "root:"} {
		if got := read(name); strings.Contains(got, leak) {
			t.Errorf("probe %s read %q", name, got)
		}
	}
	if entries, _ := os.ReadDir(r.WorkDir("attacker")); len(entries) > 0 {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), stateFileName) {
				t.Errorf("%s stayed in the working directory", e.Name())
			}
		}
	}
}

// TestRunnerLockFileReused: the first init of a provider locks it and
// says at length why it computed the checksums itself; later stacks
// reuse that lock and init quietly.
func TestRunnerLockFileReused(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  []func(*RunnerConfig)
	}{{"unconfined", nil}, {"confined", []func(*RunnerConfig){confined(t)}}} {
		t.Run(c.name, func(t *testing.T) {
			backend := newMemBackend()
			mod := append([]func(*RunnerConfig){func(cfg *RunnerConfig) { cfg.PluginDir = testenv.PluginDir(t) }}, c.mod...)
			r := newTestRunner(t, backend, mod...)
			const tpl = `terraform {
  required_providers {
    sandbox = { source = "kloud.local/kloud/sandbox" }
  }
}
resource "terraform_data" "a" {}
`
			const noise = "calculate lock file checksums locally"
			for i, key := range []string{"first", "second", "third"} {
				out := &lines{}
				if _, err := r.Apply(context.Background(), Run{Key: key, Template: hclTemplate(tpl, nil), Output: out.output}); err != nil {
					t.Fatalf("%s: %v\n%s", key, err, out.text())
				}
				if i > 0 && strings.Contains(out.text(), noise) {
					t.Errorf("%s: init printed the lock file warning again:\n%s", key, out.text())
				}
			}
		})
	}
}
