package httpapi

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/deploy"
	"github.com/gantry-dev/gantry/internal/fleet"
	"github.com/gantry-dev/gantry/internal/infra"
	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/validate"
)

// apiError is an error with a status chosen by a handler.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errUnauthorized(msg string) error {
	return &apiError{http.StatusUnauthorized, "unauthorized", msg}
}
func errBadRequest(msg string) error { return &apiError{http.StatusBadRequest, "bad_request", msg} }
func errForbidden(msg string) error  { return &apiError{http.StatusForbidden, "forbidden", msg} }

// writeError maps any error to a status and an api.Error body: the one
// place where errors become HTTP statuses.
func writeError(w http.ResponseWriter, r *http.Request, err error, log *slog.Logger) {
	var ae *apiError
	var de *infra.DiagError
	status, code := http.StatusInternalServerError, "internal"
	switch {
	case errors.As(err, &de):
		writeJSON(w, http.StatusBadRequest, api.Error{Error: "the definition has errors", Code: "invalid_definition", Diagnostics: de.Diags})
		return
	case errors.Is(err, infra.ErrInvalid):
		status, code = http.StatusBadRequest, "bad_request"
	case errors.Is(err, infra.ErrLocked):
		status, code = http.StatusConflict, "locked"
	case errors.Is(err, infra.ErrStale):
		status, code = http.StatusConflict, "stale_plan"
	case errors.Is(err, infra.ErrProvider):
		status, code = http.StatusBadGateway, "provider_error"
	case errors.As(err, &ae):
		status, code = ae.status, ae.code
	case errors.Is(err, fleet.ErrInvalid), errors.Is(err, deploy.ErrInvalid), errors.Is(err, validate.ErrInvalid):
		status, code = http.StatusBadRequest, "bad_request"
	case errors.Is(err, fleet.ErrNoHosts):
		status, code = http.StatusUnprocessableEntity, "no_hosts"
	case errors.Is(err, store.ErrNotFound):
		status, code = http.StatusNotFound, "not_found"
	case errors.Is(err, deploy.ErrBusy), errors.Is(err, deploy.ErrNothingToRollBack):
		status, code = http.StatusConflict, "conflict"
	case errors.Is(err, store.ErrConflict):
		status, code = http.StatusConflict, "conflict"
	case errors.Is(err, store.ErrExpired), errors.Is(err, store.ErrUsedUp):
		status, code = http.StatusForbidden, "forbidden"
	}
	msg := err.Error()
	if status == http.StatusInternalServerError {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error (see the server log)"
	}
	writeJSON(w, status, api.Error{Error: msg, Code: code})
}
