package kloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // schedules name IANA zones whatever the host has

	"github.com/robfig/cron/v3"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// Schedules start and stop a machine, or every machine of a stack, by
// cron expressions in a time zone. One replica at a time runs the
// scheduler (a singleton lease); each firing is an ordinary start or stop
// job whose machine keeps the reason "schedule". A machine's own schedule
// overrides its stack's. A machine a schedule stopped is started only by
// its schedule or by a user: nothing else starts machines (the agent
// revives only machines marked silent).

const (
	// scheduleLease is the singleton lease of the scheduler.
	scheduleLease = "scheduler"
	// reasonSchedule is the reason of a machine a schedule started or
	// stopped.
	reasonSchedule = "schedule"
	// maxFirings bounds how many past firings of one expression a pass
	// walks through to find the last one.
	maxFirings = 10_000
	// scheduleCacheAge is how old the schedules machine views read may be.
	scheduleCacheAge = 5 * time.Second
)

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// cronSchedule is a schedule parsed: its expressions (nil when absent) in
// its zone.
type cronSchedule struct {
	start, stop cron.Schedule
	loc         *time.Location
}

// parseSchedule checks a schedule's expressions and zone.
func parseSchedule(autostart, autostop, timezone string) (*cronSchedule, error) {
	if timezone == "" {
		timezone = "UTC"
	}
	if len(timezone) > 128 {
		return nil, unprocessable("timezone", "timezone is longer than 128 characters")
	}
	loc, err := time.LoadLocation(timezone)
	if err != nil {
		return nil, unprocessable("timezone", "timezone %s is not an IANA time zone (e.g. Europe/Berlin)", quote(timezone))
	}
	cs := &cronSchedule{loc: loc}
	for _, f := range []struct {
		name, expr string
		dst        *cron.Schedule
	}{{"autostart", autostart, &cs.start}, {"autostop", autostop, &cs.stop}} {
		if f.expr == "" {
			continue
		}
		if len(f.expr) > 256 {
			return nil, unprocessable(f.name, "%s is longer than 256 characters", f.name)
		}
		if *f.dst, err = cronParser.Parse(f.expr); err != nil {
			return nil, unprocessable(f.name, "%s %s is not a cron expression (minute hour day month weekday, e.g. \"0 8 * * 1-5\")", f.name, quote(f.expr))
		}
	}
	if cs.start == nil && cs.stop == nil {
		return nil, unprocessable("autostart", "a schedule needs autostart, autostop or both")
	}
	return cs, nil
}

// next is when sched fires first after t (zero when it does not exist).
func (cs *cronSchedule) next(sched cron.Schedule, t time.Time) time.Time {
	if sched == nil {
		return time.Time{}
	}
	return sched.Next(t.In(cs.loc)).UTC()
}

// last is the last firing of sched in (since, now]; zero when none.
func (cs *cronSchedule) last(sched cron.Schedule, since, now time.Time) time.Time {
	var last time.Time
	t := since
	for range maxFirings {
		n := cs.next(sched, t)
		if n.IsZero() || n.After(now) {
			break
		}
		last, t = n, n
	}
	return last
}

// scheduler runs schedules and tells machine views their next firings.
type scheduler struct {
	s *Server

	mu     sync.Mutex
	cached map[string]*cronSchedule // by target
	read   time.Time                // when cached was read
}

func newScheduler(s *Server) *scheduler { return &scheduler{s: s} }

