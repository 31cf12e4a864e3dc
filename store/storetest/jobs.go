package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/store"
)

func newJob(target string, created time.Time) *jobs.Job {
	return &jobs.Job{Kind: jobs.KindApply, OwnerID: "usr-1", Target: target, StackID: "stk-1", CreatedAt: created}
}

var jobCases = []testCase{
	{"CreateGet", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		j := &jobs.Job{Kind: jobs.KindStart, OwnerID: "usr-1", Target: "machine/m-1", StackID: "stk-1", MachineID: "m-1",
			CredentialID: "cred-1", CreatedAt: t0}
		ok(t, s.CreateJob(ctx, j))
		hasPrefix(t, "job", j.ID, "job-")
		eq(t, "status", j.Status, jobs.StatusQueued)
		got, err := s.GetJob(ctx, j.ID)
		ok(t, err)
		eq(t, "kind", got.Kind, jobs.KindStart)
		eq(t, "owner", got.OwnerID, "usr-1")
		eq(t, "target", got.Target, "machine/m-1")
		eq(t, "stack", got.StackID, "stk-1")
		eq(t, "machine", got.MachineID, "m-1")
		eq(t, "credential", got.CredentialID, "cred-1")
		eq(t, "status", got.Status, jobs.StatusQueued)
		eq(t, "worker", got.Worker, "")
		sameTime(t, "created_at", got.CreatedAt, t0)
		for what, tm := range map[string]time.Time{"lease": got.LeaseExpires, "started": got.StartedAt, "finished": got.FinishedAt} {
			if !tm.IsZero() {
				t.Errorf("%s = %v on a queued job", what, tm)
			}
		}
		_, err = s.GetJob(ctx, "job-missing")
		is(t, err, store.ErrNotFound, "GetJob")
	}},
	{"OneActivePerTarget", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		first := newJob("stack/stk-1", t0)
		ok(t, s.CreateJob(ctx, first))
		err := s.CreateJob(ctx, newJob("stack/stk-1", t0.Add(time.Second)))
		is(t, err, store.ErrConflict, "second queued job on the target")
		var active *jobs.ActiveJobError
		if !errors.As(err, &active) || active.JobID != first.ID || active.Target != "stack/stk-1" {
			t.Fatalf("err = %#v, want *ActiveJobError naming %s", err, first.ID)
		}
		ok(t, s.CreateJob(ctx, newJob("stack/stk-2", t0))) // another target is free
		claimed, err := s.ClaimJob(ctx, "w1", t0, time.Minute, 0)
		ok(t, err)
		eq(t, "claimed", claimed.ID, first.ID)
		err = s.CreateJob(ctx, newJob("stack/stk-1", t0.Add(time.Second)))
		if !errors.As(err, &active) || active.JobID != first.ID {
			t.Fatalf("err = %v, want *ActiveJobError while the job runs", err)
		}
		ok(t, s.FinishJob(ctx, first.ID, "w1", jobs.StatusFailed, "boom", t0.Add(time.Second)))
		ok(t, s.CreateJob(ctx, newJob("stack/stk-1", t0.Add(2*time.Second))))
	}},
	{"ClaimOldestFirst", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		_, err := s.ClaimJob(ctx, "w1", t0, time.Minute, 0)
		is(t, err, store.ErrNotFound, "claim from an empty queue")
		late, early := newJob("stack/late", t0.Add(time.Minute)), newJob("stack/early", t0)
		ok(t, s.CreateJob(ctx, late))
		ok(t, s.CreateJob(ctx, early))
		now := t0.Add(2 * time.Minute)
		j, err := s.ClaimJob(ctx, "w1", now, 30*time.Second, 0)
		ok(t, err)
		eq(t, "first claim", j.ID, early.ID)
		eq(t, "status", j.Status, jobs.StatusRunning)
		eq(t, "worker", j.Worker, "w1")
		sameTime(t, "started_at", j.StartedAt, now)
		sameTime(t, "lease_expires", j.LeaseExpires, now.Add(30*time.Second))
		got, err := s.GetJob(ctx, early.ID)
		ok(t, err)
		eq(t, "stored status", got.Status, jobs.StatusRunning)
		sameTime(t, "stored lease", got.LeaseExpires, now.Add(30*time.Second))
		j, err = s.ClaimJob(ctx, "w2", now, 30*time.Second, 0)
		ok(t, err)
		eq(t, "second claim", j.ID, late.ID)
		_, err = s.ClaimJob(ctx, "w3", now, 30*time.Second, 0)
		is(t, err, store.ErrNotFound, "claim when all run")
	}},
	{"ClaimRace", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		const jobCount, workers = 30, 6
		for i := range jobCount {
			ok(t, s.CreateJob(ctx, newJob(fmt.Sprintf("stack/stk-%d", i), t0.Add(time.Duration(i)*time.Millisecond))))
		}
		var mu sync.Mutex
		claims := map[string]string{}
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			worker := fmt.Sprintf("w%d", w)
			wg.Go(func() {
				for {
					j, err := s.ClaimJob(ctx, worker, t0.Add(time.Hour), time.Minute, 0)
					if errors.Is(err, store.ErrNotFound) {
						return
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					if prev, dup := claims[j.ID]; dup {
						errs <- fmt.Errorf("job %s claimed by %s and %s", j.ID, prev, worker)
					}
					claims[j.ID] = worker
					mu.Unlock()
					if j.Worker != worker {
						errs <- fmt.Errorf("job %s returned with worker %s to %s", j.ID, j.Worker, worker)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		eq(t, "jobs claimed", len(claims), jobCount)
		running, err := s.ListJobs(ctx, jobs.StatusRunning)
		ok(t, err)
		eq(t, "running jobs", len(running), jobCount)
		for _, j := range running {
			eq(t, "worker of "+j.ID, j.Worker, claims[j.ID])
		}
	}},
	{"LeaseHolderOnly", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		j := newJob("stack/stk-1", t0)
		ok(t, s.CreateJob(ctx, j))
		// Not running yet: nobody holds it.
		is(t, s.RenewJobLease(ctx, j.ID, "w1", t0, time.Minute), store.ErrLeaseHeld, "renew a queued job")
		is(t, s.SetJobProgress(ctx, j.ID, "w1", 10), store.ErrLeaseHeld, "progress of a queued job")
		is(t, s.FinishJob(ctx, j.ID, "w1", jobs.StatusSucceeded, "", t0), store.ErrLeaseHeld, "finish a queued job")
		_, err := s.ClaimJob(ctx, "w1", t0, time.Minute, 0)
		ok(t, err)
		is(t, s.RenewJobLease(ctx, j.ID, "w2", t0, time.Minute), store.ErrLeaseHeld, "renew by another worker")
		is(t, s.SetJobProgress(ctx, j.ID, "w2", 10), store.ErrLeaseHeld, "progress by another worker")
		is(t, s.FinishJob(ctx, j.ID, "w2", jobs.StatusSucceeded, "", t0), store.ErrLeaseHeld, "finish by another worker")
		ok(t, s.RenewJobLease(ctx, j.ID, "w1", t0.Add(30*time.Second), time.Minute))
		ok(t, s.SetJobProgress(ctx, j.ID, "w1", 40))
		got, err := s.GetJob(ctx, j.ID)
		ok(t, err)
		sameTime(t, "renewed lease", got.LeaseExpires, t0.Add(90*time.Second))
		eq(t, "percentage", got.Percentage, 40)
		ok(t, s.FinishJob(ctx, j.ID, "w1", jobs.StatusSucceeded, "", t0.Add(time.Minute)))
		got, err = s.GetJob(ctx, j.ID)
		ok(t, err)
		eq(t, "status", got.Status, jobs.StatusSucceeded)
		eq(t, "error", got.Error, "")
		sameTime(t, "finished_at", got.FinishedAt, t0.Add(time.Minute))
		is(t, s.RenewJobLease(ctx, j.ID, "w1", t0, time.Minute), store.ErrLeaseHeld, "renew a finished job")
		is(t, s.FinishJob(ctx, j.ID, "w1", jobs.StatusFailed, "again", t0), store.ErrLeaseHeld, "finish twice")
		is(t, s.RenewJobLease(ctx, "job-missing", "w1", t0, time.Minute), store.ErrNotFound, "renew a missing job")
		is(t, s.SetJobProgress(ctx, "job-missing", "w1", 1), store.ErrNotFound, "progress of a missing job")
		is(t, s.FinishJob(ctx, "job-missing", "w1", jobs.StatusFailed, "", t0), store.ErrNotFound, "finish a missing job")
	}},
	{"FailExpired", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		short, long, queued := newJob("stack/a", t0), newJob("stack/b", t0.Add(time.Millisecond)), newJob("stack/c", t0.Add(2*time.Millisecond))
		for _, j := range []*jobs.Job{short, long} {
			ok(t, s.CreateJob(ctx, j))
		}
		_, err := s.ClaimJob(ctx, "w1", t0, time.Minute, 0)
		ok(t, err)
		_, err = s.ClaimJob(ctx, "w2", t0, time.Hour, 0)
		ok(t, err)
		ok(t, s.CreateJob(ctx, queued))
		failed, err := s.FailExpiredJobs(ctx, t0.Add(time.Minute), "lease expired")
		ok(t, err)
		eq(t, "failed at the lease's last instant", len(failed), 0)
		now := t0.Add(2 * time.Minute)
		failed, err = s.FailExpiredJobs(ctx, now, "lease expired")
		ok(t, err)
		if len(failed) != 1 || failed[0].ID != short.ID || failed[0].Status != jobs.StatusFailed || failed[0].Error != "lease expired" {
			t.Fatalf("FailExpiredJobs = %+v, want only %s failed", failed, short.ID)
		}
		got, err := s.GetJob(ctx, short.ID)
		ok(t, err)
		eq(t, "stored status", got.Status, jobs.StatusFailed)
		eq(t, "stored error", got.Error, "lease expired")
		sameTime(t, "finished_at", got.FinishedAt, now)
		is(t, s.FinishJob(ctx, short.ID, "w1", jobs.StatusSucceeded, "", now), store.ErrLeaseHeld, "finish after expiry")
		for _, id := range []string{long.ID, queued.ID} {
			got, err := s.GetJob(ctx, id)
			ok(t, err)
			if got.Status == jobs.StatusFailed {
				t.Errorf("job %s failed although its lease holds", id)
			}
		}
		// The failed job no longer holds its target.
		ok(t, s.CreateJob(ctx, newJob("stack/a", now)))
	}},
	{"ClaimFairSharePerOwner", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		// Owner A queues five jobs first, then B one: with at most two
		// running per owner, the third claim skips A's queue for B's job.
		var aIDs []string
		for i := range 5 {
			j := newJob(fmt.Sprintf("stack/a-%d", i), t0.Add(time.Duration(i)*time.Millisecond))
			j.OwnerID = "usr-a"
			ok(t, s.CreateJob(ctx, j))
			aIDs = append(aIDs, j.ID)
		}
		b := newJob("machine/b", t0.Add(time.Second))
		b.Kind, b.OwnerID = jobs.KindStop, "usr-b"
		ok(t, s.CreateJob(ctx, b))
		claim := func(want string) {
			t.Helper()
			j, err := s.ClaimJob(ctx, "w", t0.Add(time.Minute), time.Minute, 2)
			ok(t, err)
			eq(t, "claimed", j.ID, want)
		}
		claim(aIDs[0])
		claim(aIDs[1])
		claim(b.ID) // A is at its cap: B's later job goes first
		_, err := s.ClaimJob(ctx, "w", t0.Add(time.Minute), time.Minute, 2)
		is(t, err, store.ErrNotFound, "claim while only a capped owner's jobs wait")
		// Without a cap the oldest queued job is taken, whoever owns it.
		j, err := s.ClaimJob(ctx, "w2", t0.Add(time.Minute), time.Minute, 0)
		ok(t, err)
		eq(t, "uncapped claim", j.ID, aIDs[2])
		// A job of A that ends frees a place for A.
		ok(t, s.FinishJob(ctx, aIDs[0], "w", jobs.StatusSucceeded, "", t0.Add(2*time.Minute)))
		ok(t, s.FinishJob(ctx, aIDs[1], "w", jobs.StatusSucceeded, "", t0.Add(2*time.Minute)))
		claim(aIDs[3])
	}},
	{"CancelQueued", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		j := newJob("stack/stk-1", t0)
		ok(t, s.CreateJob(ctx, j))
		got, err := s.CancelJob(ctx, j.ID, "cancelled by alice", t0.Add(time.Second))
		ok(t, err)
		eq(t, "status", got.Status, jobs.StatusFailed)
		eq(t, "error", got.Error, "cancelled by alice")
		sameTime(t, "finished_at", got.FinishedAt, t0.Add(time.Second))
		stored, err := s.GetJob(ctx, j.ID)
		ok(t, err)
		eq(t, "stored status", stored.Status, jobs.StatusFailed)
		eq(t, "stored error", stored.Error, "cancelled by alice")
		// No worker may claim it now, and its target is free.
		_, err = s.ClaimJob(ctx, "w1", t0.Add(time.Minute), time.Minute, 0)
		is(t, err, store.ErrNotFound, "claim after cancel")
		queued, err := s.ListJobs(ctx, jobs.StatusQueued)
		ok(t, err)
		eq(t, "queued jobs", len(queued), 0)
		ok(t, s.CreateJob(ctx, newJob("stack/stk-1", t0.Add(2*time.Second))))
		// An ended job cannot be cancelled; a missing one is not found.
		_, err = s.CancelJob(ctx, j.ID, "again", t0)
		is(t, err, store.ErrConflict, "cancel a failed job")
		if err != nil && !strings.Contains(err.Error(), "failed") {
			t.Errorf("err = %v, want it to name the status", err)
		}
		_, err = s.CancelJob(ctx, "job-missing", "x", t0)
		is(t, err, store.ErrNotFound, "cancel a missing job")
	}},
	{"CancelQueuedRacesClaim", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		const jobCount = 12
		var ids []string
		for i := range jobCount {
			j := newJob(fmt.Sprintf("stack/r-%d", i), t0.Add(time.Duration(i)*time.Millisecond))
			ok(t, s.CreateJob(ctx, j))
			ids = append(ids, j.ID)
		}
		var wg sync.WaitGroup
		claimed := make(chan string, jobCount)
		cancelled := make(chan *jobs.Job, jobCount)
		errs := make(chan error, 2*jobCount)
		wg.Go(func() {
			for {
				j, err := s.ClaimJob(ctx, "w1", t0.Add(time.Hour), time.Minute, 0)
				if errors.Is(err, store.ErrNotFound) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				claimed <- j.ID
			}
		})
		for _, id := range ids {
			wg.Go(func() {
				j, err := s.CancelJob(ctx, id, "cancelled by test", t0.Add(time.Hour))
				if err != nil {
					errs <- err
					return
				}
				cancelled <- j
			})
		}
		wg.Wait()
		close(claimed)
		close(cancelled)
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		wasClaimed := map[string]bool{}
		for id := range claimed {
			wasClaimed[id] = true
		}
		for j := range cancelled {
			switch {
			case j.Status == jobs.StatusFailed && wasClaimed[j.ID]:
				t.Errorf("job %s was cancelled while queued and claimed too", j.ID)
			case j.Status == jobs.StatusRunning && !wasClaimed[j.ID]:
				t.Errorf("job %s is running but nobody claimed it", j.ID)
			case j.Status == jobs.StatusRunning && j.CancelReason != "cancelled by test":
				t.Errorf("running job %s has cancel reason %q", j.ID, j.CancelReason)
			}
		}
	}},
	{"CancelRunning", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		j := newJob("stack/stk-1", t0)
		ok(t, s.CreateJob(ctx, j))
		_, err := s.ClaimJob(ctx, "w1", t0, time.Minute, 0)
		ok(t, err)
		ok(t, s.RenewJobLease(ctx, j.ID, "w1", t0.Add(10*time.Second), time.Minute))
		got, err := s.CancelJob(ctx, j.ID, "cancelled by alice", t0.Add(20*time.Second))
		ok(t, err)
		eq(t, "status", got.Status, jobs.StatusRunning)
		eq(t, "cancel reason", got.CancelReason, "cancelled by alice")
		got, err = s.CancelJob(ctx, j.ID, "cancelled by bob", t0.Add(25*time.Second))
		ok(t, err)
		eq(t, "cancel reason after a second cancel", got.CancelReason, "cancelled by alice")
		// The worker's renewal still renews, and tells it to stop.
		err = s.RenewJobLease(ctx, j.ID, "w1", t0.Add(30*time.Second), time.Minute)
		is(t, err, store.ErrJobCancelled, "renew a cancelled job")
		stored, err := s.GetJob(ctx, j.ID)
		ok(t, err)
		eq(t, "stored status", stored.Status, jobs.StatusRunning)
		eq(t, "stored cancel reason", stored.CancelReason, "cancelled by alice")
		sameTime(t, "lease renewed while cancelled", stored.LeaseExpires, t0.Add(90*time.Second))
		expired, err := s.FailExpiredJobs(ctx, t0.Add(80*time.Second), "lease expired")
		ok(t, err)
		eq(t, "expired while the cancelled job's lease holds", len(expired), 0)
		// The worker fails it with the reason.
		ok(t, s.FinishJob(ctx, j.ID, "w1", jobs.StatusFailed, stored.CancelReason, t0.Add(40*time.Second)))
		stored, err = s.GetJob(ctx, j.ID)
		ok(t, err)
		eq(t, "status after finish", stored.Status, jobs.StatusFailed)
		eq(t, "error after finish", stored.Error, "cancelled by alice")
		_, err = s.CancelJob(ctx, j.ID, "late", t0.Add(time.Minute))
		is(t, err, store.ErrConflict, "cancel a finished job")
	}},
	{"FailRunning", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		running, queued := newJob("stack/a", t0), newJob("stack/b", t0.Add(time.Millisecond))
		ok(t, s.CreateJob(ctx, running))
		_, err := s.ClaimJob(ctx, "dead", t0, time.Hour, 0)
		ok(t, err)
		ok(t, s.CreateJob(ctx, queued))
		now := t0.Add(time.Second) // long before the lease ends
		failed, err := s.FailRunningJobs(ctx, now, "server restarted")
		ok(t, err)
		if len(failed) != 1 || failed[0].ID != running.ID || failed[0].Status != jobs.StatusFailed || failed[0].Error != "server restarted" {
			t.Fatalf("FailRunningJobs = %+v, want only %s failed", failed, running.ID)
		}
		got, err := s.GetJob(ctx, running.ID)
		ok(t, err)
		eq(t, "stored status", got.Status, jobs.StatusFailed)
		sameTime(t, "finished_at", got.FinishedAt, now)
		got, err = s.GetJob(ctx, queued.ID)
		ok(t, err)
		eq(t, "queued job", got.Status, jobs.StatusQueued)
		is(t, s.FinishJob(ctx, running.ID, "dead", jobs.StatusSucceeded, "", now), store.ErrLeaseHeld, "finish after FailRunningJobs")
		failed, err = s.FailRunningJobs(ctx, now, "again")
		ok(t, err)
		eq(t, "failed twice", len(failed), 0)
	}},
	{"List", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		var ids []string
		for i := range 4 {
			j := newJob(fmt.Sprintf("stack/%d", i), t0.Add(time.Duration(i)*time.Second))
			ok(t, s.CreateJob(ctx, j))
			ids = append(ids, j.ID)
		}
		_, err := s.ClaimJob(ctx, "w", t0, time.Minute, 0) // ids[0]
		ok(t, err)
		_, err = s.ClaimJob(ctx, "w", t0, time.Minute, 0) // ids[1]
		ok(t, err)
		ok(t, s.FinishJob(ctx, ids[1], "w", jobs.StatusSucceeded, "", t0))
		check := func(want []string, statuses ...jobs.Status) {
			t.Helper()
			got, err := s.ListJobs(ctx, statuses...)
			ok(t, err)
			var gotIDs []string
			for _, j := range got {
				gotIDs = append(gotIDs, j.ID)
			}
			if fmt.Sprint(gotIDs) != fmt.Sprint(want) {
				t.Errorf("ListJobs(%v) = %v, want %v", statuses, gotIDs, want)
			}
		}
		check(ids)
		check([]string{ids[2], ids[3]}, jobs.StatusQueued)
		check([]string{ids[0], ids[2], ids[3]}, jobs.StatusQueued, jobs.StatusRunning)
		check([]string{ids[1]}, jobs.StatusSucceeded)
		check(nil, jobs.StatusFailed)
	}},
}

