package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/provider/sandbox/sandboxvm"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
	"github.com/kloud/kloud/templates"
)

func newMachine(t *testing.T, md *Metadata, cred *Credential, kloudDir string) *Machine {
	t.Helper()
	p, err := provider.Get(Name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := p.Machine(&provider.BaseMachine{
		Provider:   p,
		Machine:    &stack.Machine{ID: "m-1", Provider: Name},
		Credential: &stack.Credential{ID: "cr-1", OwnerID: "u-1", Provider: Name},
		Cred:       cred,
		Metadata:   md,
		DataDir:    kloudDir,
		Service:    testHost(t, kloudDir),
	})
	if err != nil {
		t.Fatal(err)
	}
	return m.(*Machine)
}

// TestMachineLifecycle drives a real sandbox machine (a directory and a
// klient process) through Info, Start, Stop and the loss of its directory.
func TestMachineLifecycle(t *testing.T) {
	klient := testenv.Klient(t)
	kloudDir := t.TempDir()
	dataDir := filepath.Join(kloudDir, SubDir, "cr-1") // the credential's default
	ctx := context.Background()
	vm, err := sandboxvm.Create(ctx, dataDir, sandboxvm.Spec{ID: "sbx-test1", Name: "web-0", Size: "medium", Agent: []string{klient}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := vm.Destroy(context.Background()); err != nil {
			t.Error(err)
		}
		testenv.NoProcesses(t, dataDir)
	})
	// The metadata as Kloud stores it after an apply: the state's id, no
	// data dir (the credential's default applies).
	m := newMachine(t, &Metadata{ID: "sbx-test1", Region: Region, Image: Image}, &Credential{}, kloudDir)

	state, meta, err := m.Info(ctx)
	if err != nil || state != machinestate.Stopped {
		t.Fatalf("Info before start = %v, %v", state, err)
	}
	if md := meta.(*Metadata); md.PID != 0 || md.Size != "medium" || md.DataDir != "" {
		t.Errorf("metadata before start = %+v", md)
	}

	meta, err = m.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	md := meta.(*Metadata)
	if md.PID == 0 || md.Address == "" || md.ID != "sbx-test1" || md.Region != "local" || md.Image != "sandbox" {
		t.Errorf("metadata after start = %+v", md)
	}
	state, meta, err = m.Info(ctx)
	if err != nil || state != machinestate.Running || meta.(*Metadata).PID != md.PID {
		t.Fatalf("Info after start = %v %+v, %v", state, meta, err)
	}
	// Starting a running machine changes nothing.
	if again, err := m.Start(ctx); err != nil || again.(*Metadata).PID != md.PID {
		t.Errorf("second start = %+v, %v", again, err)
	}

	meta, err = m.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if md := meta.(*Metadata); md.PID != 0 || md.Address != "" {
		t.Errorf("metadata after stop = %+v", md)
	}
	if alive(md.PID) {
		t.Errorf("agent %d still runs after Stop", md.PID)
	}
	if state, _, err := m.Info(ctx); err != nil || state != machinestate.Stopped {
		t.Errorf("Info after stop = %v, %v", state, err)
	}
	if _, err := m.Stop(ctx); err != nil {
		t.Errorf("stopping a stopped machine: %v", err)
	}

	// Restart, then lose the directory: the machine is not initialized.
	if _, err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := vm.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	state, meta, err = m.Info(ctx)
	if err != nil || state != machinestate.NotInitialized || meta.(*Metadata).PID != 0 {
		t.Errorf("Info after destroy = %v %+v, %v", state, meta, err)
	}
	if _, err := m.Start(ctx); !errors.Is(err, sandboxvm.ErrNotFound) {
		t.Errorf("Start of a destroyed machine: err = %v", err)
	}
}

func TestMachineWithoutID(t *testing.T) {
	m := newMachine(t, &Metadata{}, &Credential{DataDir: t.TempDir()}, "")
	if state, _, err := m.Info(context.Background()); err != nil || state != machinestate.NotInitialized {
		t.Errorf("Info = %v, %v", state, err)
	}
	if _, err := m.Start(context.Background()); !errors.Is(err, ErrNoMachineID) {
		t.Errorf("Start err = %v", err)
	}
	if _, err := m.Stop(context.Background()); !errors.Is(err, ErrNoMachineID) {
		t.Errorf("Stop err = %v", err)
	}
	m = newMachine(t, &Metadata{ID: "sbx-x"}, &Credential{DataDir: "/var/lib/elsewhere"}, "")
	if _, _, err := m.Info(context.Background()); err == nil || !strings.Contains(err.Error(), "outside the sandbox root") {
		t.Errorf("Info with a data dir outside the roots: err = %v", err)
	}
}

func alive(pid int) bool {
	if pid == 0 {
		return false
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// TestExampleEndToEnd applies the embedded example with a real Terraform
// and the sandbox plugin, then checks each machine's agent token and
// drives the machines through Kloud's side: Info, Stop, Start. It ends
// with terraform destroy and checks no agent is left.
func TestExampleEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin and runs terraform")
	}
	pluginDir := testenv.PluginDir(t)
	t.Setenv(sandboxvm.EnvKlient, testenv.Klient(t))
	dataDir := t.TempDir()
	s := newStack(t, &Credential{DataDir: dataDir}, "")
	example, err := templates.Example(Name)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := stack.NewAgentSecret()
	if err != nil {
		t.Fatal(err)
	}
	s.Stack = &stack.Stack{ID: "st-e2e", OwnerID: "u-1", Variables: map[string]string{"web_count": "2"}}
	s.Template = &stack.Template{Format: stack.FormatHCL, Content: string(example)}
	s.AgentSecret = secret
	tpl, err := s.ApplyTemplate(context.Background(), s.Credential)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	writeTemplate(t, work, tpl)
	t.Cleanup(func() {
		runTerraform(t, work, tpl, pluginDir, "destroy")
		testenv.NoProcesses(t, dataDir)
	})
	runTerraform(t, work, tpl, pluginDir, "apply")

	cmd := exec.Command(testenv.Terraform(t), "show", "-json")
	cmd.Dir, cmd.Env = work, testenv.TerraformEnv(testenv.CLIConfig(t, pluginDir))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("terraform show: %v", err)
	}
	var shown struct {
		Values struct {
			RootModule struct {
				Resources []struct {
					Address string          `json:"address"`
					Type    string          `json:"type"`
					Name    string          `json:"name"`
					Index   any             `json:"index"`
					Values  json.RawMessage `json:"values"`
				} `json:"resources"`
			} `json:"root_module"`
		} `json:"values"`
	}
	if err := json.Unmarshal(out, &shown); err != nil {
		t.Fatal(err)
	}
	p, _ := provider.Get(Name)
	machines := 0
	for _, r := range shown.Values.RootModule.Resources {
		if r.Type != p.TerraformType() {
			continue
		}
		machines++
		// Metadata as the service decodes it from the state.
		md := p.Schema.NewMetadata(&stack.Machine{}).(*Metadata)
		if err := json.Unmarshal(r.Values, md); err != nil {
			t.Fatal(err)
		}
		var values struct {
			Name     string `json:"name"`
			AlwaysOn bool   `json:"always_on"`
		}
		json.Unmarshal(r.Values, &values)
		tok, err := os.ReadFile(filepath.Join(sandboxvm.MachineDir(dataDir, md.ID), sandboxvm.TokenFile))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.TrimSpace(string(tok)), terraform.AgentToken(secret, r.Address).Reveal(); got != want {
			t.Errorf("%s: agent token on disk differs from AgentToken of its address", r.Address)
		}
		if got, want := strings.TrimSpace(string(tok)), terraform.AgentToken(secret, terraform.InstanceAddress(r.Type, r.Name, r.Index)).Reveal(); got != want {
			t.Errorf("%s: agent token differs from AgentToken of InstanceAddress", r.Address)
		}
		switch r.Name {
		case "web":
			if md.Size != "small" || !strings.HasPrefix(values.Name, "web-") || values.AlwaysOn {
				t.Errorf("%s: %+v %+v", r.Address, md, values)
			}
			waitFile(t, filepath.Join(sandboxvm.MachineDir(dataDir, md.ID), sandboxvm.DiskDir, "www", "index.html"), "Hello from web")
		case "db":
			if md.Size != "medium" || values.Name != "db" || !values.AlwaysOn {
				t.Errorf("%s: %+v %+v", r.Address, md, values)
			}
		}
		m := newMachine(t, md, &Credential{DataDir: dataDir}, "")
		ctx := context.Background()
		if state, _, err := m.Info(ctx); err != nil || state != machinestate.Running {
			t.Errorf("%s: Info = %v, %v", r.Address, state, err)
		}
		if _, err := m.Stop(ctx); err != nil {
			t.Errorf("%s: Stop: %v", r.Address, err)
		}
		if state, _, err := m.Info(ctx); err != nil || state != machinestate.Stopped {
			t.Errorf("%s: Info after stop = %v, %v", r.Address, state, err)
		}
		if meta, err := m.Start(ctx); err != nil || meta.(*Metadata).PID == 0 {
			t.Errorf("%s: Start = %+v, %v", r.Address, meta, err)
		}
	}
	if machines != 3 {
		t.Errorf("%d machines in the state, want 3 (web[0], web[1], db)", machines)
	}
}

// waitFile polls until path holds want, for at most 20 s.
func waitFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s does not hold %q: %v", path, want, err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
