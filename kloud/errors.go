package kloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/ratingbridge"
	"github.com/kloud/kloud/stack"
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

// tooManyRequests returns a 429: the caller has too much running already.
func tooManyRequests(format string, args ...any) error {
	return &RequestError{Status: http.StatusTooManyRequests, Message: fmt.Sprintf(format, args...)}
}

// errorBody maps any error to its HTTP status and JSON body. It is the one
// place where domain errors become statuses.
func errorBody(err error) (int, *client.Error) {
	var (
		re  *RequestError
		te  *stack.TemplateError
		fe  *provider.FieldError
		rfe *ratingbridge.FieldError
		me  *machinestate.MethodError
		sme *machinestate.StackMethodError
		aje *store.ActiveJobError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &re):
		return re.Status, &client.Error{Message: re.Message, Field: re.Field}
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
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, &client.Error{Message: fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized, &client.Error{Message: err.Error()}
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, &client.Error{Message: err.Error()}
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, &client.Error{Message: err.Error()}
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrLeaseHeld), errors.Is(err, store.ErrStaleSerial):
		return http.StatusConflict, &client.Error{Message: err.Error()}
	case errors.Is(err, stack.ErrTerraformFailed):
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
	body.Message = s.mask(body.Message)
	if status >= 500 {
		s.log.Error("request failed", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("error", s.mask(err.Error())))
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
