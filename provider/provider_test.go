package provider

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
)

type fakeStack struct{ *BaseStack }

func (fakeStack) VerifyCredential(context.Context, *stack.Credential) error { return nil }
func (fakeStack) BootstrapTemplates(context.Context, *stack.Credential) ([]*stack.Template, error) {
	return nil, nil
}
func (fakeStack) ApplyTemplate(context.Context, *stack.Credential) (*stack.Template, error) {
	return nil, nil
}

type fakeMachine struct{ *BaseMachine }

func (fakeMachine) Start(context.Context) (any, error) { return nil, nil }
func (fakeMachine) Stop(context.Context) (any, error)  { return nil, nil }
func (fakeMachine) Info(context.Context) (machinestate.State, any, error) {
	return machinestate.Running, nil, nil
}

// newFake returns a complete provider named name.
func newFake(name string) *Provider {
	return &Provider{
		Name:         name,
		ResourceName: "machine",
		Source:       "example.com/kloud/" + name,
		Machine:      func(bm *BaseMachine) (Machine, error) { return fakeMachine{bm}, nil },
		Stack:        func(bs *BaseStack) (Stack, error) { return fakeStack{bs}, nil },
		Schema: &Schema{
			NewCredential: func() any { return &testCredential{} },
			NewBootstrap:  func() any { return &testBootstrap{} },
			NewMetadata:   func(*stack.Machine) any { return &testMetadata{} },
		},
	}
}

func TestRegister(t *testing.T) {
	tests := []struct {
		name string
		p    *Provider
		want error
	}{
		{"nil", nil, ErrInvalidProvider},
		{"empty name", newFake(""), ErrInvalidProvider},
		{"no machine", func() *Provider { p := newFake("t-nomachine"); p.Machine = nil; return p }(), ErrInvalidProvider},
		{"no stack", func() *Provider { p := newFake("t-nostack"); p.Stack = nil; return p }(), ErrInvalidProvider},
		{"no schema", func() *Provider { p := newFake("t-noschema"); p.Schema = nil; return p }(), ErrInvalidProvider},
		{"no credential", func() *Provider { p := newFake("t-nocred"); p.Schema.NewCredential = nil; return p }(), ErrInvalidProvider},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Register(tt.p); !errors.Is(err, tt.want) {
				t.Errorf("Register = %v, want %v", err, tt.want)
			}
		})
	}

	p := newFake("t-dup")
	if err := Register(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unregister("t-dup") })
	if err := Register(newFake("t-dup")); !errors.Is(err, ErrDuplicate) {
		t.Errorf("duplicate: err = %v, want ErrDuplicate", err)
	}
	got, err := Get("t-dup")
	if err != nil || got != p {
		t.Errorf("Get = %v, %v; want the first registration", got, err)
	}
}

func TestMustRegisterPanicsOnProgrammingError(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustRegister(nil) did not panic")
		}
	}()
	MustRegister(nil)
}

func TestAllSortedAndGetUnknown(t *testing.T) {
	names := []string{"t-zeta", "t-alpha", "t-mid"}
	for _, n := range names {
		if err := Register(newFake(n)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unregister(n) })
	}
	var got []string
	for _, p := range All() {
		got = append(got, p.Name)
	}
	if !slices.IsSorted(got) {
		t.Errorf("All = %v, not sorted", got)
	}
	for _, n := range names {
		if !slices.Contains(got, n) {
			t.Errorf("All lacks %s", n)
		}
	}
	if _, err := Get("t-nonexistent"); !errors.Is(err, ErrUnknownProvider) {
		t.Errorf("Get unknown: err = %v, want ErrUnknownProvider", err)
	}
}

func TestTerraformTypeAndDescribe(t *testing.T) {
	p := newFake("t-desc")
	if got := p.TerraformType(); got != "t-desc_machine" {
		t.Errorf("TerraformType = %s", got)
	}
	d, err := p.Describe()
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "t-desc" || d.ResourceType != "t-desc_machine" || len(d.Credential) == 0 || len(d.Bootstrap) != 2 {
		t.Errorf("Describe = %+v", d)
	}
	p.Schema.NewCredential = func() any { return 42 }
	if _, err := p.Describe(); err == nil {
		t.Error("Describe of a non-struct schema succeeded")
	}
}
