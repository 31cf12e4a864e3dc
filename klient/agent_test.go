package klient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kloud/kloud/klient/agentapi"

	"github.com/kloud/kloud/internal/version"
)

// TestMain lets the test binary act as the klient program, so the signal
// test runs the agent as a real process without building anything.
func TestMain(m *testing.M) {
	if os.Getenv("KLIENT_TEST_AS_AGENT") == "1" {
		os.Exit(Main(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// startAgent runs an agent on dir until the test ends and returns it with
// a function that stops it and returns Serve's error.
func startAgent(t *testing.T, cfg Config) (*Agent, func() error) {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if _, err := a.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case serveErr = <-done:
			case <-time.After(30 * time.Second):
				serveErr = errors.New("agent did not stop within 30s")
			}
		})
		return serveErr
	}
	t.Cleanup(func() { stop() })
	return a, stop
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decode %s: %v", url, err)
	}
	return resp.StatusCode
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHealthzAndInfo(t *testing.T) {
	dir := t.TempDir()
	a, stop := startAgent(t, Config{Dir: dir, MachineID: "sbx-1", Size: "medium"})

	b, err := os.ReadFile(filepath.Join(dir, AddressFile))
	if err != nil {
		t.Fatalf("address file: %v", err)
	}
	addr := strings.TrimSpace(string(b))
	if addr != a.Addr() || !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("address file holds %q, agent listens on %q", addr, a.Addr())
	}

	var health map[string]string
	if code := getJSON(t, "http://"+addr+"/healthz", &health); code != 200 || health["status"] != "ok" {
		t.Fatalf("healthz = %d %v", code, health)
	}
	var info Info
	if code := getJSON(t, "http://"+addr+"/v1/info", &info); code != 200 {
		t.Fatalf("info status %d", code)
	}
	if info.MachineID != "sbx-1" || info.Size != "medium" || info.PID != os.Getpid() || info.Address != addr {
		t.Fatalf("info = %+v", info)
	}
	if info.StartedAt.IsZero() || info.UptimeSeconds < 0 {
		t.Fatalf("info times = %v, %v", info.StartedAt, info.UptimeSeconds)
	}
	waitFor(t, "user data status none", func() bool { return a.Info().UserDataStatus == UserDataNone })
	if a.Info().UserDataRan {
		t.Fatal("user_data_ran is true without a script")
	}
	var nf map[string]string
	if code := getJSON(t, "http://"+addr+"/nope", &nf); code != 404 || nf["error"] == "" {
		t.Fatalf("unknown path = %d %v", code, nf)
	}

	if err := stop(); err != nil {
		t.Fatalf("Serve returned %v after a clean stop", err)
	}
	if _, err := os.Stat(filepath.Join(dir, AddressFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("address file left after stop: %v", err)
	}
}

func TestUserData(t *testing.T) {
	tests := []struct {
		name     string
		script   string
		status   UserDataStatus
		exitCode int
	}{
		{"success", "echo boot >> runs.txt\necho to-log\n", UserDataDone, 0},
		{"failure", "echo boot >> runs.txt\nexit 3\n", UserDataFailed, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, UserDataFile), []byte(tt.script), 0o600); err != nil {
				t.Fatal(err)
			}
			// Three boots; the script must run on the first only.
			for boot := 1; boot <= 3; boot++ {
				a, stop := startAgent(t, Config{Dir: dir, MachineID: "sbx-ud"})
				waitFor(t, "user data finished", func() bool {
					s := a.Info().UserDataStatus
					return s == UserDataDone || s == UserDataFailed
				})
				info := a.Info()
				if info.UserDataStatus != tt.status || !info.UserDataRan || info.UserDataExitCode == nil || *info.UserDataExitCode != tt.exitCode {
					t.Fatalf("boot %d: info = %+v", boot, info)
				}
				if err := stop(); err != nil {
					t.Fatalf("boot %d: stop: %v", boot, err)
				}
			}
			runs, err := os.ReadFile(filepath.Join(dir, "runs.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Count(string(runs), "boot"); got != 1 {
				t.Fatalf("user data ran %d times over 3 boots", got)
			}
			if _, err := os.Stat(filepath.Join(dir, UserDataDoneFile)); err != nil {
				t.Fatalf("done marker: %v", err)
			}
			if tt.exitCode == 0 {
				log, _ := os.ReadFile(filepath.Join(dir, UserDataLogFile))
				if !strings.Contains(string(log), "to-log") {
					t.Fatalf("user data log = %q", log)
				}
			}
		})
	}
}

