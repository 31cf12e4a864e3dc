package store

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"strings"
	"time"

	"github.com/kloud/kloud/kloud/audit"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/ratingbridge/hashmap"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/user"
)

// Helpers every backend shares, so their errors, ids and times agree.

// Invalidf is an ErrInvalid with a message.
func Invalidf(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, ErrInvalid)...)
}

// NotFoundf is an ErrNotFound with a message.
func NotFoundf(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, ErrNotFound)...)
}

// NewID returns prefix + 16 random hex digits, the form of every id a
// backend assigns ("m-…", "job-…").
func NewID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return prefix + hex.EncodeToString(b[:])
}

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// UnixNanos converts a time to Unix nanoseconds, the form backends store
// times in; a time outside the years 1678–2262 does not fit and is
// ErrInvalid naming field.
func UnixNanos(field string, t time.Time) (int64, error) {
	if t.Before(minTime) || t.After(maxTime) {
		return 0, Invalidf("%s %s is out of range (1678-2262)", field, t.Format(time.RFC3339))
	}
	return t.UnixNano(), nil
}

// CheckMapping is the rule every backend keeps for a mapping: exactly one
// of service and field, a flat or rate type, a value for a field mapping
// and none for a service mapping (ErrInvalid otherwise).
func CheckMapping(m *hashmap.Mapping) error {
	if m == nil {
		return Invalidf("nil mapping")
	}
	if err := checkRuleTarget("mapping", m.ServiceID, m.FieldID, m.Type); err != nil {
		return err
	}
	if m.FieldID != "" && m.Value == "" {
		return Invalidf("field mapping needs a value")
	}
	if m.ServiceID != "" && m.Value != "" {
		return Invalidf("service mapping may not have a value")
	}
	return nil
}

// CheckThreshold is the rule every backend keeps for a threshold: exactly
// one of service and field and a flat or rate type.
func CheckThreshold(t *hashmap.Threshold) error {
	if t == nil {
		return Invalidf("nil threshold")
	}
	return checkRuleTarget("threshold", t.ServiceID, t.FieldID, t.Type)
}

func checkRuleTarget(kind, serviceID, fieldID, costType string) error {
	if (serviceID == "") == (fieldID == "") {
		return Invalidf("%s needs exactly one of service_id and field_id", kind)
	}
	if costType != hashmap.CostFlat && costType != hashmap.CostRate {
		return Invalidf("%s type %q is not flat or rate", kind, costType)
	}
	return nil
}

// CheckUser is what every backend requires of a new user; now is the
// store clock's time.
func CheckUser(u *user.User, now time.Time) (NewRecord, error) {
	if u == nil {
		return NewRecord{}, Invalidf("create user: nil user")
	}
	if u.Name == "" {
		return NewRecord{}, Invalidf("create user: empty name")
	}
	if u.Role != user.RoleAdmin && u.Role != user.RoleMember {
		return NewRecord{}, Invalidf("create user %s: role %q is not admin or member", u.Name, u.Role)
	}
	return newRecord("create user "+u.Name, u.ID, "usr-", now, u.CreatedAt)
}

// CheckStateVersion is what every backend requires of a state version;
// now is the store clock's time. The record has no id.
func CheckStateVersion(v *StateVersion, now time.Time) (NewRecord, error) {
	if v == nil {
		return NewRecord{}, Invalidf("put state version: nil version")
	}
	if v.StackID == "" {
		return NewRecord{}, Invalidf("put state version: empty stack_id")
	}
	if v.Serial < 0 {
		return NewRecord{}, Invalidf("put state version of %s: negative serial %d", v.StackID, v.Serial)
	}
	return newRecord("put state version of "+v.StackID, "", "", now, v.CreatedAt)
}

