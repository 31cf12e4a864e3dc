package digitalocean

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
	"github.com/kloud/kloud/templates"
)

// Stack is the digitalocean provider's stack: the credential check, the
// bootstrap template and the composition of a user's template.
type Stack struct {
	*provider.BaseStack
	opts Options
}

var _ provider.Stack = (*Stack)(nil)

// The variables the provider injects.
const (
	// TokenVar holds the API token; it is sensitive and reaches
	// Terraform only as TF_VAR_kloud_do_token.
	TokenVar = "kloud_do_token"
	// RegionVar is the credential's region (droplets' default).
	RegionVar = "kloud_region"
	// ImageVar is Kloud's default image, for templates to name.
	ImageVar = "kloud_image"
	// The bootstrap's outputs, as variables.
	KeyIDVar          = "kloud_key_id"
	KeyFingerprintVar = "kloud_key_fingerprint"
	VPCUUIDVar        = "kloud_vpc_uuid"
	PublicKeyVar      = "kloud_public_key"
	// The bootstrap template's own inputs.
	nameVar       = "kloud_name"
	sshPublicVar  = "kloud_ssh_public_key"
	sshPrivateVar = "kloud_ssh_private_key"
)

// ErrNotBootstrapped is returned by ApplyTemplate for a credential whose
// bootstrap (SSH key, VPC) has not been applied.
var ErrNotBootstrapped = errors.New("digitalocean credential is not bootstrapped")

// ErrAccountLocked is returned by VerifyCredential for a locked account.
var ErrAccountLocked = errors.New("DigitalOcean account is locked")

// credential returns the decoded credential: the BaseStack's when it is
// c's (or c is nil), else c's data decoded.
func (s *Stack) credential(c *stack.Credential) (*Credential, error) {
	if cred, ok := s.Cred.(*Credential); ok && cred != nil && (c == nil || s.Credential == nil || s.Credential.ID == c.ID) {
		return cred, nil
	}
	if c == nil {
		return nil, errors.New("digitalocean: no credential")
	}
	v, err := provider.Decode(Schema.NewCredential, c.Data)
	if err != nil {
		return nil, fmt.Errorf("digitalocean credential %s: %w", c.ID, err)
	}
	return v.(*Credential), nil
}

// bootstrap returns the decoded bootstrap of c: the BaseStack's when it is
// c's, else c's stored outputs; nil when c is not bootstrapped.
func (s *Stack) bootstrap(c *stack.Credential) (*Bootstrap, error) {
	if b, ok := s.Bootstrap.(*Bootstrap); ok && b != nil && (c == nil || s.Credential == nil || s.Credential.ID == c.ID) {
		return b, nil
	}
	if c == nil || !c.Bootstrapped || len(c.Bootstrap) == 0 {
		return nil, nil
	}
	b := &Bootstrap{}
	if err := json.Unmarshal(c.Bootstrap, b); err != nil {
		return nil, fmt.Errorf("digitalocean bootstrap of credential %s: %w", c.ID, err)
	}
	return b, nil
}

// Account is what VerifyCredential learns about the account.
type Account struct {
	Email        string `json:"email"`
	UUID         string `json:"uuid"`
	Status       string `json:"status"`
	DropletLimit int    `json:"droplet_limit"`
	Team         string `json:"team,omitempty"`
}

// Account calls GET /v2/account with the credential. Errors wrap
// ErrUnauthorized (the token was refused), ErrUnreachable (no answer from
// the endpoint), ErrUnexpectedResponse (an answer that is not the API's),
// or ErrAccountLocked.
func (s *Stack) Account(ctx context.Context, c *stack.Credential) (*Account, error) {
	cred, err := s.credential(c)
	if err != nil {
		return nil, err
	}
	client, err := newAPI(cred, s.opts, s.Log)
	if err != nil {
		return nil, err
	}
	a, err := client.account(ctx)
	if err != nil {
		return nil, err
	}
	out := &Account{Email: a.Email, UUID: a.UUID, Status: a.Status, DropletLimit: a.DropletLimit}
	if a.Team != nil {
		out.Team = a.Team.Name
	}
	if a.Status == "locked" {
		msg := a.StatusMessage
		if msg == "" {
			msg = "no reason given"
		}
		return out, fmt.Errorf("account %s (%s): %w: %s", a.Email, a.UUID, ErrAccountLocked, msg)
	}
	return out, nil
}

// VerifyCredential checks the token against the API (Account.Get) and
// logs the account it belongs to. The error says exactly what failed: a
// token refused (401) or an endpoint that does not answer.
func (s *Stack) VerifyCredential(ctx context.Context, c *stack.Credential) error {
	a, err := s.Account(ctx, c)
	if err != nil {
		return fmt.Errorf("verify digitalocean credential: %w", err)
	}
	if s.Log != nil {
		s.Log.Info("digitalocean credential verified", "email", a.Email, "uuid", a.UUID, "status", a.Status, "droplet_limit", a.DropletLimit)
	}
	return nil
}

