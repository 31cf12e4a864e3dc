package providertest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// credential is a stored credential of the provider holding data; with
// bootstrapped, it also holds Env.Bootstrap.
func (c *check) credential(data string, bootstrapped bool) *stack.Credential {
	cred := &stack.Credential{ID: CredentialID, OwnerID: OwnerID, Provider: c.p.Name, Title: "conformance", Data: json.RawMessage(data)}
	if bootstrapped && c.env.Bootstrap != "" {
		cred.Bootstrap, cred.Bootstrapped = json.RawMessage(c.env.Bootstrap), true
	}
	return cred
}

// stack makes the provider's Stack for cred as Kloud does: the credential
// decoded into the schema types, Kloud's URL and settings, and, with a
// template, the stack being built.
func (c *check) stack(cred *stack.Credential, tpl *stack.Template, service any) (provider.Stack, *provider.BaseStack) {
	c.t.Helper()
	decoded, boot, err := c.p.DecodeCredential(cred)
	if err != nil {
		c.stop("decode the credential as Kloud does: %s", callErr("Valid", err))
	}
	bs := &provider.BaseStack{
		Provider: c.p, Log: discard,
		Credential: cred, Cred: decoded, Bootstrap: boot,
		KloudURL: KloudURL, DataDir: c.env.DataDir, Service: service,
	}
	if tpl != nil {
		bs.Template = tpl
		bs.Stack = &stack.Stack{ID: StackID, OwnerID: OwnerID, Title: "conformance", TemplateID: tpl.ID, CredentialID: cred.ID, Provider: c.p.Name}
		bs.AgentSecret = AgentSecret
	}
	st, err := c.p.Stack(bs)
	if err != nil {
		c.stop("%s", callErr("Provider.Stack", err))
	}
	if st == nil {
		c.stop("Provider.Stack returned a nil Stack and no error")
	}
	return st, bs
}

// secrets are the credential's and bootstrap's secret values.
func secrets(bs *provider.BaseStack) []string {
	return slices.DeleteFunc(bs.Secrets(), func(s string) bool { return len(s) < 4 })
}

// leaks returns the secrets text shows, raw or JSON-escaped.
func leaks(text string, secrets []string) int {
	n := 0
	for _, s := range secrets {
		q, _ := json.Marshal(s)
		if strings.Contains(text, s) || strings.Contains(text, strings.Trim(string(q), `"`)) {
			n++
		}
	}
	return n
}

func ruleVerifyWorking(c *check) {
	c.need(c.env.Credential != "", "Credential", "the data of a credential the provider's endpoint (its simulator) accepts")
	cred := c.credential(c.env.Credential, false)
	st, _ := c.stack(cred, nil, c.env.Service)
	if err := st.VerifyCredential(c.ctx, cred); err != nil {
		c.failf("the working credential: %s", callErr("VerifyCredential", err))
	}
}

// verifyFails checks that VerifyCredential of data fails as kind, not as
// other, and shows no secret.
func (c *check) verifyFails(data string, service any, kind, other error, what string) {
	cred := c.credential(data, false)
	st, bs := c.stack(cred, nil, service)
	err := st.VerifyCredential(c.ctx, cred)
	switch {
	case err == nil:
		c.failf("%s: VerifyCredential succeeded, want an error matching %v", what, kind)
		return
	case errors.Is(err, provider.ErrNotImplemented):
		c.failf("%s: %s", what, callErr("VerifyCredential", err))
		return
	case !errors.Is(err, kind):
		c.failf("%s: err = %v; want it to match %v (errors.Is): wrap it, or make the provider's sentinel provider.Kind(msg, %v)", what, err, kind, kindName(kind))
	case errors.Is(err, other):
		c.failf("%s: err = %v matches %v too; a caller cannot tell the two apart", what, err, other)
	}
	if n := leaks(err.Error(), secrets(bs)); n > 0 {
		c.failf("%s: the error shows %d of the credential's secrets", what, n)
	}
}

func kindName(kind error) string {
	if kind == provider.ErrCredentialRefused {
		return "provider.ErrCredentialRefused"
	}
	return "provider.ErrUnreachable"
}

func ruleVerifyRefused(c *check) {
	c.need(c.env.Refused != "", "Refused", "well-formed credential data the provider's endpoint (its simulator) refuses")
	c.verifyFails(c.env.Refused, c.env.Service, provider.ErrCredentialRefused, provider.ErrUnreachable, "a refused credential")
}

func ruleVerifyUnreachable(c *check) {
	c.need(c.env.Unreachable != "", "Unreachable", "well-formed credential data whose endpoint does not answer (at providertest.ClosedURL)")
	service := c.env.Service
	if c.env.UnreachableService != nil {
		service = c.env.UnreachableService
	}
	c.verifyFails(c.env.Unreachable, service, provider.ErrUnreachable, provider.ErrCredentialRefused, "an unreachable endpoint")
}