func TestUserDataInterruptedRunsAgain(t *testing.T) {
	dir := t.TempDir()
	script := "echo $$ > script.pid\nsleep 300 &\necho $! > child.pid\nwait\n"
	if err := os.WriteFile(filepath.Join(dir, UserDataFile), []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	a, stop := startAgent(t, Config{Dir: dir, MachineID: "sbx-int", ShutdownTimeout: 5 * time.Second})
	waitFor(t, "script started", func() bool {
		_, err := os.Stat(filepath.Join(dir, "child.pid"))
		return err == nil && a.Info().UserDataStatus == UserDataRunning
	})
	child := readPID(t, filepath.Join(dir, "child.pid"))
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if a.Info().UserDataStatus != UserDataInterrupted {
		t.Fatalf("status after stop = %s", a.Info().UserDataStatus)
	}
	if _, err := os.Stat(filepath.Join(dir, UserDataDoneFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("done marker written for an interrupted script: %v", err)
	}
	waitFor(t, "script's child gone", func() bool { return !alive(child) })
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %s: %v", path, err)
	}
	return pid
}

// alive is true when pid exists and is not a zombie.
func alive(pid int) bool {
	st, ok := readStat(pid)
	return ok && st.state != 'Z' && st.state != 'X'
}

// kloudStub answers register and heartbeat from a script of status codes
// (200 once the script runs out) and records every call.
type kloudStub struct {
	mu        sync.Mutex
	script    map[string][]int
	calls     []string
	bodies    []Beat
	auth      []string
	okBeats   int
	heartbeat chan struct{}
	// ack, when set, is the body of every 200 answer.
	ack *agentapi.Ack
}

func (k *kloudStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == agentapi.ConnectPath {
		// The tunnel has tests of its own.
		w.WriteHeader(http.StatusNotFound)
		return
	}
	var b Beat
	json.NewDecoder(r.Body).Decode(&b)
	k.mu.Lock()
	k.calls = append(k.calls, r.URL.Path)
	k.bodies = append(k.bodies, b)
	k.auth = append(k.auth, r.Header.Get("Authorization"))
	status := 200
	if s := k.script[r.URL.Path]; len(s) > 0 {
		status, k.script[r.URL.Path] = s[0], s[1:]
	}
	if r.URL.Path == HeartbeatPath && status == 200 {
		k.okBeats++
	}
	k.mu.Unlock()
	w.WriteHeader(status)
	if status == 200 && k.ack != nil {
		json.NewEncoder(w).Encode(k.ack)
	}
	if r.URL.Path == HeartbeatPath && status == 200 {
		select {
		case k.heartbeat <- struct{}{}:
		default:
		}
	}
}

func TestRegisterAndHeartbeat(t *testing.T) {
	tests := []struct {
		name   string
		script map[string][]int
		// calls is the expected sequence of paths (R register, H heartbeat),
		// waits the delay after each.
		calls string
		waits []time.Duration
		// ack is Kloud's answer to every successful call, if any.
		ack *agentapi.Ack
	}{
		{
			name:   "healthy",
			script: nil,
			calls:  "RHHH",
			waits:  ms(10, 10, 10),
		},
		{
			name:   "register retried with backoff until it succeeds",
			script: map[string][]int{RegisterPath: {500, 500, 401, 500}},
			calls:  "RRRRRHHH",
			waits:  ms(5, 10, 20, 40, 10, 10, 10),
		},
		{
			name:   "heartbeat failures back off, capped at six intervals",
			script: map[string][]int{HeartbeatPath: {200, 500, 500, 500, 500, 500, 503}},
			calls:  "RHHHHHHHHHH",
			waits:  ms(10, 10, 5, 10, 20, 40, 60, 60, 10, 10),
		},
		{
			name:  "kloud's interval replaces the configured one",
			ack:   &agentapi.Ack{State: "running", HeartbeatSeconds: 0.02},
			calls: "RHHH",
			waits: ms(20, 20, 20),
		},
		{
			name:   "heartbeat answered 404 registers again",
			script: map[string][]int{HeartbeatPath: {404}},
			calls:  "RHRHHH",
			waits:  ms(10, 5, 10, 10, 10),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantOK := strings.Count(tt.calls, "H") - countFailures(tt.script[HeartbeatPath])
			stub := &kloudStub{script: tt.script, heartbeat: make(chan struct{}, 1), ack: tt.ack}
			srv := httptest.NewServer(stub)
			defer srv.Close()

			var mu sync.Mutex
			var waits []time.Duration
			cfg := Config{
				Dir: t.TempDir(), MachineID: "sbx-hb", Size: "small",
				KloudURL: srv.URL, Token: "tok-123",
				HeartbeatInterval: 10 * time.Millisecond,
				After: func(d time.Duration) <-chan time.Time {
					mu.Lock()
					waits = append(waits, d)
					mu.Unlock()
					return time.After(d)
				},
			}
			a, stop := startAgent(t, cfg)
			deadline := time.After(20 * time.Second)
			for {
				stub.mu.Lock()
				n := stub.okBeats
				stub.mu.Unlock()
				if n >= wantOK {
					break
				}
				select {
				case <-stub.heartbeat:
				case <-deadline:
					t.Fatalf("only %d successful heartbeats of %d; calls %v", n, wantOK, stub.calls)
				}
			}
			if err := stop(); err != nil {
				t.Fatalf("stop: %v", err)
			}

			stub.mu.Lock()
			defer stub.mu.Unlock()
			var got strings.Builder
			for _, c := range stub.calls {
				if c == RegisterPath {
					got.WriteByte('R')
				} else {
					got.WriteByte('H')
				}
			}
			if !strings.HasPrefix(got.String(), tt.calls) {
				t.Fatalf("calls = %s, want prefix %s", got.String(), tt.calls)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(waits) < len(tt.waits) || !reflect.DeepEqual(waits[:len(tt.waits)], tt.waits) {
				t.Fatalf("waits = %v, want prefix %v", waits, tt.waits)
			}
			for i, b := range stub.bodies {
				if stub.auth[i] != "Bearer tok-123" {
					t.Fatalf("call %d Authorization = %q", i, stub.auth[i])
				}
				if b.MachineID != "sbx-hb" || b.Size != "small" || b.Address != a.Addr() || b.UptimeSeconds < 0 || b.Version != version.Version {
					t.Fatalf("call %d body = %+v", i, b)
				}
			}
			if info := a.Info(); !info.Registered || info.LastHeartbeatAt == nil {
				t.Fatalf("info after heartbeats = %+v", info)
			}
		})
	}
}

func ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, n := range v {
		out[i] = time.Duration(n) * time.Millisecond
	}
	return out
}

