package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/kloud/kloud/internal/secretmask"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
)

// BaseStack is what Kloud hands a provider's Stack constructor: the stack
// being built (nil for credential-only work such as verify and bootstrap),
// the user's template, the credential with its decoded schema values, and the
// settings every provider's composition needs. Its methods do the shared
// work so a provider does not.
type BaseStack struct {
	Provider *Provider
	Log      *slog.Logger

	// Stack and Template are nil for credential-only work.
	Stack    *stack.Stack
	Template *stack.Template

	// Credential is the stored credential; Cred and Bootstrap are its Data
	// and Bootstrap decoded into the provider's schema types (Bootstrap is
	// nil until the credential was bootstrapped).
	Credential *stack.Credential
	Cred       any
	Bootstrap  any

	// KloudURL is where machine agents reach Kloud; AgentSecret is the
	// stack's secret from which each machine's agent token is derived.
	KloudURL    string
	AgentSecret stack.Secret

	// DataDir is Kloud's data directory; a provider that keeps local
	// state (the sandbox) derives its defaults from it.
	DataDir string

	// Service is what Kloud runs on its own host for this provider (the
	// sandbox's Host); nil for cloud providers.
	Service any
}

// BaseMachine is what Kloud hands a provider's Machine constructor: one
// machine with its credential and decoded schema values.
type BaseMachine struct {
	Provider *Provider
	Log      *slog.Logger

	Machine    *stack.Machine
	Credential *stack.Credential
	Cred       any
	Bootstrap  any
	// Metadata is the machine's stored metadata decoded into the provider's
	// Schema.NewMetadata type.
	Metadata any

	// DataDir is Kloud's data directory (as BaseStack.DataDir).
	DataDir string

	// Service is as BaseStack.Service.
	Service any
}

// The variables and tags every composition injects.
const (
	// KloudURLVar holds Kloud's URL for the agents (not secret).
	KloudURLVar = "kloud_url"
	// TagStackID, TagOwner and TagTemplateID are the tags Kloud puts on
	// every machine (where the provider has a tags attribute).
	TagStackID    = "kloud_stack_id"
	TagOwner      = "kloud_owner"
	TagTemplateID = "kloud_template_id"
	// TagCredentialID tags resources of bootstrap templates.
	TagCredentialID = "kloud_credential_id"
)

// ComposeOptions is what a provider gives BaseStack.Compose; everything
// else (the stack's variables, the agent secret, Kloud's URL and tags, the
// provider's source) comes from the BaseStack.
type ComposeOptions struct {
	// ProviderConfig is the provider block's attributes; values may
	// reference variables (terraform.Var("kloud_secret_key")).
	ProviderConfig map[string]terraform.Value
	// Variables are injected besides Kloud's own (kloud_url,
	// kloud_agent_secret): bootstrap outputs, credential fields. A value
	// of type stack.Secret reaches Terraform only through TF_VAR_.
	Variables []terraform.Variable
	// Inject sets attributes on every machine, replacing the user's.
	Inject map[string]terraform.Value
	// Defaults sets attributes on machines where the user set none.
	Defaults map[string]terraform.Value
	// KloudURLAttribute, when set, is given var.kloud_url on every machine.
	KloudURLAttribute string
	// AgentTokenAttribute, when set, is given each machine's agent token
	// (see terraform.AgentTokenExpr); it needs the BaseStack's AgentSecret.
	AgentTokenAttribute string
	// NameAttribute, when set, is given a name where the user set none
	// (see terraform.ComposeOptions.NameAttribute).
	NameAttribute string
	// TagsAttribute, when set, receives Kloud's tags (kloud_stack_id,
	// kloud_owner, kloud_template_id) and Tags, merged with the user's.
	TagsAttribute string
	TagsStyle     terraform.TagsStyle
	Tags          map[string]string
	// UserData, when set, injects the agent's start-up script; its
	// ${kloud_agent_token} needs the BaseStack's AgentSecret.
	UserData *terraform.UserData
}

