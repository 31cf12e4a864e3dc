package kloud_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/kloudtest"
)

// scrape reads /metrics as c and parses it with Prometheus's own text
// parser.
func scrape(t *testing.T, c *client.Client) map[string]*dto.MetricFamily {
	t.Helper()
	var page bytes.Buffer
	if err := c.Metrics(context.Background(), &page); err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	var p expfmt.TextParser
	families, err := p.TextToMetricFamilies(&page)
	if err != nil {
		t.Fatalf("the Prometheus text parser refuses /metrics: %v", err)
	}
	return families
}

// sample returns the metric of family name whose labels include want.
func sample(families map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	f := families[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

// TestMetricsAfterApply: after an apply, /metrics (admins only on the API)
// shows it in kloud_jobs_total, a job-duration observation, the machine by
// state, and the request counted under its route pattern.
func TestMetricsAfterApply(t *testing.T) {
	h := kloudtest.New(t)
	_, _, job := applyOne(t, h.Admin, `resource "sandbox_machine" "m" { name = "m" }`)
	if job.Status != "succeeded" {
		t.Fatalf("apply %s: %s", job.Status, job.Error)
	}
	fams := scrape(t, h.Admin)

	if m := sample(fams, "kloud_jobs_total", map[string]string{"kind": "apply", "result": "succeeded"}); m.GetCounter().GetValue() != 1 {
		t.Errorf("kloud_jobs_total{kind=apply,result=succeeded} = %v, want 1", m)
	}
	if m := sample(fams, "kloud_job_duration_seconds", map[string]string{"kind": "apply", "phase": "total"}); m.GetHistogram().GetSampleCount() != 1 || m.GetHistogram().GetSampleSum() <= 0 {
		t.Errorf("kloud_job_duration_seconds{kind=apply} = %v, want one observation", m)
	}
	for _, phase := range []string{"start", "compose", "terraform", "record"} {
		if m := sample(fams, "kloud_job_duration_seconds", map[string]string{"kind": "apply", "phase": phase}); m.GetHistogram().GetSampleCount() != 1 {
			t.Errorf("kloud_job_duration_seconds{kind=apply,phase=%s} = %v, want one observation", phase, m)
		}
	}
	if m := sample(fams, "kloud_job_pickup_seconds", map[string]string{"kind": "apply"}); m.GetHistogram().GetSampleCount() != 1 {
		t.Errorf("kloud_job_pickup_seconds{kind=apply} = %v, want one observation", m)
	}
	if m := sample(fams, "kloud_machines", map[string]string{"provider": "sandbox", "state": "Running"}); m.GetGauge().GetValue() != 1 {
		t.Errorf("kloud_machines{provider=sandbox,state=Running} = %v, want 1", m)
	}
	if m := sample(fams, "kloud_http_requests_total", map[string]string{"route": "/api/v1/stacks/{id}/apply", "method": "POST", "status": "202"}); m.GetCounter().GetValue() != 1 {
		t.Errorf("kloud_http_requests_total of the apply = %v, want 1", m)
	}
	for _, name := range []string{"kloud_http_request_duration_seconds", "kloud_jobs_queued_total", "kloud_jobs_started_total",
		"kloud_jobs_queue_depth", "kloud_agents", "kloud_rating_lag_seconds", "kloud_store_call_duration_seconds",
		"kloud_rating_periods_total", "kloud_rating_points_total", "process_resident_memory_bytes"} {
		if fams[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}

	var e *client.Error
	if err := h.Member(t, "m").Metrics(context.Background(), &bytes.Buffer{}); !errors.As(err, &e) || e.Status != http.StatusForbidden {
		t.Errorf("a member's GET /metrics = %v, want 403", err)
	}
}
