// Package audit is Kloud's record of who did what: every state-changing API
// call and every automatic action (a machine stopped as idle, a silent
// agent's machine marked stopped, a terminal session opened). The store
// keeps entries; the server writes them and answers GET /api/v1/audit.
package audit

import (
	"strings"
	"time"
)

// System is the actor of automatic actions.
const System = "system"

// OutcomeOK is the outcome of an action that succeeded; a failed one is
// "error: " and its message (see Failed).
const OutcomeOK = "ok"

// Entry is one audited action.
type Entry struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
	// Actor is the user who acted, or System.
	Actor string `json:"actor"`
	// Action is a dotted name: "stack.apply", "machine.stop.idle",
	// "terminal.open".
	Action string `json:"action"`
	// Target is what the action was on: "stack/<id>", "machine/<id>".
	Target string `json:"target,omitempty"`
	// OwnerID is the target's owner, when known: members see the entries
	// they are the actor or the owner of.
	OwnerID   string `json:"owner_id,omitempty"`
	Outcome   string `json:"outcome"`
	RequestID string `json:"request_id,omitempty"`
	// Detail is the reason, a session name, a permission: a short text.
	Detail string `json:"detail,omitempty"`
}

// Failed is the outcome of an action that failed with msg.
func Failed(msg string) string { return "error: " + msg }

// MaxLimit is the most entries one list answers; DefaultLimit when the
// query gives none.
const (
	MaxLimit     = 1000
	DefaultLimit = 100
)

// Query selects entries, newest first. Empty fields select everything.
type Query struct {
	Actor  string
	Target string
	// Since keeps entries at or after it.
	Since time.Time
	// VisibleTo, when set, keeps the entries whose actor or owner it is.
	VisibleTo string
	// Before, when set, is the id of the last entry of the previous page:
	// the list continues with older entries.
	Before string
	Limit  int
}

// ActionFor names the action of an API call from its method and route
// pattern: "POST /api/v1/stacks/{id}/apply" is "stack.apply", "POST
// /api/v1/stacks" is "stack.create", "DELETE /api/v1/credentials/{id}" is
// "credential.delete", "PATCH .../{id}" is "....update", "PUT" is "set".
func ActionFor(method, pattern string) string {
	path := pattern
	if i := strings.IndexByte(path, ' '); i >= 0 {
		path = path[i+1:]
	}
	path = strings.TrimPrefix(path, "/api/v1/")
	var words []string
	endsWithID := false
	for _, seg := range strings.Split(strings.Trim(path, "/"), "/") {
		if seg == "" {
			continue
		}
		if strings.HasPrefix(seg, "{") {
			endsWithID = true
			continue
		}
		endsWithID = false
		words = append(words, singular(strings.ReplaceAll(seg, "-", "_")))
	}
	if len(words) == 0 {
		return strings.ToLower(method)
	}
	verb := ""
	switch method {
	case "POST":
		if len(words) == 1 || endsWithID {
			verb = "create"
		}
	case "DELETE":
		verb = "delete"
	case "PATCH":
		verb = "update"
	case "PUT":
		verb = "set"
	}
	if verb != "" {
		words = append(words, verb)
	}
	return strings.Join(words, ".")
}

// TargetFor is the target of an API call: the first resource of its path
// and the id given for it ("stack/stk-…"), or "" when the path names none.
func TargetFor(pattern string, pathValue func(string) string) string {
	path := pattern
	if i := strings.IndexByte(path, ' '); i >= 0 {
		path = path[i+1:]
	}
	segs := strings.Split(strings.Trim(strings.TrimPrefix(path, "/api/v1/"), "/"), "/")
	if len(segs) < 2 || !strings.HasPrefix(segs[1], "{") {
		return ""
	}
	id := pathValue(strings.Trim(segs[1], "{}."))
	if id == "" {
		return ""
	}
	return singular(segs[0]) + "/" + id
}

func singular(w string) string {
	switch {
	case strings.HasSuffix(w, "ies"):
		return strings.TrimSuffix(w, "ies") + "y"
	case strings.HasSuffix(w, "ses"):
		return strings.TrimSuffix(w, "es")
	case strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss"):
		return strings.TrimSuffix(w, "s")
	}
	return w
}
