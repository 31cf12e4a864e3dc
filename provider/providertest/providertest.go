// Package providertest is the conformance suite every Kloud provider runs,
// as store/storetest is for stores: Run(t, p, env) checks, rule by rule,
// what Kloud relies on a provider for (its registration, its schema, its
// credential checks, its bootstrap and stack compositions, and its
// machines' start, stop and info), each rule a named subtest whose
// failure names the rule and what was wrong. A method that answers
// provider.ErrNotImplemented fails its rule saying so; a method that
// panics fails its rule too, and the suite goes on.
package providertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/provider"
)

// The identities the suite gives the credential, stack, template and
// machine it makes; a provider's test that prepares data bound to the
// credential (a sealed key, a directory) uses CredentialID.
const (
	CredentialID = "cred-conformance"
	OwnerID      = "usr-conformance"
	StackID      = "stk-conformance"
	TemplateID   = "tpl-conformance"
	MachineID    = "m-conformance"
	// AgentSecret is the stack's agent secret in the compositions.
	AgentSecret = "agent-secret-conformance-0123456789abcdef"
	// KloudURL is where the compositions' agents reach Kloud.
	KloudURL = "http://kloud.conformance.test:8080"
)

// DefaultTimeout bounds each rule when Env.Timeout is zero.
const DefaultTimeout = 2 * time.Minute

// Env is what a provider's test supplies: credentials its endpoint (a
// simulator, in tests) accepts, refuses or cannot be reached at, a
// bootstrap, templates, and a way to make a machine and to make it
// disappear. A missing piece fails the rules that need it, saying which
// field to fill; it never skips them.
type Env struct {
	// Credential is the data (JSON, as a user gives it) of a credential
	// the provider accepts and its endpoint verifies.
	Credential string
	// Refused is well-formed credential data the endpoint refuses:
	// VerifyCredential must fail with provider.ErrCredentialRefused.
	Refused string
	// Unreachable is well-formed credential data whose endpoint does not
	// answer: VerifyCredential must fail with provider.ErrUnreachable.
	Unreachable string
	// UnreachableService, when set, is the Service the Unreachable case
	// runs with (for a provider whose endpoint is the Service Kloud runs,
	// as the sandbox's host).
	UnreachableService any
	// Malformed are credential data that decoding (with Valid) must
	// refuse, each with the field the refusal must name. At least one.
	Malformed []Malformed
	// Bootstrap is the stored JSON of the outputs of the working
	// credential's bootstrap ("" only for a provider without a bootstrap
	// schema).
	Bootstrap string
	// Template is a user's template (HCL) with at least one machine of the
	// provider's resource type.
	Template string
	// CarriesCredentials is a template (HCL) that writes credentials into
	// itself; ApplyTemplate must refuse it with the place.
	CarriesCredentials string
	// Untagged, when set, says why the provider's machines take no tags;
	// the tagging rule is then skipped with that reason.
	Untagged string
	// Service and DataDir are given to every BaseStack and BaseMachine.
	Service any
	DataDir string
	// NewMachine makes a running machine of the working credential (in the
	// simulator) and returns its metadata as Kloud stores it after an
	// apply (the machine's Terraform state attributes).
	NewMachine func(t testing.TB) json.RawMessage
	// RemoveMachine makes that machine disappear, as if deleted outside
	// Kloud. It is also called when a rule ends, on a machine that may
	// already be gone.
	RemoveMachine func(t testing.TB, metadata json.RawMessage)
	// Timeout bounds each rule (DefaultTimeout when zero).
	Timeout time.Duration
}

// Malformed is credential data that must be refused, naming Field.
type Malformed struct {
	Data  string
	Field string
}

// rule is one named rule of the suite.
type rule struct {
	name string
	run  func(c *check)
}

