package kloud_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/provider/sandbox/sandboxvm"
)

var (
	kloudBinOnce sync.Once
	kloudBin     string
	kloudBinErr  error
)

// kloudBinary is bin/kloud from build.sh (KLOUD_BIN), or one built once.
func kloudBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("KLOUD_BIN"); p != "" {
		return p
	}
	kloudBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kloud-bin-")
		if err != nil {
			kloudBinErr = err
			return
		}
		kloudBin = filepath.Join(dir, "kloud")
		out, err := exec.Command("go", "build", "-o", kloudBin, "github.com/kloud/kloud/cmd/kloud").CombinedOutput()
		if err != nil {
			kloudBinErr = fmt.Errorf("go build kloud: %v\n%s", err, out)
		}
	})
	if kloudBinErr != nil {
		t.Fatal(kloudBinErr)
	}
	return kloudBin
}

// serverProcess is a real `kloud serve` process.
type serverProcess struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
}

func startServer(t *testing.T, dataDir, adminToken string) *serverProcess {
	t.Helper()
	_ = os.Remove(filepath.Join(dataDir, "server.url"))
	cmd := exec.Command(kloudBinary(t), "serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0",
		"--job-lease", "2s", "--shutdown-grace", "5s", "--check-interval", "1s")
	cmd.Env = append(os.Environ(),
		"KLOUD_ADMIN_TOKEN="+adminToken,
		"KLOUD_TERRAFORM="+testenv.Terraform(t),
		"KLOUD_PLUGIN_DIR="+testenv.PluginDir(t),
		"KLOUD_KLIENT="+testenv.Klient(t),
	)
	logFile, err := os.OpenFile(filepath.Join(dataDir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serverProcess{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logFile.Close(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(filepath.Join(dataDir, "server.url")); err == nil && len(b) > 0 {
			p.url = strings.TrimSpace(string(b))
			return p
		}
		select {
		case <-p.done:
			log, _ := os.ReadFile(filepath.Join(dataDir, "server.log"))
			t.Fatalf("server exited at start:\n%s", log)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatal("server did not start in 30s")
	return nil
}

func (p *serverProcess) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// TestKillMidApplyAndRestart kills `kloud serve` with SIGKILL in the middle
// of an apply, restarts it on the same data dir, and checks that the job is
// failed with the reason, the stack can be applied again, and nothing is
// left behind after destroy.
func TestKillMidApplyAndRestart(t *testing.T) {
	dataDir := t.TempDir()
	const token = "kla_restart_test_admin_token"
	srv := startServer(t, dataDir, token)
	ctx := context.Background()
	c := client.New(srv.url, token)

	cred, err := c.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	// Six machines, then a few seconds of Terraform's own work that can
	// start only once the first machine exists: the apply is still
	// running when the test kills the server, however fast the machines
	// come up.
	content := `resource "sandbox_machine" "m" {
  count = 6
  name  = "m-${count.index}"
}
resource "terraform_data" "tail" {
  input = length(flatten([for i in range(length(sandbox_machine.m[0].id) * 25) : [for j in range(1000) : j]]))
}
`
	tpl, err := c.CreateTemplate(ctx, client.CreateTemplateRequest{Title: "six", Provider: "sandbox", Content: content})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.CreateStack(ctx, client.CreateStackRequest{Title: "s", TemplateID: tpl.ID, CredentialID: cred.ID})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := c.ApplyStack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Kill the server as soon as Terraform has started creating machines.
	if err := waitForOutput(ctx, c, ref.JobID, "Creating..."); err != nil {
		t.Fatal(err)
	}
	// ... and as soon as the first machine's agent runs: machines then
	// exist that no state holds yet.
	for wait := time.Now().Add(30 * time.Second); len(testenv.Agents(filepath.Join(dataDir, "sandbox"))) == 0 && time.Now().Before(wait); {
		time.Sleep(2 * time.Millisecond)
	}
	srv.kill()
	orphans := testenv.Agents(filepath.Join(dataDir, "sandbox"))
	t.Logf("%d agents running when the server was killed", len(orphans))
	// The restarted server reaps the Terraform the killed one left behind,
	// and, the only server on its SQLite data dir, fails the killed one's
	// job before it serves: no waiting for the lease to expire.
	srv = startServer(t, dataDir, token)
	c = client.New(srv.url, token)
	job, err := c.Job(ctx, ref.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != "failed" || !strings.Contains(job.Error, "failed at the next start") {
		t.Fatalf("job right after restart = %+v, want failed at start with the reason", job)
	}
	st, err = c.Stack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != "not_initialized" || st.Reason == "" {
		t.Errorf("stack after restart = %s (%q), want not_initialized with a reason", st.Status, st.Reason)
	}
	// The machines the killed apply was creating reached no state and no
	// record: the restarted server destroys them. No agent runs that
	// Kloud does not list.
	root := filepath.Join(dataDir, "sandbox")
	deadline := time.Now().Add(time.Minute)
	for {
		known := listedMachines(t, c)
		var unknown []testenv.Agent
		for _, a := range testenv.Agents(root) {
			if !known[a.MachineID] {
				unknown = append(unknown, a)
			}
		}
		if len(unknown) == 0 {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dataDir, "server.log"))
			t.Fatalf("agents running that Kloud does not list: %v\nserver log:\n%s", unknown, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if log, _ := os.ReadFile(filepath.Join(dataDir, "server.log")); len(orphans) > 0 && !strings.Contains(string(log), "destroyed an unknown sandbox machine") {
		t.Errorf("%d agents of the killed apply, but the server logged no machine destroyed:\n%s", len(orphans), log)
	}

	ref, err = c.ApplyStack(ctx, st.ID)
	if err != nil {
		t.Fatalf("apply again: %v", err)
	}
	if job := waitJobEnd(t, c, ref.JobID); job.Status != "succeeded" {
		t.Fatalf("second apply = %+v", job)
	}
	st, _ = c.Stack(ctx, st.ID)
	running := 0
	for _, m := range st.Machines {
		if m.State.String() == "Running" {
			running++
		}
	}
	if st.Status != "initialized" || running != 6 {
		t.Fatalf("stack = %s with %d running machines, want initialized with 6", st.Status, running)
	}

	ref, err = c.DestroyStack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if job := waitJobEnd(t, c, ref.JobID); job.Status != "succeeded" {
		t.Fatalf("destroy = %+v", job)
	}
	// Nothing is left: neither the stack's machines nor orphans of the
	// killed apply.
	left, err := sandboxvm.List(filepath.Join(dataDir, "sandbox", cred.ID))
	if err != nil {
		t.Fatal(err)
	}
	for _, vm := range left {
		t.Errorf("machine %s left after the stack's destroy", vm.ID())
		vm.Destroy(ctx)
	}
	testenv.NoProcesses(t, filepath.Join(dataDir, "sandbox"))
	testenv.NoProcesses(t, filepath.Join(dataDir, "work"))
}

func waitForOutput(ctx context.Context, c *client.Client, jobID, substr string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	found := make(chan struct{})
	var once sync.Once
	go func() {
		_, _ = c.FollowJob(ctx, jobID, func(ev client.Event) {
			if strings.Contains(ev.Message, substr) {
				once.Do(func() { close(found) })
			}
		})
	}()
	select {
	case <-found:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("no %q in the events of job %s", substr, jobID)
	}
}

func waitJobEnd(t *testing.T, c *client.Client, jobID string) *client.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	j, err := c.WaitJob(ctx, jobID)
	if err != nil {
		t.Fatalf("wait job %s: %v", jobID, err)
	}
	return j
}

// listedMachines is the set of sandbox machine ids the stacks Kloud lists
// hold.
func listedMachines(t *testing.T, c *client.Client) map[string]bool {
	t.Helper()
	stacks, err := c.Stacks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, st := range stacks {
		for _, m := range st.Machines {
			var meta struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(m.Metadata, &meta)
			known[meta.ID] = true
		}
	}
	return known
}
