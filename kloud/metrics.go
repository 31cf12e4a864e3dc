package kloud

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/ratingbridge"
	"github.com/kloud/kloud/store"
)

// metrics are the server's Prometheus metrics, on a registry of its own
// (never the global default one: two servers in one process, as tests
// run them, count apart).
type metrics struct {
	reg *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	jobsQueued   *prometheus.CounterVec
	jobsStarted  *prometheus.CounterVec
	jobsFinished *prometheus.CounterVec
	jobDuration  *prometheus.HistogramVec
	jobPickup    *prometheus.HistogramVec

	ratingPeriods prometheus.Counter
	ratingPoints  prometheus.Counter

	storeCalls *prometheus.HistogramVec

	phaseMu sync.Mutex
	phases  map[string]phaseMark // by job id, while the job runs here
}

// Buckets: HTTP answers and store calls are milliseconds; jobs run for
// seconds to many minutes.
var (
	fastBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	jobBuckets  = []float64{.1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
)

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg:    prometheus.NewRegistry(),
		phases: map[string]phaseMark{},
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kloud_http_requests_total", Help: "HTTP requests answered, by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kloud_http_request_duration_seconds", Help: "Time to answer HTTP requests, by route pattern and method.", Buckets: fastBuckets,
		}, []string{"route", "method"}),
		jobsQueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kloud_jobs_queued_total", Help: "Jobs queued on this replica, by kind.",
		}, []string{"kind"}),
		jobsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kloud_jobs_started_total", Help: "Jobs started by this replica's workers, by kind.",
		}, []string{"kind"}),
		jobsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kloud_jobs_total", Help: "Jobs finished by this replica's workers, by kind and result (succeeded, failed).",
		}, []string{"kind", "result"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kloud_job_duration_seconds", Help: "Time jobs ran, by kind and phase (total: claim to end).", Buckets: jobBuckets,
		}, []string{"kind", "phase"}),
		jobPickup: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kloud_job_pickup_seconds", Help: "Time from a job queued to a worker claiming it, by kind.", Buckets: fastBuckets,
		}, []string{"kind"}),
		ratingPeriods: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kloud_rating_periods_total", Help: "Scope periods rated by this replica.",
		}),
		ratingPoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kloud_rating_points_total", Help: "Data points rated by this replica.",
		}),
		storeCalls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kloud_store_call_duration_seconds", Help: "Time of store calls, by operation.", Buckets: fastBuckets,
		}, []string{"op"}),
	}
	m.reg.MustRegister(m.httpRequests, m.httpDuration, m.jobsQueued, m.jobsStarted, m.jobsFinished,
		m.jobDuration, m.jobPickup, m.ratingPeriods, m.ratingPoints, m.storeCalls,
		&stateCollector{s: s},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// JobQueued, JobStarted and JobFinished make metrics the job engine's
// jobs.Observer.
func (m *metrics) JobQueued(kind jobs.Kind) { m.jobsQueued.WithLabelValues(string(kind)).Inc() }

func (m *metrics) JobStarted(kind jobs.Kind, pickup time.Duration) {
	m.jobsStarted.WithLabelValues(string(kind)).Inc()
	m.jobPickup.WithLabelValues(string(kind)).Observe(pickup.Seconds())
}

// JobEvent times the phases of a job running here: a phase lasts from
// its first event to the next phase's.
func (m *metrics) JobEvent(j *jobs.Job, kind jobs.EventKind, msg string, at time.Time) {
	p := phaseOf(kind, msg)
	if p == "" {
		return
	}
	m.phaseMu.Lock()
	defer m.phaseMu.Unlock()
	cur, ok := m.phases[j.ID]
	if ok && cur.name == p {
		return
	}
	if ok && cur.name != "end" {
		m.jobDuration.WithLabelValues(string(j.Kind), cur.name).Observe(at.Sub(cur.since).Seconds())
	}
	m.phases[j.ID] = phaseMark{p, at}
}

// JobFinished counts the job and observes its duration.
func (m *metrics) JobFinished(j *jobs.Job, status jobs.Status, d time.Duration) {
	m.jobsFinished.WithLabelValues(string(j.Kind), string(status)).Inc()
	m.jobDuration.WithLabelValues(string(j.Kind), "total").Observe(d.Seconds())
	m.phaseMu.Lock()
	delete(m.phases, j.ID)
	m.phaseMu.Unlock()
}

// phaseMark is the phase a running job is in, since when.
type phaseMark struct {
	name  string
	since time.Time
}

// phaseOf names the phase a job event starts (job phases as exec.go
// reports them), "" for any other event. The names are a fixed set: they
// are metric labels.
func phaseOf(kind jobs.EventKind, msg string) string {
	switch {
	case kind == jobs.EventDone, kind == jobs.EventError:
		return "end"
	case kind == jobs.EventPhase && strings.HasPrefix(msg, "running "):
		return "start"
	case kind != jobs.EventProgress:
		return ""
	case strings.HasPrefix(msg, "composing "):
		return "compose"
	case strings.HasPrefix(msg, "running terraform "):
		return "terraform"
	case msg == "recording machines":
		return "record"
	}
	return ""
}

// RatingPass counts what a rating pass rated.
func (m *metrics) RatingPass(p ratingbridge.Pass) {
	m.ratingPeriods.Add(float64(p.Periods))
	m.ratingPoints.Add(float64(p.Points))
}

// storeCall records one store call of op that began at start.
func (m *metrics) storeCall(op string, start time.Time) {
	m.storeCalls.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

// handler serves the registry in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// MetricsHandler serves GET /metrics; `kloud serve --metrics-listen`
// serves it on its own address (then the API does not).
func (s *Server) MetricsHandler() http.Handler { return s.metrics.handler() }

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	if s.cfg.MetricsListen != "" {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "metrics are served on " + s.cfg.MetricsListen})
		return
	}
	s.metrics.handler().ServeHTTP(w, r)
}

