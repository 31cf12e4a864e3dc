package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	mgo "go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"golang.org/x/sync/errgroup"

	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/store"
)

// ---- jobs ---------------------------------------------------------------------
//
// A job is one immutable core document (jobs) plus parts (job_parts), each
// written once by the one caller entitled to it:
//
//	<id>/claim     inserted by the worker that claims the job: the unique
//	               _id makes exactly one ClaimJob win (SQLite: UPDATE …
//	               WHERE id = (SELECT … queued) in one transaction)
//	<id>/lease     the lease renewals, written only by the claim's worker
//	<id>/progress  the percentage, written only by the claim's worker
//	<id>/end       inserted by FinishJob or FailExpiredJobs: the unique _id
//	               makes exactly one of them end the job
//	<id>/cancel    inserted by CancelJob on a running job: the worker's next
//	               RenewJobLease sees it; the first reason stays
//
// CancelJob of a queued job inserts the claim itself, carrying the end
// (status failed, the reason): one insert both keeps every worker from
// claiming the job and ends it.
//
// The job's status is derived: queued without a claim, running with a claim
// and no end, and the end's status after. The core's "st" field is only a
// hint that narrows queries (it may lag behind the parts, never lead them).
//
// One active job per target: each job of a target takes the next number of
// the target's sequence (unique index on target, tseq), after checking that
// the job holding the previous number has ended. Two creators that read the
// same head race for the same number and one gets a duplicate key (SQLite
// uses a partial unique index on active jobs).

type jobDoc struct {
	ID           string             `bson:"_id"`
	Kind         string             `bson:"kind"`
	OwnerID      string             `bson:"owner_id"`
	Target       string             `bson:"target"`
	TSeq         int64              `bson:"tseq"`
	StackID      string             `bson:"stack_id"`
	MachineID    string             `bson:"machine_id"`
	CredentialID string             `bson:"credential_id"`
	CreatedAt    int64              `bson:"created_at"`
	Ord          primitive.ObjectID `bson:"ord"`
	St           string             `bson:"st"` // status hint
}

type partDoc struct {
	ID         string `bson:"_id"`
	J          string `bson:"j"`
	P          string `bson:"p"`
	Worker     string `bson:"worker,omitempty"`
	StartedAt  int64  `bson:"started_at,omitempty"`
	Lease      int64  `bson:"lease,omitempty"`
	Pct        int    `bson:"pct,omitempty"`
	Status     string `bson:"status,omitempty"`
	Error      string `bson:"error,omitempty"`
	FinishedAt int64  `bson:"finished_at,omitempty"`
}

const (
	partClaim    = "claim"
	partLease    = "lease"
	partProgress = "progress"
	partEnd      = "end"
	partCancel   = "cancel"
)

func partID(jobID, part string) string { return jobID + "/" + part }

// parts is what a job's parts say.
type parts struct {
	claim, lease, progress, end, cancel *partDoc
}

func collectParts(docs []partDoc) map[string]*parts {
	out := make(map[string]*parts)
	for i := range docs {
		d := &docs[i]
		p := out[d.J]
		if p == nil {
			p = &parts{}
			out[d.J] = p
		}
		switch d.P {
		case partClaim:
			p.claim = d
			if d.Status != "" { // a queued job's cancel: claimed and ended at once
				p.end = d
			}
		case partLease:
			p.lease = d
		case partProgress:
			p.progress = d
		case partEnd:
			p.end = d
		case partCancel:
			p.cancel = d
		}
	}
	return out
}

func (p *parts) status() jobs.Status {
	switch {
	case p == nil || p.claim == nil:
		return jobs.StatusQueued
	case p.end == nil:
		return jobs.StatusRunning
	}
	return jobs.Status(p.end.Status)
}

// leaseExpires is the later of the claim's lease and the holder's renewal.
func (p *parts) leaseExpires() int64 {
	if p == nil || p.claim == nil {
		return 0
	}
	l := p.claim.Lease
	if p.lease != nil && p.lease.Worker == p.claim.Worker && p.lease.Lease > l {
		l = p.lease.Lease
	}
	return l
}

