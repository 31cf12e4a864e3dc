// Package sandbox is Kloud's side of the sandbox provider, the embedded
// default: a machine is a directory under the credential's data dir (its
// disk) plus a running klient process (its CPU). Terraform creates and
// destroys machines through the sandbox provider plugin
// (kloud.local/kloud/sandbox, resource sandbox_machine); this package
// checks credentials, bootstraps them, composes templates, and starts,
// stops and inspects machines with sandboxvm.
package sandbox

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
)

// The provider's identity.
const (
	Name         = "sandbox"
	ResourceName = "machine"
	Source       = "kloud.local/kloud/sandbox"
	// Region and Image are what every sandbox machine reports (the rating
	// bridge groups usage by them).
	Region = "local"
	Image  = "sandbox"
	// SubDir is the data dir's default under Kloud's own data dir.
	SubDir = "sandbox"
)

// Provider is the sandbox provider's registration.
func Provider() *provider.Provider {
	return &provider.Provider{
		Name:         Name,
		ResourceName: ResourceName,
		Source:       Source,
		Userdata:     "user_data",
		NoCloudInit:  true,
		Machine:      func(bm *provider.BaseMachine) (provider.Machine, error) { return &Machine{BaseMachine: bm}, nil },
		Stack:        func(bs *provider.BaseStack) (provider.Stack, error) { return &Stack{BaseStack: bs}, nil },
		Schema:       Schema,
	}
}

func init() { provider.MustRegister(Provider()) }

// Schema creates the sandbox provider's persisted values.
var Schema = &provider.Schema{
	NewCredential: func() any { return &Credential{} },
	NewBootstrap:  func() any { return &Bootstrap{} },
	NewMetadata:   func(*stack.Machine) any { return &Metadata{Region: Region, Image: Image} },
}

// Credential is a sandbox account: where its machines live on Kloud's host.
type Credential struct {
	// DataDir holds the machines (machines/<id>/) and the bootstrap record;
	// Kloud's data dir + "/sandbox" when empty.
	DataDir string `json:"data_dir,omitempty" kloud:"Data directory"`
}

// Valid refuses a data dir that is not a clean absolute path.
func (c *Credential) Valid() error {
	if c.DataDir == "" {
		return nil
	}
	switch {
	case strings.ContainsAny(c.DataDir, "\x00\n"):
		return &provider.FieldError{Field: "data_dir", Message: "must be a path on one line"}
	case !filepath.IsAbs(c.DataDir):
		return &provider.FieldError{Field: "data_dir", Message: fmt.Sprintf("%q must be an absolute path", c.DataDir)}
	case filepath.Clean(c.DataDir) != c.DataDir:
		return &provider.FieldError{Field: "data_dir", Message: fmt.Sprintf("%q is not clean; use %q", c.DataDir, filepath.Clean(c.DataDir))}
	}
	return nil
}

// Bootstrap is a credential's persistent record, made by the bootstrap
// template: the network its machines are grouped in and a key id
// generated once (the id of a terraform_data resource).
type Bootstrap struct {
	Network string `json:"network" kloud:"Network"`
	KeyID   string `json:"key_id" kloud:"Key ID"`
}

// Metadata is what Kloud stores about a sandbox machine. Its JSON names
// match sandbox_machine's state attributes (id, pid, address, size), so the
// machine's Terraform state decodes into it.
type Metadata struct {
	ID      string `json:"id"`
	PID     int    `json:"pid"`
	Address string `json:"address"`
	Size    string `json:"size"`
	DataDir string `json:"data_dir"`
	Region  string `json:"region"`
	Image   string `json:"image"`
}

// dataDir resolves a credential's data dir: its own, else kloudDataDir +
// "/sandbox".
func dataDir(cred any, kloudDataDir string) (string, error) {
	if c, ok := cred.(*Credential); ok && c != nil && c.DataDir != "" {
		return c.DataDir, nil
	}
	if kloudDataDir == "" {
		return "", fmt.Errorf("sandbox data dir: the credential sets no data_dir and Kloud's data dir is unknown")
	}
	abs, err := filepath.Abs(filepath.Join(kloudDataDir, SubDir))
	if err != nil {
		return "", fmt.Errorf("sandbox data dir: %w", err)
	}
	return abs, nil
}