// CheckNewStack is what every backend requires of a new stack; now is the
// store clock's time. It returns the status to store (not_initialized
// when empty).
func CheckNewStack(r *StackRecord, now time.Time) (NewRecord, machinestate.StackState, error) {
	if r == nil {
		return NewRecord{}, "", Invalidf("create stack: nil stack")
	}
	if r.OwnerID == "" {
		return NewRecord{}, "", Invalidf("create stack: empty owner_id")
	}
	if r.TemplateID == "" {
		return NewRecord{}, "", Invalidf("create stack: empty template_id")
	}
	if r.CredentialID == "" {
		return NewRecord{}, "", Invalidf("create stack: empty credential_id")
	}
	status := r.Status
	if status == "" {
		status = machinestate.StackNotInitialized
	}
	if !status.Valid() {
		return NewRecord{}, "", Invalidf("create stack: unknown status %q", status)
	}
	w, err := stamped("create stack", r.ID, "stk-", now, r.CreatedAt, r.UpdatedAt)
	return w, status, err
}

// stamped is newRecord for a record with an updated_at as well.
func stamped(op, id, prefix string, now, created, updated time.Time) (NewRecord, error) {
	cn, un, err := Stamps(now, created, updated)
	if err != nil {
		return NewRecord{}, wrapf(err, "%s", op)
	}
	return NewRecord{ID: idOr(id, prefix), CreatedAt: FromNanos(cn), Created: cn, Updated: un}, nil
}

// The summary keys that are not groupby or metadata keys (SummaryQuery).
const (
	KeyType  = "type"
	KeyTime  = "time"
	KeyDay   = "time-d"
	KeyWeek  = "time-w"
	KeyMonth = "time-m"
	KeyYear  = "time-y"
)

// BucketKeys are the time bucket keys, in the order backends keep them.
var BucketKeys = [4]string{KeyDay, KeyWeek, KeyMonth, KeyYear}

// BucketIndex is key's index in BucketKeys, -1 for a key that is not a
// time bucket key.
func BucketIndex(key string) int {
	for i, k := range BucketKeys {
		if k == key {
			return i
		}
	}
	return -1
}

// BucketStart returns the start of the time bucket key (day, ISO week from
// Monday, month or year, UTC) that t falls in.
func BucketStart(key string, t time.Time) time.Time {
	t = t.UTC()
	y, m, d := t.Date()
	switch key {
	case KeyDay:
	case KeyWeek:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		y, m, d = t.AddDate(0, 0, -back).Date()
	case KeyMonth:
		d = 1
	case KeyYear:
		m, d = time.January, 1
	}
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// CheckAttrKey refuses a groupby or metadata key no backend can address:
// empty, or holding quotes, backslashes or control characters.
func CheckAttrKey(key string) error {
	if key == "" {
		return Invalidf("empty key")
	}
	if strings.ContainsAny(key, "\"\\") || strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 }) {
		return Invalidf("key %q may not hold quotes, backslashes or control characters", key)
	}
	return nil
}

// HistoryWindow turns a history query's window into Unix nanoseconds, an
// open side (zero time) reading as the extreme; an empty window is
// ErrInvalid.
func HistoryWindow(q HistoryQuery) (from, to int64, err error) {
	from, to = math.MinInt64, math.MaxInt64
	if !q.From.IsZero() {
		if from, err = UnixNanos("from", q.From); err != nil {
			return 0, 0, fmt.Errorf("state history: %w", err)
		}
	}
	if !q.To.IsZero() {
		if to, err = UnixNanos("to", q.To); err != nil {
			return 0, 0, fmt.Errorf("state history: %w", err)
		}
	}
	if from >= to {
		return 0, 0, Invalidf("state history: window [%s, %s) is empty", q.From.Format(time.RFC3339Nano), q.To.Format(time.RFC3339Nano))
	}
	return from, to, nil
}