// ErrNoTemplate is returned by Compose when the BaseStack has no template.
var ErrNoTemplate = errors.New("no template to compose")

// Compose checks the stack's template (syntax and policy) and composes it
// with Kloud's settings and the provider's options. The result is a copy of
// the template holding the generated files and the secret variables.
func (bs *BaseStack) Compose(opts ComposeOptions) (*stack.Template, error) {
	if bs.Template == nil {
		return nil, ErrNoTemplate
	}
	var userVars map[string]string
	tags := map[string]string{}
	if bs.Stack != nil {
		userVars = bs.Stack.Variables
		tags[TagStackID] = bs.Stack.ID
		tags[TagOwner] = bs.Stack.OwnerID
		tags[TagTemplateID] = bs.Stack.TemplateID
	}
	maps.Copy(tags, opts.Tags)
	return bs.compose(bs.Template, opts, userVars, tags)
}

// ComposeBootstrap composes one of the provider's own bootstrap templates
// (content in format) with the provider block and variables of opts; tags
// name the credential. Machine injection does not apply.
func (bs *BaseStack) ComposeBootstrap(title string, content []byte, format stack.Format, opts ComposeOptions) (*stack.Template, error) {
	tpl := &stack.Template{Title: title, Format: format, Content: string(content)}
	if bs.Provider != nil {
		tpl.Provider = bs.Provider.Name
	}
	if bs.Credential != nil {
		tpl.OwnerID = bs.Credential.OwnerID
	}
	tags := map[string]string{}
	if bs.Credential != nil {
		tags[TagCredentialID] = bs.Credential.ID
		tags[TagOwner] = bs.Credential.OwnerID
	}
	maps.Copy(tags, opts.Tags)
	opts.AgentTokenAttribute, opts.NameAttribute, opts.UserData = "", "", nil
	return bs.compose(tpl, opts, nil, tags)
}

func (bs *BaseStack) compose(tpl *stack.Template, opts ComposeOptions, userVars, tags map[string]string) (*stack.Template, error) {
	if bs.Provider == nil {
		return nil, errors.New("compose template: BaseStack has no provider")
	}
	parsed, _, err := terraform.ValidateTemplateWith(tpl.FileName(), []byte(tpl.Content), tpl.Format, bs.Provider.PolicyOptions())
	if err != nil {
		return nil, err
	}
	needSecret := opts.AgentTokenAttribute != "" || (opts.UserData != nil && strings.Contains(opts.UserData.Script, "${kloud_agent_token}"))
	vars := slices.Clone(opts.Variables)
	if needSecret {
		if bs.AgentSecret == "" {
			return nil, errors.New("compose template: the stack has no agent secret")
		}
		vars = append(vars, terraform.Variable{Name: terraform.AgentSecretVar, Description: "the stack's agent secret", Value: bs.AgentSecret})
	}
	inject := maps.Clone(opts.Inject)
	if inject == nil {
		inject = map[string]terraform.Value{}
	}
	if opts.KloudURLAttribute != "" || (opts.UserData != nil && strings.Contains(opts.UserData.Script, "var."+KloudURLVar)) {
		vars = append(vars, terraform.Variable{Name: KloudURLVar, Description: "where machine agents reach Kloud", Value: bs.KloudURL})
		if opts.KloudURLAttribute != "" {
			inject[opts.KloudURLAttribute] = terraform.Var(KloudURLVar)
		}
	}
	so := terraform.ComposeOptions{
		ResourceType: bs.Provider.TerraformType(),
		Provider: terraform.ProviderBlock{
			Name:    bs.Provider.Name,
			Source:  bs.Provider.Source,
			Version: bs.Provider.Version,
			Config:  opts.ProviderConfig,
		},
		Variables:           vars,
		UserVariables:       userVars,
		Inject:              inject,
		Defaults:            opts.Defaults,
		AgentTokenAttribute: opts.AgentTokenAttribute,
		NameAttribute:       opts.NameAttribute,
		UserData:            opts.UserData,
	}
	if opts.TagsAttribute != "" {
		so.Tags, so.TagsAttribute, so.TagsStyle = tags, opts.TagsAttribute, opts.TagsStyle
	}
	composed, err := terraform.Compose(parsed, so)
	if err != nil {
		return nil, fmt.Errorf("compose template %q: %w", tpl.Title, bs.MaskError(err))
	}
	out := *tpl
	out.Generated = composed.Files
	out.Env = composed.Env
	for _, a := range []string{opts.KloudURLAttribute, opts.AgentTokenAttribute} {
		if a != "" {
			out.KloudAttributes = append(out.KloudAttributes, a)
		}
	}
	return &out, nil
}

