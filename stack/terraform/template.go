package terraform

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	hcljson "github.com/hashicorp/hcl/v2/json"

	"github.com/kloud/kloud/stack"
)

// Diagnostic is one problem found in a template, as the API returns it: the
// file, the 1-based line and column of the offending construct, "error" or
// "warning", and what is wrong.
type Diagnostic struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

// The severities of a Diagnostic.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
)

// String formats d as "file:line:col: severity: message".
func (d Diagnostic) String() string {
	return fmt.Sprintf("%s:%d:%d: %s: %s", d.File, d.Line, d.Column, d.Severity, d.Message)
}

// Diagnostics is a list of Diagnostic.
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Errors returns only the error diagnostics.
func (ds Diagnostics) Errors() Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == SeverityError {
			out = append(out, d)
		}
	}
	return out
}

// DiagnosticsFromHCL converts HCL's diagnostics to Kloud's. The message
// joins HCL's summary and detail.
func DiagnosticsFromHCL(diags hcl.Diagnostics) Diagnostics {
	out := make(Diagnostics, 0, len(diags))
	for _, d := range diags {
		out = append(out, diagnosticFromHCL(d))
	}
	return out
}

func diagnosticFromHCL(d *hcl.Diagnostic) Diagnostic {
	out := Diagnostic{Severity: SeverityError, Message: d.Summary}
	if d.Severity == hcl.DiagWarning {
		out.Severity = SeverityWarning
	}
	if d.Detail != "" {
		out.Message += ": " + d.Detail
	}
	if d.Subject != nil {
		out.File = d.Subject.Filename
		out.Line = d.Subject.Start.Line
		out.Column = d.Subject.Start.Column
	}
	return out
}

// ErrInvalidTemplate is wrapped by every *TemplateError.
var ErrInvalidTemplate = errors.New("invalid template")

// TemplateError is a template refused by parsing or policy, with every
// diagnostic found. The HTTP layer answers it with 422 and the diagnostics.
type TemplateError struct {
	Diagnostics Diagnostics
}

func (e *TemplateError) Error() string {
	errs := e.Diagnostics.Errors()
	switch len(errs) {
	case 0:
		return "invalid template"
	case 1:
		return "invalid template: " + errs[0].String()
	}
	return fmt.Sprintf("invalid template: %s (and %d more)", errs[0], len(errs)-1)
}

// Unwrap lets errors.Is match ErrInvalidTemplate.
func (e *TemplateError) Unwrap() error { return ErrInvalidTemplate }

// ValidateTemplate parses content and checks it against the policy. It
// returns the parsed template and the warnings, or a *TemplateError holding
// every error (parse errors first; the policy is only checked on a template
// that parsed).
//
// Providers are not checked: callers that know Kloud's providers use
// ValidateTemplateWith.
func ValidateTemplate(name string, content []byte, format stack.Format) (*Parsed, Diagnostics, error) {
	return ValidateTemplateWith(name, content, format, PolicyOptions{})
}

// ValidateTemplateWith is ValidateTemplate with the policy's options (the
// providers a template may use).
func ValidateTemplateWith(name string, content []byte, format stack.Format, opts PolicyOptions) (*Parsed, Diagnostics, error) {
	p, hdiags := ParseTemplate(name, content, format)
	diags := DiagnosticsFromHCL(hdiags)
	if diags.HasErrors() {
		return nil, diags, &TemplateError{Diagnostics: diags}
	}
	diags = append(diags, CheckPolicyWith(p, opts)...)
	if diags.HasErrors() {
		return nil, diags, &TemplateError{Diagnostics: diags}
	}
	return p, diags, nil
}

// Repetition says how a resource block makes instances.
type Repetition int

// The repetitions of a resource block.
const (
	Single  Repetition = iota // neither count nor for_each: one instance, no key
	Count                     // count = n: keys 0..n-1
	ForEach                   // for_each = {...}: string keys
)

func (r Repetition) String() string {
	switch r {
	case Count:
		return "count"
	case ForEach:
		return "for_each"
	}
	return "single"
}

// Attribute is one attribute a user set in a block.
type Attribute struct {
	Name  string
	Range hcl.Range
	// Source is the attribute's value as an HCL native expression: the
	// text as written for an HCL template, the equivalent expression for a
	// JSON one. It can be embedded in a larger expression.
	Source string
}

