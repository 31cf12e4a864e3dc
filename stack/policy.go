package stack

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// The policy: what a template may not do, because Terraform runs it on
// Kloud's own host. Each rule names the construct and why.
//
//   - provisioner "local-exec" and "remote-exec": run commands on Kloud's host
//     or over SSH with credentials Kloud does not manage;
//   - provisioner "file" whose source is outside the template;
//   - data "external": runs a program on Kloud's host;
//   - module blocks: their code is fetched later and is never checked;
//   - terraform { backend } and terraform { cloud }: Kloud keeps the state;
//   - file(), filebase64(), filemd5(), filesha*(), filebase64sha*(),
//     fileexists(), fileset() and templatefile() whose path is absolute,
//     starts with ~, contains "..", or is not a literal (optionally starting
//     with path.module or path.root): they would read Kloud's host.

// refusedProvisioners maps a provisioner type to why it is refused.
var refusedProvisioners = map[string]string{
	"local-exec":  "it runs commands on Kloud's host",
	"remote-exec": "it runs commands over a connection Kloud does not manage",
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
	p     *Parsed
	diags Diagnostics
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

// CheckPolicy returns a diagnostic, with the exact line and column, for every
// construct of p that Kloud refuses (see the rules above). It works on HCL
// and JSON templates alike.
func CheckPolicy(p *Parsed) Diagnostics {
	if p == nil || p.File == nil {
		return nil
	}
	pc := &policyChecker{p: p}
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
	return pc.diags
}

// --- HCL native syntax ---

func (pc *policyChecker) checkHCL(body *hclsyntax.Body) {
	for _, b := range body.Blocks {
		switch b.Type {
		case "terraform":
			for _, nb := range b.Body.Blocks {
				switch nb.Type {
				case "backend":
					pc.add(nb.TypeRange, "terraform { backend } is not allowed: Kloud keeps the stack's state")
				case "cloud":
					pc.add(nb.TypeRange, "terraform { cloud } is not allowed: Kloud keeps the stack's state")
				}
			}
		case "data":
			if len(b.Labels) > 0 && b.Labels[0] == "external" {
				pc.add(b.TypeRange, `data "external" is not allowed: it runs a program on Kloud's host`)
			}
			pc.checkHCLProvisioners(b)
		case "resource":
			pc.checkHCLProvisioners(b)
		case "module":
			pc.add(b.TypeRange, "module blocks are not allowed: a module's code is fetched when Terraform runs and cannot be checked")
		}
	}
	hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
		if call, ok := n.(*hclsyntax.FunctionCallExpr); ok {
			pc.checkCall(call, nil)
		}
		return nil
	})
}

func (pc *policyChecker) checkHCLProvisioners(b *hclsyntax.Block) {
	for _, nb := range b.Body.Blocks {
		if nb.Type != "provisioner" || len(nb.Labels) == 0 {
			continue
		}
		typ := nb.Labels[0]
		if why, refused := refusedProvisioners[typ]; refused {
			pc.add(nb.TypeRange, fmt.Sprintf("provisioner %q is not allowed: %s", typ, why))
			continue
		}
		if typ == "file" {
			if a, ok := nb.Body.Attributes["source"]; ok {
				if problem := pathProblem(a.Expr); problem != "" {
					pc.add(a.Expr.Range(), `provisioner "file" source `+problem)
				}
			}
		}
	}
}

// checkCall refuses a file-reading function call whose path argument is not
// safe. remap, when set, converts a range inside a JSON string to its range
// in the file.
func (pc *policyChecker) checkCall(call *hclsyntax.FunctionCallExpr, remap func(hcl.Range) hcl.Range) {
	name := strings.TrimPrefix(call.Name, "core::")
	argIdx, ok := fileFunctions[name]
	if !ok {
		return
	}
	at := call.NameRange
	if remap != nil {
		at = remap(at)
	}
	if call.ExpandFinal {
		pc.add(at, name+"() with expanded arguments (...) is not allowed: its path must be a literal inside the template")
		return
	}
	for _, i := range argIdx {
		if i >= len(call.Args) {
			continue // Terraform reports the missing argument
		}
		if problem := pathProblem(call.Args[i]); problem != "" {
			what := "path"
			if name == "fileset" && i == 1 {
				what = "pattern"
			}
			pc.add(at, fmt.Sprintf("%s() %s %s", name, what, problem))
			return
		}
	}
}

