package scaffold

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/docs"
	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/provider/providertest"
)

func TestCheck(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "provider", "taken"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, resource string
		want           error
	}{
		{"acme", "server", nil},
		{"acme2", "", nil},
		{"Acme", "", ErrBadName},
		{"bad-name", "", ErrBadName},
		{"9lives", "", ErrBadName},
		{"", "", ErrBadName},
		{"func", "", ErrBadName},
		{"terraform", "", ErrBadName},
		{"providertest", "", ErrBadName},
		{"acme", "Server", ErrBadName},
		{"acme", "a-b", ErrBadName},
		{"taken", "", ErrExists},
	}
	for _, tt := range tests {
		err := Check(Options{Name: tt.name, Resource: tt.resource, Root: root})
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("Check(%q, %q) = %v, want %v", tt.name, tt.resource, err, tt.want)
		}
		if err != nil && tt.name != "" && !strings.Contains(err.Error(), tt.name) {
			t.Errorf("Check(%q): %v does not name it", tt.name, err)
		}
	}
}

// TestScaffoldFailsByRuleUntilImplemented scaffolds provider acme into a copy
// of this module, then builds it and runs its test: the test fails, rule
// by rule, with no panic, and cmd/kloud imports the new provider.
func TestScaffoldFailsByRuleUntilImplemented(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a copy of the module")
	}
	root := copyModule(t, testenv.RepoRoot(t))
	res, err := Write(Options{Name: "acme", Resource: "server", Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if res.Registered != filepath.Join(root, RegistrationFile) {
		t.Errorf("registered in %q, want %s", res.Registered, RegistrationFile)
	}
	var names []string
	for _, f := range res.Files {
		names = append(names, filepath.Base(f))
	}
	if got := strings.Join(names, " "); got != "acme.go machine.go schema.go stack.go acme_test.go README.md" {
		t.Errorf("files = %s", got)
	}
	if _, err := Write(Options{Name: "acme", Root: root}); !errors.Is(err, ErrExists) {
		t.Errorf("scaffolding acme again: %v, want ErrExists", err)
	}

	goCmd := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	if out, err := goCmd("build", "./provider/acme/"); err != nil {
		t.Fatalf("go build ./provider/acme/: %v\n%s", err, out)
	}
	// One line builds it into kloud: cmd/kloud now depends on it.
	deps, err := goCmd("list", "-deps", "./cmd/kloud/")
	if err != nil {
		t.Fatalf("go list -deps ./cmd/kloud/: %v\n%s", err, deps)
	}
	if !strings.Contains(deps, "github.com/kloud/kloud/provider/acme\n") {
		t.Errorf("cmd/kloud does not import provider/acme")
	}
	out, err := goCmd("test", "-count=1", "-v", "-run", "TestConformance", "./provider/acme/")
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("go test ./provider/acme/ = %v, want it to fail\n%s", err, out)
	}
	if strings.Contains(out, "panic") {
		t.Errorf("the scaffold's test panicked:\n%s", out)
	}
	if !strings.Contains(out, "rules failed for provider \"acme\"") {
		t.Errorf("no summary of the failed rules:\n%s", out)
	}
	for _, rule := range providertest.Rules() {
		if !strings.Contains(out, "--- FAIL: TestConformance/"+rule+" ") && !strings.Contains(out, "--- PASS: TestConformance/"+rule+" ") {
			t.Errorf("rule %s is not reported", rule)
		}
	}
	for _, rule := range []string{"verify/accepts-working", "bootstrap/passes-policy", "apply/agent-on-every-machine", "machine/never-built", "machine/stop"} {
		if !strings.Contains(out, "--- FAIL: TestConformance/"+rule+" ") {
			t.Errorf("rule %s does not fail", rule)
		}
	}
	if !strings.Contains(out, "rule verify/accepts-working: the working credential: VerifyCredential is not implemented") {
		t.Errorf("the failure does not say VerifyCredential is not implemented:\n%s", out)
	}

	// Implementing the rules is what makes it pass: docs/providers.md
	// writes provider acme out in full (and its simulator); in place of
	// the scaffold, its test passes every rule.
	guide, err := os.ReadFile(filepath.Join(root, "docs", "providers.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := docs.GoBlocks(guide)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"acme.go", "machine.go", "schema.go", "stack.go", "acme_test.go"} {
		os.Remove(filepath.Join(res.Dir, f))
	}
	for _, b := range blocks {
		if !strings.HasPrefix(b.Path, "provider/acme/") {
			continue
		}
		p := filepath.Join(root, filepath.FromSlash(b.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(b.Code), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err = goCmd("test", "-count=1", "-v", "-run", "TestConformance", "./provider/acme/")
	if err != nil {
		t.Fatalf("the guide's acme provider fails the suite: %v\n%s", err, out)
	}
	for _, rule := range providertest.Rules() {
		if !strings.Contains(out, "--- PASS: TestConformance/"+rule+" ") {
			t.Errorf("the guide's acme provider does not pass rule %s", rule)
		}
	}
}

// copyModule copies the module's sources (not .git, bin or node_modules)
// into a temp dir.
func copyModule(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			switch {
			case rel == ".":
				return nil
			case strings.HasPrefix(d.Name(), "."), d.Name() == "node_modules", rel == "bin":
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy the module: %v", err)
	}
	return dst
}
