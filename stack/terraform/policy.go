package terraform

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// The policy: what a template may not do, because Terraform runs it for a
// member Kloud does not trust, beside other members' work. Confinement is
// the first line; the policy refuses, at template creation and again
// before every run, with the exact file:line:col, what would reach past it.
//
//   - Nesting deeper than MaxNesting levels (brackets, template sequences,
//     chains of unary operators, conditionals and splats), in HCL, in JSON
//     and in every string of a JSON template: HCL's parsers recurse once per
//     level and a stack overflow kills the whole server. Checked by a
//     linear scan before any parser runs (ParseTemplate).
//   - provisioner "local-exec" and "remote-exec", wherever the block is:
//     they run commands on Kloud's host or over SSH with credentials Kloud
//     does not manage.
//   - data "external" (runs a program on Kloud's host) and data
//     "terraform_remote_state" (reads another configuration's state, another
//     member's with the local backend, and makes requests to any URL with
//     the http backend), wherever the block is (inside check blocks too).
//   - module blocks: their code is fetched when Terraform runs and is never
//     checked.
//   - terraform { backend } and terraform { cloud }: Kloud keeps the state.
//   - removed blocks: Kloud decides what leaves a stack's state.
//   - import blocks, unless id is a literal string and to a plain resource
//     address (type.name or type.name[key]): an id computed from anything
//     else cannot be checked, and importing another member's machine must
//     be refused (the provider's control API then finds no foreign machine).
//   - providers Kloud does not install (with PolicyOptions.AllowedProviders
//     set): a required_providers entry whose local name is not allowed or
//     whose source is not that provider's; a provider block, resource, data
//     source or import whose provider (the type's prefix before "_", or its
//     provider argument) is not allowed. terraform_data and the other
//     builtins (local name "terraform") are always allowed. Another
//     provider would be downloaded from a registry, or run with Kloud's
//     host's ambient credentials.
//   - file(), filebase64(), filemd5(), filesha*(), filebase64sha*(),
//     fileexists(), templatefile() and provisioner "file" sources whose
//     path is not a literal naming the template's own file (optionally
//     after path.module/ or path.root/): the template is the only file a
//     member supplies; anything else is Kloud's host, another stack, or a
//     file Kloud generates beside the template (terraform.tfvars.json holds
//     stack variables, which a member writes: rendering it would evaluate
//     them). fileset() only in the template's directory, with a literal
//     relative pattern. A templatefile() target is checked as a template
//     itself: every function call in it (in comments too) follows these
//     rules. templatestring() is refused (it renders any value, a
//     variable's, as a template), and so are functions of providers that
//     are not allowed.
//   - In a JSON template, "//" is a comment only directly in a block body;
//     nested in an expression Terraform evaluates it. A "//" whose value
//     holds a template sequence (${ or %{) anywhere is refused, and "//"
//     values are checked like every other string.
//
// Nested blocks (check, dynamic, lifecycle, provisioners in nested blocks)
// are checked wherever they appear, in HCL and in JSON.

// PolicyOptions are the parts of the policy that depend on Kloud's
// configuration.
type PolicyOptions struct {
	// AllowedProviders maps the local name of each provider a template may
	// use to its source address ("sandbox" → "kloud.local/kloud/sandbox").
	// The builtin provider "terraform" is always allowed. Nil leaves
	// providers unchecked (a caller that does not know Kloud's providers).
	AllowedProviders map[string]string
}

// builtinProvider is the local name and the source of Terraform's builtin
// provider (terraform_data, terraform_remote_state).
const (
	builtinProvider       = "terraform"
	builtinProviderSource = "terraform.io/builtin/terraform"
)

// NormalizeProviderSource returns the canonical form of a provider source
// address: lower case, the default registry host and namespace implied
// ("registry.terraform.io/hashicorp/aws" and "aws" are "hashicorp/aws").
func NormalizeProviderSource(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	parts := strings.Split(s, "/")
	switch {
	case len(parts) == 1:
		return "hashicorp/" + s
	case len(parts) == 3 && parts[0] == "registry.terraform.io":
		return parts[1] + "/" + parts[2]
	}
	return s
}

// refusedProvisioners maps a provisioner type to why it is refused.
var refusedProvisioners = map[string]string{
	"local-exec":  "it runs commands on Kloud's host",
	"remote-exec": "it runs commands over a connection Kloud does not manage",
}

// refusedDataSources maps a data source type to why it is refused.
var refusedDataSources = map[string]string{
	"external":               "it runs a program on Kloud's host",
	"terraform_remote_state": "it reads another configuration's state (another member's) and makes requests to any URL",
}