var eventCases = []testCase{
	{"AppendList", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		j := newJob("stack/stk-1", t0)
		ok(t, s.CreateJob(ctx, j))
		evs := []*jobs.Event{
			{Kind: jobs.EventPhase, Message: "init", At: t0},
			{Kind: jobs.EventOutput, Message: "Terraform has been successfully initialized!", At: t0.Add(time.Second)},
			{Kind: jobs.EventProgress, Percentage: 50, At: t0.Add(2 * time.Second)},
		}
		ok(t, s.AppendEvents(ctx, j.ID, evs...))
		for i, e := range evs {
			eq(t, "assigned seq", e.Seq, int64(i+1))
			eq(t, "assigned job id", e.JobID, j.ID)
		}
		ok(t, s.AppendEvents(ctx, j.ID, &jobs.Event{Kind: jobs.EventDone, Message: "ok"}))
		all, err := s.ListEvents(ctx, j.ID, 0, 0)
		ok(t, err)
		if len(all) != 4 {
			t.Fatalf("ListEvents = %d events, want 4", len(all))
		}
		for i, e := range all {
			eq(t, "seq", e.Seq, int64(i+1))
		}
		eq(t, "kind", all[1].Kind, jobs.EventOutput)
		eq(t, "message", all[1].Message, "Terraform has been successfully initialized!")
		eq(t, "percentage", all[2].Percentage, 50)
		sameTime(t, "at", all[1].At, t0.Add(time.Second))
		if all[3].At.IsZero() {
			t.Error("zero At not filled in")
		}
		page, err := s.ListEvents(ctx, j.ID, 1, 2)
		ok(t, err)
		if len(page) != 2 || page[0].Seq != 2 || page[1].Seq != 3 {
			t.Errorf("ListEvents(after 1, limit 2) = %v", page)
		}
		rest, err := s.ListEvents(ctx, j.ID, 4, 0)
		ok(t, err)
		eq(t, "events after the last", len(rest), 0)
		is(t, s.AppendEvents(ctx, "job-missing", &jobs.Event{Kind: jobs.EventPhase}), store.ErrNotFound, "append to a missing job")
		none, err := s.ListEvents(ctx, "job-missing", 0, 0)
		ok(t, err)
		eq(t, "events of a missing job", len(none), 0)
	}},
	{"SeqGaplessUnderConcurrentAppends", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		a, b := newJob("stack/a", t0), newJob("stack/b", t0)
		ok(t, s.CreateJob(ctx, a))
		ok(t, s.CreateJob(ctx, b))
		const writers, appends = 6, 15
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Go(func() {
				for i := range appends {
					job := a.ID
					if w%2 == 1 {
						job = b.ID
					}
					batch := []*jobs.Event{{Kind: jobs.EventOutput, Message: fmt.Sprintf("w%d-%d-x", w, i)}}
					if i%3 == 0 {
						batch = append(batch, &jobs.Event{Kind: jobs.EventOutput, Message: fmt.Sprintf("w%d-%d-y", w, i)})
					}
					if err := s.AppendEvents(ctx, job, batch...); err != nil {
						errs <- err
						return
					}
					if len(batch) == 2 && batch[1].Seq != batch[0].Seq+1 {
						errs <- fmt.Errorf("one append got seqs %d and %d", batch[0].Seq, batch[1].Seq)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		perJob := (writers / 2) * (appends + (appends+2)/3)
		for _, id := range []string{a.ID, b.ID} {
			evs, err := s.ListEvents(ctx, id, 0, 0)
			ok(t, err)
			if len(evs) != perJob {
				t.Fatalf("job %s has %d events, want %d", id, len(evs), perJob)
			}
			for i, e := range evs {
				if e.Seq != int64(i+1) {
					t.Fatalf("job %s event %d has seq %d: gap or duplicate", id, i, e.Seq)
				}
			}
		}
	}},
}

var leaseCases = []testCase{
	{"AcquireRenewRefuseStealRelease", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		_, err := s.GetLease(ctx, "checker")
		is(t, err, store.ErrNotFound, "GetLease before any")
		l, err := s.AcquireLease(ctx, "checker", "a", t0, time.Minute)
		ok(t, err)
		eq(t, "holder", l.Holder, "a")
		sameTime(t, "expires", l.Expires, t0.Add(time.Minute))
		l, err = s.AcquireLease(ctx, "checker", "a", t0.Add(30*time.Second), time.Minute)
		ok(t, err)
		sameTime(t, "renewed expiry", l.Expires, t0.Add(90*time.Second))
		_, err = s.AcquireLease(ctx, "checker", "b", t0.Add(89*time.Second), time.Minute)
		is(t, err, store.ErrLeaseHeld, "another holder before expiry")
		got, err := s.GetLease(ctx, "checker")
		ok(t, err)
		eq(t, "holder after refusal", got.Holder, "a")
		sameTime(t, "expiry after refusal", got.Expires, t0.Add(90*time.Second))
		l, err = s.AcquireLease(ctx, "checker", "b", t0.Add(90*time.Second), time.Minute)
		ok(t, err)
		eq(t, "holder after expiry", l.Holder, "b")
		_, err = s.AcquireLease(ctx, "checker", "a", t0.Add(100*time.Second), time.Minute)
		is(t, err, store.ErrLeaseHeld, "old holder after the steal")
		ok(t, s.ReleaseLease(ctx, "checker", "a")) // not held by a: no-op
		got, err = s.GetLease(ctx, "checker")
		ok(t, err)
		eq(t, "holder after a foreign release", got.Holder, "b")
		ok(t, s.ReleaseLease(ctx, "checker", "b"))
		_, err = s.GetLease(ctx, "checker")
		is(t, err, store.ErrNotFound, "GetLease after release")
		ok(t, s.ReleaseLease(ctx, "checker", "b"))
		l, err = s.AcquireLease(ctx, "checker", "a", t0.Add(100*time.Second), time.Minute)
		ok(t, err)
		eq(t, "holder after release", l.Holder, "a")
		// Leases are independent by name.
		_, err = s.AcquireLease(ctx, "rating", "b", t0.Add(100*time.Second), time.Minute)
		ok(t, err)
	}},
	{"ConcurrentAcquireOneWinner", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		const n = 8
		var wg sync.WaitGroup
		results := make([]error, n)
		for i := range n {
			wg.Go(func() {
				_, results[i] = s.AcquireLease(ctx, "singleton", fmt.Sprintf("h%d", i), t0, time.Minute)
			})
		}
		wg.Wait()
		winners := 0
		for _, err := range results {
			switch {
			case err == nil:
				winners++
			case !errors.Is(err, store.ErrLeaseHeld):
				t.Errorf("acquire: %v", err)
			}
		}
		eq(t, "winners", winners, 1)
	}},
}
