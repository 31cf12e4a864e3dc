package terraform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/kloud/kloud/stack"
)

// Composition turns a user's template into one Terraform can run with
// Kloud's settings, without changing the user's file: Compose generates the
// files that sit beside it.

// The files Compose generates.
const (
	// FileProviders holds terraform.required_providers and the provider
	// block (when the user wrote none).
	FileProviders = "kloud_providers.tf.json"
	// FileVariables declares the variables Kloud injects.
	FileVariables = "kloud_variables.tf.json"
	// FileVarValues holds the values of non-secret variables.
	FileVarValues = "terraform.tfvars.json"
	// FileOverride merges Kloud's attributes into the user's machine
	// blocks (and provider blocks), by Terraform's override mechanism.
	FileOverride = "kloud_override.tf.json"
)

// Sentinel errors of composition.
var (
	// ErrUndeclaredVariable: a stack variable the template does not declare.
	ErrUndeclaredVariable = errors.New("variable not declared in the template")
	// ErrReservedVariable: a stack variable Kloud sets itself, or a
	// Kloud secret variable the user declared without sensitive = true.
	ErrReservedVariable = errors.New("variable reserved by Kloud")
	// ErrInvalidVariable: a stack variable whose value does not parse for
	// its declared type.
	ErrInvalidVariable = errors.New("invalid variable value")
	// ErrCompose: composition produced something Terraform would not read
	// (a bug or an option no provider should give).
	ErrCompose = errors.New("compose template")
)

// Value is an attribute or variable value in a generated file: either a
// literal (taken as is, template sequences escaped) or an HCL expression.
type Value struct {
	expr   string
	lit    any
	isExpr bool
}

// Expr is a value computed by the HCL expression src, e.g.
// Expr("var.kloud_url") or Expr(`"${var.a}-${count.index}"`).
func Expr(src string) Value { return Value{expr: src, isExpr: true} }

// Var is the value of Terraform variable name.
func Var(name string) Value { return Expr("var." + name) }

// Literal is a value taken as is: a string, number, bool, or a slice or
// map of those (anything encoding/json encodes).
func Literal(v any) Value { return Value{lit: v} }

// IsZero reports whether v was never set.
func (v Value) IsZero() bool { return !v.isExpr && v.lit == nil }

// hcl returns v as an HCL native expression.
func (v Value) hcl() (string, error) {
	if v.isExpr {
		return v.expr, nil
	}
	g, err := generic(v.lit)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	writeHCLLiteral(&sb, g)
	return sb.String(), nil
}

// json returns v as it is written in a generated Terraform JSON file, where
// strings are templates.
func (v Value) json() (any, error) {
	if v.isExpr {
		return "${" + v.expr + "}", nil
	}
	g, err := generic(v.lit)
	if err != nil {
		return nil, err
	}
	return escapeTemplates(g), nil
}

// generic turns any JSON-encodable value into maps, slices, strings,
// json.Number, bools and nils.
func generic(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode literal: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("decode literal: %w", err)
	}
	return out, nil
}

// escapeTemplates escapes ${ and %{ in every string (keys too) so that
// Terraform, reading strings in JSON as templates, gets the literal back.
func escapeTemplates(v any) any {
	switch t := v.(type) {
	case string:
		return escapeTemplate(t)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = escapeTemplates(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[escapeTemplate(k)] = escapeTemplates(e)
		}
		return out
	}
	return v
}

func escapeTemplate(s string) string {
	s = strings.ReplaceAll(s, "${", "$${")
	return strings.ReplaceAll(s, "%{", "%%{")
}

func writeHCLLiteral(sb *strings.Builder, v any) {
	switch t := v.(type) {
	case nil:
		sb.WriteString("null")
	case string:
		sb.WriteString(HCLString(t))
	case bool:
		fmt.Fprint(sb, t)
	case json.Number:
		sb.WriteString(t.String())
	case []any:
		sb.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				sb.WriteString(", ")
			}
			writeHCLLiteral(sb, e)
		}
		sb.WriteByte(']')
	case map[string]any:
		sb.WriteByte('{')
		for i, k := range slices.Sorted(maps.Keys(t)) {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(HCLString(k))
			sb.WriteString(" = ")
			writeHCLLiteral(sb, t[k])
		}
		sb.WriteByte('}')
	}
}

// Variable is a variable Kloud declares and sets. A value of type Secret is
// secret: the variable is declared sensitive and its value goes only to
// Composed.Env (TF_VAR_<name>), never to a file. Any other non-nil value is
// written to terraform.tfvars.json; a nil value is declared only.
type Variable struct {
	Name string
	// Type is the HCL type constraint; "string" when empty.
	Type        string
	Description string
	Value       any
}

