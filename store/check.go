package store

import (
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/ratingbridge/hashmap"
	"github.com/kloud/kloud/stack"
)

// The input checks of every store method, kept here once so the backends
// refuse the same inputs with the same ErrInvalid messages; a backend
// calls the check first and only stores what passed. Each message names
// the operation and the field. Checks that need no more than "op: empty
// what" use CheckKey.

// CheckKey refuses an empty key: "op: empty what" (ErrInvalid).
func CheckKey(op, what, v string) error {
	if v == "" {
		return Invalidf("%s: empty %s", op, what)
	}
	return nil
}

// ---- credentials, templates, stacks -----------------------------------------

// CheckCredentialUpdate is what every backend requires of an updated
// credential; it returns the new UpdatedAt, now, also in Unix nanoseconds.
func CheckCredentialUpdate(c *stack.Credential, now time.Time) (time.Time, int64, error) {
	if c == nil {
		return time.Time{}, 0, Invalidf("update credential: nil credential")
	}
	if err := CheckKey("update credential", "id", c.ID); err != nil {
		return time.Time{}, 0, err
	}
	now = now.UTC()
	un, err := UnixNanos("updated_at", now)
	return now, un, wrapf(err, "update credential %s", c.ID)
}

// CheckNewTemplate is what every backend requires of a new template; now
// is the store clock's time.
func CheckNewTemplate(t *stack.Template, now time.Time) (NewRecord, error) {
	if t == nil {
		return NewRecord{}, Invalidf("create template: nil template")
	}
	if t.OwnerID == "" {
		return NewRecord{}, Invalidf("create template: empty owner_id")
	}
	if t.Format != stack.FormatHCL && t.Format != stack.FormatJSON {
		return NewRecord{}, Invalidf("create template: format %q is not hcl or json", t.Format)
	}
	return newRecord("create template", t.ID, "tpl-", now, t.CreatedAt)
}

// CheckStackStatus is what every backend requires of a stack status
// change at at (already defaulted); it returns at in Unix nanoseconds.
func CheckStackStatus(id string, status machinestate.StackState, at time.Time) (int64, error) {
	if err := CheckKey("set stack status", "id", id); err != nil {
		return 0, err
	}
	if !status.Valid() {
		return 0, Invalidf("set stack %s status: unknown status %q", id, status)
	}
	an, err := UnixNanos("at", at)
	return an, wrapf(err, "set stack %s status", id)
}

// ---- machines -----------------------------------------------------------------

// CheckPutMachine is what every backend requires of a machine to put; now
// is the store clock's time. The record's Created is CreatedAt (now when
// zero) and its Updated now.
func CheckPutMachine(m *stack.Machine, now time.Time) (NewRecord, error) {
	if m == nil {
		return NewRecord{}, Invalidf("put machine: nil machine")
	}
	if err := CheckKey("put machine", "stack_id", m.StackID); err != nil {
		return NewRecord{}, err
	}
	if err := CheckKey("put machine", "owner_id", m.OwnerID); err != nil {
		return NewRecord{}, err
	}
	if !m.State.Valid() {
		return NewRecord{}, Invalidf("put machine: unknown state %d", int(m.State))
	}
	if len(m.Metadata) > 0 && !json.Valid(m.Metadata) {
		return NewRecord{}, Invalidf("put machine %s: metadata is not valid JSON", m.ID)
	}
	w, err := stamped("put machine", m.ID, "m-", now, m.CreatedAt, now)
	if err != nil {
		return NewRecord{}, err
	}
	if _, err := OptUnixNanos("last_seen", m.LastSeen); err != nil {
		return NewRecord{}, wrapf(err, "put machine %s", w.ID)
	}
	return w, nil
}

// CheckMachineState is what every backend requires of a machine state
// change at at (already defaulted); it returns at in Unix nanoseconds.
func CheckMachineState(id string, state machinestate.State, at time.Time) (int64, error) {
	if err := CheckKey("set machine state", "id", id); err != nil {
		return 0, err
	}
	if !state.Valid() {
		return 0, Invalidf("set machine %s state: unknown state %d", id, int(state))
	}
	an, err := UnixNanos("at", at)
	return an, wrapf(err, "set machine %s state", id)
}

