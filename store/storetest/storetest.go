// Package storetest is the conformance suite every store backend runs: the
// same subtests, named by aggregate and case, against SQLite, MongoDB and
// any later backend, so each keeps exactly the contract store.go documents.
package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/store"
)

// Opener returns a fresh, empty store for one subtest and arranges (with
// t.Cleanup) for it to be closed.
type Opener func(t *testing.T) store.Store

// Run runs the whole conformance suite against the backend open creates.
// Subtests are named "<Aggregate>/<Case>"; every backend runs the same ones.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	groups := []struct {
		name  string
		cases []testCase
	}{
		{"Users", userCases},
		{"Credentials", credentialCases},
		{"Templates", templateCases},
		{"Stacks", stackCases},
		{"Machines", machineCases},
		{"StateHistory", historyCases},
		{"Jobs", jobCases},
		{"Events", eventCases},
		{"Leases", leaseCases},
		{"StateVersions", stateVersionCases},
		{"RatingModules", ratingModuleCases},
		{"Hashmap", hashmapCases},
		{"Rated", ratedCases},
		{"Summarize", summarizeCases},
		{"WriterStates", writerStateCases},
		{"Budgets", budgetCases},
		{"Schedules", scheduleCases},
		{"Webhooks", webhookCases},
		{"RuleValidities", ruleValidityCases},
		{"RatedRewrite", rewriteCases},
		{"TemplateVersions", templateVersionCases},
		{"StackUpdates", stackUpdateCases},
		{"Plans", planCases},
		{"Drift", driftCases},
		{"JobTimings", jobTimingCases},
		{"Audit", auditCases},
		{"Invalid", invalidCases},
		{"Tunnels", tunnelCases},
		{"Shares", shareCases},
		{"Activity", activityCases},
		{"TerminalSessions", sessionCases},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					c.run(t, open(t))
				})
			}
		})
	}
}

type testCase struct {
	name string
	run  func(t *testing.T, s store.Store)
}

// t0 is the suite's reference time: microsecond precision, not UTC, so a
// round trip shows the backend keeps microseconds and returns UTC.
var t0 = time.Date(2031, 3, 3, 10, 0, 0, 123456000, time.FixedZone("UTC+2", 2*3600))

func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// is fails unless errors.Is(err, target).
func is(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", what, err, target)
	}
}

// sameTime fails unless got is want in UTC.
func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %s, want %s", what, got.Format(time.RFC3339Nano), want.UTC().Format(time.RFC3339Nano))
	}
	if !got.IsZero() && got.Location() != time.UTC {
		t.Errorf("%s is in %v, want UTC", what, got.Location())
	}
}

func hasPrefix(t *testing.T, what, id, prefix string) {
	t.Helper()
	if !strings.HasPrefix(id, prefix) || len(id) <= len(prefix) {
		t.Errorf("%s id %q, want %q and random hex", what, id, prefix)
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// fresh returns nonce-free, readable unique names for one subtest.
func name(prefix string, i int) string { return fmt.Sprintf("%s-%d", prefix, i) }