// fileFunctions are the functions that read a path on the host running
// Terraform, with the indexes of their path arguments.
var fileFunctions = map[string][]int{
	"file":             {0},
	"filebase64":       {0},
	"filebase64sha256": {0},
	"filebase64sha512": {0},
	"filemd5":          {0},
	"filesha1":         {0},
	"filesha256":       {0},
	"filesha512":       {0},
	"fileexists":       {0},
	"fileset":          {0, 1},
	"templatefile":     {0},
}

type policyChecker struct {
	p        *Parsed
	opts     PolicyOptions
	fileName string // the template's own file, the only one file functions may read
	diags    Diagnostics
	// rendered is set once the template has been checked as a
	// templatefile() target, so a template rendering itself is checked
	// once; via names that call while its calls are checked.
	rendered bool
	via      string
}

func (pc *policyChecker) add(r hcl.Range, msg string) {
	pc.diags = append(pc.diags, Diagnostic{
		File:     r.Filename,
		Line:     r.Start.Line,
		Column:   r.Start.Column,
		Severity: SeverityError,
		Message:  msg,
	})
}

// CheckPolicy is CheckPolicyWith without provider checks.
func CheckPolicy(p *Parsed) Diagnostics { return CheckPolicyWith(p, PolicyOptions{}) }

// CheckPolicyWith returns a diagnostic, with the exact line and column, for
// every construct of p that Kloud refuses (see the rules above). It works
// on HCL and JSON templates alike. Diagnostics are sorted by position, one
// per position.
func CheckPolicyWith(p *Parsed, opts PolicyOptions) Diagnostics {
	if p == nil || p.File == nil {
		return nil
	}
	pc := &policyChecker{p: p, opts: opts, fileName: path.Base(p.Name)}
	if body, ok := p.File.Body.(*hclsyntax.Body); ok {
		pc.checkHCL(body)
	} else {
		root, err := parseJSONValue(p.Content)
		if err != nil {
			// hcl's parser accepted what ours did not: refuse rather than
			// let an unchecked template through.
			pc.add(hcl.Range{Filename: p.Name, Start: hcl.InitialPos}, "cannot check the template's policy: "+err.Error())
			return pc.diags
		}
		pc.checkJSON(root)
	}
	slices.SortStableFunc(pc.diags, func(a, b Diagnostic) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	return slices.CompactFunc(pc.diags, func(a, b Diagnostic) bool { return a.Line == b.Line && a.Column == b.Column })
}

// --- rules shared by both syntaxes ---

func (pc *policyChecker) checkProvisioner(typ string, at hcl.Range) bool {
	if why, refused := refusedProvisioners[typ]; refused {
		pc.add(at, fmt.Sprintf("provisioner %q is not allowed: %s", typ, why))
		return false
	}
	return true
}

func (pc *policyChecker) checkDataSource(typ string, at hcl.Range) {
	if why, refused := refusedDataSources[typ]; refused {
		pc.add(at, fmt.Sprintf("data %q is not allowed: %s", typ, why))
	}
}

func (pc *policyChecker) providersChecked() bool { return pc.opts.AllowedProviders != nil }

func (pc *policyChecker) providerAllowed(name string) bool {
	if name == builtinProvider {
		return true
	}
	_, ok := pc.opts.AllowedProviders[name]
	return ok
}

func (pc *policyChecker) allowedList() string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(pc.opts.AllowedProviders)) {
		out = append(out, fmt.Sprintf("%s (%s)", name, pc.opts.AllowedProviders[name]))
	}
	return strings.Join(append(out, builtinProvider+" (builtin)"), ", ")
}

// checkProviderName refuses what uses provider local name name when it is
// not allowed.
func (pc *policyChecker) checkProviderName(name, what string, at hcl.Range) {
	if !pc.providersChecked() || pc.providerAllowed(name) {
		return
	}
	pc.add(at, fmt.Sprintf("%s uses provider %q, which Kloud does not install; allowed: %s", what, name, pc.allowedList()))
}

// providerLocalName is the provider a resource type belongs to by default:
// the type's prefix before "_".
func providerLocalName(typ string) string {
	name, _, _ := strings.Cut(typ, "_")
	return name
}

