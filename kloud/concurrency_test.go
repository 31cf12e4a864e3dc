package kloud_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud"
	"github.com/kloud/kloud/kloud/kloudtest"
)

// TestTwentyStacksAtOnce applies 20 stacks at the same time on the default
// 4 workers: every one succeeds with its machine running, and each job
// ran exactly once. One owner applies them all, so the fair share is lifted
// to every worker.
func TestTwentyStacksAtOnce(t *testing.T) {
	h := kloudtest.New(t, func(c *kloud.Config) { c.MaxJobsPerOwner = c.Workers })
	ctx := context.Background()
	cred, err := h.Admin.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := h.Admin.CreateTemplate(ctx, client.CreateTemplateRequest{Title: "one", Provider: "sandbox", Content: machinesTemplate(1)})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	ids := make([]string, n)
	for i := range ids {
		st, err := h.Admin.CreateStack(ctx, client.CreateStackRequest{Title: fmt.Sprint("s", i), TemplateID: tpl.ID, CredentialID: cred.ID})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = st.ID
	}
	var g errgroup.Group
	for _, id := range ids {
		g.Go(func() error {
			ref, err := h.Admin.ApplyStack(ctx, id)
			if err != nil {
				return err
			}
			j, err := h.Admin.FollowJob(ctx, ref.JobID, nil)
			if err != nil {
				return err
			}
			if j.Status != "succeeded" {
				return fmt.Errorf("stack %s: job %s %s: %s", id, j.ID, j.Status, j.Error)
			}
			evs, err := h.Admin.JobEvents(ctx, ref.JobID)
			if err != nil {
				return err
			}
			runs := 0
			for _, e := range evs {
				if e.Kind == "phase" && len(e.Message) > 13 && e.Message[:13] == "running apply" {
					runs++
				}
			}
			if runs != 1 {
				return fmt.Errorf("job %s ran %d times", j.ID, runs)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		st, err := h.Admin.Stack(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status != "initialized" || len(st.Machines) != 1 || st.Machines[0].State.String() != "Running" {
			t.Errorf("stack %s = %s with %+v", id, st.Status, st.Machines)
		}
	}
}