// bootstrap returns the bootstrap templates of the working credential.
func (c *check) bootstrap(bootstrapped bool) ([]*stack.Template, *provider.BaseStack) {
	c.t.Helper()
	c.need(c.env.Credential != "", "Credential", "the data of a credential the provider accepts")
	cred := c.credential(c.env.Credential, bootstrapped)
	st, bs := c.stack(cred, nil, c.env.Service)
	tpls, err := st.BootstrapTemplates(c.ctx, cred)
	if err != nil {
		c.stop("%s", callErr("BootstrapTemplates", err))
	}
	if len(tpls) == 0 && c.p.Schema.NewBootstrap != nil {
		c.stop("BootstrapTemplates returned no template, but the schema has a bootstrap (Schema.NewBootstrap) for its outputs")
	}
	for i, tpl := range tpls {
		if tpl == nil {
			c.stop("BootstrapTemplates returned a nil template at %d", i)
		}
	}
	return tpls, bs
}

// ruleBootstrapPolicy: every bootstrap template is the provider's, passes
// Kloud's template policy with the provider's options, keeps secrets out
// of its files, and its outputs give every required bootstrap field.
func ruleBootstrapPolicy(c *check) {
	tpls, bs := c.bootstrap(false)
	outputs := map[string]bool{}
	for _, tpl := range tpls {
		if tpl.Provider != c.p.Name {
			c.failf("bootstrap template %q is for provider %q, want %q", tpl.Title, tpl.Provider, c.p.Name)
		}
		parsed, diags, err := terraform.ValidateTemplateWith(tpl.FileName(), []byte(tpl.Content), tpl.Format, c.p.PolicyOptions())
		if err != nil {
			c.failf("bootstrap template %q does not pass Kloud's template policy: %v", tpl.Title, err)
			continue
		}
		for _, d := range diags {
			c.t.Logf("bootstrap template %q: warning %s", tpl.Title, d)
		}
		for name, b := range tpl.Generated {
			if strings.HasSuffix(name, ".json") && !json.Valid(b) {
				c.failf("bootstrap template %q: generated file %s is not valid JSON", tpl.Title, name)
			}
		}
		if n := leaks(tpl.Content+string(joinFiles(tpl.Generated)), secrets(bs)); n > 0 {
			c.failf("bootstrap template %q writes %d of the credential's secrets into its files; secrets go only in Env (TF_VAR_)", tpl.Title, n)
		}
		content, _, _ := parsed.File.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "output", LabelNames: []string{"name"}}}})
		for _, b := range content.Blocks {
			outputs[b.Labels[0]] = true
		}
	}
	if c.p.Schema.NewBootstrap == nil {
		return
	}
	fields, err := provider.DescribeStruct(c.p.Schema.NewBootstrap())
	if err != nil {
		c.stop("describe the bootstrap: %v", err)
	}
	for _, f := range fields {
		if f.Required && !outputs[f.Name] {
			c.failf("bootstrap field %q is required but no bootstrap template has an output %q; Kloud fills the bootstrap from the outputs", f.Name, f.Name)
		}
	}
}

func joinFiles(files map[string][]byte) []byte {
	var b bytes.Buffer
	for _, name := range slices.Sorted(maps.Keys(files)) {
		b.WriteString(name)
		b.WriteByte('\n')
		b.Write(files[name])
	}
	return b.Bytes()
}

// ruleBootstrapIdempotent: for a bootstrapped credential, composing the
// bootstrap again gives the same files and variables, so applying it again
// changes nothing.
func ruleBootstrapIdempotent(c *check) {
	if c.p.Schema.NewBootstrap != nil {
		c.need(c.env.Bootstrap != "", "Bootstrap", "the stored outputs of the working credential's bootstrap")
	}
	first, _ := c.bootstrap(true)
	second, _ := c.bootstrap(true)
	if len(first) != len(second) {
		c.stop("BootstrapTemplates returned %d templates, then %d", len(first), len(second))
	}
	titles := map[string]bool{}
	for i := range first {
		a, b := first[i], second[i]
		if titles[a.Title] {
			c.failf("two bootstrap templates are titled %q", a.Title)
		}
		titles[a.Title] = true
		if a.Title != b.Title || a.Content != b.Content || a.Format != b.Format {
			c.failf("bootstrap template %d differs between two calls (title %q/%q)", i, a.Title, b.Title)
		}
		for _, name := range slices.Sorted(maps.Keys(a.Generated)) {
			if !bytes.Equal(a.Generated[name], b.Generated[name]) {
				c.failf("bootstrap template %q: generated file %s differs between two calls", a.Title, name)
			}
		}
		if len(a.Generated) != len(b.Generated) {
			c.failf("bootstrap template %q: %d generated files, then %d", a.Title, len(a.Generated), len(b.Generated))
		}
		if !slices.Equal(slices.Sorted(maps.Keys(a.Env)), slices.Sorted(maps.Keys(b.Env))) {
			c.failf("bootstrap template %q: its secret variables differ between two calls", a.Title)
		}
	}
}