// IsSecret reports whether v's value is a Secret.
func (v Variable) IsSecret() bool {
	_, ok := v.Value.(stack.Secret)
	return ok
}

// ProviderBlock is the Terraform provider a composition configures.
type ProviderBlock struct {
	// Name is the provider's local name ("sandbox", "aws").
	Name string
	// Source and Version go to terraform.required_providers; Version may
	// be empty.
	Source, Version string
	// Config is the provider block's attributes. Values may reference
	// variables, e.g. Var("kloud_secret_key") for a secret.
	Config map[string]Value
}

// TagsStyle is how a provider's machine resource takes tags.
type TagsStyle int

// The tag styles.
const (
	// TagsMap: a map of strings (aws_instance.tags), merged with merge().
	TagsMap TagsStyle = iota
	// TagsList: a list of "key:value" strings (digitalocean_droplet.tags),
	// appended with concat().
	TagsList
)

// UserData says how the agent's start-up script reaches a machine through
// a user-data attribute.
type UserData struct {
	// Attribute is the resource attribute ("user_data").
	Attribute string
	// Script is an HCL template. The sequence ${kloud_agent_token} is
	// replaced by the machine's agent token expression; other template
	// sequences are Terraform's (e.g. ${var.kloud_url}), and a literal $
	// before { must be written $${.
	Script string
	// CloudInit: when the user set user data too, the two go as a MIME
	// multipart archive that cloud-init runs part by part (Kloud's first);
	// otherwise they are joined with a newline into one shell script.
	CloudInit bool
}

// ComposeOptions is everything Compose needs besides the template.
type ComposeOptions struct {
	// ResourceType is the Terraform type of the machines
	// ("sandbox_machine").
	ResourceType string
	Provider     ProviderBlock
	// Variables are the variables Kloud injects (its settings, bootstrap
	// outputs, secrets). One the user declared too is not redeclared, but
	// still gets its value.
	Variables []Variable
	// UserVariables are the stack's values for variables the user
	// declared. Values are parsed as Terraform parses -var values: as is
	// for string, number and bool (and untyped) variables, as HCL
	// expressions for the others.
	UserVariables map[string]string
	// Inject sets attributes on every machine block, replacing the user's.
	Inject map[string]Value
	// Defaults sets attributes on machine blocks where the user set none.
	// Only optional attributes can be defaulted: Terraform checks required
	// arguments on the user's block before it merges override files.
	Defaults map[string]Value
	// AgentTokenAttribute, when set, is given each machine's agent token
	// expression (AgentTokenExpr). The token needs the variable
	// AgentSecretVar, which Compose expects among Variables as a Secret.
	AgentTokenAttribute string
	// NameAttribute, when set, is given each machine's name where the user
	// set none: the block's name, then "-<count.index>" or "-<each.key>".
	// Like Defaults, it only helps where the attribute is optional.
	NameAttribute string
	// Tags are added to every machine under TagsAttribute, merged with the
	// user's own.
	Tags          map[string]string
	TagsAttribute string
	TagsStyle     TagsStyle
	// UserData, when set, injects the agent's start-up script.
	UserData *UserData
}

// Composed is what Compose generates: the files to write beside the
// user's (by name) and the secret variables for the environment (by
// variable name; the runner passes each as TF_VAR_<name>).
type Composed struct {
	Files map[string][]byte
	Env   map[string]stack.Secret
}

// Compose generates the files that make Terraform run the user's template
// p with Kloud's provider configuration, variables, agent settings and tags.
// The user's file is left as it is.
func Compose(p *Parsed, opts ComposeOptions) (*Composed, error) {
	if p == nil || p.File == nil {
		return nil, fmt.Errorf("%w: no parsed template", ErrCompose)
	}
	c := &composer{p: p, opts: opts, out: &Composed{Files: map[string][]byte{}, Env: map[string]stack.Secret{}}}
	steps := []func() error{c.variables, c.providers, c.machines}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return c.out, nil
}

type composer struct {
	p    *Parsed
	opts ComposeOptions
	out  *Composed
	// override is the content of FileOverride.
	override map[string]any
}

