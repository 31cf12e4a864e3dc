package providertest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
)

// broken is a provider whose every method misbehaves: Stack methods
// panic, Start and Stop answer nothing, Info reports a state that does not
// exist, and the schema has no labels.
type brokenCred struct {
	Token string `json:"token"`
}

type brokenStack struct{ *provider.BaseStack }

func (s *brokenStack) VerifyCredential(context.Context, *stack.Credential) error {
	var m map[string]int
	m["boom"]++ // a nil map write: panics
	return nil
}

func (s *brokenStack) BootstrapTemplates(context.Context, *stack.Credential) ([]*stack.Template, error) {
	return []*stack.Template{nil}, nil
}

func (s *brokenStack) ApplyTemplate(context.Context, *stack.Credential) (*stack.Template, error) {
	panic("apply: not written yet")
}

type brokenMachine struct{ *provider.BaseMachine }

func (m *brokenMachine) Start(context.Context) (any, error) { return nil, nil }
func (m *brokenMachine) Stop(context.Context) (any, error)  { return nil, nil }
func (m *brokenMachine) Info(context.Context) (machinestate.State, any, error) {
	return machinestate.State(99), nil, nil
}

func brokenProvider() *provider.Provider {
	return &provider.Provider{
		Name: "broken", ResourceName: "box", Source: "kloud.test/broken/broken",
		Machine: func(bm *provider.BaseMachine) (provider.Machine, error) { return &brokenMachine{bm}, nil },
		Stack:   func(bs *provider.BaseStack) (provider.Stack, error) { return &brokenStack{bs}, nil },
		Schema: &provider.Schema{
			NewCredential: func() any { return &brokenCred{} },
			NewMetadata:   func(*stack.Machine) any { return &struct{ ID string }{} },
		},
	}
}

const childEnv = "PROVIDERTEST_CHILD"

// TestBrokenProviderFailsByRule runs the suite on the broken provider in
// a child process: it must end as a test failure listing the rules, with
// every panic reported as its rule's failure, never as a crash.
func TestBrokenProviderFailsByRule(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		p := brokenProvider()
		if err := provider.Register(p); err != nil {
			t.Fatal(err)
		}
		Run(t, p, Env{
			Credential:    `{"token": "t"}`,
			Template:      "resource \"broken_box\" \"a\" {}\n",
			NewMachine:    func(testing.TB) json.RawMessage { return json.RawMessage(`{"ID": "b-1"}`) },
			RemoveMachine: func(testing.TB, json.RawMessage) {},
		})
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenProviderFailsByRule$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	got := out.String()
	if err == nil {
		t.Fatalf("the suite passed a broken provider:\n%s", got)
	}
	for _, want := range []string{
		"rule verify/accepts-working: panicked: assignment to entry in nil map",
		"rule apply/user-file-untouched: panicked: apply: not written yet",
		"rule bootstrap/passes-policy: BootstrapTemplates returned a nil template at 0",
		"rule schema/labels: credential field brokenCred.Token has no label",
		"rule schema/secrets: credential field \"token\" looks like a secret",
		"rule machine/info-running: Info reported State(99), not a machine state",
		"the provider's test gives no Env.Refused",
		"rules failed for provider \"broken\"",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	for _, r := range Rules() {
		if !strings.Contains(got, "--- FAIL: TestBrokenProviderFailsByRule/"+r+" ") && !strings.Contains(got, "--- PASS: TestBrokenProviderFailsByRule/"+r+" ") {
			t.Errorf("rule %s is not reported", r)
		}
	}
	if strings.Contains(got, "panic: ") || strings.Contains(got, "goroutine ") && !strings.Contains(got, "panicked") {
		t.Errorf("the suite crashed:\n%s", got)
	}
	if t.Failed() {
		t.Logf("child output:\n%s", got)
	}
}
