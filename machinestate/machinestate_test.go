package machinestate

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestStateJSONRoundTrip(t *testing.T) {
	for _, s := range States() {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("marshal %v: %v", s, err)
		}
		if string(b) != `"`+s.String()+`"` {
			t.Errorf("marshal %v = %s, want its name", s, b)
		}
		var got State
		if err := json.Unmarshal(b, &got); err != nil || got != s {
			t.Errorf("unmarshal %s = %v, %v; want %v", b, got, err, s)
		}
	}
}

func TestStateJSONRejectsBadInput(t *testing.T) {
	for _, in := range []string{`"Flying"`, `3`, `null`, `""`, `{}`} {
		var s State
		if err := json.Unmarshal([]byte(in), &s); err == nil {
			t.Errorf("unmarshal %s: want an error, got %v", in, s)
		}
	}
	if _, err := json.Marshal(State(99)); err == nil {
		t.Error("marshal State(99): want an error")
	}
}

func TestTwelveStates(t *testing.T) {
	want := "Unknown NotInitialized Building Starting Running Stopping Stopped Rebooting Terminating Terminated Snapshotting Pending"
	var names []string
	for _, s := range States() {
		names = append(names, s.String())
	}
	if got := strings.Join(names, " "); got != want {
		t.Errorf("states = %s\nwant %s", got, want)
	}
	if State(0) != Unknown {
		t.Error("the zero state must be Unknown")
	}
}

func TestInProgress(t *testing.T) {
	inProgress := map[State]bool{Building: true, Starting: true, Stopping: true, Rebooting: true, Terminating: true, Snapshotting: true, Pending: true}
	for _, s := range States() {
		if got := s.InProgress(); got != inProgress[s] {
			t.Errorf("%v.InProgress() = %v", s, got)
		}
		if s.InProgress() && len(s.Allowed()) != 0 {
			t.Errorf("in-progress state %v allows %v; want nothing", s, s.Allowed())
		}
	}
}

func TestAllowedTable(t *testing.T) {
	tests := []struct {
		state  State
		method Method
		ok     bool
	}{
		{Running, Stop, true},
		{Running, Destroy, true},
		{Running, Start, false},
		{Running, Build, false},
		{Stopped, Start, true},
		{Stopped, Destroy, true},
		{Stopped, Stop, false},
		{Terminated, Build, true},
		{Terminated, Start, false},
		{Terminated, Destroy, false},
		{NotInitialized, Build, true},
		{NotInitialized, Start, false},
		{Starting, Stop, false},
		{Stopping, Start, false},
		{Building, Destroy, false},
		{Terminating, Destroy, false},
		{Running, Method("fly"), false},
	}
	for _, tt := range tests {
		err := Check(tt.state, tt.method)
		if (err == nil) != tt.ok {
			t.Errorf("Check(%v, %s) = %v, want ok=%v", tt.state, tt.method, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrMethodNotAllowed) {
			t.Errorf("Check(%v, %s) error %v does not wrap ErrMethodNotAllowed", tt.state, tt.method, err)
		}
	}
}

func TestRefusalNamesStateAndAllowed(t *testing.T) {
	err := Check(Stopped, Stop)
	var me *MethodError
	if !errors.As(err, &me) {
		t.Fatalf("Check(Stopped, stop) = %v, want *MethodError", err)
	}
	if me.State != Stopped || me.Method != Stop {
		t.Errorf("error = %+v", me)
	}
	msg := err.Error()
	for _, want := range []string{"Stopped", "stop", "start", "destroy"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not name %q", msg, want)
		}
	}
	if msg := Check(Starting, Stop).Error(); !strings.Contains(msg, "nothing until it settles") {
		t.Errorf("in-progress refusal %q should say nothing is allowed", msg)
	}
}

// A refusal offers only methods Kloud implements, in exact words.
func TestAllowedOnlyImplemented(t *testing.T) {
	implemented := map[Method]bool{}
	for _, m := range Implemented() {
		implemented[m] = true
	}
	for _, s := range States() {
		for _, m := range s.Allowed() {
			if !implemented[m] {
				t.Errorf("%v allows %s, which Kloud does not implement", s, m)
			}
		}
	}
	for _, c := range []struct {
		state  State
		method Method
		want   string
	}{
		{Stopped, Stop, "cannot stop: machine is Stopped; allowed: start, destroy"},
		{Running, Start, "cannot start: machine is Running; allowed: stop, destroy"},
		{Terminated, Start, "cannot start: machine is Terminated; allowed: build"},
		{Stopped, Resize, "cannot resize: machine is Stopped; allowed: start, destroy"},
	} {
		if got := Check(c.state, c.method).Error(); got != c.want {
			t.Errorf("Check(%v, %s) = %q, want %q", c.state, c.method, got, c.want)
		}
	}
}

func TestTransitions(t *testing.T) {
	tests := []struct {
		method                Method
		start, final, failure State
	}{
		{Build, Building, Running, NotInitialized},
		{Start, Starting, Running, Stopped},
		{Stop, Stopping, Stopped, Running},
		{Destroy, Terminating, Terminated, Unknown},
		{Restart, Rebooting, Running, Running},
	}
	for _, tt := range tests {
		tr, ok := TransitionOf(tt.method)
		if !ok || tr.Start != tt.start || tr.Final != tt.final || tr.Failure != tt.failure {
			t.Errorf("TransitionOf(%s) = %+v, %v", tt.method, tr, ok)
		}
		if !tr.Start.InProgress() {
			t.Errorf("%s's start state %v is not in progress", tt.method, tr.Start)
		}
	}
	for _, m := range Methods() {
		if _, ok := TransitionOf(m); !ok {
			t.Errorf("method %s has no transition", m)
		}
	}
	if _, ok := TransitionOf("fly"); ok {
		t.Error("unknown method has a transition")
	}
}

func TestAllowedIsACopy(t *testing.T) {
	a := Running.Allowed()
	a[0] = "fly"
	if Running.Allowed()[0] == "fly" {
		t.Error("Allowed returned the table itself")
	}
}

func TestStackStates(t *testing.T) {
	tests := []struct {
		state  StackState
		method StackMethod
		ok     bool
	}{
		{StackNotInitialized, StackApply, true},
		{StackInitialized, StackApply, true},
		{StackInitialized, StackDestroy, true},
		{StackDestroyed, StackApply, true},
		{StackDestroyed, StackDestroy, false},
		{StackBuilding, StackApply, false},
		{StackDestroying, StackApply, false},
	}
	for _, tt := range tests {
		err := CheckStack(tt.state, tt.method)
		if (err == nil) != tt.ok {
			t.Errorf("CheckStack(%s, %s) = %v, want ok=%v", tt.state, tt.method, err, tt.ok)
		}
		if err != nil && (!errors.Is(err, ErrMethodNotAllowed) || !strings.Contains(err.Error(), string(tt.state))) {
			t.Errorf("CheckStack(%s, %s) error %q should wrap ErrMethodNotAllowed and name the state", tt.state, tt.method, err)
		}
	}
	for _, s := range StackStates() {
		if !s.Valid() {
			t.Errorf("%s not valid", s)
		}
	}
	if StackState("flying").Valid() {
		t.Error("unknown stack state valid")
	}
}

func TestParseState(t *testing.T) {
	if s, err := ParseState("running"); err != nil || s != Running {
		t.Errorf("ParseState(running) = %v, %v", s, err)
	}
	if _, err := ParseState("nope"); err == nil {
		t.Error("ParseState(nope): want error")
	}
	if got := State(42).String(); got != "State(42)" {
		t.Errorf("String of invalid = %q", got)
	}
}