// ResourceBlock is one resource block of a template.
type ResourceBlock struct {
	Type, Name string
	Repetition Repetition
	// Range is where the block is defined (its header).
	Range hcl.Range
	// Attributes are the attributes the user set, by name. For a JSON
	// template every property of the block is listed, nested blocks too.
	Attributes map[string]Attribute
}

// Has reports whether the user set attribute name.
func (r ResourceBlock) Has(name string) bool {
	_, ok := r.Attributes[name]
	return ok
}

// Address is the block's address without an instance key,
// e.g. "sandbox_machine.web".
func (r ResourceBlock) Address() string { return r.Type + "." + r.Name }

// VariableDecl is one variable block of a template.
type VariableDecl struct {
	Name string
	// Type is the type constraint as written ("" when there is none).
	Type       string
	HasDefault bool
	Sensitive  bool
	Range      hcl.Range
	// Default is the default's source text; Description and Validations
	// are as written (validation conditions as source text).
	Default     string
	Description string
	Validations []stack.VariableValidation
}

// ProviderDecl is one provider block of a template.
type ProviderDecl struct {
	Name, Alias string
	Range       hcl.Range
}

// Parsed is a parsed template with what composition and policy need.
type Parsed struct {
	Name    string
	Format  stack.Format
	Content []byte
	File    *hcl.File

	// Resources and DataSources are in source order.
	Resources   []ResourceBlock
	DataSources []ResourceBlock
	Variables   []VariableDecl
	Providers   []ProviderDecl
	// RequiredProviders are the local names declared in
	// terraform { required_providers { ... } }; HasRequiredProviders is
	// true when there is such a block, even an empty one (Terraform
	// allows one per module outside override files).
	RequiredProviders    []string
	HasRequiredProviders bool

	lines lineIndex
}

// Variable returns the declaration of variable name.
func (p *Parsed) Variable(name string) (VariableDecl, bool) {
	for _, v := range p.Variables {
		if v.Name == name {
			return v, true
		}
	}
	return VariableDecl{}, false
}

// VariableNames returns the declared variable names, sorted.
func (p *Parsed) VariableNames() []string {
	names := make([]string, 0, len(p.Variables))
	for _, v := range p.Variables {
		names = append(names, v.Name)
	}
	sort.Strings(names)
	return names
}

// HasProvider reports whether the template has a default (unaliased)
// provider block for name.
func (p *Parsed) HasProvider(name string) bool {
	for _, pd := range p.Providers {
		if pd.Name == name && pd.Alias == "" {
			return true
		}
	}
	return false
}

// UsesProvider reports whether the template has a provider block, a
// resource or a data source of the provider with local name name.
func (p *Parsed) UsesProvider(name string) bool {
	for _, pd := range p.Providers {
		if pd.Name == name {
			return true
		}
	}
	for _, r := range slices.Concat(p.Resources, p.DataSources) {
		if r.Type == name || strings.HasPrefix(r.Type, name+"_") {
			return true
		}
	}
	return false
}

// MachineResources returns the resource blocks of resourceType, in source order.
func MachineResources(p *Parsed, resourceType string) []ResourceBlock {
	if p == nil {
		return nil
	}
	var out []ResourceBlock
	for _, r := range p.Resources {
		if r.Type == resourceType {
			out = append(out, r)
		}
	}
	return out
}

var rootSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "resource", LabelNames: []string{"type", "name"}},
		{Type: "data", LabelNames: []string{"type", "name"}},
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "provider", LabelNames: []string{"name"}},
		{Type: "terraform"},
	},
}

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "type"}, {Name: "default"}, {Name: "sensitive"}, {Name: "description"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "validation"}},
}

var providerSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "alias"}}}

var terraformSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{{Type: "required_providers"}},
}

// maxTemplateSize bounds what ParseTemplate reads.
const maxTemplateSize = 4 << 20