// checkRequiredProvider checks one required_providers entry: its local name
// must be allowed and its source, when given, that provider's.
func (pc *policyChecker) checkRequiredProvider(name, source string, hasSource bool, at hcl.Range) {
	if !pc.providersChecked() {
		return
	}
	want := pc.opts.AllowedProviders[name]
	if name == builtinProvider {
		want = builtinProviderSource
	}
	if !pc.providerAllowed(name) {
		what := fmt.Sprintf("provider %q", name)
		if hasSource {
			what = fmt.Sprintf("provider %q (source %q)", name, truncate(source))
		}
		pc.add(at, fmt.Sprintf("%s is not allowed: Kloud installs only its own providers; allowed: %s", what, pc.allowedList()))
		return
	}
	if hasSource && NormalizeProviderSource(source) != NormalizeProviderSource(want) {
		pc.add(at, fmt.Sprintf("provider %q has source %q; Kloud installs it only from %q", name, truncate(source), want))
	}
}

// truncate quotes at most 64 characters of user input in a message.
func truncate(s string) string {
	if len(s) <= 64 {
		return s
	}
	r := []rune(s)
	if len(r) <= 64 {
		return s
	}
	return string(r[:64]) + "…"
}

// checkImportTarget checks an import block's to: a resource address of an
// allowed provider (unless the block names its provider).
func (pc *policyChecker) checkImportTarget(t hcl.Traversal, at hcl.Range, providerSet bool) {
	const want = "import \"to\" must be a plain resource address (type.name or type.name[key])"
	if len(t) < 2 || len(t) > 3 {
		pc.add(at, want)
		return
	}
	root := t.RootName()
	if _, ok := t[1].(hcl.TraverseAttr); !ok || !hclsyntax.ValidIdentifier(root) || slices.Contains([]string{"data", "module", "var", "local", "each", "count", "path", "self", "terraform"}, root) {
		pc.add(at, want)
		return
	}
	if len(t) == 3 {
		if _, ok := t[2].(hcl.TraverseIndex); !ok {
			pc.add(at, want)
			return
		}
	}
	if !providerSet {
		pc.checkProviderName(providerLocalName(root), fmt.Sprintf("import of %q", root), at)
	}
}

// --- HCL native syntax ---

func (pc *policyChecker) checkHCL(body *hclsyntax.Body) {
	for _, b := range body.Blocks {
		pc.hclBlock(b, true)
	}
	pc.hclCalls(body)
}

func (pc *policyChecker) hclCalls(n hclsyntax.Node) {
	hclsyntax.VisitAll(n, func(n hclsyntax.Node) hcl.Diagnostics {
		if call, ok := n.(*hclsyntax.FunctionCallExpr); ok {
			pc.checkCall(call, nil)
		}
		return nil
	})
}

// hclBlock checks b and, recursively, every block nested in it.
func (pc *policyChecker) hclBlock(b *hclsyntax.Block, top bool) {
	switch b.Type {
	case "terraform":
		if top {
			pc.hclTerraform(b)
		}
	case "data", "resource":
		if len(b.Labels) == 2 {
			if b.Type == "data" {
				pc.checkDataSource(b.Labels[0], b.TypeRange)
			}
			what := fmt.Sprintf("%s %q", b.Type, b.Labels[0])
			if a, ok := b.Body.Attributes["provider"]; ok {
				pc.hclProviderRef(a.Expr, what)
			} else {
				pc.checkProviderName(providerLocalName(b.Labels[0]), what, b.LabelRanges[0])
			}
		}
	case "module":
		pc.add(b.TypeRange, "module blocks are not allowed: a module's code is fetched when Terraform runs and cannot be checked")
	case "provider":
		if top && len(b.Labels) == 1 {
			pc.checkProviderName(b.Labels[0], "provider block", b.LabelRanges[0])
		}
	case "import":
		if top {
			pc.hclImport(b)
		}
	case "removed":
		if top {
			pc.add(b.TypeRange, "removed blocks are not allowed: Kloud decides what leaves a stack's state")
		}
	case "provisioner":
		if len(b.Labels) == 1 && pc.checkProvisioner(b.Labels[0], b.TypeRange) && b.Labels[0] == "file" {
			if a, ok := b.Body.Attributes["source"]; ok {
				if _, problem := pc.targetProblem("", 0, a.Expr); problem != "" {
					pc.add(a.Expr.Range(), `provisioner "file" source `+problem)
				}
			}
		}
	}
	for _, nb := range b.Body.Blocks {
		pc.hclBlock(nb, false)
	}
}

