package aws

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
	"github.com/kloud/kloud/templates"
)

// The variables through which the credential reaches Terraform. All are
// sensitive: their values go only to TF_VAR_ environment variables.
const (
	VarAccessKey    = "kloud_aws_access_key"
	VarSecretKey    = "kloud_aws_secret_key"
	VarSessionToken = "kloud_aws_session_token"
)

// The bootstrap template's own variables.
const (
	VarCredentialID = "kloud_credential_id"
	VarKeyName      = "kloud_key_name"
	VarPublicKey    = "kloud_public_key"
)

// Stack is the aws provider's stack: the credential check, the bootstrap
// template and the composition of a user's template.
type Stack struct {
	*provider.BaseStack
	opts Options
}

var _ provider.Stack = (*Stack)(nil)

// credential returns the decoded credential: the BaseStack's, or c's data
// decoded when the BaseStack has none (or another credential's).
func (s *Stack) credential(c *stack.Credential) (*Credential, error) {
	if cred, ok := s.Cred.(*Credential); ok && cred != nil && (c == nil || s.Credential == nil || s.Credential.ID == c.ID) {
		return cred, nil
	}
	if c == nil {
		return nil, errors.New("aws credential: none given")
	}
	v, err := provider.Decode(Schema.NewCredential, c.Data)
	if err != nil {
		return nil, fmt.Errorf("aws credential %s: %w", c.ID, err)
	}
	return v.(*Credential), nil
}

func (s *Stack) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Identity asks STS GetCallerIdentity whom c's keys belong to.
func (s *Stack) Identity(ctx context.Context, c *stack.Credential) (*Identity, error) {
	cred, err := s.credential(c)
	if err != nil {
		return nil, err
	}
	return s.opts.CallerIdentity(ctx, cred)
}

// VerifyCredential calls STS GetCallerIdentity with the credential's keys.
// On success it logs the account and identity; otherwise the error says
// which failure it was: keys AWS refused (ErrBadCredentials, with AWS's
// code: InvalidClientTokenId for an unknown access key,
// SignatureDoesNotMatch for a wrong secret key) or an endpoint that did
// not answer (ErrUnreachable).
func (s *Stack) VerifyCredential(ctx context.Context, c *stack.Credential) error {
	id, err := s.Identity(ctx, c)
	if err != nil {
		return fmt.Errorf("verify aws credential: %w", err)
	}
	credID := ""
	if c != nil {
		credID = c.ID
	}
	s.log().InfoContext(ctx, "aws credential verified", "credential", credID, "account", id.Account, "arn", id.ARN)
	return nil
}

// credentialVariables are the credential's keys as sensitive variables.
func credentialVariables(c *Credential) []terraform.Variable {
	vars := []terraform.Variable{
		{Name: VarAccessKey, Description: "AWS access key id", Value: stack.Secret(c.AccessKey)},
		{Name: VarSecretKey, Description: "AWS secret access key", Value: c.SecretKey},
	}
	if c.SessionToken != "" {
		vars = append(vars, terraform.Variable{Name: VarSessionToken, Description: "AWS session token", Value: c.SessionToken})
	}
	return vars
}

// providerConfig is the provider "aws" block of a composition: the region
// as is, the keys through the sensitive variables, the EC2 and STS
// endpoints when the credential names one, and default tags when given.
func providerConfig(c *Credential, defaultTags map[string]string) map[string]terraform.Value {
	cfg := map[string]terraform.Value{
		"region":     terraform.Literal(string(c.Region)),
		"access_key": terraform.Var(VarAccessKey),
		"secret_key": terraform.Var(VarSecretKey),
	}
	if c.SessionToken != "" {
		cfg["token"] = terraform.Var(VarSessionToken)
	}
	if c.Endpoint != "" {
		cfg["endpoints"] = terraform.Literal(map[string]string{"ec2": c.Endpoint, "sts": c.Endpoint})
	}
	if len(defaultTags) > 0 {
		cfg["default_tags"] = terraform.Literal(map[string]any{"tags": defaultTags})
	}
	return cfg
}

