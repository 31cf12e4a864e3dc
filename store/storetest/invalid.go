package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/ratingbridge/hashmap"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/user"
)

type badInput struct {
	name string
	call func(ctx context.Context, s store.Store) error
}

func ignore[T any](_ T, err error) error { return err }

var invalidInputs = []badInput{
	{"CreateUser/nil", func(ctx context.Context, s store.Store) error { return s.CreateUser(ctx, nil) }},
	{"CreateUser/empty name", func(ctx context.Context, s store.Store) error {
		return s.CreateUser(ctx, &user.User{Role: user.RoleAdmin})
	}},
	{"CreateUser/unknown role", func(ctx context.Context, s store.Store) error {
		return s.CreateUser(ctx, &user.User{Name: "x", Role: "root"})
	}},
	{"CreateUser/empty role", func(ctx context.Context, s store.Store) error {
		return s.CreateUser(ctx, &user.User{Name: "x"})
	}},
	{"GetUser/empty id", func(ctx context.Context, s store.Store) error { return ignore(s.GetUser(ctx, "")) }},
	{"GetUserByTokenHash/empty", func(ctx context.Context, s store.Store) error { return ignore(s.GetUserByTokenHash(ctx, "")) }},

	{"CreateCredential/nil", func(ctx context.Context, s store.Store) error { return s.CreateCredential(ctx, nil) }},
	{"CreateCredential/empty owner", func(ctx context.Context, s store.Store) error {
		return s.CreateCredential(ctx, &stack.Credential{Provider: "aws"})
	}},
	{"CreateCredential/empty provider", func(ctx context.Context, s store.Store) error {
		return s.CreateCredential(ctx, &stack.Credential{OwnerID: "usr-1"})
	}},
	{"GetCredential/empty id", func(ctx context.Context, s store.Store) error { return ignore(s.GetCredential(ctx, "")) }},
	{"UpdateCredential/nil", func(ctx context.Context, s store.Store) error { return s.UpdateCredential(ctx, nil) }},
	{"UpdateCredential/empty id", func(ctx context.Context, s store.Store) error {
		return s.UpdateCredential(ctx, &stack.Credential{Title: "x"})
	}},
	{"DeleteCredential/empty id", func(ctx context.Context, s store.Store) error { return s.DeleteCredential(ctx, "") }},

	{"CreateTemplate/nil", func(ctx context.Context, s store.Store) error { return s.CreateTemplate(ctx, nil) }},
	{"CreateTemplate/unknown format", func(ctx context.Context, s store.Store) error {
		return s.CreateTemplate(ctx, &stack.Template{OwnerID: "usr-1", Format: "yaml"})
	}},
	{"CreateTemplate/empty owner", func(ctx context.Context, s store.Store) error {
		return s.CreateTemplate(ctx, &stack.Template{Format: stack.FormatHCL})
	}},
	{"GetTemplate/empty id", func(ctx context.Context, s store.Store) error { return ignore(s.GetTemplate(ctx, "")) }},
	{"DeleteTemplate/empty id", func(ctx context.Context, s store.Store) error { return s.DeleteTemplate(ctx, "") }},

	{"CreateStack/nil", func(ctx context.Context, s store.Store) error { return s.CreateStack(ctx, nil) }},
	{"CreateStack/unknown status", func(ctx context.Context, s store.Store) error {
		st := newStack("usr-1", "tpl-1", "cred-1")
		st.Status = "exploded"
		return s.CreateStack(ctx, st)
	}},
	{"CreateStack/empty template", func(ctx context.Context, s store.Store) error {
		return s.CreateStack(ctx, newStack("usr-1", "", "cred-1"))
	}},
	{"CreateStack/empty owner", func(ctx context.Context, s store.Store) error {
		return s.CreateStack(ctx, newStack("", "tpl-1", "cred-1"))
	}},
	{"GetStack/empty id", func(ctx context.Context, s store.Store) error { return ignore(s.GetStack(ctx, "")) }},
	{"SetStackStatus/unknown status", func(ctx context.Context, s store.Store) error {
		st := newStack("usr-1", "tpl-1", "cred-1")
		if err := s.CreateStack(ctx, st); err != nil {
			return fmt.Errorf("setup: %v", err)
		}
		return s.SetStackStatus(ctx, st.ID, "exploded", "", t0)
	}},
	{"SetStackStatus/empty id", func(ctx context.Context, s store.Store) error {
		return s.SetStackStatus(ctx, "", machinestate.StackBuilding, "", t0)
	}},

	{"PutMachine/nil", func(ctx context.Context, s store.Store) error { return s.PutMachine(ctx, nil) }},
	{"PutMachine/unknown state", func(ctx context.Context, s store.Store) error {
		m := newMachine("m-1", "usr-1", "stk-1")
		m.State = machinestate.State(99)
		return s.PutMachine(ctx, m)
	}},
	{"PutMachine/negative state", func(ctx context.Context, s store.Store) error {
		m := newMachine("m-1", "usr-1", "stk-1")
		m.State = -1
		return s.PutMachine(ctx, m)
	}},
	{"PutMachine/empty stack", func(ctx context.Context, s store.Store) error {
		return s.PutMachine(ctx, newMachine("m-1", "usr-1", ""))
	}},
	{"PutMachine/empty owner", func(ctx context.Context, s store.Store) error {
		return s.PutMachine(ctx, newMachine("m-1", "", "stk-1"))
	}},
	{"PutMachine/metadata not JSON", func(ctx context.Context, s store.Store) error {
		m := newMachine("m-1", "usr-1", "stk-1")
		m.Metadata = []byte("{not json")
		return s.PutMachine(ctx, m)
	}},
	{"GetMachine/empty id", func(ctx context.Context, s store.Store) error { return ignore(s.GetMachine(ctx, "")) }},
	{"GetMachineByAgentTokenHash/empty", func(ctx context.Context, s store.Store) error {
		return ignore(s.GetMachineByAgentTokenHash(ctx, ""))
	}},
	{"SetMachineState/unknown state", func(ctx context.Context, s store.Store) error {
		if err := s.PutMachine(ctx, newMachine("m-1", "usr-1", "stk-1")); err != nil {
			return fmt.Errorf("setup: %v", err)
		}
		return s.SetMachineState(ctx, "m-1", machinestate.State(42), "", t0)
	}},
	{"SetMachineState/empty id", func(ctx context.Context, s store.Store) error {
		return s.SetMachineState(ctx, "", machinestate.Running, "", t0)
	}},
	{"TouchMachine/empty id", func(ctx context.Context, s store.Store) error { return s.TouchMachine(ctx, "", t0, "0.1.0") }},
	{"MachineHistory/empty id", func(ctx context.Context, s store.Store) error { return ignore(s.MachineHistory(ctx, "")) }},
	{"StateHistory/To before From", func(ctx context.Context, s store.Store) error {
		return ignore(s.StateHistory(ctx, store.HistoryQuery{From: t0, To: t0.Add(-time.Hour)}))
	}},
	{"DeleteMachine/empty id", func(ctx context.Context, s store.Store) error { return s.DeleteMachine(ctx, "") }},

	{"CreateJob/nil", func(ctx context.Context, s store.Store) error { return s.CreateJob(ctx, nil) }},
	{"CreateJob/empty target", func(ctx context.Context, s store.Store) error { return s.CreateJob(ctx, newJob("", t0)) }},
	{"CreateJob/empty kind", func(ctx context.Context, s store.Store) error {
		j := newJob("stack/1", t0)
		j.Kind = ""
		return s.CreateJob(ctx, j)
	}},
	{"CreateJob/unknown status", func(ctx context.Context, s store.Store) error {
		j := newJob("stack/1", t0)
		j.Status = "paused"
		return s.CreateJob(ctx, j)
	}},
	{"CreateJob/finished status", func(ctx context.Context, s store.Store) error {
		j := newJob("stack/1", t0)
		j.Status = jobs.StatusSucceeded
		return s.CreateJob(ctx, j)
	}},
	{"GetJob/empty id", func(ctx context.Context, s store.Store) error { return ignore(s.GetJob(ctx, "")) }},
	{"ListJobs/unknown status", func(ctx context.Context, s store.Store) error {
		return ignore(s.ListJobs(ctx, jobs.StatusQueued, "paused"))
	}},
	{"ClaimJob/empty worker", func(ctx context.Context, s store.Store) error { return ignore(s.ClaimJob(ctx, "", t0, time.Minute, 0)) }},
	{"ClaimJob/zero lease", func(ctx context.Context, s store.Store) error { return ignore(s.ClaimJob(ctx, "w", t0, 0, 0)) }},
	{"ClaimJob/negative lease", func(ctx context.Context, s store.Store) error {
		return ignore(s.ClaimJob(ctx, "w", t0, -time.Minute, 0))
	}},
	{"ClaimJob/negative max per owner", func(ctx context.Context, s store.Store) error {
		return ignore(s.ClaimJob(ctx, "w", t0, time.Minute, -1))
	}},
	{"CancelJob/empty id", func(ctx context.Context, s store.Store) error { return ignore(s.CancelJob(ctx, "", "cancelled", t0)) }},
	{"CancelJob/empty reason", func(ctx context.Context, s store.Store) error { return ignore(s.CancelJob(ctx, "job-1", "", t0)) }},
	{"RenewJobLease/zero lease", func(ctx context.Context, s store.Store) error {
		return s.RenewJobLease(ctx, "job-1", "w", t0, 0)
	}},
	{"RenewJobLease/empty worker", func(ctx context.Context, s store.Store) error {
		return s.RenewJobLease(ctx, "job-1", "", t0, time.Minute)
	}},
	{"SetJobProgress/over 100", func(ctx context.Context, s store.Store) error { return s.SetJobProgress(ctx, "job-1", "w", 101) }},
	{"SetJobProgress/negative", func(ctx context.Context, s store.Store) error { return s.SetJobProgress(ctx, "job-1", "w", -1) }},
	{"FinishJob/queued status", func(ctx context.Context, s store.Store) error {
		return s.FinishJob(ctx, "job-1", "w", jobs.StatusQueued, "", t0)
	}},
	{"FinishJob/unknown status", func(ctx context.Context, s store.Store) error {
		return s.FinishJob(ctx, "job-1", "w", "done", "", t0)
	}},
	{"FinishJob/empty id", func(ctx context.Context, s store.Store) error {
		return s.FinishJob(ctx, "", "w", jobs.StatusSucceeded, "", t0)
	}},

	{"AppendEvents/empty job", func(ctx context.Context, s store.Store) error {
		return s.AppendEvents(ctx, "", &jobs.Event{Kind: jobs.EventPhase})
	}},
	{"AppendEvents/nil event", func(ctx context.Context, s store.Store) error {
		j := newJob("stack/nil-event", t0)
		if err := s.CreateJob(ctx, j); err != nil {
			return fmt.Errorf("setup: %v", err)
		}
		return s.AppendEvents(ctx, j.ID, &jobs.Event{Kind: jobs.EventPhase}, nil)
	}},
	{"AppendEvents/empty kind", func(ctx context.Context, s store.Store) error {
		j := newJob("stack/empty-kind", t0)
		if err := s.CreateJob(ctx, j); err != nil {
			return fmt.Errorf("setup: %v", err)
		}
		return s.AppendEvents(ctx, j.ID, &jobs.Event{Message: "x"})
	}},
	{"ListEvents/empty job", func(ctx context.Context, s store.Store) error { return ignore(s.ListEvents(ctx, "", 0, 0)) }},

	{"AcquireLease/empty name", func(ctx context.Context, s store.Store) error {
		return ignore(s.AcquireLease(ctx, "", "h", t0, time.Minute))
	}},
	{"AcquireLease/empty holder", func(ctx context.Context, s store.Store) error {
		return ignore(s.AcquireLease(ctx, "n", "", t0, time.Minute))
	}},
	{"AcquireLease/zero ttl", func(ctx context.Context, s store.Store) error {
		return ignore(s.AcquireLease(ctx, "n", "h", t0, 0))
	}},
	{"ReleaseLease/empty name", func(ctx context.Context, s store.Store) error { return s.ReleaseLease(ctx, "", "h") }},
	{"GetLease/empty name", func(ctx context.Context, s store.Store) error { return ignore(s.GetLease(ctx, "")) }},

	{"PutStateVersion/nil", func(ctx context.Context, s store.Store) error { return s.PutStateVersion(ctx, nil) }},
	{"PutStateVersion/empty stack", func(ctx context.Context, s store.Store) error {
		return s.PutStateVersion(ctx, &store.StateVersion{Serial: 1})
	}},
	{"PutStateVersion/negative serial", func(ctx context.Context, s store.Store) error {
		return s.PutStateVersion(ctx, &store.StateVersion{StackID: "stk-1", Serial: -1})
	}},
	{"LatestStateVersion/empty stack", func(ctx context.Context, s store.Store) error {
		return ignore(s.LatestStateVersion(ctx, ""))
	}},
	{"ListStateVersions/empty stack", func(ctx context.Context, s store.Store) error {
		return ignore(s.ListStateVersions(ctx, ""))
	}},

	{"PutRatingModule/nil", func(ctx context.Context, s store.Store) error { return s.PutRatingModule(ctx, nil) }},
	{"PutRatingModule/empty name", func(ctx context.Context, s store.Store) error {
		return s.PutRatingModule(ctx, &store.RatingModule{Enabled: true})
	}},
	{"GetRatingModule/empty name", func(ctx context.Context, s store.Store) error { return ignore(s.GetRatingModule(ctx, "")) }},

	{"CreateHashmapService/nil", func(ctx context.Context, s store.Store) error { return s.CreateHashmapService(ctx, nil) }},
	{"CreateHashmapService/empty name", func(ctx context.Context, s store.Store) error {
		return s.CreateHashmapService(ctx, &hashmap.Service{})
	}},
	{"CreateHashmapField/nil", func(ctx context.Context, s store.Store) error { return s.CreateHashmapField(ctx, nil) }},
	{"CreateHashmapField/empty service", func(ctx context.Context, s store.Store) error {
		return s.CreateHashmapField(ctx, &hashmap.Field{Name: "size"})
	}},
	{"CreateHashmapField/empty name", func(ctx context.Context, s store.Store) error {
		return s.CreateHashmapField(ctx, &hashmap.Field{ServiceID: "svc-1"})
	}},
	{"CreateHashmapGroup/nil", func(ctx context.Context, s store.Store) error { return s.CreateHashmapGroup(ctx, nil) }},
	{"CreateHashmapGroup/empty name", func(ctx context.Context, s store.Store) error {
		return s.CreateHashmapGroup(ctx, &hashmap.Group{})
	}},
	{"CreateHashmapMapping/nil", func(ctx context.Context, s store.Store) error { return s.CreateHashmapMapping(ctx, nil) }},
	{"CreateHashmapMapping/neither service nor field", func(ctx context.Context, s store.Store) error {
		return s.CreateHashmapMapping(ctx, &hashmap.Mapping{Type: hashmap.CostFlat, Cost: dec("1")})
	}},
	{"CreateHashmapMapping/both service and field", func(ctx context.Context, s store.Store) error {
		return s.CreateHashmapMapping(ctx, &hashmap.Mapping{ServiceID: "svc-1", FieldID: "fld-1", Value: "v", Type: hashmap.CostFlat, Cost: dec("1")})
	}},
	{"CreateHashmapMapping/field without value", func(ctx context.Context, s store.Store) error {
		return s.CreateHashmapMapping(ctx, &hashmap.Mapping{FieldID: "fld-1", Type: hashmap.CostFlat, Cost: dec("1")})
	}},
	{"CreateHashmapMapping/service with value", func(ctx context.Context, s store.Store) error {
		return s.CreateHashmapMapping(ctx, &hashmap.Mapping{ServiceID: "svc-1", Value: "v", Type: hashmap.CostFlat, Cost: dec("1")})
	}},
	{"CreateHashmapMapping/unknown type", func(ctx context.Context, s store.Store) error {
		return s.CreateHashmapMapping(ctx, &hashmap.Mapping{ServiceID: "svc-1", Type: "percent", Cost: dec("1")})
	}},
	{"UpdateHashmapMapping/nil", func(ctx context.Context, s store.Store) error { return s.UpdateHashmapMapping(ctx, nil) }},
	{"UpdateHashmapMapping/empty id", func(ctx context.Context, s store.Store) error {
		return s.UpdateHashmapMapping(ctx, &hashmap.Mapping{ServiceID: "svc-1", Type: hashmap.CostFlat})
	}},
	{"UpdateHashmapMapping/empty type", func(ctx context.Context, s store.Store) error {
		return s.UpdateHashmapMapping(ctx, &hashmap.Mapping{ID: "map-1", ServiceID: "svc-1"})
	}},
	{"CreateHashmapThreshold/nil", func(ctx context.Context, s store.Store) error { return s.CreateHashmapThreshold(ctx, nil) }},
	{"CreateHashmapThreshold/neither service nor field", func(ctx context.Context, s store.Store) error {
		return s.CreateHashmapThreshold(ctx, &hashmap.Threshold{Level: dec("1"), Type: hashmap.CostRate, Cost: dec("1")})
	}},
	{"CreateHashmapThreshold/both service and field", func(ctx context.Context, s store.Store) error {
		return s.CreateHashmapThreshold(ctx, &hashmap.Threshold{ServiceID: "svc-1", FieldID: "fld-1", Level: dec("1"), Type: hashmap.CostRate, Cost: dec("1")})
	}},
	{"CreateHashmapThreshold/unknown type", func(ctx context.Context, s store.Store) error {
		return s.CreateHashmapThreshold(ctx, &hashmap.Threshold{ServiceID: "svc-1", Level: dec("1"), Type: "", Cost: dec("1")})
	}},
	{"UpdateHashmapThreshold/nil", func(ctx context.Context, s store.Store) error { return s.UpdateHashmapThreshold(ctx, nil) }},
	{"UpdateHashmapThreshold/empty id", func(ctx context.Context, s store.Store) error {
		return s.UpdateHashmapThreshold(ctx, &hashmap.Threshold{ServiceID: "svc-1", Type: hashmap.CostFlat})
	}},
	{"GetHashmapService/empty id", func(ctx context.Context, s store.Store) error { return ignore(s.GetHashmapService(ctx, "")) }},
	{"GetHashmapField/empty id", func(ctx context.Context, s store.Store) error { return ignore(s.GetHashmapField(ctx, "")) }},
	{"GetHashmapGroup/empty id", func(ctx context.Context, s store.Store) error { return ignore(s.GetHashmapGroup(ctx, "")) }},
	{"GetHashmapMapping/empty id", func(ctx context.Context, s store.Store) error { return ignore(s.GetHashmapMapping(ctx, "")) }},
	{"GetHashmapThreshold/empty id", func(ctx context.Context, s store.Store) error { return ignore(s.GetHashmapThreshold(ctx, "")) }},
	{"DeleteHashmapService/empty id", func(ctx context.Context, s store.Store) error { return s.DeleteHashmapService(ctx, "") }},
	{"DeleteHashmapField/empty id", func(ctx context.Context, s store.Store) error { return s.DeleteHashmapField(ctx, "") }},
	{"DeleteHashmapGroup/empty id", func(ctx context.Context, s store.Store) error { return s.DeleteHashmapGroup(ctx, "") }},
	{"DeleteHashmapMapping/empty id", func(ctx context.Context, s store.Store) error { return s.DeleteHashmapMapping(ctx, "") }},
	{"DeleteHashmapThreshold/empty id", func(ctx context.Context, s store.Store) error { return s.DeleteHashmapThreshold(ctx, "") }},

	{"CommitRatedPeriod/nil", func(ctx context.Context, s store.Store) error { return s.CommitRatedPeriod(ctx, nil) }},
	{"CommitRatedPeriod/empty scope", func(ctx context.Context, s store.Store) error {
		return s.CommitRatedPeriod(ctx, &store.RatedPeriod{Begin: hour(0), End: hour(1)})
	}},
	{"CommitRatedPeriod/end before begin", func(ctx context.Context, s store.Store) error {
		return s.CommitRatedPeriod(ctx, &store.RatedPeriod{Scope: "usr-1", Begin: hour(1), End: hour(0)})
	}},
	{"CommitRatedPeriod/empty period", func(ctx context.Context, s store.Store) error {
		return s.CommitRatedPeriod(ctx, &store.RatedPeriod{Scope: "usr-1", Begin: hour(1), End: hour(1)})
	}},
	{"CommitRatedPeriod/point without service", func(ctx context.Context, s store.Store) error {
		return s.CommitRatedPeriod(ctx, &store.RatedPeriod{Scope: "usr-1", Begin: hour(0), End: hour(1),
			Points: []store.RatedPoint{point("", "1", "1", nil, nil)}})
	}},
	{"CommitRatedPeriod/point of another scope", func(ctx context.Context, s store.Store) error {
		p := point("instance", "1", "1", nil, nil)
		p.Scope = "usr-2"
		return s.CommitRatedPeriod(ctx, &store.RatedPeriod{Scope: "usr-1", Begin: hour(0), End: hour(1), Points: []store.RatedPoint{p}})
	}},
	{"GetScopeState/empty scope", func(ctx context.Context, s store.Store) error { return ignore(s.GetScopeState(ctx, "")) }},
	{"Summarize/negative offset", func(ctx context.Context, s store.Store) error {
		return ignore(s.Summarize(ctx, store.SummaryQuery{Offset: -1}))
	}},
	{"Summarize/duplicate group key", func(ctx context.Context, s store.Store) error {
		return ignore(s.Summarize(ctx, store.SummaryQuery{GroupBy: []string{"type", "type"}}))
	}},
	{"Summarize/empty group key", func(ctx context.Context, s store.Store) error {
		return ignore(s.Summarize(ctx, store.SummaryQuery{GroupBy: []string{""}}))
	}},
	{"Summarize/bad time filter", func(ctx context.Context, s store.Store) error {
		return ignore(s.Summarize(ctx, store.SummaryQuery{Filters: map[string]string{"time-d": "yesterday"}}))
	}},
	{"RatedPoints/negative offset", func(ctx context.Context, s store.Store) error {
		return ignore(s.RatedPoints(ctx, store.SummaryQuery{Offset: -5}))
	}},

	{"PutWriterState/nil", func(ctx context.Context, s store.Store) error { return s.PutWriterState(ctx, nil) }},
	{"PutWriterState/empty writer", func(ctx context.Context, s store.Store) error {
		return s.PutWriterState(ctx, &store.WriterState{Scope: "usr-1"})
	}},
	{"GetWriterState/empty scope", func(ctx context.Context, s store.Store) error { return ignore(s.GetWriterState(ctx, "", "csv")) }},
}