// providerConfig is the digitalocean provider block: the token from the
// sensitive variable, and api_endpoint when the credential sets one.
func providerConfig(cred *Credential) (map[string]terraform.Value, error) {
	cfg := map[string]terraform.Value{"token": terraform.Var(TokenVar)}
	if cred.Endpoint != "" {
		_, tf, err := endpointURLs(cred.Endpoint)
		if err != nil {
			return nil, &provider.FieldError{Field: "endpoint", Message: err.Error()}
		}
		cfg["api_endpoint"] = terraform.Literal(tf)
	}
	return cfg, nil
}

func tokenVariable(cred *Credential) terraform.Variable {
	return terraform.Variable{Name: TokenVar, Description: "DigitalOcean API token", Value: cred.Token}
}

// resourceName is the name of a credential's bootstrap resources:
// "kloud-" + the credential ID, in the characters a VPC name allows.
func resourceName(credentialID string) string {
	var b strings.Builder
	b.WriteString("kloud-")
	for _, r := range strings.ToLower(credentialID) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	name := b.String()
	if len(name) > 63 {
		name = name[:63]
	}
	return strings.TrimRight(name, "-.")
}

// BootstrapTemplates returns the bootstrap template (templates/
// digitalocean/bootstrap.tf.json): a digitalocean_ssh_key holding the
// public half of a key pair Kloud generates, and a digitalocean_vpc in the
// credential's region. Its outputs are the credential's Bootstrap; the
// private half, sealed with the credential's token (so Terraform's state
// never holds it in clear), goes to Terraform only as a sensitive variable
// and comes back as a sensitive output, to be stored (encrypted) with the
// credential. A credential bootstrapped before keeps its key pair.
func (s *Stack) BootstrapTemplates(ctx context.Context, c *stack.Credential) ([]*stack.Template, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("digitalocean bootstrap templates: %w", err)
	}
	if c == nil {
		return nil, errors.New("digitalocean bootstrap templates: no credential")
	}
	cred, err := s.credential(c)
	if err != nil {
		return nil, err
	}
	key, err := s.bootstrapKey(c, cred)
	if err != nil {
		return nil, fmt.Errorf("digitalocean bootstrap templates: %w", err)
	}
	name := resourceName(c.ID)
	pub := MarshalAuthorizedKey(key.Public().(ed25519.PublicKey), name)
	text, err := MarshalPrivateKey(key, name, nil)
	if err != nil {
		return nil, fmt.Errorf("digitalocean bootstrap templates: %w", err)
	}
	sealed, err := SealPrivateKey(text, cred.Token.Reveal(), c.ID, nil)
	if err != nil {
		return nil, fmt.Errorf("digitalocean bootstrap templates: %w", err)
	}
	content, format, err := templates.Bootstrap(Name)
	if err != nil {
		return nil, fmt.Errorf("digitalocean bootstrap templates: %w", err)
	}
	cfg, err := providerConfig(cred)
	if err != nil {
		return nil, err
	}
	bs := *s.BaseStack
	bs.Credential = c
	tpl, err := bs.ComposeBootstrap("digitalocean bootstrap", content, format, provider.ComposeOptions{
		ProviderConfig: cfg,
		Variables: []terraform.Variable{
			tokenVariable(cred),
			{Name: nameVar, Value: name},
			{Name: RegionVar, Value: string(cred.Region)},
			{Name: sshPublicVar, Value: pub},
			{Name: sshPrivateVar, Value: stack.Secret(sealed)},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("digitalocean bootstrap templates: %w", err)
	}
	return []*stack.Template{tpl}, nil
}

// bootstrapKey returns the private key of c's bootstrap, or a new one when
// c has none (or one that cannot be opened).
func (s *Stack) bootstrapKey(c *stack.Credential, cred *Credential) (ed25519.PrivateKey, error) {
	b, err := s.bootstrap(c)
	if err == nil && b != nil && b.PrivateKey != "" {
		key, _, err := b.SSHKey(cred, c.ID)
		if err == nil {
			return key, nil
		}
		if s.Log != nil {
			s.Log.Warn("stored digitalocean bootstrap key unreadable; generating a new one", "credential", c.ID, "err", err)
		}
	}
	return GenerateKey(nil)
}

// ApplyTemplate composes the stack's template for the digitalocean
// Terraform provider; see compose.go for what goes on every droplet.
func (s *Stack) ApplyTemplate(ctx context.Context, c *stack.Credential) (*stack.Template, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("apply digitalocean template: %w", err)
	}
	cred, err := s.credential(c)
	if err != nil {
		return nil, err
	}
	boot, err := s.bootstrap(c)
	if err != nil {
		return nil, err
	}
	if boot == nil {
		id := ""
		if c != nil {
			id = c.ID
		} else if s.Credential != nil {
			id = s.Credential.ID
		}
		return nil, fmt.Errorf("apply digitalocean template: %w: bootstrap credential %s first (POST /api/v1/credentials/%s/bootstrap)", ErrNotBootstrapped, id, id)
	}
	tpl, err := s.compose(cred, boot)
	if err != nil {
		return nil, fmt.Errorf("apply digitalocean template: %w", s.MaskError(err))
	}
	return tpl, nil
}