// CheckTouch is what every backend requires of a TouchMachine at at
// (already defaulted); it returns at in Unix nanoseconds.
func CheckTouch(id string, at time.Time) (int64, error) {
	if err := CheckKey("touch machine", "id", id); err != nil {
		return 0, err
	}
	an, err := UnixNanos("at", at)
	return an, wrapf(err, "touch machine %s", id)
}

// ---- jobs and leases ------------------------------------------------------------

// ValidJobStatus reports whether st is one of the job statuses.
func ValidJobStatus(st jobs.Status) bool {
	switch st {
	case jobs.StatusQueued, jobs.StatusRunning, jobs.StatusSucceeded, jobs.StatusFailed:
		return true
	}
	return false
}

// CheckJobStatuses refuses a job status filter naming an unknown status.
func CheckJobStatuses(statuses []jobs.Status) error {
	for _, st := range statuses {
		if !ValidJobStatus(st) {
			return Invalidf("list jobs: unknown status %q", st)
		}
	}
	return nil
}

// NewRecord is a checked new record: the id to store it under (a new one
// when the caller gave none) and its creation time, defaulted to now, in
// UTC and in Unix nanoseconds.
type NewRecord struct {
	ID        string
	CreatedAt time.Time
	Created   int64
	Updated   int64 // for records with an updated_at: CreatedAt unless given
}

// newRecord checks a new record's creation time (now when zero); a record
// kept under an id of its own kind gets one with prefix when id is empty.
func newRecord(op, id, prefix string, now, created time.Time) (NewRecord, error) {
	if created.IsZero() {
		created = now
	}
	r := NewRecord{CreatedAt: created.UTC()}
	if prefix != "" {
		r.ID = idOr(id, prefix)
	}
	var err error
	if r.Created, err = UnixNanos("created_at", r.CreatedAt); err != nil {
		return NewRecord{}, wrapf(err, "%s", op)
	}
	return r, nil
}

// CheckNewJob is what every backend requires of a new job; now is the
// store clock's time.
func CheckNewJob(j *jobs.Job, now time.Time) (NewRecord, error) {
	switch {
	case j == nil:
		return NewRecord{}, Invalidf("create job: nil job")
	case j.Kind == "":
		return NewRecord{}, Invalidf("create job: empty kind")
	case j.Target == "":
		return NewRecord{}, Invalidf("create job: empty target")
	case j.Status != "" && j.Status != jobs.StatusQueued:
		return NewRecord{}, Invalidf("create job: status %q (a new job is queued)", j.Status)
	}
	return newRecord("create job", j.ID, "job-", now, j.CreatedAt)
}

// SetQueued sets on j what CreateJob stored: its id, status queued, its
// creation time, and nothing of a run. (A function, not a method: the job
// types may move to the package that runs jobs.)
func SetQueued(j *jobs.Job, id string, created time.Time) {
	j.ID, j.Status, j.CreatedAt = id, jobs.StatusQueued, created
	j.Percentage, j.Error, j.Worker = 0, "", ""
	j.LeaseExpires, j.StartedAt, j.FinishedAt = time.Time{}, time.Time{}, time.Time{}
}

// LeaseTimes is a checked lease request: now and now+lease in Unix
// nanoseconds.
type LeaseTimes struct {
	Now, Expires int64
}

// leaseTimes converts now (already defaulted) and now+d.
func leaseTimes(now time.Time, d time.Duration, expiry string) (LeaseTimes, error) {
	var lt LeaseTimes
	var err error
	if lt.Now, err = UnixNanos("now", now); err != nil {
		return LeaseTimes{}, err
	}
	if lt.Expires, err = UnixNanos(expiry, now.Add(d)); err != nil {
		return LeaseTimes{}, err
	}
	return lt, nil
}