// StructVariables turns the fields of a schema value (a credential or
// bootstrap struct, or a pointer to one) into variables named prefix +
// the field's JSON name. Secret fields (kloud:",secret" or of type
// stack.Secret) become secret variables; zero-valued optional fields are
// left out.
func StructVariables(prefix string, v any) ([]terraform.Variable, error) {
	if v == nil {
		return nil, nil
	}
	fields, err := DescribeStruct(v)
	if err != nil {
		return nil, err
	}
	rv := reflect.Indirect(reflect.ValueOf(v))
	byName := fieldValues(rv)
	var out []terraform.Variable
	for _, f := range fields {
		fv, ok := byName[f.Name]
		if !ok || (!f.Required && fv.IsZero()) {
			continue
		}
		val := fv.Interface()
		typ := terraformType(f.Type)
		if f.Secret || fv.Type() == secretType {
			out = append(out, terraform.Variable{Name: prefix + f.Name, Type: "string", Description: f.Label, Value: stack.Secret(fmt.Sprint(reveal(fv)))})
			continue
		}
		if fv.Kind() == reflect.String {
			val = fv.String() // a named string type (an enum) as a plain string
		}
		out = append(out, terraform.Variable{Name: prefix + f.Name, Type: typ, Description: f.Label, Value: val})
	}
	return out, nil
}

// BootstrapVariables returns the bootstrap outputs as variables named
// "kloud_" + field name (nil before the credential was bootstrapped).
func (bs *BaseStack) BootstrapVariables() ([]terraform.Variable, error) {
	return StructVariables("kloud_", bs.Bootstrap)
}

func terraformType(fieldType string) string {
	switch fieldType {
	case "integer", "number":
		return "number"
	case "boolean":
		return "bool"
	case "list":
		return "list(any)"
	case "object":
		return "any"
	}
	return "string"
}

var secretType = reflect.TypeFor[stack.Secret]()

func reveal(v reflect.Value) string {
	if v.Type() == secretType {
		return v.Interface().(stack.Secret).Reveal()
	}
	if v.Kind() == reflect.String {
		return v.String()
	}
	return fmt.Sprint(v.Interface())
}

// fieldValues maps the JSON names of a struct's exported fields to their values.
func fieldValues(rv reflect.Value) map[string]reflect.Value {
	out := map[string]reflect.Value{}
	if rv.Kind() != reflect.Struct {
		return out
	}
	for i := 0; i < rv.NumField(); i++ {
		sf := rv.Type().Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, skip := jsonName(sf)
		if skip {
			continue
		}
		out[name] = rv.Field(i)
	}
	return out
}

