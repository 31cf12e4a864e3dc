package terraform

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/kloud/kloud/stack"
)

// sha256Func is Terraform's sha256(): the hex SHA-256 of a string's UTF-8 bytes.
var sha256Func = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "str", Type: cty.String}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		sum := sha256.Sum256([]byte(args[0].AsString()))
		return cty.StringVal(hex.EncodeToString(sum[:])), nil
	},
})

// evalContext gives expressions Terraform's functions that composition
// uses, and vars as variables (maps become objects).
func evalContext(t *testing.T, vars map[string]any) *hcl.EvalContext {
	t.Helper()
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{},
		Functions: map[string]function.Function{
			"sha256":     sha256Func,
			"jsonencode": stdlib.JSONEncodeFunc,
			"merge":      stdlib.MergeFunc,
			"concat":     stdlib.ConcatFunc,
			"trimspace":  stdlib.TrimSpaceFunc,
		},
	}
	for k, v := range vars {
		ctx.Variables[k] = toCty(t, v)
	}
	return ctx
}

func toCty(t *testing.T, v any) cty.Value {
	t.Helper()
	switch x := v.(type) {
	case string:
		return cty.StringVal(x)
	case int:
		return cty.NumberIntVal(int64(x))
	case bool:
		return cty.BoolVal(x)
	case map[string]any:
		m := map[string]cty.Value{}
		for k, e := range x {
			m[k] = toCty(t, e)
		}
		return cty.ObjectVal(m)
	}
	t.Fatalf("toCty: unsupported %T", v)
	return cty.NilVal
}

func ctyJSON(t *testing.T, v cty.Value) string {
	t.Helper()
	b, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAgentTokenMatchesExpression(t *testing.T) {
	const secret = stack.Secret("0123456789abcdef-secret")
	tests := []struct {
		block ResourceBlock
		// key is count.index or each.key; nil for a single instance
		key      any
		wantAddr string
	}{
		{ResourceBlock{Type: "sandbox_machine", Name: "web"}, nil, `sandbox_machine.web`},
		{ResourceBlock{Type: "sandbox_machine", Name: "web", Repetition: Count}, 0, `sandbox_machine.web[0]`},
		{ResourceBlock{Type: "sandbox_machine", Name: "web", Repetition: Count}, 12, `sandbox_machine.web[12]`},
		{ResourceBlock{Type: "sandbox_machine", Name: "web", Repetition: ForEach}, "a", `sandbox_machine.web["a"]`},
		{ResourceBlock{Type: "aws_instance", Name: "db-1", Repetition: ForEach}, `we"ird\ <&> ${x} é`, `aws_instance.db-1["we\"ird\\ \u003c\u0026\u003e ${x} é"]`},
	}
	for _, tt := range tests {
		t.Run(tt.wantAddr, func(t *testing.T) {
			addr := InstanceAddress(tt.block.Type, tt.block.Name, tt.key)
			if addr != tt.wantAddr {
				t.Fatalf("InstanceAddress = %s, want %s", addr, tt.wantAddr)
			}
			vars := map[string]any{"var": map[string]any{AgentSecretVar: secret.Reveal()}}
			switch tt.block.Repetition {
			case Count:
				vars["count"] = map[string]any{"index": tt.key}
			case ForEach:
				vars["each"] = map[string]any{"key": tt.key, "value": tt.key}
			}
			var got string
			if err := json.Unmarshal([]byte(evalString(t, AgentTokenExpr(tt.block), vars)), &got); err != nil {
				t.Fatal(err)
			}
			if want := AgentToken(secret, addr).Reveal(); got != want {
				t.Errorf("expression %s gives %s; AgentToken gives %s", AgentTokenExpr(tt.block), got, want)
			}
		})
	}
}

func TestAgentTokenIdentifiesOneMachine(t *testing.T) {
	s1, err := stack.NewAgentSecret()
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := stack.NewAgentSecret()
	if s1 == s2 || len(s1.Reveal()) != 64 {
		t.Fatalf("secrets %d chars, equal=%v", len(s1.Reveal()), s1 == s2)
	}
	seen := map[stack.Secret]string{}
	for _, s := range []stack.Secret{s1, s2} {
		for _, addr := range []string{"sandbox_machine.web", "sandbox_machine.web[0]", "sandbox_machine.web[1]", `sandbox_machine.web["0"]`, "sandbox_machine.db"} {
			tok := AgentToken(s, addr)
			if prev, dup := seen[tok]; dup {
				t.Errorf("token of %s equals that of %s", addr, prev)
			}
			seen[tok] = addr
			if fmt.Sprint(tok) != "********" {
				t.Error("token printed unmasked")
			}
		}
	}
	h := stack.HashAgentToken("abc")
	if h != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("HashAgentToken(abc) = %s", h)
	}
}

// TestAgentTokenTerraformAddress checks that an address as Terraform
// spells it gives the same token as InstanceAddress's spelling.
func TestAgentTokenTerraformAddress(t *testing.T) {
	tests := []struct{ terraform, instance string }{
		{`sandbox_machine.web`, `sandbox_machine.web`},
		{`sandbox_machine.web[3]`, `sandbox_machine.web[3]`},
		{`sandbox_machine.web["a"]`, `sandbox_machine.web["a"]`},
		{`terraform_data.db["b<c>&"]`, `terraform_data.db["b\u003cc\u003e\u0026"]`},
		{`x.y["$${a}%%{b}"]`, `x.y["${a}%{b}"]`},
		{`x.y["q\"t\\n\n"]`, `x.y["q\"t\\n\n"]`},
		{`x.y["\u0007"]`, `x.y["\u0007"]`},
	}
	for _, tt := range tests {
		if got := CanonicalAddress(tt.terraform); got != tt.instance {
			t.Errorf("CanonicalAddress(%s) = %s, want %s", tt.terraform, got, tt.instance)
		}
		if AgentToken(testSecret, tt.terraform) != AgentToken(testSecret, tt.instance) {
			t.Errorf("tokens of %s and %s differ", tt.terraform, tt.instance)
		}
	}
	for _, odd := range []string{"", "module.m.x.y", "x", "x.y[", "x.y.z"} {
		if got := CanonicalAddress(odd); got != odd {
			t.Errorf("CanonicalAddress(%q) = %q, want it unchanged", odd, got)
		}
	}
}

func TestInstanceAddressIndexTypes(t *testing.T) {
	tests := []struct {
		index any
		want  string
	}{
		{nil, "t.n"},
		{3, "t.n[3]"},
		{int64(4), "t.n[4]"},
		{float64(5), "t.n[5]"},
		{json.Number("6"), "t.n[6]"},
		{"k", `t.n["k"]`},
	}
	for _, tt := range tests {
		if got := InstanceAddress("t", "n", tt.index); got != tt.want {
			t.Errorf("InstanceAddress(%v) = %s, want %s", tt.index, got, tt.want)
		}
	}
}

// sortedKeys is used by the tests that print maps.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
