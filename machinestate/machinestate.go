// Package machinestate holds the states a machine and a stack go through, the
// methods each machine state allows, and the start, final and failure state of
// every method: the table that decides whether "stop" may run on a machine.
package machinestate

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// State is the state of one machine. The zero value is Unknown.
type State int

// The machine states, as Koding's Kloud named them.
const (
	Unknown State = iota
	NotInitialized
	Building
	Starting
	Running
	Stopping
	Stopped
	Rebooting
	Terminating
	Terminated
	Snapshotting
	Pending
)

var stateNames = [...]string{
	Unknown:        "Unknown",
	NotInitialized: "NotInitialized",
	Building:       "Building",
	Starting:       "Starting",
	Running:        "Running",
	Stopping:       "Stopping",
	Stopped:        "Stopped",
	Rebooting:      "Rebooting",
	Terminating:    "Terminating",
	Terminated:     "Terminated",
	Snapshotting:   "Snapshotting",
	Pending:        "Pending",
}

// States lists every machine state in declaration order.
func States() []State {
	out := make([]State, len(stateNames))
	for i := range stateNames {
		out[i] = State(i)
	}
	return out
}

// String returns the state's name, e.g. "Running".
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return stateNames[s]
}

// Valid reports whether s is one of the declared states.
func (s State) Valid() bool { return s >= 0 && int(s) < len(stateNames) }

// ParseState returns the state with the given name (case-insensitive).
func ParseState(name string) (State, error) {
	for i, n := range stateNames {
		if strings.EqualFold(n, name) {
			return State(i), nil
		}
	}
	return Unknown, fmt.Errorf("unknown machine state %q", name)
}

// MarshalJSON encodes the state as its name.
func (s State) MarshalJSON() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("marshal machine state: invalid state %d", int(s))
	}
	return json.Marshal(s.String())
}

// UnmarshalJSON decodes a state from its name.
func (s *State) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return fmt.Errorf("machine state must be a string: %w", err)
	}
	v, err := ParseState(name)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// InProgress reports whether the machine is in the middle of a method; such a
// state allows no method until it settles.
func (s State) InProgress() bool {
	switch s {
	case Building, Starting, Stopping, Rebooting, Terminating, Snapshotting, Pending:
		return true
	}
	return false
}

// Method is an operation on a machine.
type Method string

// The machine methods.
const (
	Build          Method = "build"
	Start          Method = "start"
	Stop           Method = "stop"
	Destroy        Method = "destroy"
	Restart        Method = "restart"
	Resize         Method = "resize"
	Reinit         Method = "reinit"
	CreateSnapshot Method = "createSnapshot"
	DeleteSnapshot Method = "deleteSnapshot"
)

// Methods lists every method in a stable order.
func Methods() []Method {
	return []Method{Build, Start, Stop, Destroy, Restart, Resize, Reinit, CreateSnapshot, DeleteSnapshot}
}

// Transition is what a method does to a machine's state: the state it holds
// while the method runs, the state it ends in, and the state it falls back to
// when the method fails.
type Transition struct {
	Start, Final, Failure State
}

var transitions = map[Method]Transition{
	Build:          {Start: Building, Final: Running, Failure: NotInitialized},
	Start:          {Start: Starting, Final: Running, Failure: Stopped},
	Stop:           {Start: Stopping, Final: Stopped, Failure: Running},
	Destroy:        {Start: Terminating, Final: Terminated, Failure: Unknown},
	Restart:        {Start: Rebooting, Final: Running, Failure: Running},
	Resize:         {Start: Pending, Final: Running, Failure: Stopped},
	Reinit:         {Start: Building, Final: Running, Failure: Unknown},
	CreateSnapshot: {Start: Snapshotting, Final: Running, Failure: Running},
	DeleteSnapshot: {Start: Snapshotting, Final: Running, Failure: Running},
}

// TransitionOf returns the transition of method m; ok is false for an unknown method.
func TransitionOf(m Method) (t Transition, ok bool) {
	t, ok = transitions[m]
	return t, ok
}

