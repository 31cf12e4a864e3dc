package store

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
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
func CheckMapping(m *HashmapMapping) error {
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
func CheckThreshold(t *HashmapThreshold) error {
	if t == nil {
		return Invalidf("nil threshold")
	}
	return checkRuleTarget("threshold", t.ServiceID, t.FieldID, t.Type)
}

func checkRuleTarget(kind, serviceID, fieldID, costType string) error {
	if (serviceID == "") == (fieldID == "") {
		return Invalidf("%s needs exactly one of service_id and field_id", kind)
	}
	if costType != CostFlat && costType != CostRate {
		return Invalidf("%s type %q is not flat or rate", kind, costType)
	}
	return nil
}

// CheckUser is what every backend requires of a new user.
func CheckUser(u *User) error {
	if u == nil {
		return Invalidf("create user: nil user")
	}
	if u.Name == "" {
		return Invalidf("create user: empty name")
	}
	if u.Role != RoleAdmin && u.Role != RoleMember {
		return Invalidf("create user %s: role %q is not admin or member", u.Name, u.Role)
	}
	return nil
}

// CheckStateVersion is what every backend requires of a state version.
func CheckStateVersion(v *StateVersion) error {
	if v == nil {
		return Invalidf("put state version: nil version")
	}
	if v.StackID == "" {
		return Invalidf("put state version: empty stack_id")
	}
	if v.Serial < 0 {
		return Invalidf("put state version of %s: negative serial %d", v.StackID, v.Serial)
	}
	return nil
}

// CheckNewStack is what every backend requires of a new stack; it returns
// the status to store (not_initialized when empty).
func CheckNewStack(r *StackRecord) (machinestate.StackState, error) {
	if r == nil {
		return "", Invalidf("create stack: nil stack")
	}
	if r.OwnerID == "" {
		return "", Invalidf("create stack: empty owner_id")
	}
	if r.TemplateID == "" {
		return "", Invalidf("create stack: empty template_id")
	}
	if r.CredentialID == "" {
		return "", Invalidf("create stack: empty credential_id")
	}
	status := r.Status
	if status == "" {
		status = machinestate.StackNotInitialized
	}
	if !status.Valid() {
		return "", Invalidf("create stack: unknown status %q", status)
	}
	return status, nil
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

// CheckEvents is what every backend requires of events to append.
func CheckEvents(jobID string, events []*Event) error {
	if jobID == "" {
		return Invalidf("append events: empty job id")
	}
	for i, e := range events {
		if e == nil {
			return Invalidf("append events to job %s: event %d is nil", jobID, i)
		}
		if e.Kind == "" {
			return Invalidf("append events to job %s: event %d has no kind", jobID, i)
		}
	}
	return nil
}

// CheckNewCredential is what every backend requires of a new credential.
func CheckNewCredential(c *stack.Credential) error {
	if c == nil {
		return Invalidf("create credential: nil credential")
	}
	if c.OwnerID == "" {
		return Invalidf("create credential: empty owner_id")
	}
	if c.Provider == "" {
		return Invalidf("create credential: empty provider")
	}
	return nil
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
