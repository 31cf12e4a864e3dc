package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/provider/sandbox/sandboxhost"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
	"github.com/kloud/kloud/templates"
)

// Stack is the sandbox provider's stack: the credential check, the
// bootstrap template and the composition of a user's template.
type Stack struct {
	*provider.BaseStack
}

var _ provider.Stack = (*Stack)(nil)

// credential returns the decoded credential: the BaseStack's, or c's data
// decoded when the BaseStack has none (or another credential).
func (s *Stack) credential(c *stack.Credential) (*Credential, error) {
	if cred, ok := s.Cred.(*Credential); ok && cred != nil && (c == nil || s.Credential == nil || s.Credential.ID == c.ID) {
		return cred, nil
	}
	if c == nil {
		return &Credential{}, nil
	}
	v, err := provider.Decode(Schema.NewCredential, c.Data)
	if err != nil {
		return nil, fmt.Errorf("sandbox credential %s: %w", c.ID, err)
	}
	return v.(*Credential), nil
}

// SandboxDir is the credential's directory, where its machines live.
func (s *Stack) SandboxDir(c *stack.Credential) (string, error) {
	cred, err := s.credential(c)
	if err != nil {
		return "", err
	}
	h, err := hostOf(s.Service)
	if err != nil {
		return "", err
	}
	id := ""
	if c != nil {
		id = c.ID
	} else if s.Credential != nil {
		id = s.Credential.ID
	}
	return CredentialDir(h, id, cred)
}

// VerifyCredential checks that the sandbox host answers (its control
// API, which the plugin reaches) and that the data dir exists (creating it
// if needed), is a directory and is writable, by creating and removing a
// probe file. The error names the path and the reason, and matches
// provider.ErrUnreachable (no host, or one that does not answer) or
// provider.ErrCredentialRefused (a data dir the host refuses or cannot
// use).
func (s *Stack) VerifyCredential(ctx context.Context, c *stack.Credential) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("verify sandbox credential: %w", err)
	}
	h, err := hostOf(s.Service)
	if err != nil {
		return fmt.Errorf("verify sandbox credential: %w", err)
	}
	if err := h.Reachable(ctx); err != nil {
		return fmt.Errorf("verify sandbox credential: %w: %w", provider.ErrUnreachable, err)
	}
	dir, err := s.SandboxDir(c)
	if err == nil {
		err = checkWritable(dir)
	}
	if err != nil {
		return fmt.Errorf("verify sandbox credential: %w: %w", provider.ErrCredentialRefused, err)
	}
	return nil
}

func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("sandbox data dir %s cannot be created: %w", dir, unwrapPath(err))
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("sandbox data dir %s: %w", dir, unwrapPath(err))
	}
	if !st.IsDir() {
		return fmt.Errorf("sandbox data dir %s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".kloud-probe-*")
	if err != nil {
		return fmt.Errorf("sandbox data dir %s is not writable: %w", dir, unwrapPath(err))
	}
	name := f.Name()
	_, werr := f.WriteString("probe\n")
	cerr := f.Close()
	rerr := os.Remove(name)
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("sandbox data dir %s is not writable: %w", dir, unwrapPath(err))
	}
	if rerr != nil {
		return fmt.Errorf("sandbox data dir %s: cannot remove probe file: %w", dir, unwrapPath(rerr))
	}
	return nil
}

