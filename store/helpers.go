package store

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"time"
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
