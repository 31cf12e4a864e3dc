package kloud

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/kloud/kloud/kloud/audit"
	"github.com/kloud/kloud/stack"
)

// The audit log: every state-changing API call is recorded by audited, the
// automatic actions by their owners through recordAudit; members list what
// they did and what was done to what they own, admins everything.

// recordAudit appends e, filling in its time, request id and actor (the
// request's user, or audit.System). A failure to record is logged, never
// returned: the action it describes has already happened.
func (s *Server) recordAudit(ctx context.Context, e audit.Entry) {
	e.At = s.now()
	if e.RequestID == "" {
		e.RequestID = requestIDFrom(ctx)
	}
	if e.Actor == "" {
		e.Actor = audit.System
		if u := actorFrom(ctx); u != nil {
			e.Actor = u.ID
		}
	}
	if err := s.st.AppendAudit(context.WithoutCancel(ctx), &e); err != nil {
		s.log.Error("record audit entry", slog.String("action", e.Action), slog.String("request_id", e.RequestID), slog.String("error", err.Error()))
	}
}

// RecordMachine records an automatic action on m (the checker's Auditor).
func (s *Server) RecordMachine(ctx context.Context, m *stack.Machine, action, detail string) {
	s.recordAudit(ctx, audit.Entry{Actor: audit.System, Action: action, Target: "machine/" + m.ID, OwnerID: m.OwnerID, Detail: detail})
}

// auditNote is where a handler says more of the call being audited: the
// owner of its target, so the owner sees the entry.
type auditNote struct{ ownerID, detail string }

type auditNoteKey struct{}

// noteAuditOwner tells the audit middleware the owner of the request's
// target: owned calls it for the first record a handler loads, which is
// the target of every route that names one.
func noteAuditOwner(ctx context.Context, ownerID string) {
	if n, ok := ctx.Value(auditNoteKey{}).(*auditNote); ok && n.ownerID == "" {
		n.ownerID = ownerID
	}
}

// noteAuditDetail tells the audit middleware more of the call than its
// route says (whom a machine was shared with).
func noteAuditDetail(ctx context.Context, detail string) {
	if n, ok := ctx.Value(auditNoteKey{}).(*auditNote); ok {
		n.detail = detail
	}
}

// statusRecorder remembers the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Flush passes on to the writer beneath (followed events stream).
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the writer beneath.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// notAudited are the calls that change nothing although they are not GETs.
var notAudited = map[string]bool{
	"POST /api/v1/rating/quote": true,
}

// audited records h's calls that change state (every method but GET and
// HEAD) once h has answered: the action named by the route, its target and
// owner, and the outcome from the status.
func (s *Server) audited(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead || notAudited[r.Pattern] {
			h(w, r)
			return
		}
		note := &auditNote{}
		rec := &statusRecorder{ResponseWriter: w}
		h(rec, r.WithContext(context.WithValue(r.Context(), auditNoteKey{}, note)))
		outcome := audit.OutcomeOK
		if rec.status >= 400 {
			outcome = audit.Failed(strconv.Itoa(rec.status) + " " + http.StatusText(rec.status))
		}
		s.recordAudit(r.Context(), audit.Entry{
			Action:  audit.ActionFor(r.Method, r.Pattern),
			Target:  audit.TargetFor(r.Pattern, r.PathValue),
			OwnerID: note.ownerID,
			Outcome: outcome,
			Detail:  note.detail,
		})
	}
}

// handleListAudit answers GET /api/v1/audit?actor=&target=&since=&limit=&before=.
func (s *Server) handleListAudit(w http.ResponseWriter, r *http.Request) {
	actor := actorFrom(r.Context())
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "actor", "target", "since", "limit", "before":
		default:
			s.writeError(w, r, badRequest(k, "unknown query parameter %s", quote(k)))
			return
		}
	}
	aq := audit.Query{Actor: q.Get("actor"), Target: q.Get("target"), Before: q.Get("before")}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			s.writeError(w, r, badRequest("since", "since %s is not an RFC 3339 time", quote(v)))
			return
		}
		aq.Since = t
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > audit.MaxLimit {
			s.writeError(w, r, badRequest("limit", "limit %s is not a number from 1 to %d", quote(v), audit.MaxLimit))
			return
		}
		aq.Limit = n
	}
	if !actor.IsAdmin() {
		aq.VisibleTo = actor.ID
	}
	entries, err := s.st.ListAudit(r.Context(), aq)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if entries == nil {
		entries = []*audit.Entry{}
	}
	writeJSON(w, http.StatusOK, entries)
}

// pruneAudit deletes the entries older than the retention; the checker's
// singleton pass calls it, so one replica prunes at a time.
func (s *Server) pruneAudit(ctx context.Context) {
	if s.cfg.AuditRetention <= 0 {
		return
	}
	n, err := s.st.PruneAudit(ctx, s.now().Add(-s.cfg.AuditRetention))
	if err != nil {
		s.log.Error("prune audit log", slog.String("error", err.Error()))
		return
	}
	if n > 0 {
		s.log.Info("pruned audit log", slog.Int64("entries", n), slog.Duration("retention", s.cfg.AuditRetention))
	}
}

// ---- request ids ----------------------------------------------------------------

type requestIDKey struct{}

// requestIDFrom is the id of the request ctx belongs to ("" outside one).
func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// maxRequestIDLen bounds a request id taken from the client.
const maxRequestIDLen = 64

// validRequestID accepts a client's id of letters, digits, '-', '_', '.'
// and ':' up to maxRequestIDLen; anything else is replaced by a new one.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// withRequestID gives every request an id: the client's X-Request-Id when
// it is a sane one, a new one otherwise; the response carries it back, and
// the request's log lines and audit entries name it.
func withRequestID(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = "req-" + hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}
