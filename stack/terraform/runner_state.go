package terraform

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	tfjson "github.com/hashicorp/terraform-json"
)

// stateMeta is the identity of a state version.
type stateMeta struct {
	Version int    `json:"version"`
	Serial  int64  `json:"serial"`
	Lineage string `json:"lineage"`
}

// readStateMeta reads the serial and lineage of a state file.
func readStateMeta(data []byte) (stateMeta, error) {
	var m stateMeta
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("decode state: %w", err)
	}
	if m.Version != 4 {
		return m, fmt.Errorf("decode state: format version %d, want 4", m.Version)
	}
	return m, nil
}

// rawState is Terraform's state file, format version 4 (Terraform 0.12 and
// later).
type rawState struct {
	Version          int                        `json:"version"`
	TerraformVersion string                     `json:"terraform_version"`
	Serial           int64                      `json:"serial"`
	Lineage          string                     `json:"lineage"`
	Outputs          map[string]json.RawMessage `json:"outputs"`
	Resources        []rawResource              `json:"resources"`
}

type rawResource struct {
	Module    string        `json:"module"`
	Mode      string        `json:"mode"`
	Type      string        `json:"type"`
	Name      string        `json:"name"`
	Provider  string        `json:"provider"`
	Instances []rawInstance `json:"instances"`
}

type rawInstance struct {
	IndexKey            any             `json:"index_key"`
	Status              string          `json:"status"`
	Deposed             string          `json:"deposed"`
	SchemaVersion       uint64          `json:"schema_version"`
	Attributes          map[string]any  `json:"attributes"`
	SensitiveAttributes json.RawMessage `json:"sensitive_attributes"`
	Dependencies        []string        `json:"dependencies"`
}

func decodeRawState(data []byte) (*rawState, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // as tfexec decodes show -json
	var s rawState
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decode state: %w", err)
	}
	if s.Version != 4 {
		return nil, fmt.Errorf("decode state: format version %d, want 4", s.Version)
	}
	return &s, nil
}

// result turns the state file into an ApplyResult, its State shaped as
// `terraform show -json` would give it.
func (s *rawState) result() (*ApplyResult, error) {
	res := &ApplyResult{
		Serial:    s.Serial,
		Lineage:   s.Lineage,
		Resources: []StateResource{},
		Outputs:   map[string]any{},
	}
	values := &tfjson.StateValues{
		Outputs:    map[string]*tfjson.StateOutput{},
		RootModule: &tfjson.StateModule{},
	}
	for name, raw := range s.Outputs {
		var o tfjson.StateOutput
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&o); err != nil {
			return nil, fmt.Errorf("output %s: %w", name, err)
		}
		values.Outputs[name] = &o
		res.Outputs[name] = o.Value
	}

	modules := map[string]*tfjson.StateModule{"": values.RootModule}
	var module func(addr string) (*tfjson.StateModule, error)
	module = func(addr string) (*tfjson.StateModule, error) {
		if m := modules[addr]; m != nil {
			return m, nil
		}
		parentAddr, err := parentModule(addr)
		if err != nil {
			return nil, err
		}
		parent, err := module(parentAddr)
		if err != nil {
			return nil, err
		}
		m := &tfjson.StateModule{Address: addr}
		parent.ChildModules = append(parent.ChildModules, m)
		modules[addr] = m
		return m, nil
	}

	for _, r := range s.Resources {
		m, err := module(r.Module)
		if err != nil {
			return nil, fmt.Errorf("resource %s.%s: %w", r.Type, r.Name, err)
		}
		mode := tfjson.ResourceMode(r.Mode)
		for _, in := range r.Instances {
			addr := resourceAddress(r.Module, mode, r.Type, r.Name, in.IndexKey)
			sens := sensitiveValues(in.SensitiveAttributes)
			sr := &tfjson.StateResource{
				Address:         addr,
				Mode:            mode,
				Type:            r.Type,
				Name:            r.Name,
				Index:           in.IndexKey,
				ProviderName:    providerName(r.Provider),
				SchemaVersion:   in.SchemaVersion,
				AttributeValues: in.Attributes,
				SensitiveValues: sens,
				DependsOn:       in.Dependencies,
				Tainted:         in.Status == "tainted",
				DeposedKey:      in.Deposed,
			}
			m.Resources = append(m.Resources, sr)
			if mode != tfjson.ManagedResourceMode || in.Deposed != "" {
				continue
			}
			res.Resources = append(res.Resources, StateResource{
				Address:         addr,
				Module:          r.Module,
				Type:            r.Type,
				Name:            r.Name,
				Index:           normalizeIndex(in.IndexKey),
				ProviderName:    sr.ProviderName,
				Values:          in.Attributes,
				SensitiveValues: sens,
				Tainted:         sr.Tainted,
			})
		}
	}
	for _, m := range modules {
		sort.SliceStable(m.ChildModules, func(i, j int) bool { return m.ChildModules[i].Address < m.ChildModules[j].Address })
	}
	res.State = &tfjson.State{
		FormatVersion:    "1.0",
		TerraformVersion: s.TerraformVersion,
		Values:           values,
	}
	return res, nil
}

