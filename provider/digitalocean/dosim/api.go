package dosim

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The API's error bodies: {"id": ..., "message": ..., "request_id": ...}.
const (
	msgUnauthorized = "Unable to authenticate you"
	msgNotFound     = "The resource you were accessing could not be found."
	msgRateLimited  = "API Rate limit exceeded."
	msgServerError  = "Server was unable to give you a response."
	msgPending      = "Droplet already has a pending event."
)

type apiError struct {
	ID        string `json:"id"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// recorder remembers the status a handler wrote, for the request log.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/account", s.getAccount)
	mux.HandleFunc("GET /v2/droplets/{id}", s.getDroplet)
	mux.HandleFunc("POST /v2/droplets/{id}/actions", s.postAction)
	mux.HandleFunc("GET /v2/droplets/{id}/actions/{aid}", s.getDropletAction)
	mux.HandleFunc("GET /v2/actions/{id}", s.getAction)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w} // status 0: the client went away unanswered
		req := Request{Method: r.Method, Path: r.URL.Path}
		// A POST's body is read here so the log names the action even
		// when the request is refused before the handler runs.
		var body []byte
		if r.Method == http.MethodPost {
			body, _ = io.ReadAll(io.LimitReader(r.Body, 1<<20))
			var a struct {
				Type string `json:"type"`
			}
			if json.Unmarshal(body, &a) == nil {
				req.ActionType = a.Type
			}
			r.Body = io.NopCloser(strings.NewReader(string(body)))
		}
		s.serve(rec, r, mux)
		req.Status = rec.status
		s.mu.Lock()
		s.requests = append(s.requests, req)
		s.mu.Unlock()
	})
}

// serve applies delays, faults, rate limiting and authentication, then
// routes the request.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, mux *http.ServeMux) {
	s.mu.Lock()
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	s.mu.Lock()
	now := s.opts.Now()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("ratelimit-limit", strconv.Itoa(s.opts.RateLimit))
	w.Header().Set("x-request-id", newUUID())
	if s.throttle.Requests > 0 {
		t := s.throttle
		s.throttle.Requests--
		s.mu.Unlock()
		secs := int64(math.Ceil(t.RetryAfter.Seconds()))
		w.Header().Set("ratelimit-remaining", "0")
		w.Header().Set("ratelimit-reset", strconv.FormatInt(now.Add(t.RetryAfter).Unix(), 10))
		if !t.NoRetryAfter {
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		}
		writeError(w, http.StatusTooManyRequests, "too_many_requests", msgRateLimited)
		return
	}
	if s.remaining > 0 {
		s.remaining--
	}
	w.Header().Set("ratelimit-remaining", strconv.Itoa(s.remaining))
	w.Header().Set("ratelimit-reset", strconv.FormatInt(now.Add(time.Minute).Unix(), 10))
	if s.failN > 0 {
		s.failN--
		status := s.failStatus
		s.mu.Unlock()
		writeError(w, status, "server_error", msgServerError)
		return
	}
	_, authorized := s.accounts[bearer(r)]
	s.mu.Unlock()
	if !authorized {
		writeError(w, http.StatusUnauthorized, "Unauthorized", msgUnauthorized)
		return
	}
	if _, pattern := mux.Handler(r); pattern == "" {
		writeError(w, http.StatusNotFound, "not_found", msgNotFound)
		return
	}
	mux.ServeHTTP(w, r)
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return ""
	}
	return h[len(prefix):]
}

func writeError(w http.ResponseWriter, status int, id, msg string) {
	writeJSON(w, status, apiError{ID: id, Message: msg, RequestID: newUUID()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}

func (s *Server) getAccount(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	a := s.accounts[bearer(r)]
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"account": map[string]any{
		"droplet_limit":     a.DropletLimit,
		"floating_ip_limit": 3,
		"reserved_ip_limit": 3,
		"volume_limit":      100,
		"email":             a.Email,
		"name":              "",
		"uuid":              a.UUID,
		"email_verified":    true,
		"status":            a.Status,
		"status_message":    a.StatusMsg,
		"team":              map[string]any{"uuid": a.UUID, "name": "My Team"},
	}})
}

// pathID reads a positive integer path value; an ID that is not one is a
// resource that cannot exist (404), as the real API answers.
func pathID(r *http.Request, name string) (int, bool) {
	id, err := strconv.Atoi(r.PathValue(name))
	return id, err == nil && id > 0
}

func (s *Server) getDroplet(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r, "id")
	s.mu.Lock()
	d := s.droplets[id]
	if !ok || d == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "not_found", msgNotFound)
		return
	}
	s.poll(d)
	body := s.dropletJSON(d)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"droplet": body})
}

// poll advances a droplet by one poll: a new droplet boots, a pending
// action moves towards its end. Called with s.mu held.
func (s *Server) poll(d *droplet) {
	if d.Status == StatusNew {
		d.newPolls--
		if d.newPolls <= 0 {
			d.Status = StatusActive
		}
	}
	a := d.pending
	if a == nil {
		return
	}
	a.polls--
	if a.polls > 0 {
		return
	}
	d.pending = nil
	a.CompletedAt = s.opts.Now().UTC()
	a.Status = ActionCompleted
	switch a.Type {
	case PowerOn:
		d.Status = StatusActive
	case PowerOff:
		d.Status = StatusOff
	case Shutdown:
		if d.IgnoreShutdown {
			a.Status = ActionErrored
			return
		}
		d.Status = StatusOff
	}
}

func (s *Server) postAction(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r, "id")
	var req struct {
		Type string `json:"type"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "unable to parse request body: "+err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.droplets[id]
	if !ok || d == nil {
		writeError(w, http.StatusNotFound, "not_found", msgNotFound)
		return
	}
	var polls int
	switch req.Type {
	case PowerOn:
		polls = s.opts.ActionPolls
	case PowerOff:
		polls = s.opts.ActionPolls
	case Shutdown:
		polls = s.opts.ShutdownPolls
		if d.ShutdownPolls > 0 {
			polls = d.ShutdownPolls
		}
	default:
		writeError(w, http.StatusUnprocessableEntity, "unprocessable_entity", "Action type '"+req.Type+"' is not supported by dosim; supported: power_on, power_off, shutdown")
		return
	}
	if d.Status == StatusArchive {
		writeError(w, http.StatusUnprocessableEntity, "unprocessable_entity", "Droplet is archived.")
		return
	}
	if p := d.pending; p != nil {
		// Pulling the plug ends a graceful shutdown that is taking too
		// long; anything else waits for the pending event.
		if !(req.Type == PowerOff && p.Type == Shutdown) {
			writeError(w, http.StatusUnprocessableEntity, "unprocessable_entity", msgPending)
			return
		}
		p.Status, p.CompletedAt, d.pending = ActionErrored, s.opts.Now().UTC(), nil
	}
	switch {
	case req.Type == PowerOn && d.Status == StatusActive:
		writeError(w, http.StatusUnprocessableEntity, "unprocessable_entity", "Droplet is already powered on.")
		return
	case req.Type != PowerOn && d.Status == StatusOff:
		writeError(w, http.StatusUnprocessableEntity, "unprocessable_entity", "Droplet is already powered off.")
		return
	}
	s.nextAction++
	a := &action{Action: Action{
		ID: s.nextAction, Type: req.Type, Status: ActionInProgress,
		DropletID: d.ID, Region: d.Region, StartedAt: s.opts.Now().UTC(),
	}, polls: polls}
	s.actions[a.ID] = a
	d.pending = a
	d.actionIDs = append(d.actionIDs, a.ID)
	writeJSON(w, http.StatusCreated, map[string]any{"action": actionJSON(a)})
}