// ParseTemplate parses a template in HCL or JSON syntax. The diagnostics
// carry file:line:col; on errors the returned *Parsed may be nil.
func ParseTemplate(name string, content []byte, format stack.Format) (*Parsed, hcl.Diagnostics) {
	if len(content) > maxTemplateSize {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Template too large",
			Detail:   fmt.Sprintf("the template is %d bytes; the limit is %d", len(content), maxTemplateSize),
			Subject:  &hcl.Range{Filename: name, Start: hcl.InitialPos, End: hcl.InitialPos},
		}}
	}
	if format == "" {
		format = stack.FormatHCL
	}
	if format == stack.FormatHCL || format == stack.FormatJSON {
		// Before any parser runs: HCL's recurse once per level.
		if diags := checkNesting(name, content, format); diags.HasErrors() {
			return nil, diags
		}
	}
	var (
		file  *hcl.File
		diags hcl.Diagnostics
	)
	switch format {
	case stack.FormatHCL, "":
		format = stack.FormatHCL
		file, diags = hclsyntax.ParseConfig(content, name, hcl.InitialPos)
	case stack.FormatJSON:
		file, diags = hcljson.Parse(content, name)
		if !diags.HasErrors() {
			if more := checkJSONStringNesting(name, content); more.HasErrors() {
				return nil, more
			}
		}
	default:
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Unknown template format",
			Detail:   fmt.Sprintf("format %q; allowed: hcl, json", format),
			Subject:  &hcl.Range{Filename: name, Start: hcl.InitialPos, End: hcl.InitialPos},
		}}
	}
	if diags.HasErrors() || file == nil || file.Body == nil {
		return nil, diags
	}
	p := &Parsed{Name: name, Format: format, Content: content, File: file, lines: newLineIndex(content)}
	content2, _, more := file.Body.PartialContent(rootSchema)
	diags = append(diags, more...)
	if content2 == nil {
		return p, diags
	}
	for _, b := range content2.Blocks {
		switch b.Type {
		case "resource", "data":
			rb, more := p.resourceBlock(b)
			diags = append(diags, more...)
			if b.Type == "resource" {
				p.Resources = append(p.Resources, rb)
			} else {
				p.DataSources = append(p.DataSources, rb)
			}
		case "variable":
			vd := VariableDecl{Name: b.Labels[0], Range: b.DefRange}
			vc, _, more := b.Body.PartialContent(variableSchema)
			diags = append(diags, more...)
			if vc != nil {
				if a, ok := vc.Attributes["type"]; ok {
					vd.Type = p.typeSource(a.Expr)
				}
				if a, ok := vc.Attributes["default"]; ok {
					vd.HasDefault, vd.Default = true, p.exprSource(a.Expr)
				}
				if a, ok := vc.Attributes["description"]; ok {
					vd.Description = constString(a.Expr)
				}
				for _, vb := range vc.Blocks {
					vd.Validations = append(vd.Validations, p.validation(vb))
				}
				if a, ok := vc.Attributes["sensitive"]; ok {
					if v, d := a.Expr.Value(nil); !d.HasErrors() && v.IsKnown() && !v.IsNull() && v.Type().FriendlyName() == "bool" {
						vd.Sensitive = v.True()
					}
				}
			}
			p.Variables = append(p.Variables, vd)
		case "provider":
			pd := ProviderDecl{Name: b.Labels[0], Range: b.DefRange}
			pc, _, more := b.Body.PartialContent(providerSchema)
			diags = append(diags, more...)
			if pc != nil {
				if a, ok := pc.Attributes["alias"]; ok {
					if v, d := a.Expr.Value(nil); !d.HasErrors() && v.IsKnown() && !v.IsNull() && v.Type().FriendlyName() == "string" {
						pd.Alias = v.AsString()
					} else {
						pd.Alias = "?"
					}
				}
			}
			p.Providers = append(p.Providers, pd)
		case "terraform":
			tc, _, more := b.Body.PartialContent(terraformSchema)
			diags = append(diags, more...)
			if tc == nil {
				continue
			}
			for _, rp := range tc.Blocks {
				p.HasRequiredProviders = true
				attrs, more := rp.Body.JustAttributes()
				diags = append(diags, more...)
				for name := range attrs {
					if !slices.Contains(p.RequiredProviders, name) {
						p.RequiredProviders = append(p.RequiredProviders, name)
					}
				}
			}
			sort.Strings(p.RequiredProviders)
		}
	}
	return p, diags
}

// typeSource returns a variable's type constraint as expression text.
func (p *Parsed) typeSource(expr hcl.Expression) string {
	if p.Format == stack.FormatJSON {
		// In JSON the type is a string holding an expression.
		v, d := expr.Value(nil)
		if !d.HasErrors() && v.IsKnown() && !v.IsNull() && v.Type().FriendlyName() == "string" {
			return strings.TrimSpace(v.AsString())
		}
		return "?"
	}
	return strings.TrimSpace(string(expr.Range().SliceBytes(p.Content)))
}

