// Package testenv finds or builds what Kloud's tests run for real: the
// Terraform binary, the sandbox provider plugin in a filesystem mirror, the
// klient agent, and a Terraform CLI configuration that keeps `terraform
// init` off the network. It also checks that a test left no agent process
// behind.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kloud/kloud/internal/confine"
)

// Environment variables that point tests at prebuilt parts (build.sh sets
// them).
const (
	EnvTerraform = "KLOUD_TERRAFORM"
	EnvPluginDir = "KLOUD_PLUGIN_DIR"
	EnvKlient    = "KLOUD_KLIENT"
)

// The sandbox plugin's coordinates in a filesystem mirror.
const (
	PluginHost      = "kloud.local"
	PluginNamespace = "kloud"
	PluginType      = "sandbox"
	PluginVersion   = "0.1.0"
	// PluginSource is the provider source address templates use.
	PluginSource = PluginHost + "/" + PluginNamespace + "/" + PluginType
)

// PluginPath is where the plugin binary sits under a mirror root.
func PluginPath(root string) string {
	return filepath.Join(root, PluginHost, PluginNamespace, PluginType, PluginVersion,
		runtime.GOOS+"_"+runtime.GOARCH, "terraform-provider-"+PluginType+"_v"+PluginVersion)
}

// RepoRoot is the directory holding the module's go.mod, found by walking up
// from the working directory (a test runs in its package's directory).
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return root
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repo root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repo root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Terraform returns the Terraform (or OpenTofu) binary to test with:
// $KLOUD_TERRAFORM, else <repo>/bin/terraform, else terraform or tofu on
// PATH. It skips the test when there is none.
func Terraform(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvTerraform); p != "" {
		if !executable(p) {
			t.Fatalf("testenv: %s=%s is not an executable file", EnvTerraform, p)
		}
		return p
	}
	if root, err := repoRoot(); err == nil {
		if p := filepath.Join(root, "bin", "terraform"); executable(p) {
			return p
		}
	}
	for _, name := range []string{"terraform", "tofu"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skipf("testenv: no Terraform: set %s, run ./build.sh build (installs bin/terraform), or put terraform or tofu on PATH", EnvTerraform)
	return ""
}

func executable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode().Perm()&0o111 != 0
}

// builds holds what this test binary built, once each.
var builds struct {
	mu     sync.Mutex
	dir    string
	plugin buildOnce
	klient buildOnce
}

type buildOnce struct {
	once sync.Once
	path string
	err  error
}

// buildDir is this test binary's scratch directory for binaries; earlier
// runs' directories whose process is gone are removed on the way.
func buildDir() (string, error) {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		return builds.dir, nil
	}
	old, _ := filepath.Glob(filepath.Join(os.TempDir(), "kloud-testenv-*"))
	for _, d := range old {
		pidStr, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), "kloud-testenv-"), "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat("/proc/" + pidStr); errors.Is(err, os.ErrNotExist) && pid > 0 {
			os.RemoveAll(d)
		}
	}
	d, err := os.MkdirTemp("", fmt.Sprintf("kloud-testenv-%d-", os.Getpid()))
	if err != nil {
		return "", fmt.Errorf("make build dir: %w", err)
	}
	// The binaries are run by confined, unprivileged users too.
	if err := os.Chmod(d, 0o755); err != nil {
		return "", fmt.Errorf("make build dir: %w", err)
	}
	builds.dir = d
	return d, nil
}

// goBuild builds package pkg of the module into out.
func goBuild(pkg, out string, ldflags string) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("build %s: %w", pkg, err)
	}
	args := []string{"build", "-o", out}
	if ldflags != "" {
		args = append(args, "-ldflags", ldflags)
	}
	args = append(args, pkg)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, stderr.String())
	}
	return nil
}

// PluginDir returns the root of a filesystem mirror holding the sandbox
// provider plugin: $KLOUD_PLUGIN_DIR if set, else a mirror this test binary
// builds once with go build.
func PluginDir(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvPluginDir); p != "" {
		if !executable(PluginPath(p)) {
			t.Fatalf("testenv: %s=%s holds no plugin at %s; run ./build.sh build", EnvPluginDir, p, PluginPath(p))
		}
		return p
	}
	b := &builds.plugin
	b.once.Do(func() {
		dir, err := buildDir()
		if err != nil {
			b.err = err
			return
		}
		root := filepath.Join(dir, "plugins")
		b.err = goBuild("./cmd/terraform-provider-sandbox", PluginPath(root), "-X main.version="+PluginVersion)
		b.path = root
	})
	if b.err != nil {
		t.Fatalf("testenv: build sandbox plugin: %v", b.err)
	}
	return b.path
}

