package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProviderScaffoldRefuses: a bad name, a provider built in already and
// an existing directory are usage errors (exit 2) naming what was wrong;
// nothing is written.
func TestProviderScaffoldRefuses(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module example.com/k\n\ngo 1.24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "provider", "taken"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"Bad-Name"}, `"Bad-Name"`},
		{[]string{"type"}, "Go keyword"},
		{[]string{"aws"}, `"aws" is a provider built into kloud`},
		{[]string{"taken"}, "provider/taken exists"},
		{[]string{"acme", "--resource", "Srv"}, `"Srv"`},
	}
	for _, tt := range tests {
		_, stderr, code := kloudCmd(t, append([]string{"provider", "scaffold", "--dir", root}, tt.args...)...)
		if code != exitUsage || !strings.Contains(stderr, tt.want) {
			t.Errorf("scaffold %v: exit %d, %q; want exit 2 naming %s", tt.args, code, stderr, tt.want)
		}
	}
	if _, stderr, code := kloudCmd(t, "provider", "scaffold", "acme", "--dir", t.TempDir()); code != exitUsage || !strings.Contains(stderr, "go.mod") {
		t.Errorf("scaffold outside a checkout: exit %d, %q", code, stderr)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "provider"))
	if len(entries) != 1 {
		t.Errorf("provider/ holds %d entries after refusals, want 1", len(entries))
	}
}

// TestProviderScaffoldWrites: the files land in provider/NAME of --dir, and
// the checkout's providers.go gets the import line.
func TestProviderScaffoldWrites(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module example.com/k\n\ngo 1.24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := filepath.Join(root, "cmd", "kloud", "providers.go")
	if err := os.MkdirAll(filepath.Dir(reg), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(reg, []byte("package main\n\nimport (\n\t_ \"example.com/k/provider/other\"\n)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := kloudCmd(t, "provider", "scaffold", "acme", "--resource", "server", "--dir", root)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, f := range []string{"acme.go", "machine.go", "schema.go", "stack.go", "acme_test.go", "README.md"} {
		if _, err := os.Stat(filepath.Join(root, "provider", "acme", f)); err != nil {
			t.Error(err)
		}
		if !strings.Contains(stdout, f) {
			t.Errorf("output does not list %s:\n%s", f, stdout)
		}
	}
	b, _ := os.ReadFile(reg)
	if !strings.Contains(string(b), `_ "example.com/k/provider/acme"`) || !strings.Contains(stdout, "providers.go") {
		t.Errorf("providers.go:\n%s\noutput:\n%s", b, stdout)
	}
	// -o json answers what was written.
	stdout, stderr, code = kloudCmd(t, "provider", "scaffold", "beta", "--dir", root, "-o", "json")
	var res struct {
		Dir        string   `json:"dir"`
		Files      []string `json:"files"`
		Registered string   `json:"registered"`
		Line       string   `json:"line"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); code != exitOK || err != nil || len(res.Files) != 6 || res.Registered != reg || !strings.Contains(res.Line, "provider/beta") {
		t.Errorf("scaffold -o json: exit %d, %q, %v: %+v", code, stderr, err, res)
	}
	src, _ := os.ReadFile(filepath.Join(root, "provider", "acme", "acme.go"))
	if !strings.Contains(string(src), `ResourceName = "server"`) {
		t.Errorf("acme.go:\n%s", src)
	}
}