// allowed is the table of methods each settled state allows. In-progress
// states allow nothing and are absent. Only the methods Kloud implements
// (Implemented) appear: a refusal offers nothing the caller cannot call.
// Koding's restart, resize, reinit and snapshots keep their names and
// transitions above and join this table when they are wired.
var allowed = map[State][]Method{
	NotInitialized: {Build, Destroy},
	Running:        {Stop, Destroy},
	Stopped:        {Start, Destroy},
	Terminated:     {Build},
	Unknown:        {Start, Stop, Destroy},
}

// Implemented lists the methods Kloud carries out: build and destroy
// through a stack's apply and destroy, start and stop on the machine.
func Implemented() []Method { return []Method{Build, Start, Stop, Destroy} }

// Allowed returns the methods state s allows, in a stable order. The slice is
// a copy the caller may keep.
func (s State) Allowed() []Method {
	return append([]Method(nil), allowed[s]...)
}

// Allows reports whether state s allows method m.
func (s State) Allows(m Method) bool {
	for _, a := range allowed[s] {
		if a == m {
			return true
		}
	}
	return false
}

// ErrMethodNotAllowed is the sentinel every refused method wraps.
var ErrMethodNotAllowed = errors.New("method not allowed")

// MethodError says which method was refused in which state, and what that
// state allows instead.
type MethodError struct {
	Method  Method
	State   State
	Allowed []Method
}

func (e *MethodError) Error() string {
	return fmt.Sprintf("cannot %s: machine is %s; allowed: %s", e.Method, e.State, joinMethods(e.Allowed))
}

// Unwrap lets errors.Is match ErrMethodNotAllowed.
func (e *MethodError) Unwrap() error { return ErrMethodNotAllowed }

// Check returns nil when state s allows method m, and a *MethodError otherwise.
// An unknown method is refused the same way.
func Check(s State, m Method) error {
	if s.Allows(m) {
		return nil
	}
	return &MethodError{Method: m, State: s, Allowed: s.Allowed()}
}

// StackState is the state of a whole stack.
type StackState string

// The stack states.
const (
	StackNotInitialized StackState = "not_initialized"
	StackBuilding       StackState = "building"
	StackInitialized    StackState = "initialized"
	StackDestroying     StackState = "destroying"
	StackDestroyed      StackState = "destroyed"
)

// StackStates lists every stack state.
func StackStates() []StackState {
	return []StackState{StackNotInitialized, StackBuilding, StackInitialized, StackDestroying, StackDestroyed}
}

// Valid reports whether s is a declared stack state.
func (s StackState) Valid() bool {
	for _, v := range StackStates() {
		if v == s {
			return true
		}
	}
	return false
}

// InProgress reports whether a stack job is running against the stack.
func (s StackState) InProgress() bool { return s == StackBuilding || s == StackDestroying }

// StackMethod is an operation on a whole stack.
type StackMethod string

// The stack methods.
const (
	StackApply   StackMethod = "apply"
	StackDestroy StackMethod = "destroy"
)

var stackAllowed = map[StackState][]StackMethod{
	StackNotInitialized: {StackApply, StackDestroy},
	StackInitialized:    {StackApply, StackDestroy},
	StackDestroyed:      {StackApply},
}

// Allowed returns the methods stack state s allows.
func (s StackState) Allowed() []StackMethod {
	return append([]StackMethod(nil), stackAllowed[s]...)
}

// StackMethodError says which stack method was refused in which state.
type StackMethodError struct {
	Method  StackMethod
	State   StackState
	Allowed []StackMethod
}

func (e *StackMethodError) Error() string {
	return fmt.Sprintf("cannot %s: stack is %s; allowed: %s", e.Method, e.State, joinMethods(e.Allowed))
}

// Unwrap lets errors.Is match ErrMethodNotAllowed.
func (e *StackMethodError) Unwrap() error { return ErrMethodNotAllowed }

// CheckStack returns nil when stack state s allows method m.
func CheckStack(s StackState, m StackMethod) error {
	for _, a := range stackAllowed[s] {
		if a == m {
			return nil
		}
	}
	return &StackMethodError{Method: m, State: s, Allowed: s.Allowed()}
}

// joinMethods lists methods for an error message.
func joinMethods[M ~string](methods []M) string {
	if len(methods) == 0 {
		return "nothing until it settles"
	}
	names := make([]string, len(methods))
	for i, m := range methods {
		names[i] = string(m)
	}
	return strings.Join(names, ", ")
}