func (pc *policyChecker) hclTerraform(b *hclsyntax.Block) {
	for _, nb := range b.Body.Blocks {
		switch nb.Type {
		case "backend":
			pc.add(nb.TypeRange, "terraform { backend } is not allowed: Kloud keeps the stack's state")
		case "cloud":
			pc.add(nb.TypeRange, "terraform { cloud } is not allowed: Kloud keeps the stack's state")
		case "required_providers":
			for _, name := range slices.Sorted(maps.Keys(nb.Body.Attributes)) {
				a := nb.Body.Attributes[name]
				if src, ok := objectItem(a.Expr, "source"); ok {
					// Read the source alone: other items may reference
					// (configuration_aliases = [sandbox.other]).
					if lit, ok := literalString(src); ok {
						pc.checkRequiredProvider(name, lit, true, a.NameRange)
					} else if pc.providersChecked() {
						pc.add(src.Range(), fmt.Sprintf("required_providers entry %q: source must be a literal string", name))
					}
					continue
				}
				v, diags := a.Expr.Value(nil)
				switch {
				case diags.HasErrors() || !v.IsWhollyKnown() || v.IsNull():
					if pc.providersChecked() {
						pc.add(a.Expr.Range(), fmt.Sprintf("required_providers entry %q must be a literal", name))
					}
				case v.Type() == cty.String:
					pc.checkRequiredProvider(name, "", false, a.NameRange)
				case v.Type().IsObjectType() && v.Type().HasAttribute("source"):
					src := v.GetAttr("source")
					if src.Type() != cty.String {
						pc.add(a.Expr.Range(), fmt.Sprintf("required_providers entry %q: source must be a string", name))
						continue
					}
					pc.checkRequiredProvider(name, src.AsString(), true, a.NameRange)
				default:
					pc.checkRequiredProvider(name, "", false, a.NameRange)
				}
			}
		}
	}
}

// objectItem returns the value of item key of an object constructor.
func objectItem(expr hclsyntax.Expression, key string) (hclsyntax.Expression, bool) {
	obj, ok := expr.(*hclsyntax.ObjectConsExpr)
	if !ok {
		return nil, false
	}
	for _, item := range obj.Items {
		if hcl.ExprAsKeyword(item.KeyExpr) == key {
			return item.ValueExpr, true
		}
		if k, ok := item.KeyExpr.(*hclsyntax.ObjectConsKeyExpr); ok {
			if s, ok := literalString(k.Wrapped); ok && s == key {
				return item.ValueExpr, true
			}
		}
	}
	return nil, false
}

// hclProviderRef checks a provider argument (provider = aws.west).
func (pc *policyChecker) hclProviderRef(expr hcl.Expression, what string) {
	if !pc.providersChecked() {
		return
	}
	t, diags := hcl.AbsTraversalForExpr(expr)
	if diags.HasErrors() {
		pc.add(expr.Range(), what+": provider must be a provider reference (name or name.alias)")
		return
	}
	pc.checkProviderName(t.RootName(), what, expr.Range())
}

func (pc *policyChecker) hclImport(b *hclsyntax.Block) {
	_, providerSet := b.Body.Attributes["provider"]
	for _, name := range slices.Sorted(maps.Keys(b.Body.Attributes)) {
		a := b.Body.Attributes[name]
		switch name {
		case "id":
			if _, ok := literalString(a.Expr); !ok {
				pc.add(a.Expr.Range(), `import "id" must be a literal string`)
			}
		case "to":
			t, diags := hcl.AbsTraversalForExpr(a.Expr)
			if diags.HasErrors() {
				pc.add(a.Expr.Range(), `import "to" must be a plain resource address (type.name or type.name[key])`)
				continue
			}
			pc.checkImportTarget(t, a.Expr.Range(), providerSet)
		case "provider":
			pc.hclProviderRef(a.Expr, "import")
		default:
			pc.add(a.NameRange, fmt.Sprintf("import argument %q is not allowed; allowed: id, to, provider", name))
		}
	}
	for _, nb := range b.Body.Blocks {
		pc.add(nb.TypeRange, fmt.Sprintf("import blocks take no %q block", nb.Type))
	}
}

// literalString returns the value of a string literal ("abc", without
// template sequences).
func literalString(expr hcl.Expression) (string, bool) {
	switch e := expr.(type) {
	case *hclsyntax.LiteralValueExpr:
		if e.Val.Type() == cty.String && e.Val.IsKnown() && !e.Val.IsNull() {
			return e.Val.AsString(), true
		}
	case *hclsyntax.TemplateExpr:
		var sb strings.Builder
		for _, part := range e.Parts {
			s, ok := literalString(part)
			if !ok {
				return "", false
			}
			sb.WriteString(s)
		}
		return sb.String(), true
	}
	return "", false
}