// unwrapPath drops the *PathError's own copy of the path, which the
// message already names.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// BootstrapTemplates returns the sandbox bootstrap: a Terraform JSON
// template of builtin terraform_data resources only (no plugin needed)
// whose outputs, network and key_id, are the credential's Bootstrap.
func (s *Stack) BootstrapTemplates(ctx context.Context, c *stack.Credential) ([]*stack.Template, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sandbox bootstrap templates: %w", err)
	}
	if c == nil {
		return nil, errors.New("sandbox bootstrap templates: no credential")
	}
	dir, err := s.SandboxDir(c)
	if err != nil {
		return nil, err
	}
	content, format, err := templates.Bootstrap(Name)
	if err != nil {
		return nil, fmt.Errorf("sandbox bootstrap templates: %w", err)
	}
	bs := *s.BaseStack
	bs.Credential = c
	tpl, err := bs.ComposeBootstrap("sandbox bootstrap", content, format, provider.ComposeOptions{
		Variables: []terraform.Variable{
			{Name: "kloud_credential_id", Value: c.ID},
			{Name: "kloud_data_dir", Value: dir},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("sandbox bootstrap templates: %w", err)
	}
	return []*stack.Template{tpl}, nil
}

// NetworkRecordFile is the bootstrap record of network n under a data dir.
func NetworkRecordFile(dataDir, network string) string {
	return filepath.Join(dataDir, "networks", network+".json")
}

// NetworkRecord is the file ApplyTemplate keeps for a bootstrapped
// credential: which credential's network and key the data dir serves.
type NetworkRecord struct {
	Network      string `json:"network"`
	KeyID        string `json:"key_id"`
	CredentialID string `json:"credential_id"`
}

// ApplyTemplate composes the stack's template for the sandbox plugin: a
// provider block pointing at the sandbox host's control API with a token
// granted to this credential's machines until ctx ends (the job's, or the
// plan request's), and on every sandbox_machine the agent's kloud_url and
// agent_token (derived from the stack's agent secret), a name where the
// user gave none, and Kloud's tags (kloud_stack_id, kloud_owner,
// kloud_template_id) merged with the user's. The user's user_data is left
// as it is: a sandbox machine's agent is its own process, there is no
// cloud-init. A bootstrapped credential's record is written under its
// directory, and its outputs are offered as var.kloud_network and
// var.kloud_key_id.
func (s *Stack) ApplyTemplate(ctx context.Context, c *stack.Credential) (*stack.Template, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("apply sandbox template: %w", err)
	}
	if s.Template != nil {
		parsed, _ := terraform.ParseTemplate(s.Template.FileName(), []byte(s.Template.Content), s.Template.Format)
		if diags := CheckTemplate(parsed); diags.HasErrors() {
			return nil, fmt.Errorf("apply sandbox template: %w", &terraform.TemplateError{Diagnostics: diags})
		}
	}
	h, err := hostOf(s.Service)
	if err != nil {
		return nil, fmt.Errorf("apply sandbox template: %w", err)
	}
	dir, err := s.SandboxDir(c)
	if err != nil {
		return nil, err
	}
	if err := sandboxhost.EnsureDir(dir); err != nil {
		return nil, fmt.Errorf("apply sandbox template: %w", err)
	}
	vars, err := s.BootstrapVariables()
	if err != nil {
		return nil, fmt.Errorf("apply sandbox template: %w", err)
	}
	if b, ok := s.Bootstrap.(*Bootstrap); ok && b != nil && c != nil {
		if err := writeNetworkRecord(dir, NetworkRecord{Network: b.Network, KeyID: b.KeyID, CredentialID: c.ID}); err != nil {
			return nil, fmt.Errorf("apply sandbox template: %w", err)
		}
	}
	credID := ""
	if c != nil {
		credID = c.ID
	}
	token, release := h.Grant(ctx, credID, dir)
	vars = append(vars,
		terraform.Variable{Name: EndpointVar, Description: "the sandbox control API", Value: h.Endpoint()})
	tpl, err := s.Compose(provider.ComposeOptions{
		ProviderConfig:      map[string]terraform.Value{"endpoint": terraform.Var(EndpointVar)},
		Variables:           vars,
		KloudURLAttribute:   "kloud_url",
		AgentTokenAttribute: "agent_token",
		NameAttribute:       "name",
		TagsAttribute:       "tags",
		TagsStyle:           terraform.TagsMap,
	})
	if err != nil {
		release()
		return nil, fmt.Errorf("apply sandbox template: %w", err)
	}
	tpl.ProviderEnv = map[string]stack.Secret{TokenEnv: stack.Secret(token)}
	return tpl, nil
}

// writeNetworkRecord writes the record unless an identical one exists.
func writeNetworkRecord(dataDir string, rec NetworkRecord) error {
	if err := validNetworkName(rec.Network); err != nil {
		return err
	}
	path := NetworkRecordFile(dataDir, rec.Network)
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode network record: %w", err)
	}
	b = append(b, '\n')
	if old, err := os.ReadFile(path); err == nil && string(old) == string(b) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write network record: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".network-*")
	if err != nil {
		return fmt.Errorf("write network record: %w", err)
	}
	_, werr := f.Write(b)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write network record %s: %w", path, werr)
	}
	return nil
}

// validNetworkName refuses a network name that could leave the networks
// directory.
func validNetworkName(n string) error {
	if n == "" || n == "." || n == ".." || filepath.Base(n) != n || len(n) > 200 {
		return &provider.FieldError{Field: "network", Message: fmt.Sprintf("%q is not a valid network name", n)}
	}
	return nil
}