// pathProblem says what is wrong with a path argument, or "" when it is a
// literal relative path inside the template (optionally starting with
// path.module or path.root).
func pathProblem(expr hclsyntax.Expression) string {
	p, ok := literalPath(expr)
	if !ok {
		return "must be a literal path inside the template (optionally starting with path.module); got an expression"
	}
	switch {
	case strings.HasPrefix(p, "/") || strings.HasPrefix(p, `\`) || (len(p) >= 2 && p[1] == ':'):
		return fmt.Sprintf("%q is absolute; only paths inside the template are allowed", p)
	case strings.HasPrefix(p, "~"):
		return fmt.Sprintf("%q is in a home directory; only paths inside the template are allowed", p)
	}
	for _, seg := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }) {
		if seg == ".." {
			return fmt.Sprintf("%q contains \"..\"; only paths inside the template are allowed", p)
		}
	}
	if c := path.Clean("/" + strings.ReplaceAll(p, `\`, "/")); c == "/.." || strings.HasPrefix(c, "/../") {
		return fmt.Sprintf("%q leaves the template", p)
	}
	return ""
}

// literalPath evaluates a path argument statically: string literals and
// templates of literals, where the first part may be path.module or
// path.root (which is the template's own directory). ok is false for
// anything else.
func literalPath(expr hclsyntax.Expression) (string, bool) {
	switch e := expr.(type) {
	case *hclsyntax.LiteralValueExpr:
		if e.Val.IsKnown() && !e.Val.IsNull() && e.Val.Type().FriendlyName() == "string" {
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
			if !ok || !lit.Val.IsKnown() || lit.Val.IsNull() || lit.Val.Type().FriendlyName() != "string" {
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

func (pc *policyChecker) checkJSON(root *jsonValue) {
	objects(root, func(top *jsonValue) {
		for _, prop := range top.props {
			switch prop.key.str {
			case "terraform":
				objects(prop.val, func(tf *jsonValue) {
					for _, p := range tf.props {
						switch p.key.str {
						case "backend":
							pc.add(pc.keyRange(p.key), "terraform { backend } is not allowed: Kloud keeps the stack's state")
						case "cloud":
							pc.add(pc.keyRange(p.key), "terraform { cloud } is not allowed: Kloud keeps the stack's state")
						}
					}
				})
			case "resource", "data":
				isData := prop.key.str == "data"
				objects(prop.val, func(types *jsonValue) {
					for _, tp := range types.props {
						if isData && tp.key.str == "external" {
							pc.add(pc.keyRange(tp.key), `data "external" is not allowed: it runs a program on Kloud's host`)
						}
						objects(tp.val, func(names *jsonValue) {
							for _, np := range names.props {
								objects(np.val, pc.checkJSONProvisioners)
							}
						})
					}
				})
			case "module":
				pc.add(pc.keyRange(prop.key), "module blocks are not allowed: a module's code is fetched when Terraform runs and cannot be checked")
			}
		}
	})
	pc.checkJSONStrings(root)
}

func (pc *policyChecker) checkJSONProvisioners(body *jsonValue) {
	for _, p := range body.props {
		if p.key.str != "provisioner" {
			continue
		}
		objects(p.val, func(provs *jsonValue) {
			for _, pp := range provs.props {
				if why, refused := refusedProvisioners[pp.key.str]; refused {
					pc.add(pc.keyRange(pp.key), fmt.Sprintf("provisioner %q is not allowed: %s", pp.key.str, why))
					continue
				}
				if pp.key.str != "file" {
					continue
				}
				objects(pp.val, func(fb *jsonValue) {
					for _, a := range fb.props {
						if a.key.str != "source" || a.val.kind != jsonString {
							continue
						}
						expr, remap, ok := pc.jsonTemplate(a.val)
						if !ok {
							continue
						}
						if problem := pathProblem(expr); problem != "" {
							pc.add(remap(expr.Range()), `provisioner "file" source `+problem)
						}
					}
				})
			}
		})
	}
}

// checkJSONStrings parses every string of the document (keys too: Terraform
// reads object keys as templates) as a template and checks its function
// calls. Comment properties ("//") are skipped. A string that does not
// parse as a template cannot call anything, so it is not reported here.
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
			if p.key.str == "//" {
				continue
			}
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
