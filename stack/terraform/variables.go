package terraform

import (
	"fmt"
	"math/big"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/kloud/kloud/stack"
)

// maxVariableText bounds the source text of a default or a condition kept
// in a variable's description.
const maxVariableText = 1024

var validationSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "condition"}, {Name: "error_message"}},
}

// VariableSpecs returns what the template declares of each variable, in
// source order: name, type, default, description, sensitive and validation
// rules.
func (p *Parsed) VariableSpecs() []stack.VariableSpec {
	out := make([]stack.VariableSpec, 0, len(p.Variables))
	for _, v := range p.Variables {
		out = append(out, stack.VariableSpec{
			Name: v.Name, Type: v.Type, Default: v.Default, Required: !v.HasDefault,
			Description: v.Description, Sensitive: v.Sensitive, Validations: v.Validations,
		})
	}
	return out
}

// exprSource returns an expression's source text, clipped (a JSON
// template's expression is shown as its JSON text).
func (p *Parsed) exprSource(expr hcl.Expression) string {
	src := strings.TrimSpace(string(expr.Range().SliceBytes(p.Content)))
	if len(src) > maxVariableText {
		src = src[:maxVariableText] + "…"
	}
	return src
}

// validation reads one validation block.
func (p *Parsed) validation(b *hcl.Block) stack.VariableValidation {
	var v stack.VariableValidation
	c, _, _ := b.Body.PartialContent(validationSchema)
	if c == nil {
		return v
	}
	if a, ok := c.Attributes["condition"]; ok {
		v.Condition = p.exprSource(a.Expr)
		if p.Format == stack.FormatJSON {
			if s := constString(a.Expr); s != "" {
				v.Condition = strings.TrimSuffix(strings.TrimPrefix(s, "${"), "}")
			}
		}
	}
	if a, ok := c.Attributes["error_message"]; ok {
		v.ErrorMessage = constString(a.Expr)
		if v.ErrorMessage == "" {
			v.ErrorMessage = p.exprSource(a.Expr)
		}
	}
	return v
}

// constString is the value of a constant string expression, "" for any
// other expression.
func constString(expr hcl.Expression) string {
	v, d := expr.Value(nil)
	if d.HasErrors() || !v.IsKnown() || v.IsNull() || v.Type().FriendlyName() != "string" {
		return ""
	}
	return v.AsString()
}

// checkPrimitive refuses a value that Terraform would not convert to a
// number or bool variable, so it is refused when the stack is created or
// updated instead of when it is planned.
func checkPrimitive(decl VariableDecl, raw string) error {
	switch decl.Type {
	case "number":
		if _, ok := new(big.Float).SetString(strings.TrimSpace(raw)); !ok {
			return fmt.Errorf("%w: variable %q (type number): %s is not a number", ErrInvalidVariable, decl.Name, quoteClip(raw))
		}
	case "bool":
		if raw != "true" && raw != "false" {
			return fmt.Errorf("%w: variable %q (type bool): %s is not true or false", ErrInvalidVariable, decl.Name, quoteClip(raw))
		}
	}
	return nil
}

// quoteClip quotes at most 64 characters of a value.
func quoteClip(s string) string {
	if r := []rune(s); len(r) > 64 {
		s = string(r[:64]) + "…"
	}
	return fmt.Sprintf("%q", s)
}
