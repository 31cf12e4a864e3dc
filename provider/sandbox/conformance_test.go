package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/provider/providertest"
	"github.com/kloud/kloud/provider/sandbox/sandboxapi"
	"github.com/kloud/kloud/provider/sandbox/sandboxvm"
	"github.com/kloud/kloud/templates"
)

// TestConformance runs Kloud's provider conformance suite against a
// sandbox host whose machines run confined, as kloud serve runs them: the
// sandbox's "simulator" is the real thing.
func TestConformance(t *testing.T) {
	root := filepath.Join(t.TempDir(), SubDir)
	h := startHost(t, HostConfig{Root: root, Confiner: testenv.Confiner(t), Agent: []string{testenv.Klient(t)}})
	t.Cleanup(func() { testenv.NoProcesses(t, root) })
	// A host that no longer answers: the unreachable endpoint.
	closed := startHost(t, HostConfig{Root: filepath.Join(t.TempDir(), SubDir)})
	closed.Close()

	dir, err := CredentialDir(h, providertest.CredentialID, nil)
	if err != nil {
		t.Fatal(err)
	}
	example, err := templates.Example(Name)
	if err != nil {
		t.Fatal(err)
	}
	boot, _ := json.Marshal(Bootstrap{Network: "kloud-" + providertest.CredentialID, KeyID: "0b7e2a44-5ad4-4c1e-9d55-31c7c1f0e2aa"})
	providertest.Run(t, Provider(), providertest.Env{
		Credential:         `{}`,
		Refused:            `{"data_dir": "/var/lib/elsewhere"}`,
		Unreachable:        `{}`,
		UnreachableService: closed,
		Malformed: []providertest.Malformed{
			{Data: `{"data_dir": "relative/dir"}`, Field: "data_dir"},
			{Data: `{"data_dir": "/a/../b"}`, Field: "data_dir"},
			{Data: `{"dir": "/x"}`, Field: "dir"},
		},
		Bootstrap: string(boot),
		Template:  string(example),
		CarriesCredentials: `provider "sandbox" {
  token = "sbt_0123456789abcdef"
}

resource "sandbox_machine" "m" {
  name = "m"
}
`,
		Service: h,
		DataDir: filepath.Dir(root),
		NewMachine: func(t testing.TB) json.RawMessage {
			vm, err := h.Create(context.Background(), dir, sandboxapi.CreateRequest{Name: "conformance", Size: "small"})
			if err != nil {
				t.Fatalf("create a sandbox machine: %v", err)
			}
			b, _ := json.Marshal(Metadata{ID: vm.ID(), Size: vm.Meta().Size, Region: Region, Image: Image})
			return b
		},
		RemoveMachine: func(t testing.TB, md json.RawMessage) {
			var m Metadata
			if err := json.Unmarshal(md, &m); err != nil {
				t.Fatal(err)
			}
			vm, err := h.VM(dir, m.ID)
			if errors.Is(err, sandboxvm.ErrNotFound) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := vm.Destroy(context.Background()); err != nil {
				t.Errorf("destroy sandbox machine %s: %v", m.ID, err)
			}
		},
	})
}
