package kloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/budget"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/ratingbridge"
	"github.com/kloud/kloud/stack/terraform"
	"github.com/kloud/kloud/store"
)

// Sentinel errors of the service.
var (
	ErrUnauthorized = errors.New("missing or invalid bearer token")
	ErrForbidden    = errors.New("forbidden")
)

// RequestError is a mistake of the caller: the status and, when one field
// is to blame, its name.
type RequestError struct {
	Status  int
	Field   string
	Message string
}

func (e *RequestError) Error() string { return e.Message }

// badRequest returns a 400 naming field.
func badRequest(field, format string, args ...any) error {
	return &RequestError{Status: http.StatusBadRequest, Field: field, Message: fmt.Sprintf(format, args...)}
}

// unprocessable returns a 422 naming field.
func unprocessable(field, format string, args ...any) error {
	return &RequestError{Status: http.StatusUnprocessableEntity, Field: field, Message: fmt.Sprintf(format, args...)}
}

// conflict returns a 409 naming field: what the caller asked for is taken.
func conflict(field, format string, args ...any) error {
	return &RequestError{Status: http.StatusConflict, Field: field, Message: fmt.Sprintf(format, args...)}
}

// maxQuoted is how many characters of the caller's input a message quotes.
const maxQuoted = 64

// clipInput cuts user input to at most maxQuoted characters; an ellipsis
// marks the cut.
func clipInput(s string) string {
	if utf8.RuneCountInString(s) <= maxQuoted {
		return s
	}
	return string([]rune(s)[:maxQuoted]) + "…"
}

// quote is how every message quotes the caller's input: Go-quoted, at
// most 64 characters of it.
func quote(s string) string { return strconv.Quote(clipInput(s)) }

// ident shows an id or name the caller gave: as it is when it looks like
// one (short, letters, digits, '-', '_', '.'), quoted otherwise.
func ident(s string) string {
	if s == "" || utf8.RuneCountInString(s) > maxQuoted {
		return quote(s)
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r == '.' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return quote(s)
		}
	}
	return s
}

// notFound is the one message for a record the caller named that does not
// exist or that they may not see: "machine m-x: not found".
func notFound(kind, id string) error {
	return fmt.Errorf("%s %s: %w", kind, ident(id), store.ErrNotFound)
}

// clipLongWords is the last line of defence for messages that quote input
// through a layer this package does not word (a store, a provider): any
// run of more than 2×maxQuoted characters without a space is cut to
// maxQuoted.
func clipLongWords(msg string) string {
	if len(msg) <= 2*maxQuoted {
		return msg
	}
	words := strings.SplitAfter(msg, " ")
	for i, w := range words {
		if utf8.RuneCountInString(w) > 2*maxQuoted {
			words[i] = clipInput(w)
			if strings.HasSuffix(w, " ") {
				words[i] += " "
			}
		}
	}
	return strings.Join(words, "")
}

// tooManyRequests returns a 429: the caller has too much running already.
func tooManyRequests(format string, args ...any) error {
	return &RequestError{Status: http.StatusTooManyRequests, Message: fmt.Sprintf(format, args...)}
}

// errorBody maps any error to its HTTP status and JSON body. It is the one
// place where domain errors become statuses.
func errorBody(err error) (int, *client.Error) {
	var (
		re  *RequestError
		te  *terraform.TemplateError
		fe  *provider.FieldError
		rfe *ratingbridge.FieldError
		me  *machinestate.MethodError
		sme *machinestate.StackMethodError
		aje *jobs.ActiveJobError
		mbe *http.MaxBytesError
		bee *budget.ExhaustedError
	)
	switch {
	case errors.As(err, &re):
		return re.Status, &client.Error{Message: re.Message, Field: re.Field}
	case IsDiskFull(err):
		return http.StatusInsufficientStorage, &client.Error{Message: "the server's disk is full (" + diskFullCause(err) + "); try again once space is freed"}
	case errors.As(err, &te):
		diags := make([]client.Diagnostic, len(te.Diagnostics))
		for i, d := range te.Diagnostics {
			diags[i] = client.Diagnostic(d)
		}
		return http.StatusUnprocessableEntity, &client.Error{Message: te.Error(), Diagnostics: diags}
	case errors.As(err, &rfe):
		return http.StatusUnprocessableEntity, &client.Error{Message: err.Error(), Field: rfe.Field}
	case errors.As(err, &fe):
		return http.StatusUnprocessableEntity, &client.Error{Message: err.Error(), Field: fe.Field}
	case errors.As(err, &me):
		allowed := make([]string, len(me.Allowed))
		for i, m := range me.Allowed {
			allowed[i] = string(m)
		}
		return http.StatusConflict, &client.Error{Message: err.Error(), State: me.State.String(), Allowed: allowed}
	case errors.As(err, &sme):
		allowed := make([]string, len(sme.Allowed))
		for i, m := range sme.Allowed {
			allowed[i] = string(m)
		}
		return http.StatusConflict, &client.Error{Message: err.Error(), State: string(sme.State), Allowed: allowed}
	case errors.As(err, &aje):
		return http.StatusConflict, &client.Error{Message: err.Error(), JobID: aje.JobID}
	case errors.As(err, &bee):
		return http.StatusConflict, &client.Error{Message: err.Error(), Budget: bee.Budget}
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, &client.Error{Message: fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized, &client.Error{Message: err.Error()}
	case errors.Is(err, errAgentOffline):
		return http.StatusServiceUnavailable, &client.Error{Message: err.Error()}
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, &client.Error{Message: err.Error()}
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, &client.Error{Message: err.Error()}
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrLeaseHeld), errors.Is(err, store.ErrStaleSerial):
		return http.StatusConflict, &client.Error{Message: err.Error()}
	case errors.Is(err, terraform.ErrTerraformFailed):
		// Terraform refused what the caller's template or variables say.
		return http.StatusUnprocessableEntity, &client.Error{Message: err.Error()}
	case errors.Is(err, provider.ErrUnknownProvider):
		return http.StatusUnprocessableEntity, &client.Error{Message: err.Error(), Field: "provider"}
	case errors.Is(err, store.ErrInvalid):
		return http.StatusBadRequest, &client.Error{Message: err.Error()}
	case errors.Is(err, context.Canceled):
		return 499, &client.Error{Message: "request canceled"}
	}
	return http.StatusInternalServerError, &client.Error{Message: "internal error"}
}

// writeError answers err; a 500 is logged with the real error, which the
// caller never sees.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, body := errorBody(err)
	body.Message = clipLongWords(body.Message)
	if status >= 500 {
		s.log.Error("request failed", slog.String("request_id", requestIDFrom(r.Context())), slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("error", err.Error()))
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func errorsIsNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