func (p *Parsed) resourceBlock(b *hcl.Block) (ResourceBlock, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	rb := ResourceBlock{Type: b.Labels[0], Name: b.Labels[1], Range: b.DefRange, Attributes: map[string]Attribute{}}
	for i, l := range b.Labels {
		if !hclsyntax.ValidIdentifier(l) {
			r := b.DefRange
			if i < len(b.LabelRanges) {
				r = b.LabelRanges[i]
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid " + b.Type + " label",
				Detail:   fmt.Sprintf("%q is not a valid name: a name starts with a letter or underscore and holds only letters, digits, underscores and dashes", l),
				Subject:  r.Ptr(),
			})
		}
	}
	if sb, ok := b.Body.(*hclsyntax.Body); ok {
		for name, a := range sb.Attributes {
			rb.Attributes[name] = Attribute{Name: name, Range: a.SrcRange, Source: string(a.Expr.Range().SliceBytes(p.Content))}
		}
	} else {
		attrs, _ := b.Body.JustAttributes() // JSON: every property is an attribute
		for name, a := range attrs {
			rb.Attributes[name] = Attribute{Name: name, Range: a.Range, Source: p.jsonSource(a.Expr.Range())}
		}
	}
	switch {
	case rb.Has("count") && rb.Has("for_each"):
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid combination of count and for_each",
			Detail:   fmt.Sprintf("%s sets both count and for_each; set at most one", rb.Address()),
			Subject:  rb.Attributes["for_each"].Range.Ptr(),
		})
	case rb.Has("count"):
		rb.Repetition = Count
	case rb.Has("for_each"):
		rb.Repetition = ForEach
	}
	return rb, diags
}

// jsonSource converts the JSON value at r to an equivalent HCL native
// expression.
func (p *Parsed) jsonSource(r hcl.Range) string {
	if r.Start.Byte < 0 || r.End.Byte > len(p.Content) || r.Start.Byte > r.End.Byte {
		return "null"
	}
	v, err := parseJSONValue(p.Content[r.Start.Byte:r.End.Byte])
	if err != nil {
		return "null"
	}
	var sb strings.Builder
	jsonToHCL(&sb, v)
	return sb.String()
}

// jsonToHCL writes the HCL native expression equivalent to JSON value v as
// Terraform's JSON syntax reads it: strings (object keys too) are templates.
func jsonToHCL(sb *strings.Builder, v *jsonValue) {
	switch v.kind {
	case jsonString:
		sb.WriteString(hclTemplateString(v.str))
	case jsonNumber:
		sb.WriteString(v.raw)
	case jsonTrue:
		sb.WriteString("true")
	case jsonFalse:
		sb.WriteString("false")
	case jsonNull:
		sb.WriteString("null")
	case jsonArray:
		sb.WriteByte('[')
		for i, e := range v.elems {
			if i > 0 {
				sb.WriteString(", ")
			}
			jsonToHCL(sb, e)
		}
		sb.WriteByte(']')
	case jsonObject:
		sb.WriteByte('{')
		for i, prop := range v.props {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(hclTemplateString(prop.key.str))
			sb.WriteString(" = ")
			jsonToHCL(sb, prop.val)
		}
		sb.WriteByte('}')
	}
}

// hclTemplateString quotes s as an HCL quoted template with the same
// meaning: template sequences (${ and %{) are kept, everything else that
// the quoted form cannot hold is escaped.
func hclTemplateString(s string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			sb.WriteString(`\"`)
		case '\\':
			sb.WriteString(`\\`)
		case '\n':
			sb.WriteString(`\n`)
		case '\r':
			sb.WriteString(`\r`)
		case '\t':
			sb.WriteString(`\t`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&sb, `\u%04X`, r)
			} else {
				sb.WriteRune(r)
			}
		}
	}
	sb.WriteByte('"')
	return sb.String()
}

// HCLString quotes s as an HCL string literal: unlike hclTemplateString,
// template sequences are escaped so the value is taken as is.
func HCLString(s string) string {
	s = strings.ReplaceAll(s, "${", "$${")
	s = strings.ReplaceAll(s, "%{", "%%{")
	return hclTemplateString(s)
}

// lineIndex turns byte offsets of a source into HCL positions.
type lineIndex struct {
	src    []byte
	starts []int // byte offset of the start of each line
}

func newLineIndex(src []byte) lineIndex {
	starts := []int{0}
	for i, b := range src {
		if b == '\n' {
			starts = append(starts, i+1)
		}
	}
	return lineIndex{src: src, starts: starts}
}