// userTemplate is the stack's template holding content.
func (c *check) userTemplate(content string) *stack.Template {
	return &stack.Template{ID: TemplateID, OwnerID: OwnerID, Title: "conformance", Provider: c.p.Name, Format: stack.FormatHCL, Content: content}
}

// apply composes content for a stack of the bootstrapped working
// credential.
func (c *check) apply(content string) (*stack.Template, *provider.BaseStack, error) {
	c.t.Helper()
	c.need(c.env.Credential != "", "Credential", "the data of a credential the provider accepts")
	if c.p.Schema.NewBootstrap != nil {
		c.need(c.env.Bootstrap != "", "Bootstrap", "the stored outputs of the working credential's bootstrap")
	}
	cred := c.credential(c.env.Credential, true)
	st, bs := c.stack(cred, c.userTemplate(content), c.env.Service)
	tpl, err := st.ApplyTemplate(c.ctx, cred)
	if err == nil && tpl == nil {
		c.stop("ApplyTemplate returned no template and no error")
	}
	return tpl, bs, err
}

// composed applies Env.Template, which must succeed, and returns it with
// its machine resources.
func (c *check) composed() (*stack.Template, *provider.BaseStack, []terraform.ResourceBlock) {
	c.t.Helper()
	c.need(c.env.Template != "", "Template", "a user's template with a "+c.p.TerraformType()+" resource")
	parsed, diags := terraform.ParseTemplate("main.tf", []byte(c.env.Template), stack.FormatHCL)
	if diags.HasErrors() {
		c.stop("Env.Template does not parse: %v", diags)
	}
	machines := terraform.MachineResources(parsed, c.p.TerraformType())
	if len(machines) == 0 {
		c.stop("Env.Template has no %s resource", c.p.TerraformType())
	}
	tpl, bs, err := c.apply(c.env.Template)
	if err != nil {
		c.stop("Env.Template: %s", callErr("ApplyTemplate", err))
	}
	return tpl, bs, machines
}

// overrides returns, for each machine, what the composition's override
// files set on it, as JSON text.
func (c *check) overrides(tpl *stack.Template, machines []terraform.ResourceBlock) map[string]string {
	sets := map[string][]any{}
	for _, name := range slices.Sorted(maps.Keys(tpl.Generated)) {
		if !strings.HasSuffix(name, "override.tf.json") {
			continue
		}
		var f struct {
			Resource map[string]map[string]any `json:"resource"`
		}
		if err := json.Unmarshal(tpl.Generated[name], &f); err != nil {
			c.failf("generated override file %s is not JSON: %v", name, err)
			continue
		}
		for _, r := range machines {
			if v, ok := f.Resource[r.Type][r.Name]; ok {
				sets[r.Address()] = append(sets[r.Address()], v)
			}
		}
	}
	out := map[string]string{}
	for addr, vs := range sets {
		b, _ := json.Marshal(vs)
		out[addr] = string(b)
	}
	return out
}

func ruleApplyUntouched(c *check) {
	c.need(c.env.Template != "", "Template", "a user's template with a "+c.p.TerraformType()+" resource")
	c.need(c.env.Credential != "", "Credential", "the data of a credential the provider accepts")
	cred := c.credential(c.env.Credential, true)
	in := c.userTemplate(c.env.Template)
	st, _ := c.stack(cred, in, c.env.Service)
	tpl, err := st.ApplyTemplate(c.ctx, cred)
	if err != nil {
		c.stop("Env.Template: %s", callErr("ApplyTemplate", err))
	}
	if tpl == nil {
		c.stop("ApplyTemplate returned no template and no error")
	}
	if in.Content != c.env.Template || in.Generated != nil || in.Env != nil {
		c.failf("ApplyTemplate changed the stack's own template (BaseStack.Template); compose into a copy")
	}
	if tpl.Content != c.env.Template {
		c.failf("the composed template's Content differs from the user's file; Kloud's additions go in Generated files beside it")
	}
	if tpl.Format != stack.FormatHCL {
		c.failf("the composed template's format is %q, the user's is hcl", tpl.Format)
	}
	if _, ok := tpl.Generated[tpl.FileName()]; ok {
		c.failf("a generated file replaces the user's %s", tpl.FileName())
	}
}

