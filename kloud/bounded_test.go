package kloud_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/kloud"
	"github.com/kloud/kloud/kloud/kloudtest"
)

// heavyTemplate makes Terraform evaluate a million-element expression
// before it can plan anything: it holds a worker for as long as it likes
// and creates nothing.
const heavyTemplate = `
locals {
  heavy = [for i in range(1000) : [for j in range(1000) : "${i}-${j}"]]
}

resource "sandbox_machine" "m" {
  name = "m-${length(local.heavy)}"
}
`

// slowAfterFirstMachine creates machine a, then evaluates the heavy
// expression (its size is known only once a runs), then would create b. An
// apply is thus busy after a is in the state. Once a is stopped the
// expression is empty, so the stack can be destroyed quickly.
const slowAfterFirstMachine = `
resource "sandbox_machine" "a" {
  name = "a"
}

locals {
  slow = [for i in range(sandbox_machine.a.state == "running" ? 1000 : 0) : [for j in range(1000) : "${i}-${j}"]]
}

resource "sandbox_machine" "b" {
  name = "b-${length(local.slow)}"
}
`

const oneMachine = `
resource "sandbox_machine" "m" {
  name = "m"
}
`

// newStack creates a sandbox credential, a template of content and a
// stack of it for c.
func newStack(t *testing.T, c *client.Client, content string) (stackID, credID string) {
	t.Helper()
	ctx := context.Background()
	cred, err := c.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Title: "local", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatalf("create credential: %v", err)
	}
	tpl, err := c.CreateTemplate(ctx, client.CreateTemplateRequest{Title: "t", Provider: "sandbox", Content: content, Format: "hcl"})
	if err != nil {
		t.Fatalf("create template: %v", err)
	}
	st, err := c.CreateStack(ctx, client.CreateStackRequest{Title: "s", TemplateID: tpl.ID, CredentialID: cred.ID})
	if err != nil {
		t.Fatalf("create stack: %v", err)
	}
	return st.ID, cred.ID
}