// instrument wraps the API: every request counted and timed under its
// route pattern.
func (m *metrics) instrument(mux *http.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		route := "unmatched"
		if _, pattern := mux.Handler(r); pattern != "" {
			_, route, _ = strings.Cut(pattern, " ")
		}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		m.httpRequests.WithLabelValues(route, r.Method, strconv.Itoa(status)).Inc()
		m.httpDuration.WithLabelValues(route, r.Method).Observe(time.Since(start).Seconds())
	})
}

// stateCollector reads, at each scrape, what the store knows now: machines
// by provider and state, agents by status, the job queue's depth and the
// billing lag.
type stateCollector struct{ s *Server }

var (
	machinesDesc = prometheus.NewDesc("kloud_machines", "Machines by provider and state.", []string{"provider", "state"}, nil)
	agentsDesc   = prometheus.NewDesc("kloud_agents", "Machine agents by status (connected, silent, never).", []string{"status"}, nil)
	queueDesc    = prometheus.NewDesc("kloud_jobs_queue_depth", "Jobs queued and not yet claimed, over every replica.", nil, nil)
	lagDesc      = prometheus.NewDesc("kloud_rating_lag_seconds", "Age of the oldest closed period not yet rated (0 when none waits).", nil, nil)
	scrapeDesc   = prometheus.NewDesc("kloud_metrics_store_errors", "Store reads of this scrape that failed.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{machinesDesc, agentsDesc, queueDesc, lagDesc, scrapeDesc} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	failed := 0
	fail := func(what string, err error) {
		failed++
		s.log.Warn("metrics: read "+what, slog.String("error", err.Error()))
	}
	if ms, err := s.st.ListMachines(ctx, store.MachineFilter{}); err != nil {
		fail("machines", err)
	} else {
		type key struct{ provider, state string }
		machines := map[key]int{}
		agents := map[string]int{"connected": 0, "silent": 0, "never": 0}
		at := s.viewTime()
		for _, m := range ms {
			machines[key{m.Provider, m.State.String()}]++
			agents[agentStatus(m, at, s.cfg.AgentTimeout).Status]++
		}
		for k, n := range machines {
			ch <- prometheus.MustNewConstMetric(machinesDesc, prometheus.GaugeValue, float64(n), k.provider, k.state)
		}
		for st, n := range agents {
			ch <- prometheus.MustNewConstMetric(agentsDesc, prometheus.GaugeValue, float64(n), st)
		}
	}
	if queued, err := s.st.ListJobs(ctx, jobs.StatusQueued); err != nil {
		fail("job queue", err)
	} else {
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(len(queued)))
	}
	if lag, err := s.ratingLag(ctx); err != nil {
		fail("rating lag", err)
	} else {
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, lag.Seconds())
	}
	ch <- prometheus.MustNewConstMetric(scrapeDesc, prometheus.GaugeValue, float64(failed))
}

// ratingLag is the age of the oldest closed period some scope has not had
// rated: the period after the scope's last processed one, once it is
// past the wait.
func (s *Server) ratingLag(ctx context.Context) (time.Duration, error) {
	states, err := s.st.ListScopeStates(ctx)
	if err != nil {
		return 0, err
	}
	period := s.cfg.RatingPeriod
	if period <= 0 {
		period = ratingbridge.DefaultPeriod
	}
	now := s.now()
	rateable := now.Truncate(period).Add(-time.Duration(*s.cfg.RatingWaitPeriods) * period)
	var lag time.Duration
	for _, st := range states {
		end := st.LastProcessed.Add(period) // the next period's end
		if !end.After(rateable) {
			lag = max(lag, now.Sub(end))
		}
	}
	return lag, nil
}
