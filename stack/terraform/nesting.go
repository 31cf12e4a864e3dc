package terraform

import (
	"fmt"
	"strings"

	"github.com/apparentlymart/go-textseg/v15/textseg"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/kloud/kloud/stack"
)

// MaxNesting bounds how deeply a template (HCL or JSON), a string of a JSON
// template, or a stack variable's value may nest. HCL's parsers and the
// code that walks what they return recurse once per level, and Go cannot
// recover from a stack overflow: a template nesting 260,000 parentheses
// kills the whole server. So the depth is measured by a linear scan before
// any parser runs.
const MaxNesting = 64

// lexMode is how a source is read by HCL: a configuration file, one
// expression, or a template (JSON strings, templatefile targets).
type lexMode int

const (
	lexConfig lexMode = iota
	lexExpression
	lexTemplate
)

// nestingFrame is one open level of the scan: a bracket, a template
// sequence (${ or %{) or a quoted or heredoc template.
type nestingFrame struct {
	open hclsyntax.TokenType
	// weight is what the frame itself adds to the depth: 1 for brackets
	// and template sequences, 0 for the quotes around a template (the
	// sequence inside counts).
	weight int
	// chain counts the constructs the parser nests into without brackets,
	// at this level: unary operators (!x, -x), conditionals (a ? b : c ?
	// ...), splats ([*], .*) and template if/for directives.
	chain int
	// newlines is true where a newline ends an expression (a body, an
	// object), so chains end there too.
	newlines bool
}

// closes maps an opening token to the token that closes it.
var closes = map[hclsyntax.TokenType]hclsyntax.TokenType{
	hclsyntax.TokenOParen:          hclsyntax.TokenCParen,
	hclsyntax.TokenOBrack:          hclsyntax.TokenCBrack,
	hclsyntax.TokenOBrace:          hclsyntax.TokenCBrace,
	hclsyntax.TokenTemplateInterp:  hclsyntax.TokenTemplateSeqEnd,
	hclsyntax.TokenTemplateControl: hclsyntax.TokenTemplateSeqEnd,
	hclsyntax.TokenOQuote:          hclsyntax.TokenCQuote,
	hclsyntax.TokenOHeredoc:        hclsyntax.TokenCHeredoc,
}

// valueEnds are the tokens after which a minus is binary (a - b); after
// anything else it is unary (-b), which nests.
var valueEnds = map[hclsyntax.TokenType]bool{
	hclsyntax.TokenIdent: true, hclsyntax.TokenNumberLit: true,
	hclsyntax.TokenCParen: true, hclsyntax.TokenCBrack: true, hclsyntax.TokenCBrace: true,
	hclsyntax.TokenCQuote: true, hclsyntax.TokenCHeredoc: true,
}