// CheckClaim is what every backend requires of a ClaimJob at now (already
// defaulted to the store clock).
func CheckClaim(worker string, now time.Time, lease time.Duration, maxPerOwner int) (LeaseTimes, error) {
	switch {
	case worker == "":
		return LeaseTimes{}, Invalidf("claim job: empty worker")
	case lease <= 0:
		return LeaseTimes{}, Invalidf("claim job: lease %v must be positive", lease)
	case maxPerOwner < 0:
		return LeaseTimes{}, Invalidf("claim job: max per owner %d is negative", maxPerOwner)
	}
	lt, err := leaseTimes(now, lease, "lease expiry")
	return lt, wrapf(err, "claim job")
}

// checkHeld refuses a call on a held job without the job or the worker.
func checkHeld(op, id, worker string) error { return checkBoth(op, "job id or worker", id, worker) }

// checkBoth refuses a pair of keys when either is empty: "op: empty what".
func checkBoth(op, what, a, b string) error {
	if a == "" || b == "" {
		return Invalidf("%s: empty %s", op, what)
	}
	return nil
}

// CheckRenew is what every backend requires of a RenewJobLease at now
// (already defaulted); it returns the new expiry in Unix nanoseconds.
func CheckRenew(id, worker string, now time.Time, lease time.Duration) (int64, error) {
	if err := checkHeld("renew job lease", id, worker); err != nil {
		return 0, err
	}
	if lease <= 0 {
		return 0, Invalidf("renew job %s lease: lease %v must be positive", id, lease)
	}
	ln, err := UnixNanos("lease expiry", now.Add(lease))
	return ln, wrapf(err, "renew job %s lease", id)
}

// CheckCancel is what every backend requires of a CancelJob at at (already
// defaulted); it returns at in Unix nanoseconds.
func CheckCancel(id, reason string, at time.Time) (int64, error) {
	if err := CheckKey("cancel job", "id", id); err != nil {
		return 0, err
	}
	if reason == "" {
		return 0, Invalidf("cancel job %s: empty reason", id)
	}
	an, err := UnixNanos("at", at)
	return an, wrapf(err, "cancel job %s", id)
}

// CheckProgress is what every backend requires of a SetJobProgress.
func CheckProgress(id, worker string, percentage int) error {
	if err := checkHeld("set job progress", id, worker); err != nil {
		return err
	}
	if percentage < 0 || percentage > 100 {
		return Invalidf("set job %s progress: percentage %d is outside 0-100", id, percentage)
	}
	return nil
}

// CheckFinish is what every backend requires of a FinishJob at at (already
// defaulted); it returns at in Unix nanoseconds.
func CheckFinish(id, worker string, status jobs.Status, at time.Time) (int64, error) {
	if err := checkHeld("finish job", id, worker); err != nil {
		return 0, err
	}
	if status != jobs.StatusSucceeded && status != jobs.StatusFailed {
		return 0, Invalidf("finish job %s: status %q is not succeeded or failed", id, status)
	}
	an, err := UnixNanos("at", at)
	return an, wrapf(err, "finish job %s", id)
}

// CheckLeaseHolder refuses a lease call without a name or a holder.
func CheckLeaseHolder(op, name, holder string) error {
	return checkBoth(op, "name or holder", name, holder)
}

// CheckAcquire is what every backend requires of an AcquireLease at now
// (already defaulted).
func CheckAcquire(name, holder string, now time.Time, ttl time.Duration) (LeaseTimes, error) {
	if err := CheckLeaseHolder("acquire lease", name, holder); err != nil {
		return LeaseTimes{}, err
	}
	if ttl <= 0 {
		return LeaseTimes{}, Invalidf("acquire lease %s: ttl %v must be positive", name, ttl)
	}
	lt, err := leaseTimes(now, ttl, "expiry")
	return lt, wrapf(err, "acquire lease %s", name)
}

// ---- rating modules and writer states ---------------------------------------------

// CheckRatingModule is what every backend requires of a module setting.
func CheckRatingModule(m *RatingModule) error {
	if m == nil {
		return Invalidf("put rating module: nil module")
	}
	return CheckKey("put rating module", "name", m.Name)
}

