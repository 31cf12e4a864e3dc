package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	tfjson "github.com/hashicorp/terraform-json"

	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/klient"
	"github.com/kloud/kloud/provider/sandbox"
	"github.com/kloud/kloud/provider/sandbox/sandboxapi"
	"github.com/kloud/kloud/provider/sandbox/sandboxvm"
)

// tfDir is a Terraform working directory driven by the real binary.
type tfDir struct {
	t   *testing.T
	bin string
	dir string
	env []string
}

func newTFDir(t *testing.T) *tfDir {
	tf := testenv.Terraform(t)
	cli := testenv.CLIConfig(t, testenv.PluginDir(t))
	var env []string
	for _, kv := range testenv.TerraformEnv(cli) {
		// The plugin reaches the sandbox only through its provider block.
		if strings.HasPrefix(kv, EnvEndpoint+"=") || strings.HasPrefix(kv, EnvToken+"=") {
			continue
		}
		env = append(env, kv)
	}
	return &tfDir{t: t, bin: tf, dir: t.TempDir(), env: env}
}

// newHost starts a sandbox host, as Kloud does, on loopback.
func newHost(t *testing.T) *sandbox.Host {
	t.Helper()
	h, err := sandbox.NewHost(sandbox.HostConfig{Root: t.TempDir(), Agent: []string{testenv.Klient(t)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func (d *tfDir) write(main string) {
	d.t.Helper()
	if err := os.WriteFile(filepath.Join(d.dir, "main.tf"), []byte(main), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// run runs terraform with args and returns its combined output and exit
// code; a code outside okCodes fails the test.
func (d *tfDir) run(okCodes []int, args ...string) (string, int) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.bin, append(args[:1:1], append([]string{"-no-color"}, args[1:]...)...)...)
	if args[0] == "state" { // "state rm" takes -no-color nowhere
		cmd = exec.CommandContext(ctx, d.bin, args...)
	}
	cmd.Dir = d.dir
	cmd.Env = d.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatalf("terraform %v: %v", args, err)
	}
	for _, ok := range okCodes {
		if code == ok {
			return out.String(), code
		}
	}
	d.t.Fatalf("terraform %s exited %d:\n%s", strings.Join(args, " "), code, out.String())
	return "", code
}

func (d *tfDir) ok(args ...string) string {
	d.t.Helper()
	out, _ := d.run([]int{0}, args...)
	return out
}

// machines reads the state's sandbox_machine resources by name.
func (d *tfDir) machines() map[string]map[string]any {
	d.t.Helper()
	out, _ := d.run([]int{0}, "show", "-json")
	var st tfjson.State
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		d.t.Fatalf("decode terraform show -json: %v\n%s", err, out)
	}
	got := map[string]map[string]any{}
	if st.Values == nil || st.Values.RootModule == nil {
		return got
	}
	for _, r := range st.Values.RootModule.Resources {
		if r.Type == "sandbox_machine" {
			got[r.Name] = r.AttributeValues
		}
	}
	return got
}

func getInfo(addr string) (klient.Info, error) {
	resp, err := http.Get("http://" + addr + "/v1/info")
	if err != nil {
		return klient.Info{}, err
	}
	defer resp.Body.Close()
	var i klient.Info
	err = json.NewDecoder(resp.Body).Decode(&i)
	return i, err
}

func healthz(addr string) error {
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("healthz answered %d", resp.StatusCode)
	}
	return nil
}

const template = `
terraform {
  required_providers {
    sandbox = { source = "kloud.local/kloud/sandbox" }
  }
}

provider "sandbox" {
  endpoint = %q
  token    = %q
}

resource "sandbox_machine" "web" {
  name      = %q
  size      = "medium"
  user_data = "echo booted-$KLOUD_MACHINE_ID > booted.txt\n"
}

resource "sandbox_machine" "db" {
  name      = "db"
  size      = "large"
  always_on = true
  tags      = { role = "db" }
}

resource "sandbox_machine" "cache" {
  name        = "cache"
  agent_token = "cache-secret"
}

output "web_address" {
  value = sandbox_machine.web.address
}
`

// TestTerraformEndToEnd drives the plugin through the real Terraform,
// offline: apply three machines, check their agents and user data, see a
// killed agent refresh to stopped, update in place, import, and destroy
// leaving nothing behind.
func TestTerraformEndToEnd(t *testing.T) {
	d := newTFDir(t)
	host := newHost(t)
	data := filepath.Join(host.Root(), "cr-mine")
	other := filepath.Join(host.Root(), "cr-other")
	token, release := host.Grant(context.Background(), "cr-mine", data)
	defer release()
	defer testenv.NoProcesses(t, host.Root())
	t.Cleanup(func() {
		// Whatever happened above, no agent outlives the test.
		for _, dir := range []string{data, other} {
			vms, _ := sandboxvm.List(dir)
			for _, vm := range vms {
				vm.Destroy(context.Background())
			}
		}
	})

	d.write(fmt.Sprintf(template, host.Endpoint(), token, "web"))
	d.ok("init", "-input=false")
	d.ok("apply", "-auto-approve", "-input=false")

	ms := d.machines()
	if len(ms) != 3 {
		t.Fatalf("state holds %d machines, want 3: %v", len(ms), ms)
	}
	for name, m := range ms {
		id, _ := m["id"].(string)
		addr, _ := m["address"].(string)
		if !strings.HasPrefix(id, "sbx-") || m["state"] != "running" || m["pid"].(float64) <= 0 {
			t.Fatalf("%s = %v", name, m)
		}
		if err := healthz(addr); err != nil {
			t.Fatalf("%s at %s: %v", name, addr, err)
		}
		i, err := getInfo(addr)
		if err != nil || i.MachineID != id || i.Size != m["size"] || float64(i.PID) != m["pid"] {
			t.Fatalf("%s info = %+v, %v; state %v", name, i, err, m)
		}
		meta := loadMeta(t, data, id)
		if len(meta.Agent) == 0 || meta.PID != i.PID || meta.Name != name {
			t.Fatalf("%s machine.json = %+v", name, meta)
		}
	}
	if ms["db"]["always_on"] != true || ms["cache"]["size"] != "small" {
		t.Fatalf("defaults/explicit values: db %v cache %v", ms["db"], ms["cache"])
	}
	// Tags reach the machine and read back; a machine without keeps none.
	if tags, _ := ms["db"]["tags"].(map[string]any); tags["role"] != "db" || ms["cache"]["tags"] != nil {
		t.Fatalf("tags: db %v cache %v", ms["db"]["tags"], ms["cache"]["tags"])
	}
	if meta := loadMeta(t, data, ms["db"]["id"].(string)); meta.Tags["role"] != "db" {
		t.Fatalf("db machine.json tags = %v", meta.Tags)
	}
	// The host runs the agent: the plugin only asked for the machine.
	if meta := loadMeta(t, data, ms["db"]["id"].(string)); meta.Agent[0] != testenv.Klient(t) {
		t.Fatalf("agent argv = %v", meta.Agent)
	}
	tok, err := os.Stat(filepath.Join(sandboxvm.MachineDir(data, ms["cache"]["id"].(string)), sandboxvm.TokenFile))
	if err != nil || tok.Mode().Perm() != 0o600 {
		t.Fatalf("cache token file: %v %v", tok, err)
	}

	// The web machine's user data ran, once, in its directory.
	webID := ms["web"]["id"].(string)
	deadline := time.Now().Add(20 * time.Second)
	for {
		i, err := getInfo(ms["web"]["address"].(string))
		if err == nil && i.UserDataRan {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("web user data did not run: %+v %v", i, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b, err := os.ReadFile(filepath.Join(sandboxvm.MachineDir(data, webID), sandboxvm.DiskDir, "booted.txt")); err != nil || string(b) != "booted-"+webID+"\n" {
		t.Fatalf("booted.txt = %q, %v", b, err)
	}

	// Nothing changed: a plan is empty.
	d.run([]int{0}, "plan", "-detailed-exitcode", "-input=false")

	// Kill db's agent behind Terraform's back: a refresh reports it stopped.
	dbPID := int(ms["db"]["pid"].(float64))
	if err := syscall.Kill(dbPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	out, _ := d.run([]int{2}, "plan", "-refresh-only", "-detailed-exitcode", "-input=false")
	if !strings.Contains(out, `"running" -> "stopped"`) {
		t.Fatalf("refresh-only plan does not show db stopped:\n%s", out)
	}
	d.ok("apply", "-refresh-only", "-auto-approve", "-input=false")
	ms2 := d.machines()
	if db := ms2["db"]; db["state"] != "stopped" || db["pid"].(float64) != 0 || db["address"] != "" {
		t.Fatalf("db after refresh = %v", db)
	}
	if ms2["web"]["state"] != "running" || ms2["cache"]["state"] != "running" {
		t.Fatalf("others after refresh: web %v cache %v", ms2["web"], ms2["cache"])
	}

	// Rename web in place: same machine, same agent.
	d.write(fmt.Sprintf(template, host.Endpoint(), token, "web-renamed"))
	out = d.ok("apply", "-auto-approve", "-input=false")
	if !strings.Contains(out, "0 added, 1 changed, 0 destroyed") {
		t.Fatalf("rename apply:\n%s", out)
	}
	ms3 := d.machines()
	if w := ms3["web"]; w["id"] != webID || w["pid"] != ms["web"]["pid"] || w["name"] != "web-renamed" {
		t.Fatalf("web after rename = %v (before %v)", w, ms["web"])
	}
	if meta := loadMeta(t, data, webID); meta.Name != "web-renamed" {
		t.Fatalf("machine.json name = %q", meta.Name)
	}

	// Forget cache and import it back: the plan is empty again.
	cacheID := ms["cache"]["id"].(string)
	d.ok("state", "rm", "sandbox_machine.cache")
	d.ok("import", "-input=false", "sandbox_machine.cache", cacheID)
	if c := d.machines()["cache"]; c["id"] != cacheID || c["name"] != "cache" || c["state"] != "running" || c["agent_token"] != "cache-secret" {
		t.Fatalf("imported cache = %v", c)
	}
	d.run([]int{0}, "plan", "-detailed-exitcode", "-input=false")
	if out, _ := d.run([]int{1}, "import", "-input=false", "sandbox_machine.cache", "../escape"); !strings.Contains(out, "id") {
		t.Fatalf("import of a bad id:\n%s", out)
	}
	// Another credential's machine is not found with this run's token.
	theirs, err := host.Create(context.Background(), other, sandboxapi.CreateRequest{Name: "theirs"})
	if err != nil {
		t.Fatal(err)
	}
	d.ok("state", "rm", "sandbox_machine.cache")
	if out, _ := d.run([]int{1}, "import", "-input=false", "sandbox_machine.cache", theirs.ID()); !strings.Contains(out, "non-existent") {
		t.Fatalf("import of another credential's machine:\n%s", out)
	}
	if st, err := theirs.Status(context.Background()); err != nil || st.State != sandboxvm.Running {
		t.Fatalf("their machine after the import: %+v, %v", st, err)
	}
	if err := theirs.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.ok("import", "-input=false", "sandbox_machine.cache", cacheID)

	// A revoked token reaches nothing.
	revoked, rel := host.Grant(context.Background(), "cr-mine", data)
	rel()
	d.write(fmt.Sprintf(template, host.Endpoint(), revoked, "web-renamed"))
	if out, _ := d.run([]int{1}, "plan", "-input=false"); !strings.Contains(out, "token refused") {
		t.Fatalf("plan with a revoked token:\n%s", out)
	}
	d.write(fmt.Sprintf(template, host.Endpoint(), token, "web-renamed"))

	// Destroy: no directory, no process.
	d.ok("destroy", "-auto-approve", "-input=false")
	entries, err := os.ReadDir(filepath.Join(data, "machines"))
	if err != nil || len(entries) != 0 {
		t.Fatalf("machines left after destroy: %v %v", entries, err)
	}
	testenv.NoProcesses(t, host.Root())

	// Configuration errors are reported, naming what is wrong.
	bad := []struct {
		name, main, want string
	}{
		{"no endpoint", `
terraform {
  required_providers {
    sandbox = { source = "kloud.local/kloud/sandbox" }
  }
}
resource "sandbox_machine" "m" { name = "m" }
`, EnvEndpoint},
		{"bad size", fmt.Sprintf(`
terraform {
  required_providers {
    sandbox = { source = "kloud.local/kloud/sandbox" }
  }
}
provider "sandbox" {
  endpoint = %q
  token    = %q
}
resource "sandbox_machine" "m" {
  name = "m"
  size = "huge"
}
`, host.Endpoint(), token), `size is "huge"; want one of small, medium, large`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			d.write(tt.main)
			out, _ := d.run([]int{1}, "plan", "-input=false")
			if !strings.Contains(strings.Join(strings.Fields(out), " "), tt.want) {
				t.Fatalf("plan output does not mention %q:\n%s", tt.want, out)
			}
		})
	}
}

func loadMeta(t *testing.T, data, id string) sandboxvm.Meta {
	t.Helper()
	vm, err := sandboxvm.Load(data, id)
	if err != nil {
		t.Fatalf("load %s: %v", id, err)
	}
	return vm.Meta()
}

// TestAgentSubcommand checks the binary's multi-call side: run as "agent"
// it is klient, and SIGTERM stops it with exit 0.
func TestAgentSubcommand(t *testing.T) {
	plugin := testenv.PluginPath(testenv.PluginDir(t))
	dir := t.TempDir()
	cmd := exec.Command(plugin, "agent", "-dir", dir, "-machine-id", "sbx-self")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	deadline := time.Now().Add(20 * time.Second)
	var addr string
	for {
		b, err := os.ReadFile(filepath.Join(dir, klient.AddressFile))
		if addr = strings.TrimSpace(string(b)); err == nil && addr != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent wrote no address; output:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if i, err := getInfo(addr); err != nil || i.MachineID != "sbx-self" || i.PID != cmd.Process.Pid {
		t.Fatalf("info = %+v, %v", i, err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("agent exit: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent ignored SIGTERM")
	}

	v, err := exec.Command(plugin, "version").Output()
	if err != nil || strings.TrimSpace(string(v)) != testenv.PluginVersion {
		t.Fatalf("version = %q, %v", v, err)
	}
}
