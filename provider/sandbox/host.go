package sandbox

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/provider/sandbox/sandboxapi"
	"github.com/kloud/kloud/provider/sandbox/sandboxhost"
)

// Host is the sandbox host Kloud runs (see sandboxhost); HostConfig
// configures it.
type (
	Host       = sandboxhost.Host
	HostConfig = sandboxhost.Config
)

// NewHost makes a sandbox host; Listen starts its API.
func NewHost(cfg HostConfig) (*Host, error) { return sandboxhost.New(cfg) }

var credentialIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)

// inside reports whether dir is root or below it.
func inside(dir, root string) bool {
	return dir == root || strings.HasPrefix(dir, root+string(filepath.Separator))
}

// CredentialDir is where the machines of credential id live: the
// credential's data_dir when an admin set one (it must be inside the root
// or an allowed root), else <root>/<id>.
func CredentialDir(h *Host, id string, cred *Credential) (string, error) {
	if cred != nil && cred.DataDir != "" {
		if err := checkDataDir(h, cred.DataDir); err != nil {
			return "", err
		}
		return cred.DataDir, nil
	}
	if !credentialIDPattern.MatchString(id) {
		return "", fmt.Errorf("sandbox credential id %s cannot name a directory", sandboxapi.Quote(id))
	}
	return filepath.Join(h.Root(), id), nil
}

func checkDataDir(h *Host, dir string) error {
	if err := (&Credential{DataDir: dir}).Valid(); err != nil {
		return err
	}
	for _, r := range append([]string{h.Root()}, h.AllowedRoots()...) {
		if inside(dir, r) && dir != r {
			return nil
		}
	}
	return &provider.FieldError{Field: "data_dir", Message: fmt.Sprintf("%s is outside the sandbox root %s", sandboxapi.Quote(dir), h.Root())}
}

// ErrAdminOnly is wrapped by CheckCredential's error for a member who sets
// an admin's field.
var ErrAdminOnly = errors.New("admin only")

// CheckCredential refuses a credential a member may not create: data_dir
// is an admin's setting, and even an admin's must be inside the root.
func CheckCredential(h *Host, cred any, admin bool) error {
	c, ok := cred.(*Credential)
	if !ok || c == nil || c.DataDir == "" {
		return nil
	}
	if !admin {
		return fmt.Errorf("field %q: only an admin may set the sandbox data directory: %w", "data_dir", ErrAdminOnly)
	}
	return checkDataDir(h, c.DataDir)
}