func (s *Server) getAction(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r, "id")
	s.mu.Lock()
	a := s.actions[id]
	if !ok || a == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "not_found", msgNotFound)
		return
	}
	s.pollAction(a)
	body := actionJSON(a)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"action": body})
}

func (s *Server) getDropletAction(w http.ResponseWriter, r *http.Request) {
	did, ok1 := pathID(r, "id")
	aid, ok2 := pathID(r, "aid")
	s.mu.Lock()
	a := s.actions[aid]
	if !ok1 || !ok2 || a == nil || a.DropletID != did || s.droplets[did] == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "not_found", msgNotFound)
		return
	}
	s.pollAction(a)
	body := actionJSON(a)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"action": body})
}

// pollAction counts a poll of a in-progress action against its droplet.
// Called with s.mu held.
func (s *Server) pollAction(a *action) {
	if a.Status != ActionInProgress {
		return
	}
	if d := s.droplets[a.DropletID]; d != nil && d.pending == a {
		s.poll(d)
	}
}

func actionJSON(a *action) map[string]any {
	var completed any
	if !a.CompletedAt.IsZero() {
		completed = a.CompletedAt.Format(time.RFC3339)
	}
	return map[string]any{
		"id":            a.ID,
		"status":        a.Status,
		"type":          a.Type,
		"started_at":    a.StartedAt.Format(time.RFC3339),
		"completed_at":  completed,
		"resource_id":   a.DropletID,
		"resource_type": "droplet",
		"region":        regionJSON(a.Region),
		"region_slug":   a.Region,
	}
}