// CheckWriterKey refuses a writer state key without a scope or a writer.
func CheckWriterKey(op, scope, writer string) error {
	return checkBoth(op, "scope or writer", scope, writer)
}

// CheckWriterState is what every backend requires of a writer state; it
// returns LastWritten in Unix nanoseconds (0 when zero).
func CheckWriterState(w *WriterState) (int64, error) {
	if w == nil {
		return 0, Invalidf("put writer state: nil state")
	}
	if err := CheckWriterKey("put writer state", w.Scope, w.Writer); err != nil {
		return 0, err
	}
	last, err := OptUnixNanos("last_written", w.LastWritten)
	return last, wrapf(err, "put writer %s state of %s", w.Writer, w.Scope)
}

// ---- hashmap rules ----------------------------------------------------------------

// CheckNewService is what every backend requires of a new hashmap service;
// it returns the id to store it under.
func CheckNewService(s *hashmap.Service) (string, error) {
	if s == nil {
		return "", Invalidf("create hashmap service: nil service")
	}
	return newNamed("service", "svc-", s.ID, s.Name)
}

// CheckNewField is what every backend requires of a new hashmap field; it
// returns the id to store it under.
func CheckNewField(f *hashmap.Field) (string, error) {
	if f == nil {
		return "", Invalidf("create hashmap field: nil field")
	}
	if err := CheckKey("create hashmap field", "service_id", f.ServiceID); err != nil {
		return "", err
	}
	return newNamed("field", "fld-", f.ID, f.Name)
}

// CheckNewGroup is what every backend requires of a new hashmap group; it
// returns the id to store it under.
func CheckNewGroup(g *hashmap.Group) (string, error) {
	if g == nil {
		return "", Invalidf("create hashmap group: nil group")
	}
	return newNamed("group", "grp-", g.ID, g.Name)
}

// newNamed checks the name of a new hashmap rule of kind and returns the
// id to store it under.
func newNamed(kind, prefix, id, name string) (string, error) {
	if err := CheckKey("create hashmap "+kind, "name", name); err != nil {
		return "", err
	}
	return idOr(id, prefix), nil
}

// CheckNewMapping is CheckMapping for a new mapping; it returns the id to
// store it under.
func CheckNewMapping(m *hashmap.Mapping) (string, error) {
	return newRule("mapping", "map-", CheckMapping(m), func() string { return m.ID })
}

// CheckMappingUpdate is CheckMapping for a mapping that exists: it needs
// its id.
func CheckMappingUpdate(m *hashmap.Mapping) error {
	return updatedRule("mapping", m != nil && m.ID == "", CheckMapping(m))
}

// CheckNewThreshold is CheckThreshold for a new threshold; it returns the
// id to store it under.
func CheckNewThreshold(t *hashmap.Threshold) (string, error) {
	return newRule("threshold", "thr-", CheckThreshold(t), func() string { return t.ID })
}

// CheckThresholdUpdate is CheckThreshold for a threshold that exists: it
// needs its id.
func CheckThresholdUpdate(t *hashmap.Threshold) error {
	return updatedRule("threshold", t != nil && t.ID == "", CheckThreshold(t))
}

// newRule wraps the check of a new rule of kind, or returns the id (id()
// of the checked rule, or a new one with prefix) to store it under.
func newRule(kind, prefix string, err error, id func() string) (string, error) {
	if err != nil {
		return "", wrapf(err, "create hashmap %s", kind)
	}
	return idOr(id(), prefix), nil
}

// updatedRule wraps the check of an updated rule of kind, which needs an
// id first.
func updatedRule(kind string, noID bool, err error) error {
	if noID {
		return Invalidf("update hashmap %s: empty id", kind)
	}
	return wrapf(err, "update hashmap %s", kind)
}

// ---- rated periods and queries ----------------------------------------------------

// PeriodWrite is a checked rated period: its window in Unix nanoseconds.
type PeriodWrite struct {
	Begin, End int64
}

