package kloud

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/kloud/notify"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/user"
)

// Webhooks: POST /api/v1/webhooks {url, events, secret} for an admin
// (every owner's events) or a member (their own), the delivery log at
// GET /api/v1/webhooks/{id}/deliveries. The secret is sealed at rest and
// never answered.

const (
	maxWebhookURL    = 2048
	maxWebhookSecret = 256
	// maxWebhooksPerOwner bounds the deliveries one event makes.
	maxWebhooksPerOwner = 20
	// maxDeliveries is how many deliveries a log answers.
	maxDeliveries = 100
)

func (s *Server) webhookRoutes(m *http.ServeMux) {
	a := s.authenticate
	m.HandleFunc("POST /api/v1/webhooks", a(s.handleCreateWebhook))
	m.HandleFunc("GET /api/v1/webhooks", a(s.handleListWebhooks))
	m.HandleFunc("GET /api/v1/webhooks/{id}", a(s.handleGetWebhook))
	m.HandleFunc("DELETE /api/v1/webhooks/{id}", a(s.handleDeleteWebhook))
	m.HandleFunc("GET /api/v1/webhooks/{id}/deliveries", a(s.handleListDeliveries))
}

func webhookView(w *store.Webhook) client.Webhook {
	return client.Webhook{ID: w.ID, OwnerID: w.OwnerID, URL: w.URL, Events: w.Events, CreatedAt: w.CreatedAt}
}

// checkWebhook checks a webhook request: an http or https URL with a
// host, known events, a secret.
func checkWebhook(req client.WebhookRequest) error {
	if req.URL == "" {
		return unprocessable("url", "url is required")
	}
	if len(req.URL) > maxWebhookURL {
		return unprocessable("url", "url is longer than %d characters", maxWebhookURL)
	}
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return unprocessable("url", "url %s is not an http or https URL with a host (and no credentials)", quote(req.URL))
	}
	if len(req.Events) == 0 {
		return unprocessable("events", "events must name at least one of %s", strings.Join(notify.Events, ", "))
	}
	for i, e := range req.Events {
		if !slices.Contains(notify.Events, e) {
			return unprocessable(fmt.Sprintf("events[%d]", i), "event %s is not one of %s", quote(e), strings.Join(notify.Events, ", "))
		}
	}
	if req.Secret == "" {
		return unprocessable("secret", "secret is required: deliveries are signed with it")
	}
	if len(req.Secret) > maxWebhookSecret {
		return unprocessable("secret", "secret is longer than %d characters", maxWebhookSecret)
	}
	return nil
}

func (s *Server) handleCreateWebhook(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	actor := actorFrom(ctx)
	var req client.WebhookRequest
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkWebhook(req); err != nil {
		s.writeError(w, r, err)
		return
	}
	mine, err := s.st.ListWebhooks(ctx, actor.ID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(mine) >= maxWebhooksPerOwner {
		s.writeError(w, r, conflict("", "you have %d webhooks, the most one user may have", len(mine)))
		return
	}
	events := slices.Compact(slices.Sorted(slices.Values(req.Events)))
	hook := &store.Webhook{OwnerID: actor.ID, URL: req.URL, Events: events, Secret: stack.Secret(req.Secret)}
	if err := s.st.CreateWebhook(ctx, hook); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, webhookView(hook))
}

func (s *Server) webhookFor(ctx context.Context, actor *user.User, id string) (*store.Webhook, error) {
	return owned(ctx, actor, "webhook", id, s.st.GetWebhook, func(w *store.Webhook) string { return w.OwnerID })
}

func (s *Server) handleListWebhooks(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	hooks, err := s.st.ListWebhooks(ctx, ownerFilter(actorFrom(ctx)))
	out := make([]client.Webhook, 0, len(hooks))
	for _, h := range hooks {
		out = append(out, webhookView(h))
	}
	listAnswer(s, w, r, out, err)
}

