package terraform

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/kloud/kloud/stack"
)

// Agent tokens. Each stack has a secret (its AgentSecret); the token of the
// agent of the machine at Terraform address addr is
//
//	AgentToken(secret, addr) = hex(sha256(secret + "|" + addr))
//
// Composition injects into every machine block the Terraform expression that
// computes the same value (AgentTokenExpr), with the secret passed as the
// sensitive variable AgentSecretVar through TF_VAR_. After an apply Kloud
// computes AgentToken for each machine address in the state and stores only
// stack.HashAgentToken of it, so a token identifies exactly one machine and a
// leaked token opens nothing else.

// AgentSecretVar is the Terraform variable holding the stack's agent secret.
const AgentSecretVar = "kloud_agent_secret"

// AgentToken returns the agent token of the machine at Terraform instance
// address addr (sandbox_machine.web, sandbox_machine.web[0],
// sandbox_machine.web["a"]). addr may be spelt as Terraform spells it (the
// Address of terraform-json) or as InstanceAddress does: both are brought to
// InstanceAddress's form, which AgentTokenExpr computes, before hashing. The
// two differ only for keys holding <, >, &, ${, %{ or unprintable characters.
func AgentToken(secret stack.Secret, addr string) stack.Secret {
	sum := sha256.Sum256([]byte(secret.Reveal() + "|" + CanonicalAddress(addr)))
	return stack.Secret(hex.EncodeToString(sum[:]))
}

// CanonicalAddress rewrites a root-module resource instance address in
// InstanceAddress's form (string keys JSON-quoted). An address it cannot
// read is returned unchanged.
func CanonicalAddress(addr string) string {
	trav, diags := hclsyntax.ParseTraversalAbs([]byte(addr), "", hcl.InitialPos)
	if diags.HasErrors() || len(trav) < 2 || len(trav) > 3 {
		return addr
	}
	name, ok := trav[1].(hcl.TraverseAttr)
	if !ok {
		return addr
	}
	if len(trav) == 2 {
		return InstanceAddress(trav.RootName(), name.Name, nil)
	}
	idx, ok := trav[2].(hcl.TraverseIndex)
	if !ok || idx.Key.IsNull() || !idx.Key.IsKnown() {
		return addr
	}
	switch idx.Key.Type() {
	case cty.String:
		return InstanceAddress(trav.RootName(), name.Name, idx.Key.AsString())
	case cty.Number:
		bf := idx.Key.AsBigFloat()
		if n, acc := bf.Int64(); acc == big.Exact {
			return InstanceAddress(trav.RootName(), name.Name, n)
		}
	}
	return addr
}

// InstanceAddress returns the Terraform address of one instance of resource
// typ.name with the given index, as AgentTokenExpr spells it: no index (nil)
// gives "typ.name", an integer gives "typ.name[2]", a string gives
// "typ.name[\"key\"]" with the key JSON-quoted (Terraform's jsonencode; for
// ordinary keys this is also Terraform's own address syntax).
// terraform-json reports the index as float64 for count and string for
// for_each; both are accepted, and so is json.Number.
func InstanceAddress(typ, name string, index any) string {
	base := typ + "." + name
	switch k := index.(type) {
	case nil:
		return base
	case int:
		return base + "[" + strconv.Itoa(k) + "]"
	case int64:
		return base + "[" + strconv.FormatInt(k, 10) + "]"
	case float64:
		return base + "[" + strconv.FormatInt(int64(k), 10) + "]"
	case json.Number:
		if n, err := k.Int64(); err == nil {
			return base + "[" + strconv.FormatInt(n, 10) + "]"
		}
		return base + "[" + jsonQuote(k.String()) + "]"
	case string:
		return base + "[" + jsonQuote(k) + "]"
	default:
		return base + "[" + jsonQuote(fmt.Sprint(k)) + "]"
	}
}

// jsonQuote quotes s exactly as Terraform's jsonencode does (Go's
// encoding/json, HTML characters escaped).
func jsonQuote(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// AgentTokenExpr returns the Terraform expression, valid inside the
// resource block r, that computes AgentToken(secret, address) of each of
// r's instances from var.kloud_agent_secret.
func AgentTokenExpr(r ResourceBlock) string {
	addr := r.Address()
	switch r.Repetition {
	case Count:
		addr += "[${count.index}]"
	case ForEach:
		addr += "[${jsonencode(each.key)}]"
	}
	return `sha256("${var.` + AgentSecretVar + `}|` + addr + `")`
}
