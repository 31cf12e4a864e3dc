package kloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/provider/sandbox"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// newSandboxHost starts the sandbox provider's host: the machines under
// the sandbox root, run with the server's Confiner, and the control API
// the plugin reaches on a loopback port of its own.
func (s *Server) newSandboxHost() (*sandbox.Host, error) {
	root := s.cfg.SandboxRoot
	if root == "" {
		root = filepath.Join(s.cfg.DataDir, sandbox.SubDir)
	}
	var agent []string
	if p := s.cfg.KlientPath; p != "" {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode().Perm()&0o111 != 0 {
			if abs, err := filepath.Abs(p); err == nil {
				agent = []string{abs}
			}
		}
	}
	h, err := sandbox.NewHost(sandbox.HostConfig{
		Root: root, AllowedRoots: s.cfg.SandboxAllowedRoots, Confiner: s.cfg.Confiner, Agent: agent,
		Log: s.log.With(slog.String("component", "sandbox")),
	})
	if err != nil {
		return nil, err
	}
	if err := h.Listen("127.0.0.1:0"); err != nil {
		return nil, err
	}
	return h, nil
}

// service is what the server runs for provider p on its own host.
func (s *Server) service(p *provider.Provider) any {
	if p.Name == sandbox.Name && s.sandbox != nil {
		return s.sandbox
	}
	return nil
}

// checkCredential refuses what actor may not put in a credential: a
// sandbox data_dir is an admin's, and inside the sandbox root.
func (s *Server) checkCredential(p *provider.Provider, cred any, actor *store.User) error {
	if p.Name != sandbox.Name || s.sandbox == nil {
		return nil
	}
	err := sandbox.CheckCredential(s.sandbox, cred, actor.Role == store.RoleAdmin)
	if errors.Is(err, sandbox.ErrAdminOnly) {
		return &RequestError{Status: http.StatusForbidden, Field: "data_dir", Message: err.Error()}
	}
	return err
}

// ReconcileSandbox destroys the sandbox machines that no machine record
// and no stack's latest Terraform state knows (a server killed mid-apply
// leaves such machines running), logging each with its id and the reason.
// A machine only a state knows is kept: the stack's next apply records it.
// Credentials with an active job or a granted run are skipped: their
// machines may be on their way into a state.
func (s *Server) ReconcileSandbox(ctx context.Context) error {
	h := s.sandbox
	if h == nil {
		return nil
	}
	creds, err := s.st.ListCredentials(ctx, "")
	if err != nil {
		return fmt.Errorf("reconcile sandbox: %w", err)
	}
	stacks, err := s.st.ListStacks(ctx, "")
	if err != nil {
		return fmt.Errorf("reconcile sandbox: %w", err)
	}
	records, err := s.st.ListMachines(ctx, store.MachineFilter{})
	if err != nil {
		return fmt.Errorf("reconcile sandbox: %w", err)
	}
	jobs, err := s.st.ListJobs(ctx, store.JobQueued, store.JobRunning)
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
			v, err := s.st.LatestStateVersion(ctx, st.ID)
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
				s.log.Info("sandbox machine kept: no record yet, but in its stack's Terraform state", slog.String("sandbox_machine", id), slog.String("stack", stackID))
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
				s.log.Error("destroy unknown sandbox machine", slog.String("sandbox_machine", id), slog.String("error", err.Error()))
				continue
			}
			s.log.Warn("destroyed an unknown sandbox machine", slog.String("sandbox_machine", id), slog.String("reason", reason))
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
