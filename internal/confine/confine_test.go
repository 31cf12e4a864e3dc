package confine_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kloud/kloud/internal/confine"
	"github.com/kloud/kloud/internal/testenv"
)

// detect returns a working Confiner or skips the test where bubblewrap
// cannot run (CI always has one: build.sh installs it).
func detect(t *testing.T) *confine.Confiner { return testenv.Confiner(t) }

// run runs a shell script confined in dir and returns its output.
func run(t *testing.T, c *confine.Confiner, dir, script string) (string, error) {
	t.Helper()
	argv := c.Command(confine.Spec{Dir: dir, DieWithParent: true}, []string{"/bin/sh", "-c", script})
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func TestConfinedProcessSeesOnlyItsOwnDirectory(t *testing.T) {
	c := detect(t)
	root := t.TempDir()
	secretDir := filepath.Join(root, "data")
	if err := os.Mkdir(secretDir, 0o700); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(secretDir, "secret.key")
	if err := os.WriteFile(secret, []byte("top secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(root, "data", "machines", "m1")
	other := filepath.Join(root, "data", "machines", "m2")
	for _, d := range []string{own, other} {
		if err := c.PrepareDir(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(other, "token"), []byte("other's token"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A process outside, whose environment must stay unreadable.
	outside := testenv.OutsideProcess(t, "KLOUD_SECRET=hunter2")

	tests := []struct {
		name, script string
		want         func(out string, err error) bool
	}{
		{"not root", "id -u", func(out string, err error) bool { return err == nil && out != "0" }},
		{"writes its own directory", "echo hi > f && cat f && pwd", func(out string, err error) bool {
			return err == nil && strings.HasPrefix(out, "hi") && strings.HasSuffix(out, own)
		}},
		{"secret key invisible", "cat " + secret, func(_ string, err error) bool { return err != nil }},
		{"data dir invisible", "ls " + secretDir + "/secret.key", func(_ string, err error) bool { return err != nil }},
		{"other machine invisible", "cat " + other + "/token", func(_ string, err error) bool { return err != nil }},
		{"other process invisible", "cat /proc/" + strconv.Itoa(outside) + "/environ", func(out string, err error) bool {
			return err != nil && !strings.Contains(out, "hunter2")
		}},
		{"no shadow", "cat /etc/shadow", func(_ string, err error) bool { return err != nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, c, own, tt.script)
			if !tt.want(out, err) {
				t.Errorf("%s: out %q, err %v", tt.script, out, err)
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(own, "f")); err != nil || string(b) != "hi\n" {
		t.Errorf("file written inside: %q, %v", b, err)
	}
}

func TestUnconfinedLeavesCommandAlone(t *testing.T) {
	c := confine.Unconfined()
	argv := []string{"/bin/true", "x"}
	if got := c.Command(confine.Spec{Dir: t.TempDir()}, argv); strings.Join(got, " ") != "/bin/true x" {
		t.Errorf("Command = %q", got)
	}
	if c.Enabled() || !strings.Contains(c.String(), "UNCONFINED") {
		t.Errorf("Unconfined: enabled %v, %q", c.Enabled(), c.String())
	}
}