// --- file functions ---

// checkCall refuses a file-reading function call whose path argument is not
// safe, and the functions that are never allowed. remap, when set,
// converts a range inside a JSON string to its range in the file.
func (pc *policyChecker) checkCall(call *hclsyntax.FunctionCallExpr, remap func(hcl.Range) hcl.Range) {
	name := strings.TrimPrefix(call.Name, "core::")
	at := call.NameRange
	if remap != nil {
		at = remap(at)
	}
	if name == "templatestring" {
		pc.add(at, "templatestring() is not allowed: it renders a value (a variable's, which a member sets) as a template"+pc.via)
		return
	}
	if ns, ok := strings.CutPrefix(name, "provider::"); ok {
		prov, _, _ := strings.Cut(ns, "::")
		pc.checkProviderName(prov, name+"()", at)
		return
	}
	argIdx, ok := fileFunctions[name]
	if !ok {
		return
	}
	if call.ExpandFinal {
		pc.add(at, name+"() with expanded arguments (...) is not allowed: its path must be a literal naming the template's file"+pc.via)
		return
	}
	for _, i := range argIdx {
		if i >= len(call.Args) {
			continue // Terraform reports the missing argument
		}
		if _, problem := pc.targetProblem(name, i, call.Args[i]); problem != "" {
			what := "path"
			if name == "fileset" && i == 1 {
				what = "pattern"
			}
			pc.add(at, fmt.Sprintf("%s() %s %s%s", name, what, problem, pc.via))
			return
		}
	}
	if name == "templatefile" {
		pc.checkRendered(at)
	}
}

// targetProblem says what is wrong with argument i of file function fn
// (fn "" for a provisioner's source), or "" when it is allowed: the
// template's own file, or for fileset its directory and a relative pattern.
func (pc *policyChecker) targetProblem(fn string, i int, expr hclsyntax.Expression) (string, string) {
	p, problem := pathProblem(expr)
	if problem != "" {
		return "", problem
	}
	clean := path.Clean(p)
	switch {
	case fn == "fileset" && i == 0:
		if clean != "." {
			return "", fmt.Sprintf("%q is not the template's directory; use path.module", truncate(p))
		}
	case fn == "fileset":
	case clean == pc.fileName:
	case generatedFile(clean):
		return "", fmt.Sprintf("%q is a file Kloud generates beside the template; only the template's own file (%s) can be read", truncate(p), pc.fileName)
	default:
		return "", fmt.Sprintf("%q is not a file of the template; a template is one file (%s)", truncate(p), pc.fileName)
	}
	return clean, ""
}