var regionNames = map[string]string{
	"nyc1": "New York 1", "nyc2": "New York 2", "nyc3": "New York 3",
	"sfo2": "San Francisco 2", "sfo3": "San Francisco 3", "ams3": "Amsterdam 3",
	"sgp1": "Singapore 1", "lon1": "London 1", "fra1": "Frankfurt 1",
	"tor1": "Toronto 1", "blr1": "Bangalore 1", "syd1": "Sydney 1", "atl1": "Atlanta 1",
}

func regionJSON(slug string) map[string]any {
	name := regionNames[slug]
	if name == "" {
		name = slug
	}
	return map[string]any{
		"name": name, "slug": slug, "available": true,
		"features": []string{"backups", "ipv6", "metadata", "install_agent", "storage", "image_transfer"},
		"sizes":    []string{"s-1vcpu-1gb", "s-1vcpu-2gb", "s-2vcpu-4gb", "s-4vcpu-8gb"},
	}
}

// sizes are the few size slugs the simulator knows the figures of; any
// other slug is answered with zeros.
var sizes = map[string][4]float64{ // memory MiB, vcpus, disk GiB, price_hourly
	"s-1vcpu-512mb-10gb": {512, 1, 10, 0.00595},
	"s-1vcpu-1gb":        {1024, 1, 25, 0.00893},
	"s-1vcpu-2gb":        {2048, 1, 50, 0.01786},
	"s-2vcpu-2gb":        {2048, 2, 60, 0.02679},
	"s-2vcpu-4gb":        {4096, 2, 80, 0.03571},
	"s-4vcpu-8gb":        {8192, 4, 160, 0.07143},
}

// dropletJSON is the droplet as GET /v2/droplets/{id} answers it. Called
// with s.mu held.
func (s *Server) dropletJSON(d *droplet) map[string]any {
	sz := sizes[d.Size]
	image := map[string]any{
		"id": d.ImageID, "name": d.Image, "distribution": "Ubuntu", "slug": nil,
		"public": d.Image != "", "regions": []string{d.Region}, "created_at": "2024-04-25T14:52:55Z",
		"type": "base", "min_disk_size": 7, "size_gigabytes": 2.36, "description": "", "status": "available",
	}
	if d.Image != "" {
		image["slug"] = d.Image
	}
	v4 := []map[string]any{}
	if d.PublicIPv4 != "" {
		v4 = append(v4, map[string]any{"ip_address": d.PublicIPv4, "netmask": "255.255.240.0", "gateway": "203.0.113.1", "type": "public"})
	}
	if d.PrivateIPv4 != "" {
		v4 = append(v4, map[string]any{"ip_address": d.PrivateIPv4, "netmask": "255.255.240.0", "gateway": "10.110.0.1", "type": "private"})
	}
	tags := d.Tags
	if tags == nil {
		tags = []string{}
	}
	return map[string]any{
		"id":     d.ID,
		"name":   d.Name,
		"memory": int(sz[0]), "vcpus": int(sz[1]), "disk": int(sz[2]),
		"locked":       d.pending != nil,
		"status":       d.Status,
		"kernel":       nil,
		"created_at":   d.created.Format(time.RFC3339),
		"features":     []string{"private_networking"},
		"backup_ids":   []int{},
		"snapshot_ids": []int{},
		"image":        image,
		"volume_ids":   []string{},
		"size": map[string]any{
			"slug": d.Size, "memory": int(sz[0]), "vcpus": int(sz[1]), "disk": int(sz[2]),
			"transfer": 1.0, "price_monthly": math.Round(sz[3]*672*100) / 100, "price_hourly": sz[3],
			"regions": []string{d.Region}, "available": true,
		},
		"size_slug": d.Size,
		"networks":  map[string]any{"v4": v4, "v6": []any{}},
		"region":    regionJSON(d.Region),
		"tags":      tags,
		"vpc_uuid":  d.VPCUUID,
	}
}