func (s *Server) handleGetWebhook(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	h, err := s.webhookFor(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, webhookView(h))
}

func (s *Server) handleDeleteWebhook(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	h, err := s.webhookFor(ctx, actorFrom(ctx), r.PathValue("id"))
	if err == nil {
		err = s.st.DeleteWebhook(ctx, h.ID)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleListDeliveries(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	h, err := s.webhookFor(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ds, err := s.st.ListDeliveries(ctx, h.ID, maxDeliveries)
	out := make([]client.Delivery, 0, len(ds))
	for _, d := range ds {
		v := client.Delivery{ID: d.ID, WebhookID: d.WebhookID, Event: d.Event, Status: d.Status, CreatedAt: d.CreatedAt,
			Attempts: make([]client.DeliveryAttempt, len(d.Attempts)), NextAttemptAt: optTime(d.NextAt)}
		for i, a := range d.Attempts {
			v.Attempts[i] = client.DeliveryAttempt(a)
		}
		out = append(out, v)
	}
	listAnswer(s, w, r, out, err)
}

// ---- events ---------------------------------------------------------------------------

// executeNotified runs a job and tells the webhooks how it ended.
func (s *Server) executeNotified(ctx context.Context, run *jobs.Run) error {
	err := s.execute(ctx, run)
	j := run.Job
	data := map[string]any{"job_id": j.ID, "kind": string(j.Kind), "target": j.Target}
	for k, v := range map[string]string{"stack_id": j.StackID, "machine_id": j.MachineID, "credential_id": j.CredentialID} {
		if v != "" {
			data[k] = v
		}
	}
	if err != nil {
		msg := run.Mask(err.Error())
		if stopped, ok := jobs.StopReason(ctx); ok {
			msg = stopped
		}
		data["error"] = msg
		s.notify(ctx, notify.JobFailed, j.OwnerID, data)
		return err
	}
	s.notify(ctx, notify.JobSucceeded, j.OwnerID, data)
	return nil
}

// machineStopped tells the webhooks that m stopped and why: idle,
// schedule, budget, agent silent, or a user.
func (s *Server) machineStopped(ctx context.Context, m *stack.Machine, reason string) {
	cause := "user"
	switch {
	case strings.HasPrefix(reason, reasonIdle):
		cause = "idle"
	case reason == reasonSchedule:
		cause = "schedule"
	case strings.HasPrefix(reason, "budget"):
		cause = "budget"
	case strings.HasPrefix(reason, reasonAgentSilent):
		cause = "agent silent"
	}
	s.notify(ctx, notify.MachineStopped, m.OwnerID, map[string]any{
		"machine_id": m.ID, "stack_id": m.StackID, "label": m.Label, "cause": cause, "reason": reason, "at": s.now().Format(time.RFC3339),
	})
}

// StackDrifted tells the webhooks that a stack's resources drifted from
// its state (the drift check calls it).
func (s *Server) StackDrifted(ctx context.Context, st *store.StackRecord, resources []string) {
	s.notify(ctx, notify.StackDrifted, st.OwnerID, map[string]any{"stack_id": st.ID, "title": st.Title, "resources": resources})
}

// notifyingMachines is the store as the checker writes machine states
// through it: a machine it marks Stopped (agent silent) is told to the
// webhooks.
type notifyingMachines struct{ s *Server }

func (n notifyingMachines) ListMachines(ctx context.Context, f store.MachineFilter) ([]*stack.Machine, error) {
	return n.s.st.ListMachines(ctx, f)
}

func (n notifyingMachines) SetMachineState(ctx context.Context, id string, state machinestate.State, reason string, at time.Time) error {
	if err := n.s.st.SetMachineState(ctx, id, state, reason, at); err != nil {
		return err
	}
	if state == machinestate.Stopped {
		if m, err := n.s.st.GetMachine(ctx, id); err == nil {
			n.s.machineStopped(ctx, m, reason)
		}
	}
	return nil
}