// BootstrapTemplates returns the credential's bootstrap
// (templates/aws/bootstrap.tf.json): a VPC, an internet gateway, a public
// subnet with its route table, a security group (SSH, HTTP and HTTPS in,
// everything out) and a key pair of the public key Kloud derives for the
// credential (see KeyPair), plus the latest Ubuntu LTS AMI of the region.
// Every resource carries the kloud_credential_id and kloud_owner tags
// through the provider's default_tags. Its outputs decode into Bootstrap.
// Destroying it is a Terraform destroy of the same composition, and
// destroying again finds nothing left to destroy.
func (s *Stack) BootstrapTemplates(ctx context.Context, c *stack.Credential) ([]*stack.Template, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("aws bootstrap templates: %w", err)
	}
	if c == nil {
		return nil, errors.New("aws bootstrap templates: no credential")
	}
	cred, err := s.credential(c)
	if err != nil {
		return nil, err
	}
	key, err := KeyPair(cred, c.ID)
	if err != nil {
		return nil, fmt.Errorf("aws bootstrap templates: %w", err)
	}
	content, format, err := templates.Bootstrap(Name)
	if err != nil {
		return nil, fmt.Errorf("aws bootstrap templates: %w", err)
	}
	bs := *s.BaseStack
	bs.Credential = c
	vars := append(credentialVariables(cred),
		terraform.Variable{Name: VarCredentialID, Value: c.ID},
		terraform.Variable{Name: VarKeyName, Value: KeyPairName(c.ID)},
		terraform.Variable{Name: VarPublicKey, Value: AuthorizedKey(key.Public().(ed25519.PublicKey), KeyPairName(c.ID))},
	)
	tpl, err := bs.ComposeBootstrap("aws bootstrap", content, format, provider.ComposeOptions{
		ProviderConfig: providerConfig(cred, map[string]string{
			provider.TagCredentialID: c.ID,
			provider.TagOwner:        c.OwnerID,
		}),
		Variables: vars,
	})
	if err != nil {
		return nil, fmt.Errorf("aws bootstrap templates: %w", err)
	}
	return []*stack.Template{tpl}, nil
}

// ApplyTemplate composes the stack's template for the hashicorp/aws
// Terraform provider (which Kloud's tests cannot download: they check the
// composed files against golden files, not with terraform validate):
//
//   - the provider block gets the credential's region, its keys through
//     the sensitive variables kloud_aws_access_key and kloud_aws_secret_key
//     (TF_VAR_ only), and the EC2 and STS endpoints when the credential
//     names one; every provider "aws" block the user wrote gets the same;
//   - a template that writes keys (see CheckTemplate) is refused with a
//     diagnostic naming the line;
//   - every aws_instance gets the agent's user data (AgentScript), merged
//     with the user's own user_data into a cloud-init multipart archive;
//     one that sets user_data_base64 is refused, since the two cannot be
//     merged;
//   - every aws_instance gets Kloud's tags (kloud_stack_id, kloud_owner,
//     kloud_template_id) merged with its own;
//   - with a bootstrapped credential, every aws_instance gets the
//     bootstrap's values where the user set none (see defaults); the
//     outputs are also offered as var.kloud_vpc, var.kloud_subnet,
//     var.kloud_sg, var.kloud_key_pair, var.kloud_ami and so on. Without
//     a bootstrap nothing is defaulted (and an aws_instance that sets
//     neither ami nor launch_template is logged: creating it will fail,
//     but destroying a stack must still compose).
func (s *Stack) ApplyTemplate(ctx context.Context, c *stack.Credential) (*stack.Template, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("apply aws template: %w", err)
	}
	if s.Template == nil {
		return nil, fmt.Errorf("apply aws template: %w", provider.ErrNoTemplate)
	}
	cred, err := s.credential(c)
	if err != nil {
		return nil, err
	}
	parsed, _, err := terraform.ValidateTemplate(s.Template.FileName(), []byte(s.Template.Content), s.Template.Format)
	if err != nil {
		return nil, fmt.Errorf("apply aws template: %w", err)
	}
	if diags := CheckTemplate(parsed); diags.HasErrors() {
		return nil, fmt.Errorf("apply aws template: %w", &terraform.TemplateError{Diagnostics: diags})
	}
	boot, _ := s.Bootstrap.(*Bootstrap)
	machines := terraform.MachineResources(parsed, s.Provider.TerraformType())
	for _, r := range machines {
		if a, ok := r.Attributes["user_data_base64"]; ok {
			return nil, fmt.Errorf("apply aws template: %w", templateError(a.Range,
				fmt.Sprintf("%s sets user_data_base64, which cannot be merged with Kloud's agent set-up; put the script or #cloud-config in user_data instead (Kloud joins the two into one cloud-init archive)", r.Address())))
		}
		if has := setIn(parsed, r); boot == nil && !has("ami") && !has("launch_template") {
			// Not refused: the same composition must still destroy a
			// stack whose credential lost its bootstrap.
			s.log().WarnContext(ctx, "aws_instance sets no ami and the credential is not bootstrapped; EC2 will refuse to create it",
				"resource", r.Address(), "line", r.Range.Start.Line)
		}
	}
	vars := credentialVariables(cred)
	bootVars, err := s.BootstrapVariables()
	if err != nil {
		return nil, fmt.Errorf("apply aws template: %w", err)
	}
	vars = append(vars, bootVars...)
	vars = append(vars, s.KlientURLVariable())
	tpl, err := s.Compose(provider.ComposeOptions{
		ProviderConfig: providerConfig(cred, nil),
		Variables:      vars,
		TagsAttribute:  "tags",
		TagsStyle:      terraform.TagsMap,
		UserData:       &terraform.UserData{Attribute: "user_data", Script: AgentScript(), CloudInit: true},
	})
	if err != nil {
		return nil, fmt.Errorf("apply aws template: %w", err)
	}
	if boot != nil {
		if err := addDefaults(tpl, parsed, machines); err != nil {
			return nil, fmt.Errorf("apply aws template: %w", err)
		}
	}
	return tpl, nil
}