// hclNesting scans src with HCL's own lexer (linear, no recursion) and
// returns the range of the first token at which the nesting goes deeper
// than MaxNesting, or false when it never does. It over-counts rather than
// under-counts: a closing token that does not match the open level does not
// close it.
func hclNesting(src []byte, filename string, start hcl.Pos, mode lexMode) (hcl.Range, bool) {
	var toks hclsyntax.Tokens
	switch mode {
	case lexExpression:
		toks, _ = hclsyntax.LexExpression(src, filename, start)
	case lexTemplate:
		toks, _ = hclsyntax.LexTemplate(src, filename, start)
	default:
		toks, _ = hclsyntax.LexConfig(src, filename, start)
	}
	stack := []nestingFrame{{newlines: mode == lexConfig}}
	depth := 0
	prev := hclsyntax.TokenNil
	for i, tok := range toks {
		top := &stack[len(stack)-1]
		chained := false
		switch tok.Type {
		case hclsyntax.TokenOParen, hclsyntax.TokenOBrack, hclsyntax.TokenOBrace,
			hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl,
			hclsyntax.TokenOQuote, hclsyntax.TokenOHeredoc:
			f := nestingFrame{open: tok.Type, weight: 1}
			switch tok.Type {
			case hclsyntax.TokenOQuote, hclsyntax.TokenOHeredoc:
				f.weight = 0
			case hclsyntax.TokenOBrace:
				// A block body or an object: newlines end its items,
				// except in a for expression ({for k, v in x : ...}).
				f.newlines = !(i+1 < len(toks) && nextIsFor(toks[i+1:]))
			case hclsyntax.TokenTemplateControl:
				// %{ if } and %{ for } nest the template that follows
				// until %{ endif } or %{ endfor }.
				switch nextIdent(toks[i+1:]) {
				case "if", "for":
					top.chain++
					depth++
				case "endif", "endfor":
					if top.chain > 0 {
						top.chain--
						depth--
					}
				}
			}
			stack = append(stack, f)
			depth += f.weight
		case hclsyntax.TokenCParen, hclsyntax.TokenCBrack, hclsyntax.TokenCBrace,
			hclsyntax.TokenTemplateSeqEnd, hclsyntax.TokenCQuote, hclsyntax.TokenCHeredoc:
			if len(stack) > 1 && closes[top.open] == tok.Type {
				depth -= top.weight + top.chain
				stack = stack[:len(stack)-1]
			}
		case hclsyntax.TokenBang, hclsyntax.TokenQuestion:
			chained = true
		case hclsyntax.TokenMinus:
			chained = !valueEnds[prev]
		case hclsyntax.TokenStar:
			switch {
			case prev == hclsyntax.TokenDot: // x.*
				chained = true
			case prev == hclsyntax.TokenOBrack && len(stack) > 1: // x[*]: the splat nests outside its brackets
				stack[len(stack)-2].chain++
				depth++
			}
		case hclsyntax.TokenComma:
			depth -= top.chain
			top.chain = 0
		case hclsyntax.TokenNewline:
			if top.newlines {
				depth -= top.chain
				top.chain = 0
			}
		}
		if chained {
			top.chain++
			depth++
		}
		if depth > MaxNesting {
			return tok.Range, true
		}
		if tok.Type != hclsyntax.TokenNewline && tok.Type != hclsyntax.TokenComment {
			prev = tok.Type
		}
	}
	return hcl.Range{}, false
}

func nextIsFor(toks hclsyntax.Tokens) bool {
	return nextIdent(toks) == "for"
}

// nextIdent returns the first identifier in toks, skipping newlines and
// strip markers (~), or "" when something else comes first.
func nextIdent(toks hclsyntax.Tokens) string {
	for _, t := range toks {
		switch t.Type {
		case hclsyntax.TokenNewline, hclsyntax.TokenBitwiseNot, hclsyntax.TokenComment:
			continue
		case hclsyntax.TokenIdent:
			return string(t.Bytes)
		}
		return ""
	}
	return ""
}

// nestingChars are the characters every level of nesting needs at least
// one of; a string holding at most MaxNesting of them cannot nest deeper.
const nestingChars = "([{!-?*"

func mayNestDeeply(s string) bool {
	n := 0
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(nestingChars, s[i]) >= 0 {
			n++
			if n > MaxNesting {
				return true
			}
		}
	}
	return false
}

