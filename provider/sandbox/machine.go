package sandbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/provider/sandbox/sandboxvm"
)

// Machine controls one sandbox machine through sandboxvm: the directory
// named by its metadata's id under the credential's data dir.
type Machine struct {
	*provider.BaseMachine
}

var _ provider.Machine = (*Machine)(nil)

// ErrNoMachineID is returned when the machine's metadata names no sandbox
// machine (it was never built).
var ErrNoMachineID = errors.New("sandbox machine has no id in its metadata")

// metadata returns the machine's stored metadata (a fresh one if none).
func (m *Machine) metadata() *Metadata {
	if md, ok := m.Metadata.(*Metadata); ok && md != nil {
		return md
	}
	return &Metadata{Region: Region, Image: Image}
}

// location returns the credential directory and id of the machine: the
// directory always follows from the machine's credential, never from its
// metadata.
func (m *Machine) location() (dir, id string, err error) {
	md := m.metadata()
	if md.ID == "" {
		label := ""
		if m.BaseMachine.Machine != nil {
			label = " " + m.BaseMachine.Machine.ID
		}
		return "", "", fmt.Errorf("sandbox machine%s: %w", label, ErrNoMachineID)
	}
	h, err := hostOf(m.Service)
	if err != nil {
		return "", "", err
	}
	cred, _ := m.Cred.(*Credential)
	credID := ""
	if m.Credential != nil {
		credID = m.Credential.ID
	}
	if dir, err = CredentialDir(h, credID, cred); err != nil {
		return "", "", err
	}
	return dir, md.ID, nil
}

// load opens the machine's directory.
func (m *Machine) load() (*sandboxvm.VM, string, error) {
	dir, id, err := m.location()
	if err != nil {
		return nil, "", err
	}
	h, _ := hostOf(m.Service)
	vm, err := h.VM(dir, id)
	if err != nil {
		return nil, dir, err
	}
	return vm, dir, nil
}

// result is the metadata after an operation: what the machine is now.
func (m *Machine) result(vm *sandboxvm.VM, _ string, st sandboxvm.Status) *Metadata {
	md := *m.metadata()
	meta := vm.Meta()
	md.ID, md.DataDir, md.Region, md.Image = vm.ID(), "", Region, Image
	md.Size = meta.Size
	md.PID, md.Address = 0, ""
	if st.State == sandboxvm.Running {
		md.PID, md.Address = st.PID, st.Address
	}
	return &md
}

// Start boots an existing machine: it re-spawns the machine's agent and
// waits until it answers. Starting a running machine does nothing.
func (m *Machine) Start(ctx context.Context) (any, error) {
	vm, dir, err := m.load()
	if err != nil {
		return nil, fmt.Errorf("start sandbox machine: %w", err)
	}
	if err := vm.Start(ctx); err != nil {
		return nil, fmt.Errorf("start sandbox machine: %w", err)
	}
	st, err := vm.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("start sandbox machine: %w", err)
	}
	if st.State != sandboxvm.Running {
		return m.result(vm, dir, st), fmt.Errorf("start sandbox machine %s: %w: %s", vm.ID(), sandboxvm.ErrNotRunning, st.Reason)
	}
	return m.result(vm, dir, st), nil
}

// Stop powers the machine off: SIGTERM to its agent, then SIGKILL after a
// grace period (sandboxvm does both). Stopping a stopped machine does
// nothing.
func (m *Machine) Stop(ctx context.Context) (any, error) {
	vm, dir, err := m.load()
	if err != nil {
		return nil, fmt.Errorf("stop sandbox machine: %w", err)
	}
	if err := vm.Stop(ctx); err != nil {
		return nil, fmt.Errorf("stop sandbox machine: %w", err)
	}
	st, err := vm.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("stop sandbox machine: %w", err)
	}
	return m.result(vm, dir, st), nil
}

// Info reports the machine's state from its agent process and health:
// Running when the agent lives and answers, Stopped otherwise, and
// NotInitialized when the machine's directory is gone.
func (m *Machine) Info(ctx context.Context) (machinestate.State, any, error) {
	vm, dir, err := m.load()
	if errors.Is(err, sandboxvm.ErrNotFound) || errors.Is(err, ErrNoMachineID) {
		// The directory is gone, or the machine was never built.
		md := *m.metadata()
		md.PID, md.Address, md.DataDir = 0, "", ""
		return machinestate.NotInitialized, &md, nil
	}
	if err != nil {
		return machinestate.Unknown, nil, fmt.Errorf("sandbox machine info: %w", err)
	}
	st, err := vm.Status(ctx)
	if errors.Is(err, sandboxvm.ErrNotFound) {
		return machinestate.NotInitialized, m.result(vm, dir, sandboxvm.Status{State: sandboxvm.Stopped}), nil
	}
	if err != nil {
		return machinestate.Unknown, nil, fmt.Errorf("sandbox machine info: %w", err)
	}
	state := machinestate.Stopped
	if st.State == sandboxvm.Running {
		state = machinestate.Running
	}
	return state, m.result(vm, dir, st), nil
}