func (c *composer) variables() error {
	decls := map[string]any{}
	values := map[string]any{}
	kloud := map[string]bool{}
	for _, v := range c.opts.Variables {
		if !hclsyntax.ValidIdentifier(v.Name) {
			return fmt.Errorf("%w: variable name %q is not an identifier", ErrCompose, v.Name)
		}
		if kloud[v.Name] {
			return fmt.Errorf("%w: variable %q injected twice", ErrCompose, v.Name)
		}
		kloud[v.Name] = true
		userDecl, declared := c.p.Variable(v.Name)
		if v.IsSecret() && declared && !userDecl.Sensitive {
			return fmt.Errorf("%w: the template declares variable %q without sensitive = true; Kloud passes a secret in it (%s:%d)",
				ErrReservedVariable, v.Name, userDecl.Range.Filename, userDecl.Range.Start.Line)
		}
		if !declared {
			d := map[string]any{"type": cmp(v.Type, "string")}
			if v.Description != "" {
				d["description"] = escapeTemplate(v.Description)
			}
			if v.IsSecret() {
				d["sensitive"] = true
			}
			decls[v.Name] = d
		}
		switch val := v.Value.(type) {
		case nil:
		case stack.Secret:
			c.out.Env[v.Name] = val
		default:
			// terraform.tfvars.json is read without templates: no escaping.
			g, err := generic(val)
			if err != nil {
				return fmt.Errorf("%w: variable %q: %v", ErrCompose, v.Name, err)
			}
			values[v.Name] = g
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.opts.UserVariables)) {
		raw := c.opts.UserVariables[name]
		if kloud[name] {
			return fmt.Errorf("%w: %q is set by Kloud and cannot be given as a stack variable", ErrReservedVariable, name)
		}
		decl, ok := c.p.Variable(name)
		if !ok {
			declared := c.p.VariableNames()
			list := "none"
			if len(declared) > 0 {
				list = strings.Join(declared, ", ")
			}
			return fmt.Errorf("%w: %q; the template declares: %s", ErrUndeclaredVariable, name, list)
		}
		v, err := userVariableValue(decl, raw)
		if err != nil {
			return err
		}
		if decl.Sensitive {
			// A sensitive value reaches Terraform only through its
			// environment, never in a file.
			c.out.Env[name] = stack.Secret(raw)
			continue
		}
		values[name] = v
	}
	if len(decls) > 0 {
		if err := c.writeJSON(FileVariables, map[string]any{"variable": decls}); err != nil {
			return err
		}
	}
	if len(values) > 0 {
		if err := c.writeJSON(FileVarValues, values); err != nil {
			return err
		}
	}
	return nil
}

// CheckVariableValue reports whether raw is a valid value of the stack
// variable decl (see ComposeOptions.UserVariables), so a bad value is
// refused when a stack is created rather than when it is applied.
func CheckVariableValue(decl VariableDecl, raw string) error {
	_, err := userVariableValue(decl, raw)
	return err
}