// SecretValues returns the values of v's secret fields (kloud:",secret" or
// of type stack.Secret), for masking. v is a schema struct or a pointer to one.
func SecretValues(v any) []string {
	if v == nil {
		return nil
	}
	fields, err := DescribeStruct(v)
	if err != nil {
		return nil
	}
	byName := fieldValues(reflect.Indirect(reflect.ValueOf(v)))
	var out []string
	for _, f := range fields {
		fv, ok := byName[f.Name]
		if !ok {
			continue
		}
		if f.Secret || fv.Type() == secretType {
			if s := reveal(fv); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// Masker replaces secret values in text with a mask: the one masker of
// Kloud (internal/secretmask), here for providers.
type Masker = secretmask.Masker

// Mask is what a masked secret reads as.
const Mask = secretmask.Mask

// NewMasker masks every given non-empty secret (credential fields are
// secrets whatever their length) in its raw, JSON-escaped and URL-escaped
// forms.
func NewMasker(secrets ...string) *Masker { return secretmask.NewMin(1, secrets...) }

// Secrets returns every secret the stack knows: its agent secret and the
// secret fields of its credential and bootstrap values.
func (bs *BaseStack) Secrets() []string {
	var out []string
	if bs.AgentSecret != "" {
		out = append(out, bs.AgentSecret.Reveal())
	}
	out = append(out, SecretValues(bs.Cred)...)
	out = append(out, SecretValues(bs.Bootstrap)...)
	return out
}

// Masker returns a masker of the stack's secrets, to run over every line of
// Terraform output and every error before it is logged or stored.
func (bs *BaseStack) Masker() *Masker { return NewMasker(bs.Secrets()...) }

// Mask returns s with every secret of the stack masked.
func (bs *BaseStack) Mask(s string) string { return bs.Masker().Mask(s) }

// MaskError returns err with every secret of the stack masked.
func (bs *BaseStack) MaskError(err error) error { return bs.Masker().MaskError(err) }

// Mask returns s with every secret of the machine's credential masked.
func (bm *BaseMachine) Mask(s string) string {
	return NewMasker(append(SecretValues(bm.Cred), SecretValues(bm.Bootstrap)...)...).Mask(s)
}

// DecodeCredential decodes c's data and, when bootstrapped, its bootstrap
// outputs into p's schema types, checking both (see Decode).
func (p *Provider) DecodeCredential(c *stack.Credential) (cred, bootstrap any, err error) {
	cred, err = Decode(p.Schema.NewCredential, c.Data)
	if err != nil {
		return nil, nil, fmt.Errorf("decode %s credential %s: %w", p.Name, c.ID, err)
	}
	if p.Schema.NewBootstrap != nil && c.Bootstrapped && len(c.Bootstrap) > 0 {
		bootstrap, err = Decode(p.Schema.NewBootstrap, c.Bootstrap)
		if err != nil {
			return nil, nil, fmt.Errorf("decode %s bootstrap of credential %s: %w", p.Name, c.ID, err)
		}
	}
	return cred, bootstrap, nil
}

// DecodeBootstrapOutputs turns the outputs of the bootstrap templates (each
// output's JSON value by name) into p's bootstrap type, checked, and the
// JSON to store as the credential's Bootstrap.
func (p *Provider) DecodeBootstrapOutputs(outputs map[string]json.RawMessage) (any, json.RawMessage, error) {
	if p.Schema.NewBootstrap == nil {
		return nil, nil, nil
	}
	data, err := json.Marshal(outputs)
	if err != nil {
		return nil, nil, fmt.Errorf("decode %s bootstrap outputs: %w", p.Name, err)
	}
	v, err := Decode(p.Schema.NewBootstrap, data)
	if err != nil {
		return nil, nil, fmt.Errorf("decode %s bootstrap outputs: %w", p.Name, err)
	}
	// The outputs themselves are stored: re-encoding v would mask its
	// stack.Secret fields.
	return v, data, nil
}

// DecodeMetadata decodes m's stored metadata into p's metadata type (an
// empty value when nothing is stored yet).
func (p *Provider) DecodeMetadata(m *stack.Machine) (any, error) {
	if p.Schema.NewMetadata == nil {
		return nil, nil
	}
	v := p.Schema.NewMetadata(m)
	if len(m.Metadata) == 0 {
		return v, nil
	}
	if err := json.Unmarshal(m.Metadata, v); err != nil {
		return nil, fmt.Errorf("decode %s metadata of machine %s: %w", p.Name, m.ID, err)
	}
	return v, nil
}
