package webui_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/testenv"
)

// chromium is the browser the test drives: KLOUD_CHROMIUM, else Debian's
// /usr/bin/chromium, which build.sh installs with apt-get when missing.
func chromium() string {
	if p := os.Getenv("KLOUD_CHROMIUM"); p != "" {
		return p
	}
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// TestDashboardInBrowser runs web/e2e/run.mjs (playwright-core driving
// headless Chromium) against a real `kloud serve` on SQLite and the sandbox,
// with short rating periods so the bill has data within seconds. Each step
// of the browser session is a subtest here. Screenshots of every page go to
// KLOUD_E2E_OUT, default web/e2e/out.
func TestDashboardInBrowser(t *testing.T) {
	browser := chromium()
	if browser == "" {
		t.Skip("Chromium is not installed (./build.sh installs Debian's chromium with apt-get; it could not here): the browser test needs /usr/bin/chromium or KLOUD_CHROMIUM")
	}
	root := testenv.RepoRoot(t)
	web := filepath.Join(root, "web")
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not on PATH: the dashboard's browser test needs Node.js 20 (./build.sh build needs it too)")
	}
	if _, err := os.Stat(filepath.Join(web, "node_modules", "playwright-core")); err != nil {
		t.Fatal("web/node_modules is missing: run ./build.sh build (npm ci in web/) first")
	}
	kloudBin := os.Getenv("KLOUD_BIN")
	if kloudBin == "" {
		kloudBin = filepath.Join(root, "bin", "kloud")
	}
	if _, err := os.Stat(kloudBin); err != nil {
		t.Fatalf("no kloud binary at %s: run ./build.sh build (or set KLOUD_BIN)", kloudBin)
	}
	out := os.Getenv("KLOUD_E2E_OUT")
	if out == "" {
		out = filepath.Join(web, "e2e", "out")
	}
	if err := os.RemoveAll(out); err != nil {
		t.Fatal(err)
	}

	dataDir := t.TempDir()
	const token = "kla_e2e_dashboard_admin_token_0123456789"
	cmd := exec.Command(kloudBin, "serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0",
		"--rating-period", "10s", "--rating-wait-periods", "0", "--rating-interval", "1s", "--check-interval", "2s")
	cmd.Env = append(os.Environ(),
		"KLOUD_ADMIN_TOKEN="+token,
		"KLOUD_TERRAFORM="+testenv.Terraform(t),
		"KLOUD_PLUGIN_DIR="+testenv.PluginDir(t),
		"KLOUD_KLIENT="+testenv.Klient(t),
	)
	logPath := filepath.Join(dataDir, "server.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(done) }()
	var url string
	stopServer := func() {
		select {
		case <-done:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
	}
	t.Cleanup(func() {
		if url != "" {
			destroyAll(t, client.New(url, token))
		}
		stopServer()
		testenv.NoProcesses(t, filepath.Join(dataDir, "sandbox"))
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("server log (last 4 KB):\n%s", tail(b, 4096))
			}
		}
	})
	for deadline := time.Now().Add(30 * time.Second); url == ""; {
		if b, err := os.ReadFile(filepath.Join(dataDir, "server.url")); err == nil && len(b) > 0 {
			url = strings.TrimSpace(string(b))
			break
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("kloud serve exited at start:\n%s", b)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("kloud serve did not start in 30 s")
		}
	}
	// The binary must carry the app, not the page saying how to build it.
	resp, err := http.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), `type="module"`) {
		t.Fatalf("%s was built without the dashboard's assets (GET / answers the fallback page): run ./build.sh build", kloudBin)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	run := exec.CommandContext(ctx, node, filepath.Join("e2e", "run.mjs"))
	run.Dir = web
	run.Env = append(os.Environ(),
		"KLOUD_E2E_URL="+url,
		"KLOUD_E2E_TOKEN="+token,
		"KLOUD_E2E_OUT="+out,
		"KLOUD_E2E_TEMPLATE="+filepath.Join(root, "templates", "sandbox", "main.tf"),
		"KLOUD_CHROMIUM="+browser,
	)
	stdout, err := run.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	run.Stderr = run.Stdout
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		t.Log(sc.Text())
	}
	runErr := run.Wait()

	var results struct {
		Steps []struct {
			Name, Status, Message string
		}
		Screenshots int
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatalf("the browser session left no results (%v): %v", runErr, err)
	}
	if err := json.Unmarshal(b, &results); err != nil {
		t.Fatal(err)
	}
	for _, s := range results.Steps {
		t.Run(s.Name, func(t *testing.T) {
			switch s.Status {
			case "skip":
				t.Skip(s.Message)
			case "fail":
				t.Fatal(s.Message)
			default:
				if s.Message != "" {
					t.Log(s.Message)
				}
			}
		})
	}
	if runErr != nil && !t.Failed() {
		t.Fatalf("node e2e/run.mjs: %v", runErr)
	}
	t.Logf("%d screenshots in %s", results.Screenshots, out)
}

// destroyAll destroys every stack, so no sandbox machine outlives the test.
func destroyAll(t *testing.T, c *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stacks, err := c.Stacks(ctx)
	if err != nil {
		t.Errorf("list stacks: %v", err)
		return
	}
	for _, s := range stacks {
		if len(s.Machines) == 0 {
			continue
		}
		ref, err := c.DestroyStack(ctx, s.ID)
		if err != nil {
			t.Errorf("destroy %s: %v", s.ID, err)
			continue
		}
		if _, err := c.WaitJob(ctx, ref.JobID); err != nil {
			t.Errorf("destroy %s: %v", s.ID, err)
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
