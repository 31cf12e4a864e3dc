package providertest

import (
	"encoding/json"
	"slices"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
)

// machine drives one machine as Kloud does: each call on a Machine made
// afresh from the metadata stored after the call before.
type machine struct {
	c        *check
	metadata json.RawMessage
}

// newMachine makes a running machine with Env.NewMachine; it is removed
// when the rule ends.
func (c *check) newMachine() *machine {
	c.t.Helper()
	c.need(c.env.NewMachine != nil, "NewMachine", "a function that makes a running machine in the provider's simulator and returns its stored metadata")
	c.need(c.env.RemoveMachine != nil, "RemoveMachine", "a function that makes a machine disappear from the provider's simulator")
	md := c.env.NewMachine(c.t)
	c.t.Cleanup(func() { c.env.RemoveMachine(c.t, md) })
	return &machine{c: c, metadata: md}
}

// build makes the provider's Machine for the stored metadata.
func (m *machine) build() provider.Machine {
	c := m.c
	c.t.Helper()
	c.need(c.env.Credential != "", "Credential", "the data of a credential the provider accepts")
	cred := c.credential(c.env.Credential, true)
	decoded, boot, err := c.p.DecodeCredential(cred)
	if err != nil {
		c.stop("decode the credential as Kloud does: %s", callErr("Valid", err))
	}
	sm := &stack.Machine{ID: MachineID, StackID: StackID, OwnerID: OwnerID, Provider: c.p.Name, Label: c.p.TerraformType() + ".conformance", Metadata: m.metadata}
	md, err := c.p.DecodeMetadata(sm)
	if err != nil {
		c.stop("decode the stored metadata %s: %v", m.metadata, err)
	}
	pm, err := c.p.Machine(&provider.BaseMachine{
		Provider: c.p, Log: discard, Machine: sm,
		Credential: cred, Cred: decoded, Bootstrap: boot, Metadata: md,
		DataDir: c.env.DataDir, Service: c.env.Service,
	})
	if err != nil {
		c.stop("%s", callErr("Provider.Machine", err))
	}
	if pm == nil {
		c.stop("Provider.Machine returned a nil Machine and no error")
	}
	return pm
}

// keep stores what a method returned as the machine's metadata.
func (m *machine) keep(method string, md any) {
	if md == nil {
		return
	}
	m.c.metadataRoundTrips("the metadata "+method+" returned", md)
	if b, err := json.Marshal(md); err == nil {
		m.metadata = b
	}
}

// info calls Info and checks it reports a declared state.
func (m *machine) info() machinestate.State {
	c := m.c
	c.t.Helper()
	state, md, err := m.build().Info(c.ctx)
	if err != nil {
		c.stop("%s", callErr("Info", err))
	}
	if !state.Valid() {
		c.stop("Info reported %v, not a machine state", state)
	}
	m.keep("Info", md)
	return state
}

// do runs Start or Stop; its error fails the rule.
func (m *machine) do(method machinestate.Method) {
	c := m.c
	c.t.Helper()
	pm := m.build()
	var (
		md  any
		err error
	)
	switch method {
	case machinestate.Start:
		md, err = pm.Start(c.ctx)
	case machinestate.Stop:
		md, err = pm.Stop(c.ctx)
	}
	if err != nil {
		c.stop("%s", callErr(string(method), err))
	}
	m.keep(string(method), md)
}

// expect checks that Info reports the final state of method's transition.
func (m *machine) expect(method machinestate.Method, after string) {
	m.c.t.Helper()
	tr, _ := machinestate.TransitionOf(method)
	if got := m.info(); got != tr.Final {
		m.c.failf("Info after %s is %v; the state table says %s ends in %v", after, got, method, tr.Final)
	}
}

// ruleMachineNeverBuilt: a machine with no stored metadata (never built)
// is NotInitialized, and cannot be started or stopped.
func ruleMachineNeverBuilt(c *check) {
	m := &machine{c: c}
	if got := m.info(); got != machinestate.NotInitialized {
		c.failf("Info of a machine never built (no metadata) is %v, want NotInitialized", got)
	}
	for _, method := range []machinestate.Method{machinestate.Start, machinestate.Stop} {
		pm := m.build()
		var err error
		if method == machinestate.Start {
			_, err = pm.Start(c.ctx)
		} else {
			_, err = pm.Stop(c.ctx)
		}
		if err == nil {
			c.failf("%s of a machine never built succeeded; it must say the machine has no id", method)
		}
	}
}

// ruleMachineInfo: a machine just made is Running, with metadata of the
// schema's type that survives being stored.
func ruleMachineInfo(c *check) {
	m := c.newMachine()
	if got := m.info(); got != machinestate.Running {
		c.failf("Info of a running machine (Env.NewMachine) is %v, want Running", got)
	}
}

// ruleMachineStop: Stop ends in Stopped, and stopping a stopped machine
// changes nothing.
func ruleMachineStop(c *check) {
	m := c.newMachine()
	m.do(machinestate.Stop)
	m.expect(machinestate.Stop, "Stop")
	m.do(machinestate.Stop)
	m.expect(machinestate.Stop, "a second Stop")
}

// ruleMachineStart: Start of a stopped machine ends in Running, and
// starting a running machine changes nothing.
func ruleMachineStart(c *check) {
	m := c.newMachine()
	m.do(machinestate.Stop)
	if got := m.info(); got != machinestate.Stopped {
		c.stop("before Start: Info after Stop is %v, want Stopped", got)
	}
	m.do(machinestate.Start)
	m.expect(machinestate.Start, "Start")
	m.do(machinestate.Start)
	m.expect(machinestate.Start, "a second Start")
}

// ruleMachineGone: Info of a machine deleted outside Kloud says it is gone
// (NotInitialized, or Terminated while the cloud still lists it) without
// an error, and Start of it fails.
func ruleMachineGone(c *check) {
	m := c.newMachine()
	c.env.RemoveMachine(c.t, m.metadata)
	gone := []machinestate.State{machinestate.NotInitialized, machinestate.Terminated}
	if got := m.info(); !slices.Contains(gone, got) {
		c.failf("Info of a machine that is gone is %v, want NotInitialized (or Terminated)", got)
	}
	if _, err := m.build().Start(c.ctx); err == nil {
		c.failf("Start of a machine that is gone succeeded")
	}
}