// generatedFile reports whether name is (or looks like) a file Kloud or
// Terraform writes in a stack's working directory.
func generatedFile(name string) bool {
	switch name {
	case FileProviders, FileVariables, FileVarValues, FileOverride, "override.tf", "override.tf.json":
		return true
	}
	for _, prefix := range []string{"kloud_", ".terraform", "terraform.tfstate"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	for _, suffix := range []string{"_override.tf", "_override.tf.json", ".tfvars", ".tfvars.json", ".tfstate", ".tfplan"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// checkRendered checks the template as what templatefile() renders: its
// whole file read as a template, where every ${...}, in comments too, is
// evaluated. It runs once: a template rendering itself does not loop.
func (pc *policyChecker) checkRendered(call hcl.Range) {
	if pc.rendered {
		return
	}
	pc.rendered = true
	if r, deep := hclNesting(pc.p.Content, pc.p.Name, hcl.InitialPos, lexTemplate); deep {
		pc.add(r, fmt.Sprintf("templatefile() at %s:%d:%d renders %s, which as a template nests deeper than %d levels here",
			call.Filename, call.Start.Line, call.Start.Column, pc.fileName, MaxNesting))
		return
	}
	expr, diags := hclsyntax.ParseTemplate(pc.p.Content, pc.p.Name, hcl.InitialPos)
	if diags.HasErrors() {
		msg := ""
		for _, d := range diags {
			if d.Severity == hcl.DiagError {
				msg = diagnosticFromHCL(d).String()
				break
			}
		}
		pc.add(call, fmt.Sprintf("templatefile() renders %s, which cannot be checked as a template: %s", pc.fileName, msg))
		return
	}
	pc.via = fmt.Sprintf(" (evaluated when templatefile() at %s:%d:%d renders %s)", call.Filename, call.Start.Line, call.Start.Column, pc.fileName)
	pc.hclCalls(expr)
	pc.via = ""
}

// pathProblem returns the literal path of a path argument, or what is
// wrong with it: not a literal (optionally starting with path.module or
// path.root), absolute, in a home directory, or leaving the template.
func pathProblem(expr hclsyntax.Expression) (string, string) {
	p, ok := literalPath(expr)
	if !ok {
		return "", "must be a literal path naming the template's file (optionally starting with path.module); got an expression"
	}
	switch {
	case strings.HasPrefix(p, "/") || strings.HasPrefix(p, `\`) || (len(p) >= 2 && p[1] == ':'):
		return "", fmt.Sprintf("%q is absolute; only the template's own file can be read", truncate(p))
	case strings.HasPrefix(p, "~"):
		return "", fmt.Sprintf("%q is in a home directory; only the template's own file can be read", truncate(p))
	}
	for _, seg := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }) {
		if seg == ".." {
			return "", fmt.Sprintf("%q contains \"..\"; only the template's own file can be read", truncate(p))
		}
	}
	if c := path.Clean("/" + strings.ReplaceAll(p, `\`, "/")); c == "/.." || strings.HasPrefix(c, "/../") {
		return "", fmt.Sprintf("%q leaves the template", truncate(p))
	}
	return p, ""
}

// literalPath evaluates a path argument statically: string literals and
// templates of literals, where the first part may be path.module or
// path.root (which is the template's own directory). ok is false for
// anything else.
func literalPath(expr hclsyntax.Expression) (string, bool) {
	switch e := expr.(type) {
	case *hclsyntax.LiteralValueExpr:
		if e.Val.IsKnown() && !e.Val.IsNull() && e.Val.Type() == cty.String {
			return e.Val.AsString(), true
		}
		return "", false
	case *hclsyntax.ScopeTraversalExpr:
		if isModulePath(e) {
			return ".", true
		}
		return "", false
	case *hclsyntax.TemplateWrapExpr:
		return literalPath(e.Wrapped)
	case *hclsyntax.ParenthesesExpr:
		return literalPath(e.Expression)
	case *hclsyntax.TemplateExpr:
		var sb strings.Builder
		for i, part := range e.Parts {
			if st, ok := part.(*hclsyntax.ScopeTraversalExpr); ok && i == 0 && isModulePath(st) {
				sb.WriteString(".")
				continue
			}
			lit, ok := part.(*hclsyntax.LiteralValueExpr)
			if !ok || !lit.Val.IsKnown() || lit.Val.IsNull() || lit.Val.Type() != cty.String {
				return "", false
			}
			sb.WriteString(lit.Val.AsString())
		}
		s := sb.String()
		if strings.HasPrefix(s, "./") {
			s = strings.TrimLeft(s[2:], "/")
			if s == "" {
				s = "."
			}
		}
		return s, true
	}
	return "", false
}

func isModulePath(e *hclsyntax.ScopeTraversalExpr) bool {
	t := e.Traversal
	if len(t) != 2 || t.RootName() != "path" {
		return false
	}
	attr, ok := t[1].(hcl.TraverseAttr)
	return ok && (attr.Name == "module" || attr.Name == "root")
}

// --- JSON syntax ---

func (pc *policyChecker) keyRange(k *jsonValue) hcl.Range {
	return pc.p.lines.rng(pc.p.Name, k.start, k.end)
}

// objects calls fn for v when it is an object, or for each object in v when
// it is an array (Terraform's JSON syntax allows both for blocks).
func objects(v *jsonValue, fn func(*jsonValue)) {
	switch v.kind {
	case jsonObject:
		fn(v)
	case jsonArray:
		for _, e := range v.elems {
			objects(e, fn)
		}
	}
}

// props calls fn for every property of v's objects (see objects).
func props(v *jsonValue, fn func(jsonProp)) {
	objects(v, func(o *jsonValue) {
		for _, p := range o.props {
			fn(p)
		}
	})
}

func (pc *policyChecker) checkJSON(root *jsonValue) {
	props(root, func(prop jsonProp) {
		switch prop.key.str {
		case "terraform":
			props(prop.val, pc.jsonTerraform)
		case "resource", "data":
			pc.jsonResources(prop.key.str, prop.val)
		case "module":
			pc.add(pc.keyRange(prop.key), "module blocks are not allowed: a module's code is fetched when Terraform runs and cannot be checked")
		case "provider":
			props(prop.val, func(p jsonProp) {
				pc.checkProviderName(p.key.str, "provider block", pc.keyRange(p.key))
			})
		case "check":
			props(prop.val, func(named jsonProp) {
				props(named.val, func(p jsonProp) {
					if p.key.str == "data" {
						pc.jsonResources("data", p.val)
					}
				})
			})
		case "import":
			objects(prop.val, pc.jsonImport)
		case "removed":
			pc.add(pc.keyRange(prop.key), "removed blocks are not allowed: Kloud decides what leaves a stack's state")
		}
	})
	pc.checkJSONComments(root)
	pc.checkJSONStrings(root)
}

func (pc *policyChecker) jsonTerraform(p jsonProp) {
	switch p.key.str {
	case "backend":
		pc.add(pc.keyRange(p.key), "terraform { backend } is not allowed: Kloud keeps the stack's state")
	case "cloud":
		pc.add(pc.keyRange(p.key), "terraform { cloud } is not allowed: Kloud keeps the stack's state")
	case "required_providers":
		props(p.val, func(e jsonProp) {
			at := pc.keyRange(e.key)
			switch e.val.kind {
			case jsonString:
				pc.checkRequiredProvider(e.key.str, "", false, at)
			case jsonObject:
				source, hasSource := "", false
				for _, a := range e.val.props {
					if a.key.str != "source" {
						continue
					}
					if a.val.kind != jsonString || strings.Contains(a.val.str, "${") || strings.Contains(a.val.str, "%{") {
						pc.add(pc.keyRange(a.val), fmt.Sprintf("required_providers entry %q: source must be a literal string", e.key.str))
						return
					}
					source, hasSource = a.val.str, true
				}
				pc.checkRequiredProvider(e.key.str, source, hasSource, at)
			default:
				if pc.providersChecked() {
					pc.add(at, fmt.Sprintf("required_providers entry %q must be an object or a version string", e.key.str))
				}
			}
		})
	}
}

// jsonResources checks "resource" or "data" (kind) blocks: type → name →
// body.
func (pc *policyChecker) jsonResources(kind string, v *jsonValue) {
	props(v, func(tp jsonProp) {
		if kind == "data" {
			pc.checkDataSource(tp.key.str, pc.keyRange(tp.key))
		}
		what := fmt.Sprintf("%s %q", kind, tp.key.str)
		props(tp.val, func(np jsonProp) {
			objects(np.val, func(body *jsonValue) {
				providerSet := false
				for _, a := range body.props {
					if a.key.str == "provider" {
						providerSet = true
						pc.jsonProviderRef(a.val, what)
					}
				}
				if !providerSet {
					pc.checkProviderName(providerLocalName(tp.key.str), what, pc.keyRange(tp.key))
				}
				pc.jsonProvisioners(body)
			})
		})
	})
}

// jsonProviderRef checks a provider argument ("provider": "aws.west").
func (pc *policyChecker) jsonProviderRef(v *jsonValue, what string) {
	if !pc.providersChecked() {
		return
	}
	t, ok := pc.jsonTraversal(v)
	if !ok {
		pc.add(pc.keyRange(v), what+": provider must be a provider reference (name or name.alias)")
		return
	}
	pc.checkProviderName(t.RootName(), what, pc.keyRange(v))
}

// jsonTraversal reads a JSON string holding a traversal (provider, to).
func (pc *policyChecker) jsonTraversal(v *jsonValue) (hcl.Traversal, bool) {
	if v.kind != jsonString {
		return nil, false
	}
	t, diags := hclsyntax.ParseTraversalAbs([]byte(v.str), pc.p.Name, hcl.InitialPos)
	return t, !diags.HasErrors()
}

func (pc *policyChecker) jsonImport(body *jsonValue) {
	providerSet := slices.ContainsFunc(body.props, func(p jsonProp) bool { return p.key.str == "provider" })
	for _, a := range body.props {
		switch a.key.str {
		case "id":
			if a.val.kind != jsonString || strings.Contains(a.val.str, "${") || strings.Contains(a.val.str, "%{") {
				pc.add(pc.keyRange(a.val), `import "id" must be a literal string`)
			}
		case "to":
			t, ok := pc.jsonTraversal(a.val)
			if !ok {
				pc.add(pc.keyRange(a.val), `import "to" must be a plain resource address (type.name or type.name[key])`)
				continue
			}
			pc.checkImportTarget(t, pc.keyRange(a.val), providerSet)
		case "provider":
			pc.jsonProviderRef(a.val, "import")
		case "//":
		default:
			pc.add(pc.keyRange(a.key), fmt.Sprintf("import argument %q is not allowed; allowed: id, to, provider", truncate(a.key.str)))
		}
	}
}

// jsonProvisioners checks every "provisioner" in a resource body, nested
// ones too (inside dynamic blocks or any other nested block).
func (pc *policyChecker) jsonProvisioners(v *jsonValue) {
	switch v.kind {
	case jsonArray:
		for _, e := range v.elems {
			pc.jsonProvisioners(e)
		}
	case jsonObject:
		for _, p := range v.props {
			if p.key.str == "provisioner" {
				pc.jsonProvisioner(p.val)
			}
			pc.jsonProvisioners(p.val)
		}
	}
}

func (pc *policyChecker) jsonProvisioner(v *jsonValue) {
	props(v, func(pp jsonProp) {
		if !pc.checkProvisioner(pp.key.str, pc.keyRange(pp.key)) || pp.key.str != "file" {
			return
		}
		props(pp.val, func(a jsonProp) {
			if a.key.str != "source" || a.val.kind != jsonString {
				return
			}
			expr, remap, ok := pc.jsonTemplate(a.val)
			if !ok {
				return
			}
			if _, problem := pc.targetProblem("", 0, expr); problem != "" {
				pc.add(remap(expr.Range()), `provisioner "file" source `+problem)
			}
		})
	})
}

// holdsTemplate reports whether any string in v (keys too) holds a
// template sequence.
func holdsTemplate(v *jsonValue) bool {
	switch v.kind {
	case jsonString:
		return strings.Contains(v.str, "${") || strings.Contains(v.str, "%{")
	case jsonArray:
		return slices.ContainsFunc(v.elems, holdsTemplate)
	case jsonObject:
		return slices.ContainsFunc(v.props, func(p jsonProp) bool { return holdsTemplate(p.key) || holdsTemplate(p.val) })
	}
	return false
}

// checkJSONComments refuses every "//" property holding a template
// sequence: Terraform skips "//" only directly in a block body, and
// evaluates it nested in an expression.
func (pc *policyChecker) checkJSONComments(v *jsonValue) {
	switch v.kind {
	case jsonArray:
		for _, e := range v.elems {
			pc.checkJSONComments(e)
		}
	case jsonObject:
		for _, p := range v.props {
			if p.key.str == "//" && holdsTemplate(p.val) {
				pc.add(pc.keyRange(p.key), `a "//" comment may not hold ${ or %{: nested in an expression, Terraform evaluates it`)
			}
			pc.checkJSONComments(p.val)
		}
	}
}

// checkJSONStrings parses every string of the document (keys too: Terraform
// reads object keys as templates) as a template and checks its function
// calls, "//" comments included: nested in an expression they are
// evaluated. A string that does not parse as a template cannot call
// anything, so it is not reported here.
func (pc *policyChecker) checkJSONStrings(v *jsonValue) {
	switch v.kind {
	case jsonString:
		if !strings.Contains(v.str, "${") && !strings.Contains(v.str, "%{") {
			return
		}
		expr, remap, ok := pc.jsonTemplate(v)
		if !ok {
			return
		}
		hclsyntax.VisitAll(expr, func(n hclsyntax.Node) hcl.Diagnostics {
			if call, ok := n.(*hclsyntax.FunctionCallExpr); ok {
				pc.checkCall(call, remap)
			}
			return nil
		})
	case jsonArray:
		for _, e := range v.elems {
			pc.checkJSONStrings(e)
		}
	case jsonObject:
		for _, p := range v.props {
			pc.checkJSONStrings(p.key)
			pc.checkJSONStrings(p.val)
		}
	}
}

// jsonTemplate parses JSON string v as a template. remap turns a range in
// the parsed (decoded) string into the range of its characters in the file.
func (pc *policyChecker) jsonTemplate(v *jsonValue) (hclsyntax.Expression, func(hcl.Range) hcl.Range, bool) {
	expr, diags := hclsyntax.ParseTemplate([]byte(v.str), pc.p.Name, hcl.Pos{Line: 1, Column: 1, Byte: 0})
	if diags.HasErrors() {
		return nil, nil, false
	}
	at := func(b int) int {
		if b <= 0 {
			return v.start // the opening quote: the whole string
		}
		if b >= len(v.strOff) {
			b = len(v.strOff) - 1
		}
		return v.strOff[b]
	}
	remap := func(r hcl.Range) hcl.Range {
		return pc.p.lines.rng(pc.p.Name, at(r.Start.Byte), at(r.End.Byte))
	}
	return expr, remap, true
}