// pos returns the position of byte offset off: 1-based line, and column
// counted in characters as hclsyntax counts them.
func (li lineIndex) pos(off int) hcl.Pos {
	if off < 0 {
		off = 0
	}
	if off > len(li.src) {
		off = len(li.src)
	}
	line := sort.Search(len(li.starts), func(i int) bool { return li.starts[i] > off }) - 1
	if line < 0 {
		line = 0
	}
	col := utf8.RuneCount(li.src[li.starts[line]:off]) + 1
	return hcl.Pos{Line: line + 1, Column: col, Byte: off}
}

func (li lineIndex) rng(filename string, start, end int) hcl.Range {
	return hcl.Range{Filename: filename, Start: li.pos(start), End: li.pos(end)}
}

// A minimal JSON parser that keeps byte offsets, duplicate keys and key
// order, so policy can point at the exact line and column of a construct in
// a JSON template, inside strings too.

type jsonKind int

const (
	jsonObject jsonKind = iota
	jsonArray
	jsonString
	jsonNumber
	jsonTrue
	jsonFalse
	jsonNull
)

type jsonProp struct {
	key *jsonValue // a jsonString
	val *jsonValue
}

type jsonValue struct {
	kind       jsonKind
	start, end int // byte offsets in the parsed source
	props      []jsonProp
	elems      []*jsonValue
	str        string // decoded string
	// strOff maps a byte index of str (and len(str)) to the source offset
	// of the character it came from.
	strOff []int
	raw    string // number text
}

// maxJSONDepth bounds nesting so hostile input cannot exhaust the stack;
// ParseTemplate refuses deeper templates before this parser runs.
const maxJSONDepth = MaxNesting

type jsonParser struct {
	src []byte
	i   int
}

func parseJSONValue(src []byte) (*jsonValue, error) {
	jp := &jsonParser{src: src}
	v, err := jp.value(0)
	if err != nil {
		return nil, err
	}
	jp.ws()
	if jp.i != len(src) {
		return nil, fmt.Errorf("offset %d: unexpected data after the value", jp.i)
	}
	return v, nil
}

func (jp *jsonParser) ws() {
	for jp.i < len(jp.src) {
		switch jp.src[jp.i] {
		case ' ', '\t', '\n', '\r':
			jp.i++
		default:
			return
		}
	}
}

func (jp *jsonParser) value(depth int) (*jsonValue, error) {
	if depth > maxJSONDepth {
		return nil, fmt.Errorf("offset %d: nesting deeper than %d", jp.i, maxJSONDepth)
	}
	jp.ws()
	if jp.i >= len(jp.src) {
		return nil, errors.New("unexpected end of JSON")
	}
	start := jp.i
	switch c := jp.src[jp.i]; {
	case c == '{':
		jp.i++
		v := &jsonValue{kind: jsonObject, start: start}
		jp.ws()
		if jp.i < len(jp.src) && jp.src[jp.i] == '}' {
			jp.i++
			v.end = jp.i
			return v, nil
		}
		for {
			jp.ws()
			if jp.i >= len(jp.src) || jp.src[jp.i] != '"' {
				return nil, fmt.Errorf("offset %d: want a property name", jp.i)
			}
			k, err := jp.str()
			if err != nil {
				return nil, err
			}
			jp.ws()
			if jp.i >= len(jp.src) || jp.src[jp.i] != ':' {
				return nil, fmt.Errorf("offset %d: want ':'", jp.i)
			}
			jp.i++
			val, err := jp.value(depth + 1)
			if err != nil {
				return nil, err
			}
			v.props = append(v.props, jsonProp{key: k, val: val})
			jp.ws()
			if jp.i >= len(jp.src) {
				return nil, errors.New("unexpected end of JSON in object")
			}
			if jp.src[jp.i] == ',' {
				jp.i++
				continue
			}
			if jp.src[jp.i] == '}' {
				jp.i++
				v.end = jp.i
				return v, nil
			}
			return nil, fmt.Errorf("offset %d: want ',' or '}'", jp.i)
		}
	case c == '[':
		jp.i++
		v := &jsonValue{kind: jsonArray, start: start}
		jp.ws()
		if jp.i < len(jp.src) && jp.src[jp.i] == ']' {
			jp.i++
			v.end = jp.i
			return v, nil
		}
		for {
			e, err := jp.value(depth + 1)
			if err != nil {
				return nil, err
			}
			v.elems = append(v.elems, e)
			jp.ws()
			if jp.i >= len(jp.src) {
				return nil, errors.New("unexpected end of JSON in array")
			}
			if jp.src[jp.i] == ',' {
				jp.i++
				continue
			}
			if jp.src[jp.i] == ']' {
				jp.i++
				v.end = jp.i
				return v, nil
			}
			return nil, fmt.Errorf("offset %d: want ',' or ']'", jp.i)
		}
	case c == '"':
		return jp.str()
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range []struct {
			text string
			kind jsonKind
		}{{"true", jsonTrue}, {"false", jsonFalse}, {"null", jsonNull}} {
			if strings.HasPrefix(string(jp.src[jp.i:min(len(jp.src), jp.i+5)]), lit.text) {
				jp.i += len(lit.text)
				return &jsonValue{kind: lit.kind, start: start, end: jp.i}, nil
			}
		}
		return nil, fmt.Errorf("offset %d: unexpected character %q", jp.i, c)
	case c == '-' || (c >= '0' && c <= '9'):
		for jp.i < len(jp.src) && strings.IndexByte("+-.eE0123456789", jp.src[jp.i]) >= 0 {
			jp.i++
		}
		raw := string(jp.src[start:jp.i])
		if _, err := strconv.ParseFloat(raw, 64); err != nil {
			var ne *strconv.NumError
			if !errors.As(err, &ne) || ne.Err != strconv.ErrRange {
				return nil, fmt.Errorf("offset %d: bad number %q", start, raw)
			}
		}
		return &jsonValue{kind: jsonNumber, start: start, end: jp.i, raw: raw}, nil
	default:
		return nil, fmt.Errorf("offset %d: unexpected character %q", jp.i, c)
	}
}