// invalidCases run every bad input on one store: each must fail with
// ErrInvalid, and none may panic.
var invalidCases = []testCase{
	{"Inputs", func(t *testing.T, s store.Store) {
		for _, in := range invalidInputs {
			t.Run(in.name, func(t *testing.T) {
				var err error
				func() {
					defer func() {
						if r := recover(); r != nil {
							err = fmt.Errorf("panic: %v", r)
						}
					}()
					err = in.call(t.Context(), s)
				}()
				is(t, err, store.ErrInvalid, in.name)
				says, ok := invalidSays[in.name]
				if !ok {
					t.Fatalf("%s: no entry in invalidSays", in.name)
				}
				if !strings.Contains(err.Error(), says) {
					t.Errorf("%s: %q does not say %q", in.name, err, says)
				}
			})
		}
	}},
}

// invalidSays is what each bad input's message must say: the field (or
// the part of the input) that was wrong, so a caller can tell which. Every
// backend returns the same message, from the checks in package store.
var invalidSays = map[string]string{
	"CreateUser/nil":                                   "nil user",
	"CreateUser/empty name":                            "empty name",
	"CreateUser/unknown role":                          `role "root"`,
	"CreateUser/empty role":                            `role ""`,
	"GetUser/empty id":                                 "empty id",
	"GetUserByTokenHash/empty":                         "empty hash",
	"CreateCredential/nil":                             "nil credential",
	"CreateCredential/empty owner":                     "empty owner_id",
	"CreateCredential/empty provider":                  "empty provider",
	"GetCredential/empty id":                           "empty id",
	"UpdateCredential/nil":                             "nil credential",
	"UpdateCredential/empty id":                        "empty id",
	"DeleteCredential/empty id":                        "empty id",
	"CreateTemplate/nil":                               "nil template",
	"CreateTemplate/unknown format":                    `format "yaml"`,
	"CreateTemplate/empty owner":                       "empty owner_id",
	"GetTemplate/empty id":                             "empty id",
	"DeleteTemplate/empty id":                          "empty id",
	"CreateStack/nil":                                  "nil stack",
	"CreateStack/unknown status":                       `unknown status "exploded"`,
	"CreateStack/empty template":                       "empty template_id",
	"CreateStack/empty owner":                          "empty owner_id",
	"GetStack/empty id":                                "empty id",
	"SetStackStatus/unknown status":                    `unknown status "exploded"`,
	"SetStackStatus/empty id":                          "empty id",
	"PutMachine/nil":                                   "nil machine",
	"PutMachine/unknown state":                         "unknown state 99",
	"PutMachine/negative state":                        "unknown state -1",
	"PutMachine/empty stack":                           "empty stack_id",
	"PutMachine/empty owner":                           "empty owner_id",
	"PutMachine/metadata not JSON":                     "metadata is not valid JSON",
	"GetMachine/empty id":                              "empty id",
	"GetMachineByAgentTokenHash/empty":                 "empty hash",
	"SetMachineState/unknown state":                    "unknown state 42",
	"SetMachineState/empty id":                         "empty id",
	"TouchMachine/empty id":                            "empty id",
	"MachineHistory/empty id":                          "empty id",
	"StateHistory/To before From":                      "window",
	"DeleteMachine/empty id":                           "empty id",
	"CreateJob/nil":                                    "nil job",
	"CreateJob/empty target":                           "empty target",
	"CreateJob/empty kind":                             "empty kind",
	"CreateJob/unknown status":                         `status "paused"`,
	"CreateJob/finished status":                        `status "succeeded"`,
	"GetJob/empty id":                                  "empty id",
	"ListJobs/unknown status":                          `unknown status "paused"`,
	"ClaimJob/empty worker":                            "empty worker",
	"ClaimJob/zero lease":                              "lease 0s must be positive",
	"ClaimJob/negative lease":                          "lease -1m0s must be positive",
	"ClaimJob/negative max per owner":                  "max per owner -1",
	"CancelJob/empty id":                               "empty id",
	"CancelJob/empty reason":                           "empty reason",
	"RenewJobLease/zero lease":                         "lease 0s must be positive",
	"RenewJobLease/empty worker":                       "empty job id or worker",
	"SetJobProgress/over 100":                          "percentage 101",
	"SetJobProgress/negative":                          "percentage -1",
	"FinishJob/queued status":                          `status "queued"`,
	"FinishJob/unknown status":                         `status "done"`,
	"FinishJob/empty id":                               "empty job id or worker",
	"AppendEvents/empty job":                           "empty job id",
	"AppendEvents/nil event":                           "event 1 is nil",
	"AppendEvents/empty kind":                          "event 0 has no kind",
	"ListEvents/empty job":                             "empty job id",
	"AcquireLease/empty name":                          "empty name or holder",
	"AcquireLease/empty holder":                        "empty name or holder",
	"AcquireLease/zero ttl":                            "ttl 0s must be positive",
	"ReleaseLease/empty name":                          "empty name or holder",
	"GetLease/empty name":                              "empty name",
	"PutStateVersion/nil":                              "nil version",
	"PutStateVersion/empty stack":                      "empty stack_id",
	"PutStateVersion/negative serial":                  "negative serial -1",
	"LatestStateVersion/empty stack":                   "empty stack id",
	"ListStateVersions/empty stack":                    "empty stack id",
	"PutRatingModule/nil":                              "nil module",
	"PutRatingModule/empty name":                       "empty name",
	"GetRatingModule/empty name":                       "empty name",
	"CreateHashmapService/nil":                         "nil service",
	"CreateHashmapService/empty name":                  "empty name",
	"CreateHashmapField/nil":                           "nil field",
	"CreateHashmapField/empty service":                 "empty service_id",
	"CreateHashmapField/empty name":                    "empty name",
	"CreateHashmapGroup/nil":                           "nil group",
	"CreateHashmapGroup/empty name":                    "empty name",
	"CreateHashmapMapping/nil":                         "nil mapping",
	"CreateHashmapMapping/neither service nor field":   "exactly one of service_id and field_id",
	"CreateHashmapMapping/both service and field":      "exactly one of service_id and field_id",
	"CreateHashmapMapping/field without value":         "field mapping needs a value",
	"CreateHashmapMapping/service with value":          "service mapping may not have a value",
	"CreateHashmapMapping/unknown type":                `type "percent"`,
	"UpdateHashmapMapping/nil":                         "nil mapping",
	"UpdateHashmapMapping/empty id":                    "empty id",
	"UpdateHashmapMapping/empty type":                  `type ""`,
	"CreateHashmapThreshold/nil":                       "nil threshold",
	"CreateHashmapThreshold/neither service nor field": "exactly one of service_id and field_id",
	"CreateHashmapThreshold/both service and field":    "exactly one of service_id and field_id",
	"CreateHashmapThreshold/unknown type":              `type ""`,
	"UpdateHashmapThreshold/nil":                       "nil threshold",
	"UpdateHashmapThreshold/empty id":                  "empty id",
	"GetHashmapService/empty id":                       "empty id",
	"GetHashmapField/empty id":                         "empty id",
	"GetHashmapGroup/empty id":                         "empty id",
	"GetHashmapMapping/empty id":                       "empty id",
	"GetHashmapThreshold/empty id":                     "empty id",
	"DeleteHashmapService/empty id":                    "empty id",
	"DeleteHashmapField/empty id":                      "empty id",
	"DeleteHashmapGroup/empty id":                      "empty id",
	"DeleteHashmapMapping/empty id":                    "empty id",
	"DeleteHashmapThreshold/empty id":                  "empty id",
	"CommitRatedPeriod/nil":                            "nil period",
	"CommitRatedPeriod/empty scope":                    "empty scope",
	"CommitRatedPeriod/end before begin":               "end 2024-01-01T00:00:00Z is not after begin",
	"CommitRatedPeriod/empty period":                   "is not after begin",
	"CommitRatedPeriod/point without service":          "point 0 has no service",
	"CommitRatedPeriod/point of another scope":         `point 0 has scope "usr-2"`,
	"GetScopeState/empty scope":                        "empty scope",
	"Summarize/negative offset":                        "negative offset -1",
	"Summarize/duplicate group key":                    `group key "type"`,
	"Summarize/empty group key":                        "group by: empty key",
	"Summarize/bad time filter":                        `filter time-d: "yesterday"`,
	"RatedPoints/negative offset":                      "negative offset -5",
	"PutWriterState/nil":                               "nil state",
	"PutWriterState/empty writer":                      "empty scope or writer",
	"GetWriterState/empty scope":                       "empty scope or writer",
}
