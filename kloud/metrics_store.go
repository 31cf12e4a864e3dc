package kloud

import (
	"context"
	"time"

	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/user"
)

// timedStore times the store calls that carry the API and the job
// engine's load, under kloud_store_call_duration_seconds{op}; every other
// call passes through untimed.
type timedStore struct {
	store.Store
	m *metrics
}

// timeStore returns st with its hot calls timed.
func (m *metrics) timeStore(st store.Store) store.Store { return &timedStore{Store: st, m: m} }

func (t *timedStore) GetUserByTokenHash(ctx context.Context, hash string) (*user.User, error) {
	defer t.m.storeCall("GetUserByTokenHash", time.Now())
	return t.Store.GetUserByTokenHash(ctx, hash)
}

func (t *timedStore) GetMachine(ctx context.Context, id string) (*stack.Machine, error) {
	defer t.m.storeCall("GetMachine", time.Now())
	return t.Store.GetMachine(ctx, id)
}

func (t *timedStore) ListMachines(ctx context.Context, f store.MachineFilter) ([]*stack.Machine, error) {
	defer t.m.storeCall("ListMachines", time.Now())
	return t.Store.ListMachines(ctx, f)
}

func (t *timedStore) PutMachine(ctx context.Context, m *stack.Machine) error {
	defer t.m.storeCall("PutMachine", time.Now())
	return t.Store.PutMachine(ctx, m)
}

func (t *timedStore) SetMachineState(ctx context.Context, id string, state machinestate.State, reason string, at time.Time) error {
	defer t.m.storeCall("SetMachineState", time.Now())
	return t.Store.SetMachineState(ctx, id, state, reason, at)
}

func (t *timedStore) TouchMachine(ctx context.Context, id string, at time.Time, version string) error {
	defer t.m.storeCall("TouchMachine", time.Now())
	return t.Store.TouchMachine(ctx, id, at, version)
}

func (t *timedStore) StateHistory(ctx context.Context, q store.HistoryQuery) ([]stack.StateRecord, error) {
	defer t.m.storeCall("StateHistory", time.Now())
	return t.Store.StateHistory(ctx, q)
}

func (t *timedStore) GetStack(ctx context.Context, id string) (*store.StackRecord, error) {
	defer t.m.storeCall("GetStack", time.Now())
	return t.Store.GetStack(ctx, id)
}

func (t *timedStore) CreateJob(ctx context.Context, j *jobs.Job) error {
	defer t.m.storeCall("CreateJob", time.Now())
	return t.Store.CreateJob(ctx, j)
}

func (t *timedStore) GetJob(ctx context.Context, id string) (*jobs.Job, error) {
	defer t.m.storeCall("GetJob", time.Now())
	return t.Store.GetJob(ctx, id)
}

func (t *timedStore) ClaimJob(ctx context.Context, worker string, now time.Time, lease time.Duration, maxPerOwner int) (*jobs.Job, error) {
	defer t.m.storeCall("ClaimJob", time.Now())
	return t.Store.ClaimJob(ctx, worker, now, lease, maxPerOwner)
}

func (t *timedStore) RenewJobLease(ctx context.Context, id, worker string, now time.Time, lease time.Duration) error {
	defer t.m.storeCall("RenewJobLease", time.Now())
	return t.Store.RenewJobLease(ctx, id, worker, now, lease)
}

func (t *timedStore) FinishJob(ctx context.Context, id, worker string, status jobs.Status, errMsg string, at time.Time) error {
	defer t.m.storeCall("FinishJob", time.Now())
	return t.Store.FinishJob(ctx, id, worker, status, errMsg, at)
}

func (t *timedStore) AppendEvents(ctx context.Context, jobID string, events ...*jobs.Event) error {
	defer t.m.storeCall("AppendEvents", time.Now())
	return t.Store.AppendEvents(ctx, jobID, events...)
}

func (t *timedStore) ListEvents(ctx context.Context, jobID string, afterSeq int64, limit int) ([]*jobs.Event, error) {
	defer t.m.storeCall("ListEvents", time.Now())
	return t.Store.ListEvents(ctx, jobID, afterSeq, limit)
}

func (t *timedStore) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (*store.Lease, error) {
	defer t.m.storeCall("AcquireLease", time.Now())
	return t.Store.AcquireLease(ctx, name, holder, now, ttl)
}

func (t *timedStore) CommitRatedPeriod(ctx context.Context, p *store.RatedPeriod) error {
	defer t.m.storeCall("CommitRatedPeriod", time.Now())
	return t.Store.CommitRatedPeriod(ctx, p)
}

func (t *timedStore) Summarize(ctx context.Context, q store.SummaryQuery) (*store.Summary, error) {
	defer t.m.storeCall("Summarize", time.Now())
	return t.Store.Summarize(ctx, q)
}