// resourceAddress builds an instance address such as
// module.net.aws_subnet.public["a"] or data.aws_ami.base.
func resourceAddress(module string, mode tfjson.ResourceMode, typ, name string, index any) string {
	var b strings.Builder
	if module != "" {
		b.WriteString(module)
		b.WriteByte('.')
	}
	if mode == tfjson.DataResourceMode {
		b.WriteString("data.")
	}
	b.WriteString(typ)
	b.WriteByte('.')
	b.WriteString(name)
	switch x := index.(type) {
	case nil:
	case string:
		b.WriteString("[" + strconv.Quote(x) + "]")
	case json.Number:
		b.WriteString("[" + x.String() + "]")
	default:
		fmt.Fprintf(&b, "[%v]", x)
	}
	return b.String()
}

// parentModule returns the address of the module containing addr:
// module.a["x"].module.b → module.a["x"]; module.a → "".
func parentModule(addr string) (string, error) {
	steps, err := moduleSteps(addr)
	if err != nil {
		return "", err
	}
	return strings.Join(steps[:len(steps)-1], "."), nil
}

// moduleSteps splits a module address into its module.NAME[KEY] steps.
func moduleSteps(addr string) ([]string, error) {
	var steps []string
	rest := addr
	for rest != "" {
		if !strings.HasPrefix(rest, "module.") {
			return nil, fmt.Errorf("module address %q: want module.NAME steps", addr)
		}
		i := len("module.")
		for i < len(rest) && rest[i] != '.' && rest[i] != '[' {
			i++
		}
		if i < len(rest) && rest[i] == '[' {
			j, err := closingBracket(rest, i)
			if err != nil {
				return nil, fmt.Errorf("module address %q: %w", addr, err)
			}
			i = j + 1
		}
		steps = append(steps, rest[:i])
		rest = rest[i:]
		if rest != "" {
			if rest[0] != '.' {
				return nil, fmt.Errorf("module address %q: unexpected %q", addr, rest)
			}
			rest = rest[1:]
		}
	}
	if len(steps) == 0 {
		return nil, fmt.Errorf("module address %q is empty", addr)
	}
	return steps, nil
}

// closingBracket finds the ']' matching s[open], skipping quoted strings.
func closingBracket(s string, open int) (int, error) {
	inQuote := false
	for i := open + 1; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == ']':
			return i, nil
		}
	}
	return 0, fmt.Errorf("unterminated index")
}

// providerName extracts the provider source address from a state file's
// provider reference: provider["registry.terraform.io/hashicorp/aws"].west
// → registry.terraform.io/hashicorp/aws.
func providerName(ref string) string {
	const open = `provider["`
	i := strings.Index(ref, open)
	if i < 0 {
		return ref
	}
	rest := ref[i+len(open):]
	if j := strings.Index(rest, `"]`); j >= 0 {
		return rest[:j]
	}
	return ref
}

// pathStep is one step of a sensitive attribute path in the state file:
// {"type": "get_attr", "value": "name"} or {"type": "index", "value":
// {"value": 0, "type": "number"}}.
type pathStep struct {
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}

// sensitiveValues turns the state file's sensitive attribute paths into
// show -json's sensitive_values shape, true at every sensitive leaf. It
// returns {} when there are none, and nil for a format it does not know.
func sensitiveValues(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage("{}")
	}
	var paths [][]pathStep
	if err := json.Unmarshal(raw, &paths); err != nil {
		return nil
	}
	var root any = map[string]any{}
	for _, p := range paths {
		if len(p) > 0 {
			root = markPath(root, p)
		}
	}
	out, err := json.Marshal(root)
	if err != nil {
		return nil
	}
	return out
}

// markPath returns node with true set at path p, creating objects (attribute
// or string key steps) and lists (number index steps) on the way, the way
// show -json shapes sensitive_values.
func markPath(node any, p []pathStep) any {
	if len(p) == 0 || node == true {
		return true
	}
	key, idx, isIdx, ok := stepKey(p[0])
	if !ok {
		return node
	}
	empty := node == nil || node == false
	if isIdx {
		l, isList := node.([]any)
		if !isList && !empty {
			return node // conflicting shapes: keep what is there
		}
		for len(l) <= idx {
			l = append(l, false)
		}
		l[idx] = markPath(l[idx], p[1:])
		return l
	}
	m, isMap := node.(map[string]any)
	if !isMap {
		if !empty {
			return node
		}
		m = map[string]any{}
	}
	m[key] = markPath(m[key], p[1:])
	return m
}

// stepKey decodes a path step: an attribute or string key, or a number
// index.
func stepKey(st pathStep) (key string, idx int, isIdx bool, ok bool) {
	switch st.Type {
	case "get_attr":
		if err := json.Unmarshal(st.Value, &key); err != nil {
			return "", 0, false, false
		}
		return key, 0, false, true
	case "index":
		var typed struct {
			Value json.RawMessage `json:"value"`
			Type  json.RawMessage `json:"type"`
		}
		if err := json.Unmarshal(st.Value, &typed); err != nil {
			return "", 0, false, false
		}
		var n int
		if err := json.Unmarshal(typed.Value, &n); err == nil && n >= 0 {
			return "", n, true, true
		}
		if err := json.Unmarshal(typed.Value, &key); err == nil {
			return key, 0, false, true
		}
	}
	return "", 0, false, false
}