// rules are the suite's rules in the order they run.
var rules = []rule{
	{"provider/registered", ruleRegistered},
	{"provider/resource-type", ruleResourceType},
	{"schema/labels", ruleLabels},
	{"schema/secrets", ruleSecrets},
	{"schema/enums", ruleEnums},
	{"schema/round-trip", ruleRoundTrip},
	{"credential/accepts-working", ruleAcceptsWorking},
	{"credential/refuses-empty", ruleRefusesEmpty},
	{"credential/refuses-malformed", ruleRefusesMalformed},
	{"verify/accepts-working", ruleVerifyWorking},
	{"verify/refused-credential", ruleVerifyRefused},
	{"verify/unreachable-endpoint", ruleVerifyUnreachable},
	{"bootstrap/passes-policy", ruleBootstrapPolicy},
	{"bootstrap/idempotent", ruleBootstrapIdempotent},
	{"apply/user-file-untouched", ruleApplyUntouched},
	{"apply/agent-on-every-machine", ruleApplyAgent},
	{"apply/tags-every-machine", ruleApplyTags},
	{"apply/no-secret-in-files", ruleApplyNoSecrets},
	{"apply/refuses-own-credentials", ruleApplyRefusesCredentials},
	{"apply/refuses-policy-violation", ruleApplyRefusesPolicy},
	{"machine/never-built", ruleMachineNeverBuilt},
	{"machine/info-running", ruleMachineInfo},
	{"machine/stop", ruleMachineStop},
	{"machine/start", ruleMachineStart},
	{"machine/gone", ruleMachineGone},
}

// Rules lists the names of the suite's rules, in the order Run runs them.
func Rules() []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.name
	}
	return out
}

// Run runs every rule against p with env, each as the subtest
// "rule/<name>" (e.g. "credential/refuses-empty"), and ends with a summary
// of the rules that failed.
func Run(t *testing.T, p *provider.Provider, env Env) {
	t.Helper()
	if p == nil {
		t.Fatal("providertest: Run needs a provider, got nil")
	}
	if env.Timeout <= 0 {
		env.Timeout = DefaultTimeout
	}
	var failed []string
	for _, r := range rules {
		var first string
		ok := t.Run(r.name, func(t *testing.T) {
			c := &check{t: t, rule: r.name, p: p, env: &env}
			ctx, cancel := context.WithTimeout(t.Context(), env.Timeout)
			defer cancel()
			c.ctx = ctx
			defer func() {
				if v := recover(); v != nil {
					c.failf("panicked: %v\n%s", v, debug.Stack())
				}
				first = c.first
			}()
			r.run(c)
		})
		if !ok {
			failed = append(failed, fmt.Sprintf("  %s: %s", r.name, firstLine(first)))
		}
	}
	if len(failed) > 0 {
		t.Logf("providertest: %d of %d rules failed for provider %q:\n%s", len(failed), len(rules), p.Name, strings.Join(failed, "\n"))
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// check is one rule's run: its failures are prefixed with the rule's name.
type check struct {
	t     *testing.T
	rule  string
	p     *provider.Provider
	env   *Env
	ctx   context.Context
	first string
}

func (c *check) failf(format string, args ...any) {
	c.t.Helper()
	msg := fmt.Sprintf(format, args...)
	if c.first == "" {
		c.first = msg
	}
	c.t.Errorf("rule %s: %s", c.rule, msg)
}

// stop fails the rule and ends it.
func (c *check) stop(format string, args ...any) {
	c.t.Helper()
	c.failf(format, args...)
	c.t.FailNow()
}

// need ends the rule when the env lacks a piece it needs.
func (c *check) need(ok bool, field, what string) {
	c.t.Helper()
	if !ok {
		c.stop("the provider's test gives no Env.%s: %s", field, what)
	}
}

// callErr describes the error of a provider method for a failure message.
func callErr(method string, err error) string {
	if errors.Is(err, provider.ErrNotImplemented) || strings.Contains(err.Error(), "not implemented") {
		return fmt.Sprintf("%s is not implemented (%v)", method, err)
	}
	return fmt.Sprintf("%s: %v", method, err)
}

// ClosedURL is the URL of a loopback HTTP server that was started and
// closed: nothing answers there, for Env.Unreachable's endpoint.
func ClosedURL(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(nil)
	url := srv.URL
	srv.Close()
	return url
}
