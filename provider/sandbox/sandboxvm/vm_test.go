package sandboxvm_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/klient"
	"github.com/kloud/kloud/provider/sandbox/sandboxvm"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func info(t *testing.T, addr string) klient.Info {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/v1/info")
	if err != nil {
		t.Fatalf("GET info: %v", err)
	}
	defer resp.Body.Close()
	var i klient.Info
	if err := json.NewDecoder(resp.Body).Decode(&i); err != nil {
		t.Fatalf("decode info: %v", err)
	}
	return i
}

func waitUserData(t *testing.T, addr string) klient.Info {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		i := info(t, addr)
		if i.UserDataRan {
			return i
		}
		if time.Now().After(deadline) {
			t.Fatalf("user data did not run: %+v", i)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLifecycle(t *testing.T) {
	ctx := ctxT(t)
	data := t.TempDir()
	agent := testenv.Klient(t)
	defer testenv.NoProcesses(t, data)

	vm, err := sandboxvm.Create(ctx, data, sandboxvm.Spec{
		Name:     "web",
		Size:     "medium",
		UserData: "echo hello > hello.txt\nsleep 300 > /dev/null 2>&1 &\n",
		Token:    "secret-token-1",
		Agent:    []string{agent},
	})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { vm.Destroy(context.Background()) })
	if !strings.HasPrefix(vm.ID(), "sbx-") || vm.Dir() != filepath.Join(data, "machines", vm.ID()) {
		t.Fatalf("id %q dir %q", vm.ID(), vm.Dir())
	}
	st, err := os.Stat(filepath.Join(vm.Dir(), sandboxvm.TokenFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", st, err)
	}
	raw, _ := os.ReadFile(filepath.Join(vm.Dir(), sandboxvm.MetaFile))
	if strings.Contains(string(raw), "secret-token-1") {
		t.Fatalf("machine.json holds the token: %s", raw)
	}
	if s, _ := vm.Status(ctx); s.State != sandboxvm.Stopped {
		t.Fatalf("status before start = %+v", s)
	}

	// Start; the agent answers at the recorded address and runs user data.
	// It boots with a clean environment: nothing of its starter's secrets.
	t.Setenv("TF_VAR_cloud_secret", "do-not-leak")
	if err := vm.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	s, err := vm.Status(ctx)
	if err != nil || s.State != sandboxvm.Running || s.PID == 0 || s.Address == "" {
		t.Fatalf("status after start = %+v, %v", s, err)
	}
	meta := vm.Meta()
	if meta.PID != s.PID || meta.Address != s.Address || meta.Name != "web" || meta.Size != "medium" || !slices.Equal(meta.Agent, []string{agent}) {
		t.Fatalf("meta = %+v, status %+v", meta, s)
	}
	i := waitUserData(t, s.Address)
	if i.MachineID != vm.ID() || i.Size != "medium" || i.PID != s.PID {
		t.Fatalf("agent info = %+v", i)
	}
	if b, err := os.ReadFile(filepath.Join(vm.Disk(), "hello.txt")); err != nil || string(b) != "hello\n" {
		t.Fatalf("user data output = %q, %v", b, err)
	}
	environ, _ := os.ReadFile("/proc/" + strconv.Itoa(s.PID) + "/environ")
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(s.PID) + "/cmdline")
	if !strings.Contains(string(environ), "KLIENT_TOKEN=secret-token-1") || strings.Contains(string(cmdline), "secret-token-1") {
		t.Fatal("token must reach the agent through its environment, not its command line")
	}
	if strings.Contains(string(environ), "do-not-leak") {
		t.Fatal("the agent inherited its starter's TF_VAR_ secret")
	}
	if sid, _ := syscall.Getpgid(s.PID); sid != s.PID {
		t.Fatalf("agent is not detached into its own session/group (pgid %d)", sid)
	}

	// Start on a running machine does nothing.
	if err := vm.Start(ctx); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if s2, _ := vm.Status(ctx); s2.PID != s.PID {
		t.Fatalf("second Start replaced the agent: %d -> %d", s.PID, s2.PID)
	}

	// A VM loaded elsewhere sees the same machine.
	other, err := sandboxvm.Load(data, vm.ID())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if ls, _ := other.Status(ctx); ls.State != sandboxvm.Running || ls.PID != s.PID {
		t.Fatalf("loaded status = %+v", ls)
	}

	// Stop, from the other VM value: the agent and its user data's daemon go.
	if err := other.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	testenv.NoProcesses(t, data)
	if s, _ := vm.Status(ctx); s.State != sandboxvm.Stopped || s.Alive {
		t.Fatalf("status after stop = %+v", s)
	}
	if m := vm.Meta(); m.PID != 0 || m.Address != "" || m.StoppedAt == nil {
		t.Fatalf("meta after stop = %+v", m)
	}
	if err := vm.Stop(ctx); err != nil {
		t.Fatalf("Stop again: %v", err)
	}

	// Start again: a new agent; user data does not run a second time.
	os.Remove(filepath.Join(vm.Disk(), "hello.txt"))
	if err := vm.Start(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	s3, _ := vm.Status(ctx)
	if s3.State != sandboxvm.Running || s3.PID == s.PID {
		t.Fatalf("status after restart = %+v", s3)
	}
	if i := info(t, s3.Address); i.UserDataStatus != klient.UserDataDone {
		t.Fatalf("user data status after restart = %s", i.UserDataStatus)
	}
	if _, err := os.Stat(filepath.Join(vm.Disk(), "hello.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("user data ran again on restart")
	}

	list, err := sandboxvm.List(data)
	if err != nil || len(list) != 1 || list[0].ID() != vm.ID() {
		t.Fatalf("List = %v, %v", list, err)
	}

	// Destroy: no process, no directory; destroying again is fine.
	if err := vm.Destroy(ctx); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if _, err := os.Stat(vm.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("machine dir left: %v", err)
	}
	if err := vm.Destroy(ctx); err != nil {
		t.Fatalf("Destroy again: %v", err)
	}
	if _, err := sandboxvm.Load(data, vm.ID()); !errors.Is(err, sandboxvm.ErrNotFound) {
		t.Fatalf("Load after destroy = %v, want ErrNotFound", err)
	}
	if _, err := vm.Status(ctx); !errors.Is(err, sandboxvm.ErrNotFound) {
		t.Fatalf("Status after destroy = %v, want ErrNotFound", err)
	}
}

// TestKilledAgentReadsStopped kills the agent behind the VM's back: Status
// reports it stopped (a zombie counts as dead) and Start brings it back.
func TestKilledAgentReadsStopped(t *testing.T) {
	ctx := ctxT(t)
	data := t.TempDir()
	defer testenv.NoProcesses(t, data)
	vm, err := sandboxvm.Create(ctx, data, sandboxvm.Spec{Name: "k", Agent: []string{testenv.Klient(t)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Destroy(context.Background()) })
	if err := vm.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s, _ := vm.Status(ctx)
	if err := syscall.Kill(s.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := vm.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == sandboxvm.Stopped && !st.Alive {
			if !strings.Contains(st.Reason, "gone") {
				t.Fatalf("reason = %q", st.Reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("killed agent still reads %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := vm.Start(ctx); err != nil {
		t.Fatalf("Start after kill: %v", err)
	}
	if st, _ := vm.Status(ctx); st.State != sandboxvm.Running || st.PID == s.PID {
		t.Fatalf("after restart %+v", st)
	}
	if err := vm.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestUpdate(t *testing.T) {
	ctx := ctxT(t)
	data := t.TempDir()
	defer testenv.NoProcesses(t, data)
	vm, err := sandboxvm.Create(ctx, data, sandboxvm.Spec{ID: "upd-1", Name: "a", Agent: []string{testenv.Klient(t)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Destroy(context.Background()) })
	if err := vm.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s, _ := vm.Status(ctx)

	name, on := "b", true
	restarted, err := vm.Update(ctx, sandboxvm.Update{Name: &name, AlwaysOn: &on})
	if err != nil || restarted {
		t.Fatalf("Update name = %v, %v", restarted, err)
	}
	if s2, _ := vm.Status(ctx); s2.PID != s.PID {
		t.Fatal("renaming restarted the agent")
	}
	size := "large"
	restarted, err = vm.Update(ctx, sandboxvm.Update{Size: &size})
	if err != nil || !restarted {
		t.Fatalf("Update size = %v, %v", restarted, err)
	}
	s3, _ := vm.Status(ctx)
	if s3.State != sandboxvm.Running || s3.PID == s.PID || info(t, s3.Address).Size != "large" {
		t.Fatalf("after resize %+v", s3)
	}
	m := vm.Meta()
	if m.Name != "b" || !m.AlwaysOn || m.Size != "large" {
		t.Fatalf("meta = %+v", m)
	}
	bad := "huge"
	if _, err := vm.Update(ctx, sandboxvm.Update{Size: &bad}); !errors.Is(err, sandboxvm.ErrInvalid) || !strings.Contains(err.Error(), "size") {
		t.Fatalf("bad size = %v", err)
	}
	if err := vm.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestStartFailureReportsLog(t *testing.T) {
	ctx := ctxT(t)
	data := t.TempDir()
	defer testenv.NoProcesses(t, data)
	bad := filepath.Join(t.TempDir(), "bad-agent")
	if err := os.WriteFile(bad, []byte("#!/bin/sh\necho 'agent cannot boot' >&2\nexit 7\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	vm, err := sandboxvm.Create(ctx, data, sandboxvm.Spec{Agent: []string{bad}})
	if err != nil {
		t.Fatal(err)
	}
	err = vm.Start(ctx)
	if !errors.Is(err, sandboxvm.ErrAgentExited) || !strings.Contains(err.Error(), "agent cannot boot") {
		t.Fatalf("Start = %v", err)
	}
	if s, _ := vm.Status(ctx); s.State != sandboxvm.Stopped || vm.Meta().PID != 0 {
		t.Fatalf("after failed start %+v %+v", s, vm.Meta())
	}

	// An agent that never answers is killed when the deadline passes.
	hang := filepath.Join(t.TempDir(), "hang-agent")
	if err := os.WriteFile(hang, []byte("#!/bin/sh\nexec sleep 300\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	vm2, err := sandboxvm.Create(ctx, data, sandboxvm.Spec{Agent: []string{hang}})
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := vm2.Start(short); !errors.Is(err, sandboxvm.ErrStartTimeout) {
		t.Fatalf("Start of a hanging agent = %v", err)
	}
	testenv.NoProcesses(t, data)
	if err := vm2.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := vm.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestCreateValidation(t *testing.T) {
	ctx := ctxT(t)
	data := t.TempDir()
	agent := []string{"/bin/sh"}
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, []byte("not a program"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		spec sandboxvm.Spec
		want string
		err  error
	}{
		{"bad size", sandboxvm.Spec{Size: "xl", Agent: agent}, `size "xl"`, sandboxvm.ErrInvalid},
		{"path in id", sandboxvm.Spec{ID: "../etc", Agent: agent}, `id "../etc"`, sandboxvm.ErrInvalid},
		{"upper-case id", sandboxvm.Spec{ID: "ABC", Agent: agent}, `id "ABC"`, sandboxvm.ErrInvalid},
		{"bad kloud url", sandboxvm.Spec{KloudURL: "localhost:80", Agent: agent}, "kloud_url", sandboxvm.ErrInvalid},
		{"multi-line name", sandboxvm.Spec{Name: "a\nb", Agent: agent}, "name", sandboxvm.ErrInvalid},
		{"missing agent", sandboxvm.Spec{Agent: []string{"/nonexistent/klient"}}, "/nonexistent/klient", sandboxvm.ErrNoAgent},
		{"agent not executable", sandboxvm.Spec{Agent: []string{plain}}, "not an executable", sandboxvm.ErrNoAgent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sandboxvm.Create(ctx, data, tt.spec)
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Create = %v, want %v mentioning %q", err, tt.err, tt.want)
			}
		})
	}
	if _, err := sandboxvm.Create(ctx, data, sandboxvm.Spec{ID: "dup", Agent: agent}); err != nil {
		t.Fatal(err)
	}
	if _, err := sandboxvm.Create(ctx, data, sandboxvm.Spec{ID: "dup", Agent: agent}); !errors.Is(err, sandboxvm.ErrExists) {
		t.Fatalf("duplicate Create = %v", err)
	}
	if _, err := sandboxvm.Load(data, "nope"); !errors.Is(err, sandboxvm.ErrNotFound) {
		t.Fatalf("Load missing = %v", err)
	}
}

func TestDefaultAgent(t *testing.T) {
	agent := testenv.Klient(t)
	t.Setenv(sandboxvm.EnvKlient, agent)
	got, err := sandboxvm.DefaultAgent()
	if err != nil || len(got) != 1 || got[0] != agent {
		t.Fatalf("DefaultAgent = %v, %v", got, err)
	}
	t.Setenv(sandboxvm.EnvKlient, "/nonexistent/klient")
	if _, err := sandboxvm.DefaultAgent(); !errors.Is(err, sandboxvm.ErrNoAgent) {
		t.Fatalf("DefaultAgent with a bad %s = %v", sandboxvm.EnvKlient, err)
	}
}

// TestAgentReachesKloud boots a machine with a Kloud URL: its agent
// registers and heartbeats with the machine's own token.
func TestAgentReachesKloud(t *testing.T) {
	ctx := ctxT(t)
	data := t.TempDir()
	defer testenv.NoProcesses(t, data)
	beats := make(chan klient.Beat, 16)
	var registered atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer machine-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var b klient.Beat
		json.NewDecoder(r.Body).Decode(&b)
		switch r.URL.Path {
		case klient.RegisterPath:
			registered.Add(1)
		case klient.HeartbeatPath:
			select {
			case beats <- b:
			default:
			}
		}
	}))
	defer srv.Close()
	vm, err := sandboxvm.Create(ctx, data, sandboxvm.Spec{
		KloudURL: srv.URL, Token: "machine-token", Heartbeat: 20 * time.Millisecond,
		Agent: []string{testenv.Klient(t)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Destroy(context.Background()) })
	if err := vm.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s, _ := vm.Status(ctx)
	for range 2 {
		select {
		case b := <-beats:
			if b.MachineID != vm.ID() || b.Address != s.Address || b.Size != "small" {
				t.Fatalf("heartbeat = %+v", b)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no heartbeat within 20s")
		}
	}
	if registered.Load() < 1 {
		t.Fatal("agent heartbeats without registering")
	}
	i, err := vm.AgentInfo(ctx)
	if err != nil || !i.Registered || i.KloudURL != srv.URL {
		t.Fatalf("AgentInfo = %+v, %v", i, err)
	}
	if m := vm.Meta(); time.Duration(m.Heartbeat) != 20*time.Millisecond {
		t.Fatalf("meta heartbeat = %v", m.Heartbeat)
	}
	if err := vm.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.AgentInfo(ctx); !errors.Is(err, sandboxvm.ErrNotRunning) {
		t.Fatalf("AgentInfo of a stopped machine = %v", err)
	}
	if err := vm.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkStartStop measures one boot (spawn the agent, wait for its
// address and /healthz) and one power-off of a sandbox machine.
func BenchmarkStartStop(b *testing.B) {
	ctx := context.Background()
	data := b.TempDir()
	vm, err := sandboxvm.Create(ctx, data, sandboxvm.Spec{Agent: []string{testenv.Klient(b)}})
	if err != nil {
		b.Fatal(err)
	}
	defer vm.Destroy(ctx)
	var start, stop time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := vm.Start(ctx); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := vm.Stop(ctx); err != nil {
			b.Fatal(err)
		}
		start += t1.Sub(t0)
		stop += time.Since(t1)
	}
	b.ReportMetric(start.Seconds()*1000/float64(b.N), "start-ms/op")
	b.ReportMetric(stop.Seconds()*1000/float64(b.N), "stop-ms/op")
}

// TestDestroyKillsUnrecordedAgent: an agent whose pid never reached
// machine.json (its starter was killed right after spawning it) still goes
// with the machine's directory.
func TestDestroyKillsUnrecordedAgent(t *testing.T) {
	ctx := ctxT(t)
	data := t.TempDir()
	defer testenv.NoProcesses(t, data)
	vm, err := sandboxvm.Create(ctx, data, sandboxvm.Spec{Name: "u", Agent: []string{testenv.Klient(t)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := vm.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Forget the pid, as machine.json would read had the starter died.
	metaPath := filepath.Join(vm.Dir(), sandboxvm.MetaFile)
	b, err := os.ReadFile(metaPath)
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	for k := range meta {
		if k == "pid" || k == "proc_start" || k == "address" {
			delete(meta, k)
		}
	}
	if b, err = json.Marshal(meta); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(metaPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := vm.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(vm.Dir()); !os.IsNotExist(err) {
		t.Errorf("machine dir still there: %v", err)
	}
}