// userVariableValue converts a stack variable's string to the JSON value
// written in terraform.tfvars.json, the way Terraform reads -var values:
// literally for primitive or untyped variables, as HCL otherwise.
func userVariableValue(decl VariableDecl, raw string) (any, error) {
	switch decl.Type {
	case "", "string", "number", "bool":
		if err := checkPrimitive(decl, raw); err != nil {
			return nil, err
		}
		return raw, nil
	}
	if err := CheckExpressionNesting(raw); err != nil {
		return nil, fmt.Errorf("%w: variable %q (type %s): %v", ErrInvalidVariable, decl.Name, decl.Type, err)
	}
	expr, diags := hclsyntax.ParseExpression([]byte(raw), decl.Name, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, fmt.Errorf("%w: variable %q (type %s): %s", ErrInvalidVariable, decl.Name, decl.Type, diags[0].Summary)
	}
	val, diags := expr.Value(nil)
	if diags.HasErrors() {
		return nil, fmt.Errorf("%w: variable %q (type %s): %s", ErrInvalidVariable, decl.Name, decl.Type, diags[0].Summary)
	}
	if !val.IsWhollyKnown() {
		return nil, fmt.Errorf("%w: variable %q: the value must be known", ErrInvalidVariable, decl.Name)
	}
	b, err := ctyjson.Marshal(val, val.Type())
	if err != nil {
		return nil, fmt.Errorf("%w: variable %q: %v", ErrInvalidVariable, decl.Name, err)
	}
	return json.RawMessage(b), nil
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (c *composer) providers() error {
	pb := c.opts.Provider
	if pb.Name == "" {
		return nil
	}
	if !hclsyntax.ValidIdentifier(pb.Name) {
		return fmt.Errorf("%w: provider name %q is not an identifier", ErrCompose, pb.Name)
	}
	if !c.p.UsesProvider(pb.Name) {
		// A template with no resource of the provider (a bootstrap
		// template of builtin terraform_data) needs no plugin at all.
		return nil
	}
	req := map[string]any{"source": pb.Source}
	if pb.Version != "" {
		req["version"] = pb.Version
	}
	requiredProviders := map[string]any{"required_providers": map[string]any{pb.Name: req}}
	files := map[string]any{}
	if c.p.HasRequiredProviders {
		// Terraform allows one required_providers block outside override
		// files; an override's entries are merged into the user's.
		c.overrideSet([]string{"terraform"}, requiredProviders)
	} else {
		files["terraform"] = requiredProviders
	}
	cfg := map[string]any{}
	for _, k := range slices.Sorted(maps.Keys(pb.Config)) {
		v, err := c.jsonValue(pb.Config[k])
		if err != nil {
			return fmt.Errorf("%w: provider attribute %s: %v", ErrCompose, k, err)
		}
		cfg[k] = v
	}
	if !c.p.HasProvider(pb.Name) {
		files["provider"] = map[string]any{pb.Name: cfg}
	}
	// Every provider block the user wrote for this provider, aliased ones
	// too, gets Kloud's configuration: the user cannot point a machine at
	// another account or directory through an alias.
	var overrides []any
	for _, pd := range c.p.Providers {
		if pd.Name != pb.Name || len(cfg) == 0 {
			continue
		}
		o := maps.Clone(cfg)
		if pd.Alias != "" {
			if pd.Alias == "?" {
				return fmt.Errorf("%w: provider %q block at %s:%d has an alias that is not a literal string",
					ErrInvalidTemplate, pd.Name, pd.Range.Filename, pd.Range.Start.Line)
			}
			o["alias"] = escapeTemplate(pd.Alias)
		}
		overrides = append(overrides, o)
	}
	if len(overrides) > 0 {
		c.overrideSet([]string{"provider", pb.Name}, overrides)
	}
	if len(files) == 0 {
		return nil
	}
	return c.writeJSON(FileProviders, files)
}

func (c *composer) machines() error {
	opts := c.opts
	for _, r := range MachineResources(c.p, opts.ResourceType) {
		if !hclsyntax.ValidIdentifier(r.Type) || !hclsyntax.ValidIdentifier(r.Name) {
			return fmt.Errorf("%w: resource %q %q: names must be identifiers", ErrInvalidTemplate, r.Type, r.Name)
		}
		attrs := map[string]any{}
		for _, k := range slices.Sorted(maps.Keys(opts.Defaults)) {
			if r.Has(k) {
				continue
			}
			v, err := c.jsonValue(opts.Defaults[k])
			if err != nil {
				return fmt.Errorf("%w: default %s of %s: %v", ErrCompose, k, r.Address(), err)
			}
			attrs[k] = v
		}
		for _, k := range slices.Sorted(maps.Keys(opts.Inject)) {
			v, err := c.jsonValue(opts.Inject[k])
			if err != nil {
				return fmt.Errorf("%w: attribute %s of %s: %v", ErrCompose, k, r.Address(), err)
			}
			attrs[k] = v
		}
		if opts.AgentTokenAttribute != "" {
			attrs[opts.AgentTokenAttribute] = "${" + AgentTokenExpr(r) + "}"
		}
		if opts.NameAttribute != "" && !r.Has(opts.NameAttribute) {
			attrs[opts.NameAttribute] = machineName(r)
		}
		if opts.TagsAttribute != "" && len(opts.Tags) > 0 {
			v, err := c.tags(r)
			if err != nil {
				return err
			}
			attrs[opts.TagsAttribute] = v
		}
		if ud := opts.UserData; ud != nil && ud.Attribute != "" {
			v, err := c.userData(r, ud)
			if err != nil {
				return err
			}
			attrs[ud.Attribute] = v
		}
		if len(attrs) > 0 {
			c.overrideSet([]string{"resource", r.Type, r.Name}, attrs)
		}
	}
	if c.override == nil {
		return nil
	}
	return c.writeJSON(FileOverride, c.override)
}

// machineName is the template of r's instances' default names.
func machineName(r ResourceBlock) string {
	switch r.Repetition {
	case Count:
		return r.Name + "-${count.index}"
	case ForEach:
		return r.Name + "-${each.key}"
	}
	return r.Name
}

// tags returns the tags attribute of r: Kloud's tags merged with the
// user's expression, or Kloud's alone.
func (c *composer) tags(r ResourceBlock) (any, error) {
	opts := c.opts
	keys := slices.Sorted(maps.Keys(opts.Tags))
	var kloud string
	switch opts.TagsStyle {
	case TagsList:
		list := make([]any, 0, len(keys))
		for _, k := range keys {
			list = append(list, k+":"+opts.Tags[k])
		}
		if !r.Has(opts.TagsAttribute) {
			return escapeTemplates(list), nil
		}
		kloud, _ = Literal(list).hcl()
		return spliced(r, opts.TagsAttribute, "${concat("+r.Attributes[opts.TagsAttribute].Source+", "+kloud+")}")
	default:
		m := make(map[string]any, len(keys))
		for _, k := range keys {
			m[k] = opts.Tags[k]
		}
		if !r.Has(opts.TagsAttribute) {
			return escapeTemplates(m), nil
		}
		kloud, _ = Literal(m).hcl()
		return spliced(r, opts.TagsAttribute, "${merge("+r.Attributes[opts.TagsAttribute].Source+", "+kloud+")}")
	}
}

// The boundary of the MIME archive that joins Kloud's and the user's user
// data for cloud-init.
const userDataBoundary = "KLOUD-USER-DATA-7f3a9c"

func (c *composer) userData(r ResourceBlock, ud *UserData) (any, error) {
	script := strings.ReplaceAll(ud.Script, "${kloud_agent_token}", "${"+AgentTokenExpr(r)+"}")
	if _, diags := hclsyntax.ParseTemplate([]byte(script), "user_data", hcl.InitialPos); diags.HasErrors() {
		return nil, fmt.Errorf("%w: agent user data of %s: %s", ErrCompose, r.Address(), diags.Error())
	}
	user, ok := r.Attributes[ud.Attribute]
	if !ok {
		return script, nil
	}
	src := user.Source
	if strings.Contains(src, "\n") {
		// A heredoc's closing marker must end its line.
		src += "\n"
	}
	if !ud.CloudInit {
		return spliced(r, ud.Attribute, script+"\n${"+src+"}")
	}
	kloudType := "text/cloud-config"
	if strings.HasPrefix(ud.Script, "#!") {
		kloudType = "text/x-shellscript"
	}
	u := "(" + src + ")"
	return spliced(r, ud.Attribute, "Content-Type: multipart/mixed; boundary=\""+userDataBoundary+"\"\nMIME-Version: 1.0\n\n"+
		"--"+userDataBoundary+"\nContent-Type: "+kloudType+"; charset=\"utf-8\"\n\n"+script+"\n"+
		"--"+userDataBoundary+"\nContent-Type: ${startswith(trimspace("+u+"), \"#cloud-config\") ? \"text/cloud-config\" : \"text/x-shellscript\"}; charset=\"utf-8\"\n\n"+
		"${"+u+"}\n"+
		"--"+userDataBoundary+"--\n")
}

// spliced checks that a template holding a user's expression parses, so a
// construct that cannot be embedded is refused here, naming the attribute,
// rather than by Terraform.
func spliced(r ResourceBlock, attr, tmpl string) (any, error) {
	if _, diags := hclsyntax.ParseTemplate([]byte(tmpl), "kloud", hcl.InitialPos); diags.HasErrors() {
		a := r.Attributes[attr]
		return nil, fmt.Errorf("%w: %s of %s (%s:%d) cannot be combined with Kloud's: %s",
			ErrInvalidTemplate, attr, r.Address(), a.Range.Filename, a.Range.Start.Line, diags[0].Summary)
	}
	return tmpl, nil
}

// jsonValue renders v for a generated JSON file; an expression must parse.
func (c *composer) jsonValue(v Value) (any, error) {
	if v.IsZero() {
		return nil, errors.New("no value")
	}
	if v.isExpr {
		if _, diags := hclsyntax.ParseExpression([]byte(v.expr), "kloud", hcl.InitialPos); diags.HasErrors() {
			return nil, fmt.Errorf("expression %q: %s", v.expr, diags.Error())
		}
	}
	return v.json()
}

// overrideSet sets the value at path in the override file.
func (c *composer) overrideSet(path []string, v any) {
	if c.override == nil {
		c.override = map[string]any{}
	}
	m := c.override
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

// writeJSON encodes a generated file. Every template in it was checked
// when it was made (see spliced).
func (c *composer) writeJSON(name string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("%w: encode %s: %v", ErrCompose, name, err)
	}
	c.out.Files[name] = buf.Bytes()
	return nil
}

// FileNames returns the names of the composed files, sorted.
func (c *Composed) FileNames() []string {
	names := make([]string, 0, len(c.Files))
	for n := range c.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