// noTerraformLeft fails unless, within a short grace, no Terraform or
// provider process mentions the working directory dir. The agents of the
// machines a run created (they started in it) are the machines, not
// leftovers.
func noTerraformLeft(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []testenv.Proc
		for _, p := range testenv.Processes(dir) {
			if !strings.Contains(p.Cmdline, " agent -dir ") {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("terraform processes left behind in %s:\n%v", dir, left)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// endJob waits for a job to end, whatever its outcome.
func endJob(t *testing.T, c *client.Client, jobID string) *client.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	j, err := c.FollowJob(ctx, jobID, nil)
	if err != nil {
		t.Fatalf("follow job %s: %v", jobID, err)
	}
	return j
}

// TestJobTimeoutStopsTerraform: an apply over its kind's timeout fails with
// the reason, its stack says why, and no Terraform of its working directory
// is left.
func TestJobTimeoutStopsTerraform(t *testing.T) {
	h := kloudtest.New(t, func(c *kloud.Config) {
		c.JobTimeout = kloud.JobTimeouts{Default: 30 * time.Minute, Kinds: map[string]time.Duration{"apply": 2 * time.Second}}
		c.TerraformGrace = time.Second
	})
	ctx := context.Background()
	stackID, _ := newStack(t, h.Admin, heavyTemplate)
	ref, err := h.Admin.ApplyStack(ctx, stackID)
	if err != nil {
		t.Fatal(err)
	}
	j := endJob(t, h.Admin, ref.JobID)
	const want = "timed out after 2s (job timeout for apply)"
	if j.Status != "failed" || j.Error != want {
		t.Fatalf("job = %s %q, want failed %q", j.Status, j.Error, want)
	}
	st, err := h.Admin.Stack(ctx, stackID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != "not_initialized" || st.Reason != want {
		t.Errorf("stack = %s %q, want not_initialized %q", st.Status, st.Reason, want)
	}
	noTerraformLeft(t, filepath.Join(h.DataDir, "work", stackID))
}

// TestCancelJobs: a queued job is failed at once; a running apply is
// stopped, fails with the reason, and the state it had reached is saved;
// only the owner or an admin may cancel; an ended job is a 409.
func TestCancelJobs(t *testing.T) {
	h := kloudtest.New(t, func(c *kloud.Config) {
		c.Workers = 1 // the second job waits while the first runs
		c.TerraformGrace = 2 * time.Second
	})
	ctx := context.Background()
	alice, bob := h.Member(t, "alice"), h.Member(t, "bob")
	slowID, _ := newStack(t, alice, slowAfterFirstMachine)
	otherID, _ := newStack(t, alice, oneMachine)

	running, err := alice.ApplyStack(ctx, slowID)
	if err != nil {
		t.Fatal(err)
	}
	if err := waitForOutput(ctx, alice, running.JobID, "sandbox_machine.a: Creation complete"); err != nil {
		t.Fatal(err)
	}
	queued, err := alice.ApplyStack(ctx, otherID)
	if err != nil {
		t.Fatal(err)
	}

	// Someone else's job is not found, for cancel as for reading.
	if _, err := bob.Cancel(ctx, queued.JobID); apiStatus(err) != 404 {
		t.Fatalf("bob cancels alice's job: err = %v, want 404", err)
	}

	j, err := alice.Cancel(ctx, queued.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != "failed" || j.Error != "cancelled by alice" {
		t.Fatalf("cancelled queued job = %s %q, want failed, cancelled by alice", j.Status, j.Error)
	}

	j, err = alice.Cancel(ctx, running.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != "running" || j.CancelReason != "cancelled by alice" {
		t.Fatalf("cancelled running job = %s (cancel %q), want running with the reason", j.Status, j.CancelReason)
	}
	j = endJob(t, alice, running.JobID)
	if j.Status != "failed" || j.Error != "cancelled by alice" {
		t.Fatalf("cancelled apply = %s %q, want failed, cancelled by alice", j.Status, j.Error)
	}
	noTerraformLeft(t, filepath.Join(h.DataDir, "work", slowID))
	// Machine a was in the state when the apply was cancelled: the state
	// was saved, and the stack knows the machine.
	v, err := h.Store.LatestStateVersion(ctx, slowID)
	if err != nil {
		t.Fatalf("state of the cancelled apply: %v", err)
	}
	if !strings.Contains(string(v.State), `"sandbox_machine"`) {
		t.Errorf("saved state holds no machine:\n%s", v.State)
	}
	st, err := alice.Stack(ctx, slowID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != "not_initialized" || st.Reason != "cancelled by alice" || len(st.Machines) != 1 {
		t.Errorf("stack = %s %q with %d machines, want not_initialized, cancelled by alice, 1 machine", st.Status, st.Reason, len(st.Machines))
	}

	// An ended job cannot be cancelled: 409 naming its status.
	_, err = alice.Cancel(ctx, running.JobID)
	if apiStatus(err) != 409 || !strings.Contains(err.Error(), "failed") {
		t.Fatalf("cancel an ended job: err = %v, want 409 naming failed", err)
	}

	// Stopped, machine a makes the expression empty: the stack can be
	// destroyed quickly at cleanup.
	for _, m := range st.Machines {
		if m.State.String() == "Running" {
			ref, err := alice.StopMachine(ctx, m.ID)
			if err != nil {
				t.Fatal(err)
			}
			kloudtest.WaitJob(t, alice, ref.JobID)
		}
	}
}

// TestFairShareAcrossOwners: with 4 workers (2 per owner), owner A queues
// 10 slow applies, then B a stop: B's stop runs while A's jobs still wait,
// and A never has more than 2 jobs running.
func TestFairShareAcrossOwners(t *testing.T) {
	h := kloudtest.New(t, func(c *kloud.Config) {
		c.Workers = 4
		c.TerraformGrace = time.Second
	})
	ctx := context.Background()
	a, b := h.Member(t, "a"), h.Member(t, "b")

	bStack, _ := newStack(t, b, oneMachine)
	ref, err := b.ApplyStack(ctx, bStack)
	if err != nil {
		t.Fatal(err)
	}
	kloudtest.WaitJob(t, b, ref.JobID)
	st, err := b.Stack(ctx, bStack)
	if err != nil || len(st.Machines) != 1 {
		t.Fatalf("b's stack = %+v, %v", st, err)
	}

	var aJobs []string
	for range 10 {
		id, _ := newStack(t, a, heavyTemplate)
		ref, err := a.ApplyStack(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		aJobs = append(aJobs, ref.JobID)
	}
	stop, err := b.StopMachine(ctx, st.Machines[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	bJob := kloudtest.WaitJob(t, b, stop.JobID)

	// A's jobs are stopped for good: queued ones fail at once, running
	// ones are interrupted.
	for _, id := range aJobs {
		if _, err := a.Cancel(ctx, id); err != nil && apiStatus(err) != 409 {
			t.Fatalf("cancel %s: %v", id, err)
		}
	}
	var ended []*client.Job
	for _, id := range aJobs {
		ended = append(ended, endJob(t, a, id))
	}

	startedAfterB, neverStarted := 0, 0
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, j := range ended {
		if j.StartedAt == nil {
			neverStarted++
			continue
		}
		if j.StartedAt.After(*bJob.StartedAt) {
			startedAfterB++
		}
		edges = append(edges, edge{*j.StartedAt, +1}, edge{*j.FinishedAt, -1})
	}
	if startedAfterB+neverStarted == 0 {
		t.Errorf("all of A's 10 jobs started before B's stop")
	}
	sort.Slice(edges, func(i, k int) bool {
		if edges[i].at.Equal(edges[k].at) {
			return edges[i].delta < edges[k].delta // an end before a start at one instant
		}
		return edges[i].at.Before(edges[k].at)
	})
	runningA, most := 0, 0
	for _, e := range edges {
		runningA += e.delta
		most = max(most, runningA)
	}
	if most > 2 {
		t.Errorf("owner A ran %d jobs at once, want at most 2", most)
	}
	t.Logf("A: %d jobs started after B's stop, %d never started, at most %d at once", startedAfterB, neverStarted, most)
}

// TestTemplatePlanBounded: a template plan runs under the plan timeout and
// at most MaxJobsPerOwner at once per owner; another owner is unaffected.
func TestTemplatePlanBounded(t *testing.T) {
	h := kloudtest.New(t, func(c *kloud.Config) {
		c.MaxJobsPerOwner = 1
		c.JobTimeout = kloud.JobTimeouts{Kinds: map[string]time.Duration{"plan": 4 * time.Second}}
		c.TerraformGrace = time.Second
	})
	ctx := context.Background()
	a, b := h.Member(t, "a"), h.Member(t, "b")
	heavy, fast, aCred := planInputs(t, a)
	_, bFast, bCred := planInputs(t, b)

	// A probe plan names a variable the template lacks: it takes A's
	// place for an instant and answers 422, or 429 while A is busy.
	probe := func() error {
		_, err := a.PlanTemplate(ctx, fast, client.PlanRequest{CredentialID: aCred, Variables: map[string]string{"probe": "1"}})
		return err
	}
	slow := make(chan error, 1)
	go func() {
		for {
			_, err := a.PlanTemplate(ctx, heavy, client.PlanRequest{CredentialID: aCred})
			if apiStatus(err) != 429 { // a probe held the place: again
				slow <- err
				return
			}
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := probe()
		if apiStatus(err) == 429 {
			if !strings.Contains(err.Error(), "at most 1") {
				t.Errorf("429 = %v, want it to say the limit", err)
			}
			break
		}
		if apiStatus(err) != 422 {
			t.Fatalf("probe plan of A: %v, want 422 or 429", err)
		}
		select {
		case err := <-slow:
			t.Fatalf("heavy plan ended before A was refused: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("A's heavy plan never held A's place")
		}
		time.Sleep(10 * time.Millisecond) // leave the heavy plan room to start
	}
	if _, err := a.PlanTemplate(ctx, fast, client.PlanRequest{CredentialID: aCred}); apiStatus(err) != 429 {
		t.Errorf("A's second plan while A's heavy plan runs: err = %v, want 429", err)
	}
	// B is not held back by A's limit. (On a loaded machine B's plan may
	// itself outlast the short plan timeout of this test: that is no
	// refusal.)
	if _, err := b.PlanTemplate(ctx, bFast, client.PlanRequest{CredentialID: bCred}); err != nil {
		if apiStatus(err) == 429 || !strings.Contains(err.Error(), "timed out") {
			t.Errorf("B's plan while A is busy: %v", err)
		}
		t.Logf("B's plan while A is busy: %v", err)
	}
	err := <-slow
	if apiStatus(err) != 422 || !strings.Contains(err.Error(), "timed out after 4s (job timeout for plan)") {
		t.Fatalf("heavy plan: err = %v, want 422 naming the timeout", err)
	}
	if _, err := a.PlanTemplate(ctx, fast, client.PlanRequest{CredentialID: aCred}); err != nil {
		t.Errorf("A's plan after the heavy one ended: %v", err)
	}
	noTerraformLeft(t, filepath.Join(h.DataDir, "work"))
}

func planInputs(t *testing.T, c *client.Client) (heavy, fast, credID string) {
	t.Helper()
	ctx := context.Background()
	cred, err := c.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 2)
	for i, content := range []string{heavyTemplate, oneMachine} {
		tpl, err := c.CreateTemplate(ctx, client.CreateTemplateRequest{Title: fmt.Sprint("t", i), Provider: "sandbox", Content: content})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = tpl.ID
	}
	return ids[0], ids[1], cred.ID
}

// TestCancelThroughStore: a cancel recorded in the store by another
// replica reaches the worker running the job at its next lease renewal.
func TestCancelThroughStore(t *testing.T) {
	h := kloudtest.New(t, func(c *kloud.Config) {
		c.JobLease = 900 * time.Millisecond // renewed every 300 ms
		c.TerraformGrace = 2 * time.Second
	})
	ctx := context.Background()
	stackID, _ := newStack(t, h.Admin, slowAfterFirstMachine)
	ref, err := h.Admin.ApplyStack(ctx, stackID)
	if err != nil {
		t.Fatal(err)
	}
	if err := waitForOutput(ctx, h.Admin, ref.JobID, "sandbox_machine.a: Creation complete"); err != nil {
		t.Fatal(err)
	}
	// What another replica's POST …/cancel does: this server's cancel
	// function is not called.
	if _, err := h.Store.CancelJob(ctx, ref.JobID, "cancelled by someone elsewhere", time.Now()); err != nil {
		t.Fatal(err)
	}
	j := endJob(t, h.Admin, ref.JobID)
	if j.Status != "failed" || j.Error != "cancelled by someone elsewhere" {
		t.Fatalf("job = %s %q, want failed with the remote reason", j.Status, j.Error)
	}
	noTerraformLeft(t, filepath.Join(h.DataDir, "work", stackID))
	st, err := h.Admin.Stack(ctx, stackID)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Machines {
		if m.State.String() == "Running" {
			ref, err := h.Admin.StopMachine(ctx, m.ID)
			if err != nil {
				t.Fatal(err)
			}
			kloudtest.WaitJob(t, h.Admin, ref.JobID)
		}
	}
}