// templateError is a *terraform.TemplateError with one diagnostic at r.
func templateError(r hcl.Range, msg string) error {
	return &terraform.TemplateError{Diagnostics: terraform.Diagnostics{{
		File: r.Filename, Line: r.Start.Line, Column: r.Start.Column, Severity: terraform.SeverityError, Message: msg,
	}}}
}

// defaults returns the bootstrap values an aws_instance gets, each only
// where the user set none and where it cannot clash with what the user set:
//
//	ami                     unless ami or launch_template is set
//	key_name                unless key_name or launch_template is set
//	subnet_id               unless subnet_id, network_interface,
//	                        launch_template or availability_zone is set
//	vpc_security_group_ids  unless it, security_groups, subnet_id,
//	                        network_interface, launch_template or
//	                        availability_zone is set (the bootstrap's
//	                        security group belongs to its VPC)
func defaults(has func(string) bool) map[string]any {
	out := map[string]any{}
	lt := has("launch_template")
	if !has("ami") && !lt {
		out["ami"] = "${var.kloud_ami}"
	}
	if !has("key_name") && !lt {
		out["key_name"] = "${var.kloud_key_pair}"
	}
	placed := lt || has("network_interface") || has("availability_zone")
	if !has("subnet_id") && !placed {
		out["subnet_id"] = "${var.kloud_subnet}"
	}
	if !has("vpc_security_group_ids") && !has("security_groups") && !has("subnet_id") && !placed {
		out["vpc_security_group_ids"] = []any{"${var.kloud_sg}"}
	}
	return out
}

// setIn returns what a resource block sets: its attributes and, in an HCL
// template, its nested blocks (a JSON template's ResourceBlock lists both).
func setIn(p *terraform.Parsed, r terraform.ResourceBlock) func(string) bool {
	blocks := map[string]bool{}
	if body, ok := p.File.Body.(*hclsyntax.Body); ok {
		for _, b := range body.Blocks {
			if b.Type == "resource" && len(b.Labels) == 2 && b.Labels[0] == r.Type && b.Labels[1] == r.Name {
				for _, nb := range b.Body.Blocks {
					blocks[nb.Type] = true
				}
			}
		}
	}
	return func(name string) bool { return r.Has(name) || blocks[name] }
}

// addDefaults writes each machine's defaults into the composed override
// file, beside Kloud's injected attributes.
func addDefaults(tpl *stack.Template, p *terraform.Parsed, machines []terraform.ResourceBlock) error {
	override := map[string]any{}
	if b, ok := tpl.Generated[terraform.FileOverride]; ok {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&override); err != nil {
			return fmt.Errorf("read %s: %w", terraform.FileOverride, err)
		}
	}
	changed := false
	for _, r := range machines {
		d := defaults(setIn(p, r))
		if len(d) == 0 {
			continue
		}
		attrs := nested(override, "resource", r.Type, r.Name)
		for k, v := range d {
			attrs[k] = v
		}
		changed = true
	}
	if !changed {
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(override); err != nil {
		return fmt.Errorf("encode %s: %w", terraform.FileOverride, err)
	}
	tpl.Generated[terraform.FileOverride] = buf.Bytes()
	return nil
}

// nested returns the object at path in m, creating what is missing.
func nested(m map[string]any, path ...string) map[string]any {
	for _, k := range path {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	return m
}
