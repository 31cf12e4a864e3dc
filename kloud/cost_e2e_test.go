package kloud_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud"
	"github.com/kloud/kloud/kloud/kloudtest"
	"github.com/kloud/kloud/kloud/notify"
)

// hookReceiver is a webhook receiver on loopback: it answers 500 to its
// first failFirst requests, then 200, and keeps every event whose
// signature verifies (and counts those that do not).
type hookReceiver struct {
	secret    string
	mu        sync.Mutex
	failFirst int
	requests  int
	events    []client.WebhookEvent
	badSigs   int
}

func (r *hookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if r.requests <= r.failFirst {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if !notify.Verify(r.secret, body, req.Header.Get(notify.SignatureHeader)) {
		r.badSigs++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var ev client.WebhookEvent
	if err := json.Unmarshal(body, &ev); err == nil {
		r.events = append(r.events, ev)
	}
	w.WriteHeader(http.StatusNoContent)
}

// names are the events received, in order.
func (r *hookReceiver) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.events))
	for i, e := range r.events {
		out[i] = e.Event
	}
	return out
}

func (r *hookReceiver) event(name string) (client.WebhookEvent, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Event == name {
			return e, true
		}
	}
	return client.WebhookEvent{}, false
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCostControlEndToEnd is the whole loop on the sandbox with 5-second
// rating periods: a member's budget is set low; two of the member's
// machines run (one always_on); a webhook receiver on loopback (failing
// its first two requests) gets a signed budget.warned at 80 % on the third
// try and a budget.exhausted at 100 %; the machine that is not always_on
// is then Stopped with the budget reason while the other keeps running; a
// new apply by the member answers 409 with the budget; an admin override
// starts the machine. Budget spent equals the summary total plus the live
// part at every sample.
func TestCostControlEndToEnd(t *testing.T) {
	h := kloudtest.New(t, func(c *kloud.Config) {
		c.RatingPeriod = 5 * time.Second
		c.RatingWaitPeriods = new(0)
		c.RatingInterval = time.Second
		c.Cost = kloud.CostConfig{BudgetInterval: 300 * time.Millisecond, WebhookInterval: 100 * time.Millisecond,
			WebhookBackoff: 200 * time.Millisecond, ScheduleInterval: time.Second}
	})
	ctx := context.Background()
	admin := h.Admin
	rcv := &hookReceiver{secret: "e2e-secret", failFirst: 2}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	hook, err := admin.CreateWebhook(ctx, client.WebhookRequest{URL: srv.URL + "/kloud",
		Events: []string{client.EventBudgetWarned, client.EventBudgetExhausted, client.EventMachineStopped}, Secret: rcv.secret})
	if err != nil {
		t.Fatal(err)
	}

	// 72 an hour a machine: 0.02 a second each.
	flatPrice(t, admin, "72")
	ann, member := newMember(t, admin, "ann")
	// The member's own webhook hears of their jobs.
	jobsRcv := &hookReceiver{secret: "member-secret"}
	jobsSrv := httptest.NewServer(jobsRcv)
	defer jobsSrv.Close()
	if _, err := member.CreateWebhook(ctx, client.WebhookRequest{URL: jobsSrv.URL, Events: []string{client.EventJobSucceeded, client.EventJobFailed}, Secret: jobsRcv.secret}); err != nil {
		t.Fatal(err)
	}
	credID, tplID := setup(t, member)
	st, err := member.CreateStack(ctx, client.CreateStackRequest{Title: "web+db", TemplateID: tplID, CredentialID: credID})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := member.ApplyStack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	kloudtest.WaitJob(t, member, ref.JobID)
	if st, err = member.Stack(ctx, st.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "job.succeeded of the apply", time.Minute, func() bool {
		ev, ok := jobsRcv.event(client.EventJobSucceeded)
		return ok && ev.Data["job_id"] == ref.JobID && ev.Data["kind"] == "apply" && ev.OwnerID == ann.ID
	})
	var web, db client.Machine
	for _, m := range st.Machines {
		if m.AlwaysOn {
			db = m
		} else {
			web = m
		}
	}
	if web.ID == "" || db.ID == "" {
		t.Fatalf("machines %+v, want web and an always_on db", st.Machines)
	}

	// A budget one unit above what the machines have cost so far: 80 %
	// in some 20 seconds at 0.04 a second, 100 % five seconds later.
	scope := "user:" + ann.ID
	b, err := admin.PutBudget(ctx, scope, client.BudgetRequest{Amount: dec("1000")})
	if err != nil {
		t.Fatal(err)
	}
	amount := b.Spent.Add(dec("1")).Round(2)
	b, err = admin.PutBudget(ctx, scope, client.BudgetRequest{Amount: amount, WarnAt: []decimal.Decimal{dec("0.8")}, Action: "stop"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("budget %s of %s, spent %s", scope, b.Amount, b.Spent)

	// Spent is the summary's total plus the live part at every sample.
	samples := 0
	eventually(t, "budget exhausted", 3*time.Minute, func() bool {
		b, err := member.Budget(ctx, scope)
		if err != nil {
			t.Fatal(err)
		}
		rated := summaryTotal(t, admin, client.SummaryQuery{Scope: ann.ID, Begin: b.PeriodStart, End: b.RatedThrough})
		if !b.Spent.Equal(rated.Add(b.Live)) {
			t.Errorf("spent %s != summary %s + live %s", b.Spent, rated, b.Live)
		}
		samples++
		_, done := rcv.event(client.EventBudgetExhausted)
		return done
	})
	t.Logf("%d samples of spent = summary + live", samples)
	names := rcv.names()
	wi, ei := slices.Index(names, client.EventBudgetWarned), slices.Index(names, client.EventBudgetExhausted)
	if wi < 0 || ei < wi {
		t.Fatalf("events %v, want budget.warned before budget.exhausted", names)
	}
	warned, _ := rcv.event(client.EventBudgetWarned)
	if warned.Data["fraction"] != "0.8" || warned.Data["scope"] != scope || warned.OwnerID != ann.ID {
		t.Errorf("budget.warned = %+v", warned)
	}
	if spent := dec(warned.Data["spent"].(string)); spent.LessThan(amount.Mul(dec("0.8"))) {
		t.Errorf("warned at spent %s, below 80 %% of %s", spent, amount)
	}
	exhausted, _ := rcv.event(client.EventBudgetExhausted)
	if !slices.Contains(asStrings(exhausted.Data["always_on"]), db.ID) || !slices.Contains(asStrings(exhausted.Data["stopped"]), web.ID) {
		t.Errorf("budget.exhausted data = %v, want %s stopped and %s listed as always_on", exhausted.Data, web.ID, db.ID)
	}
	if spent := dec(exhausted.Data["spent"].(string)); spent.LessThan(amount) {
		t.Errorf("exhausted at spent %s, below %s", spent, amount)
	}

	// The machine that is not always_on stops with the budget reason;
	// the always_on one keeps running.
	eventually(t, "web stopped", 2*time.Minute, func() bool {
		m, err := member.Machine(ctx, web.ID)
		return err == nil && m.State.String() == "Stopped"
	})
	m, _ := member.Machine(ctx, web.ID)
	if !strings.HasPrefix(m.Reason, "budget exhausted (spent ") || !strings.Contains(m.Reason, " of "+amount.StringFixed(2)+")") {
		t.Errorf("web reason %q, want budget exhausted (spent X of %s)", m.Reason, amount.StringFixed(2))
	}
	if d, _ := member.Machine(ctx, db.ID); d.State.String() != "Running" {
		t.Errorf("always_on db is %s, want Running", d.State)
	}
	eventually(t, "machine.stopped event", time.Minute, func() bool {
		ev, ok := rcv.event(client.EventMachineStopped)
		return ok && ev.Data["cause"] == "budget" && ev.Data["machine_id"] == web.ID
	})

	// While exhausted: the member's apply and start are refused with the
	// budget; an admin's override starts the machine.
	_, err = member.ApplyStack(ctx, st.ID)
	var ce *client.Error
	if !asClientError(err, &ce) || ce.Status != http.StatusConflict || ce.Budget == nil || ce.Budget.State != client.BudgetExhausted || ce.Budget.Scope != scope {
		t.Fatalf("member apply while exhausted: %v (%+v), want 409 with the budget", err, ce)
	}
	// Applying a saved plan is an apply too.
	if _, err := member.ApplyPlan(ctx, st.ID, "job-any"); !asClientError(err, &ce) || ce.Status != http.StatusConflict || ce.Budget == nil {
		t.Errorf("member apply of a plan while exhausted: %v, want 409 with the budget", err)
	}
	if _, err := member.StartMachine(ctx, web.ID); apiStatus(err) != http.StatusConflict {
		t.Errorf("member start while exhausted: %v, want 409", err)
	}
	if _, err := admin.StartMachine(ctx, web.ID); apiStatus(err) != http.StatusConflict {
		t.Errorf("admin start without override: %v, want 409", err)
	}
	if _, err := member.StartMachineAnyway(ctx, web.ID); apiStatus(err) != http.StatusConflict {
		t.Errorf("member override: %v, want 409 (admins only)", err)
	}
	ref, err = admin.StartMachineAnyway(ctx, web.ID)
	if err != nil {
		t.Fatalf("admin override: %v", err)
	}
	kloudtest.WaitJob(t, admin, ref.JobID)
	if m, _ := member.Machine(ctx, web.ID); m.State.String() != "Running" {
		t.Errorf("web after the override is %s, want Running", m.State)
	}
	// The override and the budget's stop are in the audit log, which the
	// member sees too.
	entries, err := member.Audit(ctx, client.AuditQuery{Target: "machine/" + web.ID})
	if err != nil {
		t.Fatal(err)
	}
	var overridden, stoppedByBudget bool
	for _, e := range entries {
		overridden = overridden || (e.Action == "machine.start.override" && strings.Contains(e.Detail, scope))
		stoppedByBudget = stoppedByBudget || (e.Action == "machine.stop.budget" && e.Actor == "system")
	}
	if !overridden || !stoppedByBudget {
		t.Errorf("audit of %s = %+v, want the budget's stop and the admin's override", web.ID, entries)
	}

	// The receiver failed its first two requests: the first delivery got
	// through on the third try, and the log shows all three.
	ds, err := admin.Deliveries(ctx, hook.ID)
	if err != nil {
		t.Fatal(err)
	}
	first := ds[len(ds)-1]
	if first.Event != client.EventBudgetWarned || first.Status != "delivered" || len(first.Attempts) != 3 ||
		first.Attempts[0].StatusCode != 500 || first.Attempts[1].StatusCode != 500 || first.Attempts[2].StatusCode != 204 {
		t.Errorf("first delivery = %+v, want budget.warned delivered on the third attempt after two 500s", first)
	}
	rcv.mu.Lock()
	if rcv.badSigs != 0 {
		t.Errorf("%d deliveries with a bad signature", rcv.badSigs)
	}
	rcv.mu.Unlock()
}

func asStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func asClientError(err error, target **client.Error) bool {
	e, ok := err.(*client.Error)
	if ok {
		*target = e
	}
	return ok
}

// TestScheduleStopStartByClock: a machine's schedule fires a stop and
// then a start on a clock the test moves, each an ordinary job leaving the
// reason "schedule"; between them, nothing else starts the machine; the
// machine shows its next firings.
func TestScheduleStopStartByClock(t *testing.T) {
	clock := &kloudtest.Clock{}
	h := kloudtest.New(t, func(c *kloud.Config) {
		c.Now = clock.Now
		c.AgentTimeout = 72 * time.Hour
		c.Cost.ScheduleInterval = time.Hour // the test runs the scheduler
	})
	ctx := context.Background()
	admin := h.Admin
	_, st, job := applyOne(t, admin, oneSmall)
	if job.Status != "succeeded" {
		t.Fatalf("apply %s: %s", job.Status, job.Error)
	}
	id := st.Machines[0].ID
	sch, err := admin.PutMachineSchedule(ctx, id, client.ScheduleRequest{Autostart: "0 8 * * *", Autostop: "0 19 * * *", Timezone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now().UTC()
	nextStop := time.Date(now.Year(), now.Month(), now.Day(), 19, 0, 0, 0, time.UTC)
	if !nextStop.After(now) {
		nextStop = nextStop.AddDate(0, 0, 1)
	}
	if sch.NextAutostop == nil || !sch.NextAutostop.Equal(nextStop) {
		t.Errorf("next autostop %v, want %v", sch.NextAutostop, nextStop)
	}
	waitState := func(want, reason string) {
		t.Helper()
		eventually(t, "machine "+want, 2*time.Minute, func() bool {
			m, err := admin.Machine(ctx, id)
			return err == nil && m.State.String() == want && m.Reason == reason
		})
	}

	if err := h.Server.RunSchedules(ctx); err != nil {
		t.Fatal(err)
	}
	if m, _ := admin.Machine(ctx, id); m.State.String() != "Running" {
		t.Fatalf("machine %s before any firing", m.State)
	}
	clock.Advance(nextStop.Sub(now) + time.Minute)
	if err := h.Server.RunSchedules(ctx); err != nil {
		t.Fatal(err)
	}
	waitState("Stopped", "schedule")
	m, _ := admin.Machine(ctx, id)
	if m.NextAutostart == nil || m.NextAutostart.Hour() != 8 {
		t.Errorf("stopped machine's next autostart = %v, want 08:00", m.NextAutostart)
	}

	// Nothing but its schedule or a user starts it: not the scheduler
	// before 08:00, not the checker, not a budget pass.
	clock.Advance(time.Hour)
	for _, pass := range []func(context.Context) error{h.Server.RunSchedules, h.Server.Checker().CheckMachines, h.Server.CheckBudgets} {
		if err := pass(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if m, _ := admin.Machine(ctx, id); m.State.String() != "Stopped" {
		t.Fatalf("a machine stopped by schedule is %s after other automation ran", m.State)
	}

	next := m.NextAutostart.Sub(clock.Now()) + time.Minute
	clock.Advance(next)
	if err := h.Server.RunSchedules(ctx); err != nil {
		t.Fatal(err)
	}
	waitState("Running", "schedule")

	// A user's stop afterwards is the user's: the machine does not keep
	// the schedule's reason.
	ref, err := admin.StopMachine(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	kloudtest.WaitJob(t, admin, ref.JobID)
	if m, _ := admin.Machine(ctx, id); m.State.String() != "Stopped" || m.Reason == "schedule" {
		t.Errorf("after a user's stop: %s with reason %q, want Stopped without the schedule's reason", m.State, m.Reason)
	}
}

const oneSmall = `
resource "sandbox_machine" "web" {
  name = "web"
  size = "small"
}
`

// TestScheduleFiresForReal: a minute-level cron stops a machine on the
// real clock, through the scheduler's own loop.
func TestScheduleFiresForReal(t *testing.T) {
	h := kloudtest.New(t, func(c *kloud.Config) { c.Cost.ScheduleInterval = time.Second })
	ctx := context.Background()
	admin := h.Admin
	_, st, job := applyOne(t, admin, oneSmall)
	if job.Status != "succeeded" {
		t.Fatalf("apply %s: %s", job.Status, job.Error)
	}
	id := st.Machines[0].ID
	if _, err := admin.PutMachineSchedule(ctx, id, client.ScheduleRequest{Autostop: "* * * * *"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "stopped by its schedule", 3*time.Minute, func() bool {
		m, err := admin.Machine(ctx, id)
		return err == nil && m.State.String() == "Stopped" && m.Reason == "schedule"
	})
}