// Run fires every schedule due since it was last looked at.
func (sc *scheduler) Run(ctx context.Context) error {
	s := sc.s
	scheds, err := s.st.ListSchedules(ctx)
	if err != nil {
		return fmt.Errorf("run schedules: %w", err)
	}
	own := map[string]bool{} // machines with a schedule of their own
	for _, v := range scheds {
		if id, ok := strings.CutPrefix(v.Target, "machine/"); ok {
			own[id] = true
		}
	}
	var errs []error
	for _, v := range scheds {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := sc.fire(ctx, v, own); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// fire runs one schedule: the later of its start and stop due since it
// was checked, on every machine it covers; then it moves Checked to now.
func (sc *scheduler) fire(ctx context.Context, v *store.Schedule, own map[string]bool) error {
	s := sc.s
	now := s.now()
	cs, err := parseSchedule(v.Autostart, v.Autostop, v.Timezone)
	if err != nil {
		return fmt.Errorf("schedule of %s: %w", v.Target, err)
	}
	startAt, stopAt := cs.last(cs.start, v.Checked, now), cs.last(cs.stop, v.Checked, now)
	var method machinestate.Method
	switch {
	case stopAt.IsZero() && startAt.IsZero():
		return s.st.SetScheduleChecked(ctx, v.Target, now)
	case stopAt.After(startAt) || startAt.IsZero():
		method = machinestate.Stop
	default:
		method = machinestate.Start
	}
	ms, err := sc.machines(ctx, v.Target, own)
	if err != nil {
		return fmt.Errorf("schedule of %s: %w", v.Target, err)
	}
	var errs []error
	for _, m := range ms {
		want := machinestate.Running
		if method == machinestate.Start {
			want = machinestate.Stopped
		}
		if m.State != want {
			continue
		}
		if method == machinestate.Start {
			if err := s.cost.budgets.Gate(ctx, m.OwnerID, m.StackID); err != nil {
				s.log.Warn("scheduled start skipped", slog.String("machine", m.ID), slog.String("reason", err.Error()))
				continue
			}
		}
		if err := s.queueWithReason(ctx, m, method, scheduleRequest(method)); err != nil {
			errs = append(errs, fmt.Errorf("scheduled %s of machine %s: %w", method, m.ID, err))
			continue
		}
		s.log.Info("schedule fired", slog.String("machine", m.ID), slog.String("method", string(method)), slog.String("target", v.Target))
	}
	if err := errors.Join(errs...); err != nil {
		return err // not checked: the next pass tries again
	}
	return s.st.SetScheduleChecked(ctx, v.Target, now)
}

// machines are the machines a schedule target covers; a stack's schedule
// leaves out the machines with a schedule of their own.
func (sc *scheduler) machines(ctx context.Context, target string, own map[string]bool) ([]*stack.Machine, error) {
	s := sc.s
	if id, ok := strings.CutPrefix(target, "machine/"); ok {
		m, err := s.st.GetMachine(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []*stack.Machine{m}, nil
	}
	id := strings.TrimPrefix(target, "stack/")
	all, err := s.st.ListMachines(ctx, store.MachineFilter{StackID: id})
	if err != nil {
		return nil, err
	}
	out := all[:0:0]
	for _, m := range all {
		if !own[m.ID] {
			out = append(out, m)
		}
	}
	return out, nil
}

// schedules returns the parsed schedules by target, read at most
// scheduleCacheAge ago.
func (sc *scheduler) schedules() map[string]*cronSchedule {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.cached != nil && time.Since(sc.read) < scheduleCacheAge {
		return sc.cached
	}
	scheds, err := sc.s.st.ListSchedules(context.Background())
	if err != nil {
		sc.s.log.Error("read schedules", slog.String("error", err.Error()))
		return sc.cached
	}
	out := make(map[string]*cronSchedule, len(scheds))
	for _, v := range scheds {
		if cs, err := parseSchedule(v.Autostart, v.Autostop, v.Timezone); err == nil {
			out[v.Target] = cs
		}
	}
	sc.cached, sc.read = out, time.Now()
	return out
}

// forget drops the cache: a schedule changed here.
func (sc *scheduler) forget() {
	sc.mu.Lock()
	sc.cached = nil
	sc.mu.Unlock()
}

// nextFirings are a machine's next scheduled start and stop after at: its
// own schedule's, else its stack's.
func (sc *scheduler) nextFirings(m *stack.Machine, at time.Time) (start, stop *time.Time) {
	all := sc.schedules()
	cs, ok := all["machine/"+m.ID]
	if !ok {
		if cs, ok = all["stack/"+m.StackID]; !ok {
			return nil, nil
		}
	}
	return optTime(cs.next(cs.start, at)), optTime(cs.next(cs.stop, at))
}

// ---- the API ------------------------------------------------------------------------

func (s *Server) scheduleRoutes(m *http.ServeMux) {
	a := s.authenticate
	m.HandleFunc("PUT /api/v1/machines/{id}/schedule", a(s.handlePutMachineSchedule))
	m.HandleFunc("GET /api/v1/machines/{id}/schedule", a(s.handleGetMachineSchedule))
	m.HandleFunc("DELETE /api/v1/machines/{id}/schedule", a(s.handleDeleteMachineSchedule))
	m.HandleFunc("PUT /api/v1/stacks/{id}/schedule", a(s.handlePutStackSchedule))
	m.HandleFunc("GET /api/v1/stacks/{id}/schedule", a(s.handleGetStackSchedule))
	m.HandleFunc("DELETE /api/v1/stacks/{id}/schedule", a(s.handleDeleteStackSchedule))
}

// scheduleTarget resolves the request's machine or stack to its schedule
// target and owner, for its owner or an admin.
func (s *Server) scheduleTarget(r *http.Request, kind string) (target, owner string, err error) {
	ctx := r.Context()
	id := r.PathValue("id")
	if kind == "machine" {
		m, err := s.machineFor(ctx, actorFrom(ctx), id)
		if err != nil {
			return "", "", err
		}
		return "machine/" + m.ID, m.OwnerID, nil
	}
	st, err := s.stackFor(ctx, actorFrom(ctx), id)
	if err != nil {
		return "", "", err
	}
	return "stack/" + st.ID, st.OwnerID, nil
}

func scheduleView(v *store.Schedule, cs *cronSchedule, at time.Time) client.Schedule {
	return client.Schedule{Target: v.Target, Autostart: v.Autostart, Autostop: v.Autostop, Timezone: v.Timezone,
		NextAutostart: optTime(cs.next(cs.start, at)), NextAutostop: optTime(cs.next(cs.stop, at))}
}

func (s *Server) putSchedule(w http.ResponseWriter, r *http.Request, kind string) {
	ctx := r.Context()
	target, owner, err := s.scheduleTarget(r, kind)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req client.ScheduleRequest
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	req.Autostart, req.Autostop, req.Timezone = strings.TrimSpace(req.Autostart), strings.TrimSpace(req.Autostop), strings.TrimSpace(req.Timezone)
	if req.Timezone == "" {
		req.Timezone = "UTC"
	}
	cs, err := parseSchedule(req.Autostart, req.Autostop, req.Timezone)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v := &store.Schedule{Target: target, OwnerID: owner, Autostart: req.Autostart, Autostop: req.Autostop, Timezone: req.Timezone, Checked: s.now()}
	if err := s.st.PutSchedule(ctx, v); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.cost.scheduler.forget()
	s.lists.Invalidate()
	writeJSON(w, http.StatusOK, scheduleView(v, cs, s.now()))
}

func (s *Server) getSchedule(w http.ResponseWriter, r *http.Request, kind string) {
	target, _, err := s.scheduleTarget(r, kind)
	var v *store.Schedule
	if err == nil {
		v, err = s.st.GetSchedule(r.Context(), target)
	}
	var cs *cronSchedule
	if err == nil {
		cs, err = parseSchedule(v.Autostart, v.Autostop, v.Timezone)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, scheduleView(v, cs, s.now()))
}

func (s *Server) deleteSchedule(w http.ResponseWriter, r *http.Request, kind string) {
	target, _, err := s.scheduleTarget(r, kind)
	if err == nil {
		err = s.st.DeleteSchedule(r.Context(), target)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.cost.scheduler.forget()
	s.lists.Invalidate()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handlePutMachineSchedule(w http.ResponseWriter, r *http.Request) {
	s.putSchedule(w, r, "machine")
}

func (s *Server) handleGetMachineSchedule(w http.ResponseWriter, r *http.Request) {
	s.getSchedule(w, r, "machine")
}

func (s *Server) handleDeleteMachineSchedule(w http.ResponseWriter, r *http.Request) {
	s.deleteSchedule(w, r, "machine")
}

func (s *Server) handlePutStackSchedule(w http.ResponseWriter, r *http.Request) {
	s.putSchedule(w, r, "stack")
}

func (s *Server) handleGetStackSchedule(w http.ResponseWriter, r *http.Request) {
	s.getSchedule(w, r, "stack")
}

func (s *Server) handleDeleteStackSchedule(w http.ResponseWriter, r *http.Request) {
	s.deleteSchedule(w, r, "stack")
}

// RunSchedules runs one pass of the scheduler now (tests, admin tools).
func (s *Server) RunSchedules(ctx context.Context) error { return s.cost.scheduler.Run(ctx) }