func ruleApplyAgent(c *check) {
	tpl, _, machines := c.composed()
	sets := c.overrides(tpl, machines)
	for _, r := range machines {
		s := sets[r.Address()]
		if s == "" {
			c.failf("%s: the composition sets nothing on it (no *_override.tf.json entry); the agent's start-up (Kloud's URL and its token) must reach every machine", r.Address())
			continue
		}
		if !strings.Contains(s, "var."+terraform.AgentSecretVar) {
			c.failf("%s: its agent gets no token derived from var.%s (ComposeOptions.AgentTokenAttribute, or ${kloud_agent_token} in ComposeOptions.UserData)", r.Address(), terraform.AgentSecretVar)
		}
		if !strings.Contains(s, "var."+provider.KloudURLVar) {
			c.failf("%s: its agent is not told Kloud's URL (var.%s)", r.Address(), provider.KloudURLVar)
		}
	}
}

func ruleApplyTags(c *check) {
	if c.env.Untagged != "" {
		c.t.Skipf("rule %s: skipped: %s", c.rule, c.env.Untagged)
	}
	tpl, _, machines := c.composed()
	sets := c.overrides(tpl, machines)
	for _, r := range machines {
		s := sets[r.Address()]
		for tag, v := range map[string]string{provider.TagStackID: StackID, provider.TagOwner: OwnerID, provider.TagTemplateID: TemplateID} {
			if !strings.Contains(s, tag) || !strings.Contains(s, v) {
				c.failf("%s is not tagged %s=%s (ComposeOptions.TagsAttribute)", r.Address(), tag, v)
			}
		}
	}
}

func ruleApplyNoSecrets(c *check) {
	tpl, bs, machines := c.composed()
	known := append(secrets(bs), AgentSecret)
	for _, r := range machines {
		if r.Repetition == terraform.Single {
			known = append(known, terraform.AgentToken(AgentSecret, r.Address()).Reveal())
		}
	}
	for _, name := range slices.Sorted(maps.Keys(tpl.Generated)) {
		if n := leaks(string(tpl.Generated[name]), known); n > 0 {
			c.failf("generated file %s holds %d secret values (credential fields, the agent secret or an agent token); secrets go only in Env, as TF_VAR_ variables", name, n)
		}
	}
	for name, v := range tpl.Env {
		if v == "" {
			c.failf("secret variable %s is empty", name)
		}
	}
}

func ruleApplyRefusesCredentials(c *check) {
	c.need(c.env.CarriesCredentials != "", "CarriesCredentials", "a template that writes credentials into itself (a literal key or token in the provider block)")
	tpl, _, err := c.apply(c.env.CarriesCredentials)
	if err == nil {
		c.stop("ApplyTemplate composed a template that carries its own credentials (Env.CarriesCredentials); refuse it with a *terraform.TemplateError naming the line")
	}
	if errors.Is(err, provider.ErrNotImplemented) {
		c.stop("%s", callErr("ApplyTemplate", err))
	}
	var te *terraform.TemplateError
	if !errors.As(err, &te) || len(te.Diagnostics.Errors()) == 0 || te.Diagnostics.Errors()[0].Line == 0 {
		c.failf("err = %v; want a *terraform.TemplateError whose diagnostics name the line", err)
	}
	if tpl != nil {
		c.failf("ApplyTemplate refused the template but returned a composition too")
	}
	if c.p.CheckTemplate != nil {
		parsed, diags := terraform.ParseTemplate("main.tf", []byte(c.env.CarriesCredentials), stack.FormatHCL)
		if diags.HasErrors() {
			c.stop("Env.CarriesCredentials does not parse: %v", diags)
		}
		if !c.p.CheckTemplate(parsed).HasErrors() {
			c.failf("Provider.CheckTemplate finds nothing in a template that carries its own credentials; Kloud calls it when the template is created, so the refusal comes before any apply")
		}
	}
}

// policyViolation is a resource the template policy refuses.
const policyViolation = `

resource "terraform_data" "conformance_policy" {
  provisioner "local-exec" {
    command = "id"
  }
}
`

func ruleApplyRefusesPolicy(c *check) {
	c.need(c.env.Template != "", "Template", "a user's template with a "+c.p.TerraformType()+" resource")
	_, _, err := c.apply(c.env.Template + policyViolation)
	switch {
	case err == nil:
		c.failf("ApplyTemplate composed a template with a local-exec provisioner; check it with BaseStack.Compose (or terraform.ValidateTemplateWith and the provider's PolicyOptions)")
	case errors.Is(err, provider.ErrNotImplemented):
		c.failf("%s", callErr("ApplyTemplate", err))
	case !errors.Is(err, terraform.ErrInvalidTemplate):
		c.failf("a template with a local-exec provisioner: err = %v, want terraform.ErrInvalidTemplate", err)
	}
}