func countFailures(codes []int) int {
	n := 0
	for _, c := range codes {
		if c != 200 {
			n++
		}
	}
	return n
}

func TestNextBackoff(t *testing.T) {
	iv, max := 10*time.Second, 60*time.Second
	var got []time.Duration
	d := time.Duration(0)
	for range 6 {
		d = nextBackoff(d, iv, max)
		got = append(got, d)
	}
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 60 * time.Second, 60 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("backoff = %v, want %v", got, want)
	}
}

// TestSignalStopsProcess runs the agent as its own process, in its own
// session as a sandbox machine's agent is, and stops it with SIGTERM: it
// exits 0, removes its address file and takes the processes its user data
// left running with it.
func TestSignalStopsProcess(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			script := "sleep 300 > /dev/null 2>&1 &\necho $! > daemon.pid\n"
			if err := os.WriteFile(filepath.Join(dir, UserDataFile), []byte(script), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, TokenFile), []byte("file-token\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(exe, "-dir", dir, "-machine-id", "sbx-sig", "-size", "large")
			cmd.Env = append(os.Environ(), "KLIENT_TEST_AS_AGENT=1")
			logf, err := os.Create(filepath.Join(dir, "agent.log"))
			if err != nil {
				t.Fatal(err)
			}
			defer logf.Close()
			cmd.Stdout, cmd.Stderr = logf, logf
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})

			var addr string
			waitFor(t, "address file", func() bool {
				b, err := os.ReadFile(filepath.Join(dir, AddressFile))
				addr = strings.TrimSpace(string(b))
				return err == nil && addr != ""
			})
			var info Info
			waitFor(t, "user data done", func() bool {
				getJSON(t, "http://"+addr+"/v1/info", &info)
				return info.UserDataStatus == UserDataDone
			})
			if info.PID != cmd.Process.Pid || info.Size != "large" {
				t.Fatalf("info = %+v (process %d)", info, cmd.Process.Pid)
			}
			daemon := readPID(t, filepath.Join(dir, "daemon.pid"))
			if !alive(daemon) {
				t.Fatalf("user data's background process %d is not running", daemon)
			}

			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				exited <- err // for the cleanup
				if err != nil {
					log, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
					t.Fatalf("agent exited with %v; log:\n%s", err, log)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("agent did not exit within 30s of the signal")
			}
			if _, err := os.Stat(filepath.Join(dir, AddressFile)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("address file left: %v", err)
			}
			waitFor(t, "background process stopped", func() bool { return !alive(daemon) })
			log, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
			if strings.Contains(string(log), "file-token") {
				t.Fatalf("agent log shows the token:\n%s", log)
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	open := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, TokenFile), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(open, TokenFile), []byte("leaky\n"), 0o644); err != nil || os.Chmod(filepath.Join(open, TokenFile), 0o644) != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{name: "missing dir", args: []string{"-machine-id", "m"}, wantErr: "dir is required"},
		{name: "missing id", args: []string{"-dir", dir}, wantErr: "machine id is required"},
		{name: "stray argument", args: []string{"-dir", dir, "-machine-id", "m", "extra"}, wantErr: `unexpected argument "extra"`},
		{name: "bad heartbeat env", args: []string{"-dir", dir, "-machine-id", "m"}, env: map[string]string{EnvHeartbeat: "soon"}, wantErr: EnvHeartbeat},
		{name: "zero heartbeat", args: []string{"-dir", dir, "-machine-id", "m", "-heartbeat", "0s"}, wantErr: "heartbeat interval must be positive"},
		{name: "bad kloud url", args: []string{"-dir", dir, "-machine-id", "m", "-kloud-url", "ftp://x"}, wantErr: "kloud url"},
		{name: "kloud url without token", args: []string{"-dir", open + "/none", "-machine-id", "m", "-kloud-url", "http://127.0.0.1:1"}, wantErr: "needs an agent token"},
		{name: "token file readable by others", args: []string{"-dir", open, "-machine-id", "m"}, wantErr: "want 0600"},
		{
			name: "env only",
			env:  map[string]string{EnvDir: dir, EnvMachineID: "m-env", EnvSize: "small", EnvKloudURL: "http://127.0.0.1:9", EnvToken: "from-env", EnvHeartbeat: "250ms"},
			check: func(t *testing.T, c Config) {
				if c.Dir != dir || c.MachineID != "m-env" || c.Size != "small" || c.Token != "from-env" || c.HeartbeatInterval != 250*time.Millisecond || c.KloudURL != "http://127.0.0.1:9" {
					t.Fatalf("config = %+v", c)
				}
			},
		},
		{
			name: "flags beat env; token from the machine dir",
			args: []string{"-dir", dir, "-machine-id", "m-flag", "-listen", "127.0.0.1:0", "-heartbeat", "2s"},
			env:  map[string]string{EnvMachineID: "m-env"},
			check: func(t *testing.T, c Config) {
				if c.MachineID != "m-flag" || c.Token != "from-file" || c.HeartbeatInterval != 2*time.Second {
					t.Fatalf("config = %+v", c)
				}
			},
		},
		{
			name: "explicit token file",
			args: []string{"-dir", open, "-machine-id", "m", "-token-file", filepath.Join(dir, TokenFile)},
			check: func(t *testing.T, c Config) {
				if c.Token != "from-file" {
					t.Fatalf("token = %q", c.Token)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			c, err := ParseConfig(tt.args, getenv, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrConfig) {
					t.Fatalf("err = %v, want ErrConfig mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			tt.check(t, c)
		})
	}
}