// jsonNesting scans a JSON document linearly and returns the byte offset
// of the first bracket deeper than MaxNesting, or -1. Strings end where
// HCL's JSON scanner ends them (an unescaped quote, or a control
// character, reading by grapheme cluster), so what it reads as structure
// is counted here too.
func jsonNesting(src []byte) int {
	depth := 0
	for i := 0; i < len(src); {
		switch src[i] {
		case '"':
			i += jsonStringLen(src[i:])
			continue
		case '[', '{':
			depth++
			if depth > MaxNesting {
				return i
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		}
		i++
	}
	return -1
}

// jsonStringLen is how many bytes of buf (which starts with a quote) HCL's
// JSON scanner takes as the string (hcl/v2/json's scanString).
func jsonStringLen(buf []byte) int {
	i := 1
	escaping := false
	for i < len(buf) {
		b := buf[i]
		switch {
		case b == '\\':
			escaping = !escaping
			i++
		case b == '"':
			i++
			if !escaping {
				return i
			}
			escaping = false
		case b < 32:
			return i
		default:
			advance, _, _ := textseg.ScanGraphemeClusters(buf[i:], true)
			if advance < 1 {
				advance = 1
			}
			i += advance
			escaping = false
		}
	}
	return i
}

// jsonStringNesting checks every string of a parsed JSON document (keys
// too), which Kloud and Terraform read as templates. It returns the range
// of the first too deep one. (The few arguments Terraform reads as
// expressions, such as a variable's type, are parsed only by Terraform,
// in its own confined process; scanning every string as an expression
// would refuse ordinary text, a shell script with many "!" or "?".)
func jsonStringNesting(v *jsonValue, filename string, lines lineIndex) (hcl.Range, bool) {
	switch v.kind {
	case jsonString:
		if !mayNestDeeply(v.str) {
			return hcl.Range{}, false
		}
		if r, deep := hclNesting([]byte(v.str), filename, hcl.Pos{Line: 1, Column: 1}, lexTemplate); deep {
			at := v.start
			if r.Start.Byte > 0 && r.Start.Byte < len(v.strOff) {
				at = v.strOff[r.Start.Byte]
			}
			return lines.rng(filename, at, at), true
		}
	case jsonArray:
		for _, e := range v.elems {
			if r, deep := jsonStringNesting(e, filename, lines); deep {
				return r, true
			}
		}
	case jsonObject:
		for _, p := range v.props {
			if r, deep := jsonStringNesting(p.key, filename, lines); deep {
				return r, true
			}
			if r, deep := jsonStringNesting(p.val, filename, lines); deep {
				return r, true
			}
		}
	}
	return hcl.Range{}, false
}

// nestingDiagnostic is the error for a source nesting too deeply at r.
func nestingDiagnostic(r hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Template nested too deeply",
		Detail:   fmt.Sprintf("nesting deeper than %d levels at %s:%d:%d", MaxNesting, r.Filename, r.Start.Line, r.Start.Column),
		Subject:  r.Ptr(),
	}
}

// checkNesting bounds the nesting of a template before any parser reads
// it. For JSON, only the structure: see checkJSONStringNesting.
func checkNesting(name string, content []byte, format stack.Format) hcl.Diagnostics {
	if format != stack.FormatJSON {
		if r, deep := hclNesting(content, name, hcl.InitialPos, lexConfig); deep {
			return hcl.Diagnostics{nestingDiagnostic(r)}
		}
		return nil
	}
	if off := jsonNesting(content); off >= 0 {
		lines := newLineIndex(content)
		return hcl.Diagnostics{nestingDiagnostic(lines.rng(name, off, off+1))}
	}
	return nil
}

// checkJSONStringNesting bounds the nesting of every string of a JSON
// template that HCL's JSON parser accepted (its structure bounded by
// checkNesting), before anything evaluates one. A template Kloud's own
// JSON reader cannot read is refused: its strings could not be checked.
func checkJSONStringNesting(name string, content []byte) hcl.Diagnostics {
	root, err := parseJSONValue(content)
	if err != nil {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Unreadable JSON template",
			Detail:   err.Error(),
			Subject:  &hcl.Range{Filename: name, Start: hcl.InitialPos, End: hcl.InitialPos},
		}}
	}
	if r, deep := jsonStringNesting(root, name, newLineIndex(content)); deep {
		return hcl.Diagnostics{nestingDiagnostic(r)}
	}
	return nil
}

// CheckExpressionNesting returns an error naming the line and column when
// src, an HCL expression (a stack variable's value), nests deeper than
// MaxNesting.
func CheckExpressionNesting(src string) error {
	if !mayNestDeeply(src) {
		return nil
	}
	if r, deep := hclNesting([]byte(src), "", hcl.InitialPos, lexExpression); deep {
		return fmt.Errorf("nesting deeper than %d levels at line %d, column %d", MaxNesting, r.Start.Line, r.Start.Column)
	}
	return nil
}