// CheckRatedPeriod is what every backend requires of a period to commit
// (each point is checked by RatedPointRecord).
func CheckRatedPeriod(p *RatedPeriod) (PeriodWrite, error) {
	if p == nil {
		return PeriodWrite{}, Invalidf("commit rated period: nil period")
	}
	if err := CheckKey("commit rated period", "scope", p.Scope); err != nil {
		return PeriodWrite{}, err
	}
	if !p.End.After(p.Begin) {
		return PeriodWrite{}, Invalidf("commit rated period of %s: end %s is not after begin %s", p.Scope,
			p.End.Format(time.RFC3339Nano), p.Begin.Format(time.RFC3339Nano))
	}
	var w PeriodWrite
	var err error
	if w.Begin, err = UnixNanos("begin", p.Begin); err != nil {
		return PeriodWrite{}, wrapf(err, "commit rated period of %s", p.Scope)
	}
	if w.End, err = UnixNanos("end", p.End); err != nil {
		return PeriodWrite{}, wrapf(err, "commit rated period of %s", p.Scope)
	}
	return w, nil
}

// CheckPage refuses a negative offset.
func CheckPage(op string, offset int) error {
	if offset < 0 {
		return Invalidf("%s: negative offset %d", op, offset)
	}
	return nil
}

// CheckSummaryQuery is what every backend requires of a summary query
// before it reads the filters: an offset and group keys, each once, each a
// summary key or a groupby or metadata key a backend can address.
func CheckSummaryQuery(q SummaryQuery) error {
	if err := CheckPage("summarize", q.Offset); err != nil {
		return err
	}
	for i, k := range q.GroupBy {
		if slices.Contains(q.GroupBy[:i], k) {
			return Invalidf("summarize: group key %q given twice", k)
		}
		if k != KeyType && k != KeyTime && BucketIndex(k) < 0 {
			if err := CheckAttrKey(k); err != nil {
				return wrapf(err, "summarize: group by")
			}
		}
	}
	return nil
}

// ParseTimeValue reads the value of a time filter key: an RFC 3339 time
// or a date (ErrInvalid otherwise).
func ParseTimeValue(key, v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, Invalidf("filter %s: %q is not an RFC 3339 time or a date", key, v)
}

// PointFilter is one checked filter of a points query.
type PointFilter struct {
	Key   string // KeyType, KeyTime, a bucket key, or a groupby/metadata key
	Value string // what the service or the groupby/metadata value must be
	Nanos int64  // KeyTime: the period's begin; a bucket key: the bucket's start
}

// PointsQuery is a checked points query: its window in Unix nanoseconds
// (an open side is not Set) and its filters, ordered by key.
type PointsQuery struct {
	Begin, End       int64
	BeginSet, EndSet bool
	Filters          []PointFilter
}

// CheckPointsQuery checks and converts the scope-independent part of a
// points query (window and filters) that RatedPoints and Summarize share.
func CheckPointsQuery(q SummaryQuery) (PointsQuery, error) {
	var pq PointsQuery
	var err error
	if pq.BeginSet = !q.Begin.IsZero(); pq.BeginSet {
		if pq.Begin, err = UnixNanos("begin", q.Begin); err != nil {
			return PointsQuery{}, err
		}
	}
	if pq.EndSet = !q.End.IsZero(); pq.EndSet {
		if pq.End, err = UnixNanos("end", q.End); err != nil {
			return PointsQuery{}, err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(q.Filters)) {
		f := PointFilter{Key: k, Value: q.Filters[k]}
		switch k {
		case KeyType:
		case KeyTime, KeyDay, KeyWeek, KeyMonth, KeyYear:
			t, err := ParseTimeValue(k, f.Value)
			if err != nil {
				return PointsQuery{}, err
			}
			field := "filter time"
			if k != KeyTime {
				t, field = BucketStart(k, t), "filter "+k
			}
			if f.Nanos, err = UnixNanos(field, t); err != nil {
				return PointsQuery{}, err
			}
		default:
			if err := CheckAttrKey(k); err != nil {
				return PointsQuery{}, wrapf(err, "filter")
			}
		}
		pq.Filters = append(pq.Filters, f)
	}
	return pq, nil
}
