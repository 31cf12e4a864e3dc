package checker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"

	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/provider/sandbox"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// SandboxStore is what the sandbox reconciler reads from the store: every
// record that may know a sandbox machine, and the active jobs.
type SandboxStore interface {
	ListCredentials(ctx context.Context, ownerID string) ([]*stack.Credential, error)
	ListStacks(ctx context.Context, ownerID string) ([]*store.StackRecord, error)
	ListMachines(ctx context.Context, f store.MachineFilter) ([]*stack.Machine, error)
	ListJobs(ctx context.Context, statuses ...jobs.Status) ([]*jobs.Job, error)
	LatestStateVersion(ctx context.Context, stackID string) (*store.StateVersion, error)
}

// SandboxReconciler destroys the sandbox machines of a host that nothing
// knows.
type SandboxReconciler struct {
	Host  *sandbox.Host
	Store SandboxStore
	Log   *slog.Logger
}

func (r *SandboxReconciler) log() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}

// Reconcile destroys the sandbox machines that no machine record and no
// stack's latest Terraform state knows (a server killed mid-apply leaves
// such machines running), logging each with its id and the reason. A
// machine only a state knows is kept: the stack's next apply records it.
// Credentials with an active job or a granted run are skipped: their
// machines may be on their way into a state.
func (r *SandboxReconciler) Reconcile(ctx context.Context) error {
	h := r.Host
	if h == nil {
		return nil
	}
	creds, err := r.Store.ListCredentials(ctx, "")
	if err != nil {
		return fmt.Errorf("reconcile sandbox: %w", err)
	}
	stacks, err := r.Store.ListStacks(ctx, "")
	if err != nil {
		return fmt.Errorf("reconcile sandbox: %w", err)
	}
	records, err := r.Store.ListMachines(ctx, store.MachineFilter{})
	if err != nil {
		return fmt.Errorf("reconcile sandbox: %w", err)
	}
	jobs, err := r.Store.ListJobs(ctx, jobs.StatusQueued, jobs.StatusRunning)
	if err != nil {
		return fmt.Errorf("reconcile sandbox: %w", err)
	}
	p, err := provider.Get(sandbox.Name)
	if err != nil {
		return nil
	}
	stackCred := make(map[string]string, len(stacks))
	for _, st := range stacks {
		stackCred[st.ID] = st.CredentialID
	}
	machineStack := make(map[string]string, len(records))
	for _, m := range records {
		machineStack[m.ID] = m.StackID
	}
	busy := map[string]bool{}
	for _, j := range jobs {
		busy[j.CredentialID] = true
		busy[stackCred[j.StackID]] = true
		busy[stackCred[machineStack[j.MachineID]]] = true
	}

	// Credentials by directory: an admin may point several at one.
	byDir := map[string][]*stack.Credential{}
	for _, c := range creds {
		if c.Provider != sandbox.Name {
			continue
		}
		cred, _, err := p.DecodeCredential(c)
		if err != nil {
			continue
		}
		dir, err := sandbox.CredentialDir(h, c.ID, cred.(*sandbox.Credential))
		if err != nil {
			continue
		}
		byDir[dir] = append(byDir[dir], c)
	}
	// Directories of credentials that are gone hold only orphans.
	if entries, err := os.ReadDir(h.Root()); err == nil {
		for _, e := range entries {
			dir := filepath.Join(h.Root(), e.Name())
			if _, ok := byDir[dir]; !ok && e.IsDir() {
				byDir[dir] = nil
			}
		}
	}
	dirs := make([]string, 0, len(byDir))
	for d := range byDir {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, dir := range dirs {
		cs := byDir[dir]
		vms, err := h.List(dir)
		if err != nil || len(vms) == 0 {
			continue
		}
		skip := false
		credIDs := map[string]bool{}
		for _, c := range cs {
			credIDs[c.ID] = true
			skip = skip || busy[c.ID] || h.Busy(c.ID, dir)
		}
		if skip || h.Busy("", dir) {
			continue
		}
		inRecord, inState := map[string]string{}, map[string]string{}
		for _, m := range records {
			if !credIDs[stackCred[m.StackID]] || m.State == machinestate.Terminated {
				continue
			}
			var md struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(m.Metadata, &md) == nil && md.ID != "" {
				inRecord[md.ID] = m.ID
			}
		}
		for _, st := range stacks {
			if !credIDs[st.CredentialID] {
				continue
			}
			v, err := r.Store.LatestStateVersion(ctx, st.ID)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("reconcile sandbox: state of stack %s: %w", st.ID, err)
			}
			for _, id := range stateMachineIDs(v.State) {
				inState[id] = st.ID
			}
		}
		for _, vm := range vms {
			id := vm.ID()
			if _, ok := inRecord[id]; ok {
				continue
			}
			if stackID, ok := inState[id]; ok {
				r.log().Info("sandbox machine kept: no record yet, but in its stack's Terraform state", slog.String("sandbox_machine", id), slog.String("stack", stackID))
				continue
			}
			reason := "no machine record and no stack's Terraform state knows it (left by an interrupted run)"
			if len(cs) == 0 {
				reason = "its credential no longer exists"
			}
			if h.Busy("", dir) {
				break
			}
			if err := vm.Destroy(ctx); err != nil {
				r.log().Error("destroy unknown sandbox machine", slog.String("sandbox_machine", id), slog.String("error", err.Error()))
				continue
			}
			r.log().Warn("destroyed an unknown sandbox machine", slog.String("sandbox_machine", id), slog.String("reason", reason))
		}
	}
	return nil
}

// stateMachineIDs lists the ids of the sandbox machines of a Terraform
// state file.
func stateMachineIDs(state []byte) []string {
	var st struct {
		Resources []struct {
			Mode      string `json:"mode"`
			Type      string `json:"type"`
			Instances []struct {
				Attributes struct {
					ID string `json:"id"`
				} `json:"attributes"`
			} `json:"instances"`
		} `json:"resources"`
	}
	if json.Unmarshal(state, &st) != nil {
		return nil
	}
	var out []string
	for _, r := range st.Resources {
		if r.Mode != "managed" || r.Type != "sandbox_machine" {
			continue
		}
		for _, in := range r.Instances {
			if in.Attributes.ID != "" {
				out = append(out, in.Attributes.ID)
			}
		}
	}
	return out
}
