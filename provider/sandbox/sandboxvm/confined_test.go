package sandboxvm_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/kloud/kloud/internal/confine"
	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/provider/sandbox/sandboxvm"
)

// TestConfinedAgent boots a machine confined: its agent is the pid
// recorded (as the first process of its own PID namespace), runs as the
// unprivileged user, writes only its disk, and stops gracefully on Stop.
func TestConfinedAgent(t *testing.T) {
	c, err := confine.Detect(context.Background(), confine.Options{})
	if errors.Is(err, confine.ErrUnavailable) && os.Getenv("CI") == "" {
		t.Skipf("no confinement here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	ctx := ctxT(t)
	vm, err := sandboxvm.Create(ctx, data, sandboxvm.Spec{Name: "c", Agent: []string{testenv.Klient(t)},
		UserData: "id -u > uid.txt\nsleep 300 > /dev/null 2>&1 &\n"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		vm.Destroy(context.Background())
		testenv.NoProcesses(t, data)
	})
	vm.Confiner = c
	if err := c.HandOver(vm.Disk()); err != nil {
		t.Fatal(err)
	}
	if err := vm.Start(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := vm.Status(ctx)
	if err != nil || st.State != sandboxvm.Running {
		t.Fatalf("status = %+v, %v", st, err)
	}
	i := waitUserData(t, st.Address)
	if i.PID != 1 {
		t.Errorf("agent's own pid = %d, want 1 (first of its PID namespace)", i.PID)
	}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(st.PID) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := c.IDs()
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" && f[1] != strconv.Itoa(uid) {
			t.Errorf("recorded pid %d runs as uid %s, want %d", st.PID, f[1], uid)
		}
	}
	if b, err := os.ReadFile(filepath.Join(vm.Disk(), "uid.txt")); err != nil || strings.TrimSpace(string(b)) == "0" {
		t.Errorf("user data uid = %q, %v", b, err)
	}
	// Kloud's own files stay Kloud's.
	for _, f := range []string{sandboxvm.MetaFile, sandboxvm.AgentLogFile} {
		fi, err := os.Stat(filepath.Join(vm.Dir(), f))
		if err != nil || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != uint32(os.Getuid()) {
			t.Errorf("%s: %v, %v", f, fi, err)
		}
	}
	if err := vm.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := vm.Status(ctx); err != nil || st.State != sandboxvm.Stopped {
		t.Errorf("after stop: %+v, %v", st, err)
	}
	testenv.NoProcesses(t, data)
}

// TestReadDiskFile reads what a machine wrote without following its links
// or blocking on its FIFOs.
func TestReadDiskFile(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("host secret"), 0o600)
	os.WriteFile(filepath.Join(dir, "plain"), []byte("127.0.0.1:1234\n"), 0o600)
	os.Symlink(secret, filepath.Join(dir, "link"))
	syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600)
	os.WriteFile(filepath.Join(dir, "big"), []byte(strings.Repeat("x", 1000)), 0o600)
	tests := []struct {
		name, want string
		ok         bool
	}{
		{"plain", "127.0.0.1:1234\n", true},
		{"link", "", false},
		{"fifo", "", false},
		{"big", strings.Repeat("x", 256), true},
		{"missing", "", false},
	}
	for _, tt := range tests {
		b, err := sandboxvm.ReadDiskFile(filepath.Join(dir, tt.name), 256)
		if (err == nil) != tt.ok || string(b) != tt.want {
			t.Errorf("%s: %q, %v", tt.name, b, err)
		}
	}
}