// CheckEvents is what every backend requires of events to append; it
// returns each event's At (now() when zero) in Unix nanoseconds.
func CheckEvents(jobID string, events []*jobs.Event, now func() time.Time) ([]int64, error) {
	if jobID == "" {
		return nil, Invalidf("append events: empty job id")
	}
	ats := make([]int64, len(events))
	for i, e := range events {
		if e == nil {
			return nil, Invalidf("append events to job %s: event %d is nil", jobID, i)
		}
		if e.Kind == "" {
			return nil, Invalidf("append events to job %s: event %d has no kind", jobID, i)
		}
		an, err := UnixNanos("at", NowOr(now, e.At))
		if err != nil {
			return nil, wrapf(err, "append events to job %s: event %d", jobID, i)
		}
		ats[i] = an
	}
	return ats, nil
}

// CheckNewCredential is what every backend requires of a new credential;
// now is the store clock's time.
func CheckNewCredential(c *stack.Credential, now time.Time) (NewRecord, error) {
	if c == nil {
		return NewRecord{}, Invalidf("create credential: nil credential")
	}
	if c.OwnerID == "" {
		return NewRecord{}, Invalidf("create credential: empty owner_id")
	}
	if c.Provider == "" {
		return NewRecord{}, Invalidf("create credential: empty provider")
	}
	return stamped("create credential", c.ID, "cred-", now, c.CreatedAt, c.UpdatedAt)
}

// Stamps returns a new record's created and updated times in Unix
// nanoseconds: created defaults to now, updated to created.
func Stamps(now, created, updated time.Time) (cn, un int64, err error) {
	if created.IsZero() {
		created = now
	}
	if updated.IsZero() {
		updated = created
	}
	if cn, err = UnixNanos("created_at", created.UTC()); err != nil {
		return 0, 0, err
	}
	if un, err = UnixNanos("updated_at", updated.UTC()); err != nil {
		return 0, 0, err
	}
	return cn, un, nil
}