// Klient returns the klient agent binary: $KLOUD_KLIENT if set, else one
// this test binary builds once with go build.
func Klient(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvKlient); p != "" {
		if !executable(p) {
			t.Fatalf("testenv: %s=%s is not an executable file", EnvKlient, p)
		}
		return p
	}
	b := &builds.klient
	b.once.Do(func() {
		dir, err := buildDir()
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "klient")
		b.err = goBuild("./cmd/klient", b.path, "")
	})
	if b.err != nil {
		t.Fatalf("testenv: build klient: %v", b.err)
	}
	return b.path
}

// CLIConfig writes a Terraform CLI configuration that installs
// kloud.local/* providers from the filesystem mirror at pluginDir and never
// from the network, and returns its path (for TF_CLI_CONFIG_FILE).
func CLIConfig(t testing.TB, pluginDir string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "terraform.rc")
	if err := os.WriteFile(path, []byte(CLIConfigText(pluginDir)), 0o644); err != nil {
		t.Fatalf("testenv: write CLI config: %v", err)
	}
	return path
}

// CLIConfigText is the CLI configuration CLIConfig writes.
func CLIConfigText(pluginDir string) string {
	return fmt.Sprintf(`disable_checkpoint = true

provider_installation {
  filesystem_mirror {
    path    = %s
    include = ["%s/*/*"]
  }
  direct {
    exclude = ["%s/*/*"]
  }
}
`, strconv.Quote(pluginDir), PluginHost, PluginHost)
}

// TerraformEnv is the environment a test runs Terraform with: the
// caller's, minus any TF_CLI_CONFIG_FILE or TF_LOG, plus the CLI config,
// TF_IN_AUTOMATION and CHECKPOINT_DISABLE.
func TerraformEnv(cliConfig string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "TF_CLI_CONFIG_FILE", "TF_LOG", "TF_CLI_ARGS", "TF_DATA_DIR", "TF_PLUGIN_CACHE_DIR":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "TF_CLI_CONFIG_FILE="+cliConfig, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1", "TF_INPUT=0")
}

// Proc is a process found by Processes.
type Proc struct {
	PID     int
	Cmdline string
}

func (p Proc) String() string { return fmt.Sprintf("pid %d: %s", p.PID, p.Cmdline) }

// Processes lists the live (not zombie) processes other than this one whose
// command line, environment or working directory mentions dir.
func Processes(dir string) []Proc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	needle := []byte(dir)
	var out []Proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		base := "/proc/" + e.Name()
		stat, err := os.ReadFile(base + "/stat")
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
			continue
		}
		cmdline, _ := os.ReadFile(base + "/cmdline")
		environ, _ := os.ReadFile(base + "/environ")
		cwd, _ := os.Readlink(base + "/cwd")
		if bytes.Contains(cmdline, needle) || bytes.Contains(environ, needle) || strings.HasPrefix(cwd, dir) {
			out = append(out, Proc{PID: pid, Cmdline: strings.TrimSpace(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))})
		}
	}
	return out
}

// NoProcesses fails the test if a live process still mentions dir (a data
// dir or a machine dir) after a short grace for processes on their way out.
func NoProcesses(t testing.TB, dir string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := Processes(dir)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("testenv: processes left behind for %s:\n%v", dir, left)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Confiner returns the host's confinement (bubblewrap), or skips the test
// where it cannot run. In CI (CI set) a missing confinement fails the
// test: build.sh installs bubblewrap there.
func Confiner(t testing.TB) *confine.Confiner {
	t.Helper()
	c, err := confine.Detect(context.Background(), confine.Options{})
	if err != nil {
		if errors.Is(err, confine.ErrUnavailable) && os.Getenv("CI") == "" {
			t.Skipf("testenv: no confinement here: %v", err)
		}
		t.Fatalf("testenv: %v", err)
	}
	return c
}

// Agent is a running sandbox agent found by Agents.
type Agent struct {
	PID       int
	MachineID string
}

// Agents lists the live sandbox agents (klient, or the plugin's agent
// subcommand) whose command line mentions dir, with their machine ids. A
// confined agent is found itself, not the bwrap, setsid or setpriv that
// started it (their command lines hold the agent's too).
func Agents(dir string) []Agent {
	var out []Agent
	for _, p := range Processes(dir) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		switch filepath.Base(args[0]) {
		case "bwrap", "setsid", "setpriv", "env":
			continue
		}
		for i, a := range args[:len(args)-1] {
			if a == "-machine-id" {
				out = append(out, Agent{PID: p.PID, MachineID: args[i+1]})
				break
			}
		}
	}
	return out
}

// FakeClock is a clock a test sets by hand; safe for concurrent use.
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewFakeClock returns a clock reading t.
func NewFakeClock(t time.Time) *FakeClock { return &FakeClock{now: t} }

// Now reads the clock.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t.
func (c *FakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Advance moves the clock on by d.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// OutsideProcess starts a process outside any confinement with env as its
// whole environment, for tests that check a confined one cannot read it;
// it is killed when the test ends. It returns the process's pid.
func OutsideProcess(t testing.TB, env ...string) int {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start an outside process: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}
