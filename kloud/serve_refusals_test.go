package kloud_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/ferrettest"
	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/store/secretbox"
)

// runServe runs `kloud serve` expecting it to refuse to start, and returns
// its output.
func runServe(t *testing.T, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kloudBinary(t), append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), append([]string{
		"KLOUD_TERRAFORM=" + testenv.Terraform(t), "KLOUD_PLUGIN_DIR=" + testenv.PluginDir(t), "KLOUD_KLIENT=" + testenv.Klient(t),
	}, env...)...)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("kloud serve %v started; want a refusal\n%s", args, out)
	}
	return string(out)
}

// Two replicas on one database with different secret keys: the second
// refuses to start, saying what to do; the first keeps serving.
func TestReplicaWithAnotherKeyRefused(t *testing.T) {
	const token = "kla_key_test_admin_token"
	fdb := ferrettest.Start(t)
	storeURI := fdb.DatabaseURI("keys")
	first := startReplica(t, "first", storeURI, "http://127.0.0.1:1", token, "the-shared-key", t.TempDir())
	out := runServe(t, []string{secretbox.EnvKey + "=another-key", "KLOUD_ADMIN_TOKEN=" + token},
		"--store", storeURI, "--data-dir", t.TempDir())
	if !strings.Contains(out, secretbox.ErrKeyMismatch.Error()) {
		t.Fatalf("second replica's output does not say the key does not match:\n%s", out)
	}
	if h, err := first.client.Health(context.Background()); err != nil || h.Status != "ok" {
		t.Fatalf("first replica after the refusal: %v, %v", h, err)
	}
}

// `kloud serve` stops at a flag or variable that does not parse, naming it.
func TestServeRefusesBadSettings(t *testing.T) {
	for _, c := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"--rating-wait-periods", "soon"}, "-rating-wait-periods"},
		{[]string{"KLOUD_IDLE_LIMIT=forever"}, nil, "KLOUD_IDLE_LIMIT (--idle-limit)"},
		{[]string{"KLOUD_WORKERS=0"}, nil, "KLOUD_WORKERS (--workers)"},
	} {
		t.Run(fmt.Sprint(c.env, c.args), func(t *testing.T) {
			out := runServe(t, c.env, append([]string{"--data-dir", t.TempDir()}, c.args...)...)
			if !strings.Contains(out, c.want) {
				t.Fatalf("output does not name %s:\n%s", c.want, out)
			}
		})
	}
}

// A second `kloud serve` on a data dir in use is refused, naming the
// first one's pid; the first keeps serving.
func TestSecondServeOnOneDataDirRefused(t *testing.T) {
	dataDir := t.TempDir()
	first := startServer(t, dataDir, "kla_lock_test_admin_token")
	out := runServe(t, []string{"KLOUD_ADMIN_TOKEN=kla_lock_test_admin_token"}, "--data-dir", dataDir)
	want := fmt.Sprintf("data dir %s is in use by another kloud server (pid %d)", dataDir, first.cmd.Process.Pid)
	if !strings.Contains(out, want) || strings.Count(out, "in use") != 1 {
		t.Fatalf("second server's output does not say %q once:\n%s", want, out)
	}
	if _, err := client.New(first.url, "kla_lock_test_admin_token").Health(context.Background()); err != nil {
		t.Fatalf("first server after the refusal: %v", err)
	}
}

// Without bubblewrap, `kloud serve` refuses to start unless it is told to
// run unconfined, and then says so in /healthz.
func TestServeRefusesWithoutConfinement(t *testing.T) {
	noBwrap := t.TempDir() // a PATH holding only what serve needs, no bwrap
	for _, tool := range []string{"env", "setpriv"} {
		if p, err := exec.LookPath(tool); err == nil {
			if err := os.Symlink(p, noBwrap+"/"+tool); err != nil {
				t.Fatal(err)
			}
		}
	}
	out := runServe(t, []string{"PATH=" + noBwrap}, "--data-dir", t.TempDir())
	if !strings.Contains(out, "bubblewrap") || !strings.Contains(out, "--unconfined") {
		t.Fatalf("output does not say bubblewrap is missing and --unconfined is the way out:\n%s", out)
	}
}