// wrapf is fmt.Errorf(format+": %w", args..., err), and nil for a nil err.
func wrapf(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

// idOr returns id, or a new id with prefix when id is empty.
func idOr(id, prefix string) string {
	if id == "" {
		return NewID(prefix)
	}
	return id
}

// OptUnixNanos is UnixNanos for an optional time: the zero time is 0.
func OptUnixNanos(field string, t time.Time) (int64, error) {
	if t.IsZero() {
		return 0, nil
	}
	return UnixNanos(field, t)
}

// FromNanos is the UTC time of Unix nanoseconds, the inverse of UnixNanos.
func FromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// NowOr returns t in UTC, or now() in UTC when t is zero: the time a
// backend stores for a time its caller left zero.
func NowOr(now func() time.Time, t time.Time) time.Time {
	if t.IsZero() {
		return now().UTC()
	}
	return t.UTC()
}

// JSONObject encodes a string map as a JSON object; nil or empty is "{}".
func JSONObject(m map[string]string) (string, error) {
	if len(m) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// PointRecord is a checked rated point in the form backends store it.
type PointRecord struct {
	Begin, End        int64             // the point's, else the period's
	Groupby, Metadata string            // JSON objects
	Attrs             map[string]string // metadata overlaid by groupby: what a key reads
	Buckets           [len(BucketKeys)]int64
}

// RatedPointRecord checks point i of p, whose window w is, and returns it
// in the form backends store.
func RatedPointRecord(p *RatedPeriod, w PeriodWrite, i int) (PointRecord, error) {
	pt := &p.Points[i]
	begin, end, err := CheckRatedPoint(p, w, i)
	if err != nil {
		return PointRecord{}, err
	}
	r := PointRecord{Begin: begin, End: end}
	if r.Groupby, err = JSONObject(pt.Groupby); err != nil {
		return PointRecord{}, wrapf(err, "commit rated period of %s: point %d groupby", p.Scope, i)
	}
	if r.Metadata, err = JSONObject(pt.Metadata); err != nil {
		return PointRecord{}, wrapf(err, "commit rated period of %s: point %d metadata", p.Scope, i)
	}
	r.Attrs = make(map[string]string, len(pt.Groupby)+len(pt.Metadata))
	maps.Copy(r.Attrs, pt.Metadata)
	maps.Copy(r.Attrs, pt.Groupby)
	for k, key := range BucketKeys {
		if r.Buckets[k], err = UnixNanos("bucket", BucketStart(key, FromNanos(r.Begin))); err != nil {
			return PointRecord{}, wrapf(err, "commit rated period of %s: point %d", p.Scope, i)
		}
	}
	return r, nil
}

// CheckRatedPoint checks point i of p, whose window w is: its scope is
// empty or p's, it has a service, and its window (the period's where its
// own begin or end is zero) does not end before it begins. It returns that
// window in Unix nanoseconds.
func CheckRatedPoint(p *RatedPeriod, w PeriodWrite, i int) (begin, end int64, err error) {
	pt := &p.Points[i]
	if pt.Scope != "" && pt.Scope != p.Scope {
		return 0, 0, Invalidf("commit rated period of %s: point %d has scope %q", p.Scope, i, pt.Scope)
	}
	if pt.Service == "" {
		return 0, 0, Invalidf("commit rated period of %s: point %d has no service", p.Scope, i)
	}
	begin, end = w.Begin, w.End
	if !pt.Begin.IsZero() {
		if begin, err = UnixNanos("point begin", pt.Begin); err != nil {
			return 0, 0, wrapf(err, "commit rated period of %s: point %d", p.Scope, i)
		}
	}
	if !pt.End.IsZero() {
		if end, err = UnixNanos("point end", pt.End); err != nil {
			return 0, 0, wrapf(err, "commit rated period of %s: point %d", p.Scope, i)
		}
	}
	if end < begin {
		return 0, 0, Invalidf("commit rated period of %s: point %d ends before it begins", p.Scope, i)
	}
	return begin, end, nil
}

// CheckAuditEntry is what every backend requires of an audit entry: an
// actor and an action; the ID and time are filled in when empty.
func CheckAuditEntry(e *audit.Entry, now time.Time) (NewRecord, error) {
	if e == nil {
		return NewRecord{}, Invalidf("append audit entry: nil entry")
	}
	if e.Actor == "" || e.Action == "" {
		return NewRecord{}, Invalidf("append audit entry: empty actor or action")
	}
	if e.Outcome == "" {
		e.Outcome = audit.OutcomeOK
	}
	return newRecord("append audit entry", e.ID, "aud-", now, e.At)
}

// AuditLimit is the page size a backend uses for q.
func AuditLimit(q audit.Query) int {
	if q.Limit <= 0 {
		return audit.DefaultLimit
	}
	// One more than the largest page: a list asks for one more than its
	// page to know whether another follows.
	return min(q.Limit, audit.MaxLimit+1)
}

// CompareGroupValues orders summary group key values as the summary rows
// are ordered (as SQLite orders them): null, then times (Unix
// nanoseconds, int64), then strings.
func CompareGroupValues(a, b any) int {
	rank := func(v any) int {
		switch v.(type) {
		case nil:
			return 0
		case int64:
			return 1
		}
		return 2
	}
	if c := cmp.Compare(rank(a), rank(b)); c != 0 {
		return c
	}
	switch x := a.(type) {
	case int64:
		return cmp.Compare(x, b.(int64))
	case string:
		return strings.Compare(x, b.(string))
	}
	return 0
}

// CompareSummaryRows orders summary rows: by begin, then their key values
// (CompareGroupValues), then end.
func CompareSummaryRows(aBegin, aEnd int64, aKeys []any, bBegin, bEnd int64, bKeys []any) int {
	if c := cmp.Compare(aBegin, bBegin); c != 0 {
		return c
	}
	for i := range aKeys {
		if c := CompareGroupValues(aKeys[i], bKeys[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(aEnd, bEnd)
}