// str reads a string at jp.i (which is '"'), keeping for every decoded byte
// the source offset it came from.
func (jp *jsonParser) str() (*jsonValue, error) {
	start := jp.i
	jp.i++
	var (
		buf []byte
		off []int
	)
	for {
		if jp.i >= len(jp.src) {
			return nil, fmt.Errorf("offset %d: unterminated string", start)
		}
		c := jp.src[jp.i]
		switch {
		case c == '"':
			off = append(off, jp.i)
			jp.i++
			return &jsonValue{kind: jsonString, start: start, end: jp.i, str: string(buf), strOff: off}, nil
		case c < 0x20:
			return nil, fmt.Errorf("offset %d: control character in string", jp.i)
		case c == '\\':
			at := jp.i
			if jp.i+1 >= len(jp.src) {
				return nil, fmt.Errorf("offset %d: unterminated escape", at)
			}
			e := jp.src[jp.i+1]
			jp.i += 2
			var r rune
			switch e {
			case '"', '\\', '/':
				r = rune(e)
			case 'b':
				r = '\b'
			case 'f':
				r = '\f'
			case 'n':
				r = '\n'
			case 'r':
				r = '\r'
			case 't':
				r = '\t'
			case 'u':
				u, ok := jp.hex4()
				if !ok {
					return nil, fmt.Errorf("offset %d: bad \\u escape", at)
				}
				r = rune(u)
				if r >= 0xD800 && r < 0xDC00 && jp.i+1 < len(jp.src) && jp.src[jp.i] == '\\' && jp.src[jp.i+1] == 'u' {
					save := jp.i
					jp.i += 2
					if lo, ok := jp.hex4(); ok && lo >= 0xDC00 && lo < 0xE000 {
						r = (r-0xD800)<<10 | (rune(lo) - 0xDC00) + 0x10000
					} else {
						jp.i = save
						r = utf8.RuneError
					}
				} else if r >= 0xD800 && r < 0xE000 {
					r = utf8.RuneError
				}
			default:
				return nil, fmt.Errorf("offset %d: bad escape \\%c", at, e)
			}
			n := utf8.RuneLen(r)
			if n < 0 {
				r, n = utf8.RuneError, 3
			}
			buf = utf8.AppendRune(buf, r)
			for range n {
				off = append(off, at)
			}
		default:
			buf = append(buf, c)
			off = append(off, jp.i)
			jp.i++
		}
	}
}

func (jp *jsonParser) hex4() (uint16, bool) {
	if jp.i+4 > len(jp.src) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(jp.src[jp.i:jp.i+4]), 16, 16)
	if err != nil {
		return 0, false
	}
	jp.i += 4
	return uint16(v), true
}