func assemble(d *jobDoc, p *parts) *jobs.Job {
	j := &jobs.Job{ID: d.ID, Kind: jobs.Kind(d.Kind), OwnerID: d.OwnerID, Target: d.Target, StackID: d.StackID,
		MachineID: d.MachineID, CredentialID: d.CredentialID, Status: p.status(), CreatedAt: store.FromNanos(d.CreatedAt)}
	if p == nil {
		return j
	}
	if p.claim != nil {
		j.Worker, j.StartedAt, j.LeaseExpires = p.claim.Worker, fromOpt(p.claim.StartedAt), fromOpt(p.leaseExpires())
	}
	if p.progress != nil {
		j.Percentage = p.progress.Pct
	}
	if p.end != nil {
		j.Error, j.FinishedAt = p.end.Error, fromOpt(p.end.FinishedAt)
	}
	if p.cancel != nil {
		j.CancelReason = p.cancel.Error
	}
	return j
}

// partsOf reads the parts of the given jobs. Parts have known _ids: a few
// jobs' are fetched by _id, one lookup each (FerretDB 1.x pushes only a
// lone _id equality down to its storage and scans the collection for
// anything else); many jobs' with one $in query.
func (s *Store) partsOf(ctx context.Context, ids ...string) (map[string]*parts, error) {
	all := make([]string, 0, 5*len(ids))
	for _, id := range ids {
		for _, p := range []string{partClaim, partLease, partProgress, partEnd, partCancel} {
			all = append(all, partID(id, p))
		}
	}
	var docs []partDoc
	if len(all) > 40 {
		var err error
		if docs, err = allOf[partDoc](ctx, s.jobParts, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: all}}}}); err != nil {
			return nil, err
		}
		return collectParts(docs), nil
	}
	found := make([]*partDoc, len(all))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, id := range all {
		g.Go(func() error {
			var d partDoc
			err := one(gctx, s.jobParts, byID(id), &d, "part "+id)
			switch {
			case err == nil:
				found[i] = &d
			case !errors.Is(err, store.ErrNotFound):
				return err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, d := range found {
		if d != nil {
			docs = append(docs, *d)
		}
	}
	return collectParts(docs), nil
}

// hint records a job's status in its core document to narrow later
// queries. It is advisory, so a failure is only logged.
func (s *Store) hint(ctx context.Context, id string, st jobs.Status) {
	if _, err := s.jobs.UpdateOne(ctx, byID(id), bson.D{{Key: "$set", Value: bson.D{{Key: "st", Value: string(st)}}}}); err != nil {
		s.log.Warn("record job status hint", "job", id, "error", err)
	}
}

// maxRetries bounds the re-read-and-retry loops of the unique-insert
// protocols; each lost round means another writer made progress.
const maxRetries = 64

// CreateJob queues a job; an active job on the same Target is an
// *jobs.ActiveJobError.
func (s *Store) CreateJob(ctx context.Context, j *jobs.Job) error {
	w, err := store.CheckNewJob(j, s.now())
	if err != nil {
		return err
	}
	id, created, cn := w.ID, w.CreatedAt, w.Created
	d := jobDoc{ID: id, Kind: string(j.Kind), OwnerID: j.OwnerID, Target: j.Target, StackID: j.StackID, MachineID: j.MachineID,
		CredentialID: j.CredentialID, CreatedAt: cn, Ord: ord(), St: string(jobs.StatusQueued)}
	for range maxRetries {
		var head jobDoc
		err := one(ctx, s.jobs, bson.D{{Key: "target", Value: j.Target}}, &head, "job of "+j.Target,
			options.FindOne().SetSort(sortBy("-tseq")))
		switch {
		case errors.Is(err, store.ErrNotFound):
			d.TSeq = 1
		case err != nil:
			return fmt.Errorf("create job %s: %w", id, err)
		default:
			p, err := s.partsOf(ctx, head.ID)
			if err != nil {
				return fmt.Errorf("create job %s: %w", id, err)
			}
			if p[head.ID].status().Active() {
				return fmt.Errorf("create job %s: %w", id, &jobs.ActiveJobError{JobID: head.ID, Target: j.Target})
			}
			d.TSeq = head.TSeq + 1
		}
		_, err = s.jobs.InsertOne(ctx, d)
		if err == nil {
			store.SetQueued(j, id, created)
			return nil
		}
		if !mgo.IsDuplicateKeyError(err) {
			return fmt.Errorf("create job %s: %w", id, mapErr(err))
		}
		var same jobDoc
		if e := one(ctx, s.jobs, byID(id), &same, "job "+id); e == nil {
			return fmt.Errorf("create job %s: id in use: %w", id, store.ErrConflict)
		}
		// Another job took the target's next number: look again.
	}
	return fmt.Errorf("create job %s: target %s too contended: %w", id, j.Target, store.ErrConflict)
}

// GetJob returns the job with id.
func (s *Store) GetJob(ctx context.Context, id string) (*jobs.Job, error) {
	if err := store.CheckKey("get job", "id", id); err != nil {
		return nil, err
	}
	var d jobDoc
	if err := one(ctx, s.jobs, byID(id), &d, "job "+id); err != nil {
		return nil, fmt.Errorf("get job: %w", err)
	}
	p, err := s.partsOf(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	return assemble(&d, p[id]), nil
}

// ListJobs returns jobs of the given statuses (all when none), oldest
// first. The status hints select candidates (a job's hint is its true
// status or an earlier one), and the parts decide.
func (s *Store) ListJobs(ctx context.Context, statuses ...jobs.Status) ([]*jobs.Job, error) {
	if err := store.CheckJobStatuses(statuses); err != nil {
		return nil, err
	}
	want := map[jobs.Status]bool{}
	filter := bson.D{}
	if len(statuses) > 0 {
		hints := []string{string(jobs.StatusQueued), string(jobs.StatusRunning)}
		for _, st := range statuses {
			want[st] = true
			if !st.Active() {
				hints = append(hints, string(st))
			}
		}
		filter = bson.D{{Key: "st", Value: bson.D{{Key: "$in", Value: hints}}}}
	}
	docs, err := allOf[jobDoc](ctx, s.jobs, filter, options.Find().SetSort(sortBy("created_at", "ord")))
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	if len(docs) == 0 {
		return []*jobs.Job{}, nil
	}
	var ps map[string]*parts
	if len(statuses) == 0 {
		partDocs, err := allOf[partDoc](ctx, s.jobParts, bson.D{})
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		ps = collectParts(partDocs)
	} else {
		ids := make([]string, len(docs))
		for i := range docs {
			ids[i] = docs[i].ID
		}
		if ps, err = s.partsOf(ctx, ids...); err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
	}
	out := []*jobs.Job{}
	for i := range docs {
		j := assemble(&docs[i], ps[docs[i].ID])
		if len(want) == 0 || want[j.Status] {
			out = append(out, j)
		}
	}
	return out, nil
}

// ClaimJob moves the oldest queued job to running for worker, leased until
// now+lease. Claimers race by inserting the job's claim part: the unique
// _id lets exactly one of them win; the others move on to the next job.
//
// With maxPerOwner > 0 the owners already running that many jobs are
// counted first and their queued jobs skipped. Without multi-document
// transactions the count and the claim are two steps, so the cap is
// approximate: claims racing on other replicas for the same owner (each
// replica claims one job at a time) can each pass the count, and an owner
// may briefly run up to maxPerOwner + replicas - 1 jobs; it never grows
// past that, and the next claims see the true count.
func (s *Store) ClaimJob(ctx context.Context, worker string, now time.Time, lease time.Duration, maxPerOwner int) (*jobs.Job, error) {
	lt, err := store.CheckClaim(worker, s.nowOr(now), lease, maxPerOwner)
	if err != nil {
		return nil, err
	}
	nn, ln := lt.Now, lt.Expires
	for range maxRetries {
		filter := bson.D{{Key: "st", Value: string(jobs.StatusQueued)}}
		if maxPerOwner > 0 {
			full, err := s.ownersAtMax(ctx, maxPerOwner)
			if err != nil {
				return nil, fmt.Errorf("claim job: %w", err)
			}
			if len(full) > 0 {
				filter = append(filter, bson.E{Key: "owner_id", Value: bson.D{{Key: "$nin", Value: full}}})
			}
		}
		docs, err := allOf[jobDoc](ctx, s.jobs, filter,
			options.Find().SetSort(sortBy("created_at", "ord")).SetLimit(16))
		if err != nil {
			return nil, fmt.Errorf("claim job: %w", err)
		}
		if len(docs) == 0 {
			return nil, fmt.Errorf("claim job: %w", store.NotFoundf("queued job"))
		}
		for i := range docs {
			d := &docs[i]
			claim := partDoc{ID: partID(d.ID, partClaim), J: d.ID, P: partClaim, Worker: worker, StartedAt: nn, Lease: ln}
			_, err := s.jobParts.InsertOne(ctx, claim)
			if err == nil {
				s.hint(ctx, d.ID, jobs.StatusRunning)
				return assemble(d, &parts{claim: &claim}), nil
			}
			if !mgo.IsDuplicateKeyError(err) {
				return nil, fmt.Errorf("claim job: %w", mapErr(err))
			}
			// Claimed by another worker: bring the hint up to date so the
			// next query skips it.
			if p, err := s.partsOf(ctx, d.ID); err == nil {
				s.hint(ctx, d.ID, p[d.ID].status())
			}
		}
	}
	return nil, fmt.Errorf("claim job: queue too contended: %w", store.ErrNotFound)
}

// ownersAtMax returns the owners with at least max running jobs. The
// running hints select the candidates and their parts decide.
func (s *Store) ownersAtMax(ctx context.Context, max int) ([]string, error) {
	docs, err := allOf[jobDoc](ctx, s.jobs, bson.D{{Key: "st", Value: string(jobs.StatusRunning)}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "owner_id", Value: 1}}))
	if err != nil || len(docs) < max {
		return nil, err
	}
	ids := make([]string, len(docs))
	for i := range docs {
		ids[i] = docs[i].ID
	}
	ps, err := s.partsOf(ctx, ids...)
	if err != nil {
		return nil, err
	}
	running := map[string]int{}
	var full []string
	for i := range docs {
		if ps[docs[i].ID].status() != jobs.StatusRunning {
			continue
		}
		owner := docs[i].OwnerID
		running[owner]++
		if running[owner] == max {
			full = append(full, owner)
		}
	}
	return full, nil
}

// heldParts reads a job's parts and checks that worker holds it running:
// ErrNotFound for a missing job, ErrLeaseHeld for one not running under
// worker.
func (s *Store) heldParts(ctx context.Context, id, worker string) (*parts, error) {
	ps, err := s.partsOf(ctx, id)
	if err != nil {
		return nil, err
	}
	p := ps[id]
	if p == nil || p.claim == nil {
		var d jobDoc
		if err := one(ctx, s.jobs, byID(id), &d, "job "+id); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("job %s is queued, not running under %s: %w", id, worker, store.ErrLeaseHeld)
	}
	if p.end != nil {
		return nil, fmt.Errorf("job %s is %s, not running under %s: %w", id, p.end.Status, worker, store.ErrLeaseHeld)
	}
	if p.claim.Worker != worker {
		return nil, fmt.Errorf("job %s runs under %s, not %s: %w", id, p.claim.Worker, worker, store.ErrLeaseHeld)
	}
	return p, nil
}

// RenewJobLease extends the lease of a running job worker holds to
// now+lease. Only the holder writes the lease part; a FailExpiredJobs that
// ended the job meanwhile is seen by the check after the write.
func (s *Store) RenewJobLease(ctx context.Context, id, worker string, now time.Time, lease time.Duration) error {
	ln, err := store.CheckRenew(id, worker, s.nowOr(now), lease)
	if err != nil {
		return err
	}
	p, err := s.heldParts(ctx, id, worker)
	if err != nil {
		return fmt.Errorf("renew job %s lease: %w", id, err)
	}
	doc := partDoc{ID: partID(id, partLease), J: id, P: partLease, Worker: worker, Lease: ln}
	if _, err := s.jobParts.ReplaceOne(ctx, byID(doc.ID), doc, options.Replace().SetUpsert(true)); err != nil {
		return fmt.Errorf("renew job %s lease: %w", id, mapErr(err))
	}
	var end partDoc
	switch err := one(ctx, s.jobParts, byID(partID(id, partEnd)), &end, "end of job "+id); {
	case err == nil:
		return fmt.Errorf("renew job %s lease: job ended %s meanwhile: %w", id, end.Status, store.ErrLeaseHeld)
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("renew job %s lease: %w", id, err)
	}
	if p.cancel != nil {
		// The lease is renewed: the worker holds the job while it stops.
		return fmt.Errorf("renew job %s lease: %s: %w", id, p.cancel.Error, store.ErrJobCancelled)
	}
	return nil
}

// CancelJob fails a queued job at once by inserting its claim carrying the
// end (the claim's unique _id keeps any worker from claiming it after), or
// marks a running job with a cancel part its worker's next renewal sees.
func (s *Store) CancelJob(ctx context.Context, id, reason string, at time.Time) (*jobs.Job, error) {
	an, err := store.CheckCancel(id, reason, s.nowOr(at))
	if err != nil {
		return nil, err
	}
	var d jobDoc
	if err := one(ctx, s.jobs, byID(id), &d, "job "+id); err != nil {
		return nil, fmt.Errorf("cancel job: %w", err)
	}
	for range maxRetries {
		ps, err := s.partsOf(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("cancel job %s: %w", id, err)
		}
		p := ps[id]
		if p == nil {
			p = &parts{}
		}
		var part partDoc
		switch st := p.status(); st {
		case jobs.StatusQueued:
			part = partDoc{ID: partID(id, partClaim), J: id, P: partClaim, Status: string(jobs.StatusFailed), Error: reason, FinishedAt: an}
		case jobs.StatusRunning:
			if p.cancel != nil {
				return assemble(&d, p), nil
			}
			part = partDoc{ID: partID(id, partCancel), J: id, P: partCancel, Error: reason, FinishedAt: an}
		default:
			return nil, fmt.Errorf("cancel job %s: job %s is %s; only queued or running jobs can be cancelled: %w", id, id, st, store.ErrConflict)
		}
		if _, err := s.jobParts.InsertOne(ctx, part); err != nil {
			if mgo.IsDuplicateKeyError(err) {
				continue // claimed, ended or cancelled meanwhile: look again
			}
			return nil, fmt.Errorf("cancel job %s: %w", id, mapErr(err))
		}
		if part.P == partClaim {
			s.hint(ctx, id, jobs.StatusFailed)
			p.claim, p.end = &part, &part
		} else {
			p.cancel = &part
		}
		return assemble(&d, p), nil
	}
	return nil, fmt.Errorf("cancel job %s: too contended: %w", id, store.ErrConflict)
}

// SetJobProgress records the percentage (0–100) of a running job worker
// holds; only the holder writes the progress part.
func (s *Store) SetJobProgress(ctx context.Context, id, worker string, percentage int) error {
	if err := store.CheckProgress(id, worker, percentage); err != nil {
		return err
	}
	if _, err := s.heldParts(ctx, id, worker); err != nil {
		return fmt.Errorf("set job %s progress: %w", id, err)
	}
	doc := partDoc{ID: partID(id, partProgress), J: id, P: partProgress, Pct: percentage}
	if _, err := s.jobParts.ReplaceOne(ctx, byID(doc.ID), doc, options.Replace().SetUpsert(true)); err != nil {
		return fmt.Errorf("set job %s progress: %w", id, mapErr(err))
	}
	return nil
}

// FinishJob ends a running job worker holds as succeeded or failed at at
// (now when zero): its end part's unique _id decides against a concurrent
// FailExpiredJobs.
func (s *Store) FinishJob(ctx context.Context, id, worker string, status jobs.Status, errMsg string, at time.Time) error {
	an, err := store.CheckFinish(id, worker, status, s.nowOr(at))
	if err != nil {
		return err
	}
	if _, err := s.heldParts(ctx, id, worker); err != nil {
		return fmt.Errorf("finish job %s: %w", id, err)
	}
	end := partDoc{ID: partID(id, partEnd), J: id, P: partEnd, Worker: worker, Status: string(status), Error: errMsg, FinishedAt: an}
	if _, err := s.jobParts.InsertOne(ctx, end); err != nil {
		if mgo.IsDuplicateKeyError(err) {
			return fmt.Errorf("finish job %s: another caller ended it first: %w", id, store.ErrLeaseHeld)
		}
		return fmt.Errorf("finish job %s: %w", id, mapErr(err))
	}
	s.hint(ctx, id, status)
	return nil
}

// FailExpiredJobs fails every running job whose lease ended before now,
// with reason as its error, and returns them. Each failure is the insert
// of the job's end part, so a job is failed once, and never after its
// worker finished it.
func (s *Store) FailExpiredJobs(ctx context.Context, now time.Time, reason string) ([]*jobs.Job, error) {
	out, err := s.failRunning(ctx, now, reason, true)
	if err != nil {
		return out, fmt.Errorf("fail expired jobs: %w", err)
	}
	return out, nil
}

// FailRunningJobs fails every running job, whatever its lease, with reason
// as its error, and returns them; like FailExpiredJobs, each failure is the
// insert of the job's end part.
func (s *Store) FailRunningJobs(ctx context.Context, now time.Time, reason string) ([]*jobs.Job, error) {
	out, err := s.failRunning(ctx, now, reason, false)
	if err != nil {
		return out, fmt.Errorf("fail running jobs: %w", err)
	}
	return out, nil
}

func (s *Store) failRunning(ctx context.Context, now time.Time, reason string, expiredOnly bool) ([]*jobs.Job, error) {
	nn, err := store.UnixNanos("now", s.nowOr(now))
	if err != nil {
		return nil, err
	}
	docs, err := allOf[jobDoc](ctx, s.jobs, bson.D{{Key: "st", Value: bson.D{{Key: "$in", Value: []string{string(jobs.StatusQueued), string(jobs.StatusRunning)}}}}},
		options.Find().SetSort(sortBy("created_at", "ord")))
	if err != nil {
		return nil, err
	}
	out := []*jobs.Job{}
	if len(docs) == 0 {
		return out, nil
	}
	ids := make([]string, len(docs))
	for i := range docs {
		ids[i] = docs[i].ID
	}
	ps, err := s.partsOf(ctx, ids...)
	if err != nil {
		return nil, err
	}
	for i := range docs {
		d := &docs[i]
		p := ps[d.ID]
		if p.status() != jobs.StatusRunning || (expiredOnly && p.leaseExpires() >= nn) {
			continue
		}
		end := partDoc{ID: partID(d.ID, partEnd), J: d.ID, P: partEnd, Status: string(jobs.StatusFailed), Error: reason, FinishedAt: nn}
		if _, err := s.jobParts.InsertOne(ctx, end); err != nil {
			if mgo.IsDuplicateKeyError(err) {
				continue // its worker, or another replica, ended it first
			}
			return out, mapErr(err)
		}
		s.hint(ctx, d.ID, jobs.StatusFailed)
		p.end = &end
		out = append(out, assemble(d, p))
	}
	return out, nil
}

// ---- events -------------------------------------------------------------------
//
// An append is one document holding the batch's events with seqs
// first..last, whose _id is <job>/<first>. The appender inserts at the seq
// after the job's last batch: of two appenders aiming at the same seq one
// wins the _id and the other moves on, so seqs stay gapless and one call's
// events consecutive (SQLite assigns max(seq)+1 inside a write
// transaction). The batches form a chain, each starting right after the one
// before, so the appender finds the free seq by following it from a hint
// (event_heads: the job's next seq as last written, possibly behind), and
// readers follow it too: every step is a lookup by _id.

type eventDoc struct {
	ID    string         `bson:"_id"`
	J     string         `bson:"j"`
	First int64          `bson:"first"`
	Last  int64          `bson:"last"`
	Evs   []eventItemDoc `bson:"evs"`
}

type eventItemDoc struct {
	At   int64  `bson:"at"`
	Kind string `bson:"kind"`
	Msg  string `bson:"msg"`
	Pct  int    `bson:"pct"`
}

type eventHeadDoc struct {
	ID   string `bson:"_id"`
	Next int64  `bson:"next"`
}

func eventID(jobID string, first int64) string { return fmt.Sprintf("%s/%020d", jobID, first) }

// batchAt returns the batch starting at seq, or nil.
func (s *Store) batchAt(ctx context.Context, jobID string, seq int64) (*eventDoc, error) {
	var d eventDoc
	err := one(ctx, s.events, byID(eventID(jobID, seq)), &d, "events")
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// AppendEvents appends events to an existing job in order, assigning each
// the next Seq (and JobID, and At when zero).
func (s *Store) AppendEvents(ctx context.Context, jobID string, events ...*jobs.Event) error {
	ats, err := store.CheckEvents(jobID, events, s.now)
	if err != nil || len(events) == 0 {
		return err
	}
	items := make([]eventItemDoc, len(events))
	for i, e := range events {
		items[i] = eventItemDoc{At: ats[i], Kind: string(e.Kind), Msg: e.Message, Pct: e.Percentage}
	}
	next := int64(1)
	var head eventHeadDoc
	switch err := one(ctx, s.eventHeads, byID(jobID), &head, "event head"); {
	case err == nil && head.Next > 1:
		next = head.Next
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("append events to job %s: %w", jobID, err)
	}
	if next == 1 {
		// The first append checks the job exists; jobs are never deleted.
		var d jobDoc
		if err := one(ctx, s.jobs, byID(jobID), &d, "job "+jobID, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})); err != nil {
			return fmt.Errorf("append events to job %s: %w", jobID, err)
		}
	}
	for range maxRetries * 16 {
		doc := eventDoc{ID: eventID(jobID, next), J: jobID, First: next, Last: next + int64(len(items)) - 1, Evs: items}
		_, err := s.events.InsertOne(ctx, doc)
		if err == nil {
			for i, e := range events {
				e.JobID, e.Seq, e.At = jobID, next+int64(i), store.FromNanos(items[i].At)
			}
			// Only a hint: a stale one costs the next appender a lookup.
			if _, err := s.eventHeads.ReplaceOne(ctx, byID(jobID), eventHeadDoc{ID: jobID, Next: doc.Last + 1}, options.Replace().SetUpsert(true)); err != nil && !mgo.IsDuplicateKeyError(err) {
				s.log.Warn("record event head", "job", jobID, "error", err)
			}
			return nil
		}
		if !mgo.IsDuplicateKeyError(err) {
			return fmt.Errorf("append events to job %s: %w", jobID, mapErr(err))
		}
		// A batch starts at next: skip past it.
		taken, err := s.batchAt(ctx, jobID, next)
		if err != nil {
			return fmt.Errorf("append events to job %s: %w", jobID, err)
		}
		if taken != nil {
			next = taken.Last + 1
		}
	}
	return fmt.Errorf("append events to job %s: too contended: %w", jobID, store.ErrConflict)
}

// ListEvents returns a job's events with Seq > afterSeq in order, at most
// limit (all when limit <= 0). A follower's position is the end of a batch:
// from there it follows the batch chain by _id (a few new batches); a
// whole list, or a position inside a batch, queries the job's batches.
func (s *Store) ListEvents(ctx context.Context, jobID string, afterSeq int64, limit int) ([]*jobs.Event, error) {
	if err := store.CheckKey("list events", "job id", jobID); err != nil {
		return nil, err
	}
	out := []*jobs.Event{}
	emit := func(d *eventDoc) bool {
		for i, it := range d.Evs {
			seq := d.First + int64(i)
			if seq <= afterSeq {
				continue
			}
			if limit > 0 && len(out) == limit {
				return false
			}
			out = append(out, &jobs.Event{JobID: jobID, Seq: seq, At: store.FromNanos(it.At), Kind: jobs.EventKind(it.Kind), Message: it.Msg, Percentage: it.Pct})
		}
		return limit <= 0 || len(out) < limit
	}
	var d *eventDoc
	if afterSeq > 0 {
		var err error
		if d, err = s.batchAt(ctx, jobID, afterSeq+1); err != nil {
			return nil, fmt.Errorf("list events of job %s: %w", jobID, err)
		}
	}
	if d != nil {
		var err error
		for d != nil && emit(d) {
			if d, err = s.batchAt(ctx, jobID, d.Last+1); err != nil {
				return nil, fmt.Errorf("list events of job %s: %w", jobID, err)
			}
		}
		return out, nil
	}
	opts := options.Find().SetSort(sortBy("first"))
	if limit > 0 {
		opts.SetLimit(int64(limit)) // a batch holds at least one event
	}
	docs, err := allOf[eventDoc](ctx, s.events, bson.D{{Key: "j", Value: jobID}, {Key: "last", Value: bson.D{{Key: "$gt", Value: afterSeq}}}}, opts)
	if err != nil {
		return nil, fmt.Errorf("list events of job %s: %w", jobID, err)
	}
	for i := range docs {
		if !emit(&docs[i]) {
			break
		}
	}
	return out, nil
}

// ---- leases -------------------------------------------------------------------
//
// A lease is a chain of immutable epochs <name>/<epoch>; the newest is the
// lease. Taking, renewing and releasing all insert the next epoch, so of
// two callers that read the same epoch exactly one changes the lease
// (SQLite reads and upserts the row in one transaction).

type leaseDoc struct {
	ID       string `bson:"_id"`
	Name     string `bson:"name"`
	Epoch    int64  `bson:"epoch"`
	Holder   string `bson:"holder"`
	Expires  int64  `bson:"expires"`
	Released bool   `bson:"released"`
}

func leaseID(name string, epoch int64) string { return fmt.Sprintf("%s/%020d", name, epoch) }

func (s *Store) currentLease(ctx context.Context, name string) (*leaseDoc, error) {
	var d leaseDoc
	err := one(ctx, s.leases, bson.D{{Key: "name", Value: name}}, &d, "lease "+name, options.FindOne().SetSort(sortBy("-epoch")))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// nextEpoch inserts the lease's next epoch; false when another caller
// inserted it first.
func (s *Store) nextEpoch(ctx context.Context, cur *leaseDoc, d leaseDoc) (bool, error) {
	if cur != nil {
		d.Epoch = cur.Epoch + 1
	} else {
		d.Epoch = 1
	}
	d.ID = leaseID(d.Name, d.Epoch)
	if _, err := s.leases.InsertOne(ctx, d); err != nil {
		if mgo.IsDuplicateKeyError(err) {
			return false, nil
		}
		return false, mapErr(err)
	}
	// Epochs before the previous one are history nobody reads.
	if d.Epoch > 2 {
		if _, err := s.leases.DeleteMany(ctx, bson.D{{Key: "name", Value: d.Name}, {Key: "epoch", Value: bson.D{{Key: "$lt", Value: d.Epoch - 1}}}}); err != nil {
			s.log.Warn("prune lease epochs", "lease", d.Name, "error", err)
		}
	}
	return true, nil
}

// AcquireLease takes or renews name for holder until now+ttl; another
// holder's unexpired lease is ErrLeaseHeld, an expired one is taken over.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (*store.Lease, error) {
	lt, err := store.CheckAcquire(name, holder, s.nowOr(now), ttl)
	if err != nil {
		return nil, err
	}
	nn, en := lt.Now, lt.Expires
	for range maxRetries {
		cur, err := s.currentLease(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("acquire lease %s: %w", name, err)
		}
		if cur != nil && !cur.Released && cur.Holder != holder && cur.Expires > nn {
			return nil, fmt.Errorf("acquire lease %s: held by %s until %s: %w", name, cur.Holder, store.FromNanos(cur.Expires).Format(time.RFC3339Nano), store.ErrLeaseHeld)
		}
		won, err := s.nextEpoch(ctx, cur, leaseDoc{Name: name, Holder: holder, Expires: en})
		if err != nil {
			return nil, fmt.Errorf("acquire lease %s: %w", name, err)
		}
		if won {
			return &store.Lease{Name: name, Holder: holder, Expires: store.FromNanos(en)}, nil
		}
	}
	return nil, fmt.Errorf("acquire lease %s: too contended: %w", name, store.ErrLeaseHeld)
}

// ReleaseLease gives up holder's lease; releasing one not held is a no-op.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if err := store.CheckLeaseHolder("release lease", name, holder); err != nil {
		return err
	}
	for range maxRetries {
		cur, err := s.currentLease(ctx, name)
		if err != nil {
			return fmt.Errorf("release lease %s: %w", name, err)
		}
		if cur == nil || cur.Released || cur.Holder != holder {
			return nil
		}
		won, err := s.nextEpoch(ctx, cur, leaseDoc{Name: name, Released: true})
		if err != nil {
			return fmt.Errorf("release lease %s: %w", name, err)
		}
		if won {
			return nil
		}
	}
	return fmt.Errorf("release lease %s: too contended: %w", name, store.ErrConflict)
}

// GetLease returns the lease record for name, expired or not.
func (s *Store) GetLease(ctx context.Context, name string) (*store.Lease, error) {
	if err := store.CheckKey("get lease", "name", name); err != nil {
		return nil, err
	}
	cur, err := s.currentLease(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("get lease: %w", err)
	}
	if cur == nil || cur.Released {
		return nil, fmt.Errorf("get lease: %w", store.NotFoundf("lease %s", name))
	}
	return &store.Lease{Name: name, Holder: cur.Holder, Expires: store.FromNanos(cur.Expires)}, nil
}
