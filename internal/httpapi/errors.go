package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"reflect"
	"strings"

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
	case errors.Is(err, deploy.ErrBundle):
		// The content pushed, not the request: 422, which the CLI exits 1
		// on, as it does when it finds the same problem before pushing.
		status, code = http.StatusUnprocessableEntity, "invalid_bundle"
	case errors.Is(err, fleet.ErrInvalid), errors.Is(err, deploy.ErrInvalid), errors.Is(err, validate.ErrInvalid):
		status, code = http.StatusBadRequest, "bad_request"
	case errors.Is(err, fleet.ErrNoHosts):
		status, code = http.StatusUnprocessableEntity, "no_hosts"
	case errors.Is(err, deploy.ErrNothingToDeploy):
		status, code = http.StatusUnprocessableEntity, "nothing_to_deploy"
	case errors.Is(err, deploy.ErrUnfit):
		status, code = http.StatusUnprocessableEntity, "unfit_group"
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
	if (status == http.StatusBadRequest || code == "unfit_group") && !errors.As(err, &ae) {
		msg = trimCategory(msg)
	}
	info, _ := r.Context().Value(requestKey{}).(*requestInfo)
	switch {
	case status == http.StatusInternalServerError:
		// Whatever failed (the store's driver, a file on the server), its
		// text is for the operator: the user gets an id to quote.
		id := "-"
		if info != nil {
			id = info.id
		}
		log.Error("request failed", "request_id", id, "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error (request id " + id + "; the server log has the cause)"
	case status == http.StatusNotFound && info != nil && info.api != nil && !errors.As(err, &ae):
		// (A handler's own apiError is phrased already.)
		if better := info.api.explainNotFound(r); better != "" {
			msg = better
		}
	}
	writeJSON(w, status, api.Error{Error: msg, Code: code})
}

// trimCategory drops the engines' category prefixes ("invalid request: ",
// "invalid: ", …) from a 400's message: the status and code say it, and
// the same mistake reads the same whichever engine refused it (a bad
// selector is `invalid selector "…": at column …` for hosts ls, run and
// group create alike).
func trimCategory(msg string) string {
	for _, p := range []string{fleet.ErrInvalid.Error() + ": ", deploy.ErrInvalid.Error() + ": ", validate.ErrInvalid.Error() + ": ", deploy.ErrUnfit.Error() + ": "} {
		msg = strings.TrimPrefix(msg, p)
	}
	for _, p := range []string{"selector: invalid selector ", "group selector: invalid selector "} {
		if strings.HasPrefix(msg, p) {
			msg = strings.TrimPrefix(msg, strings.TrimSuffix(p, "invalid selector "))
		}
	}
	return msg
}

// streamError is the message of an error met after a streamed answer
// started (its status is sent): the error's own text, which names what
// failed (a provider, a lifecycle step), unless the database driver wrote
// it; that is logged under the request id instead, as writeError does for
// a 500.
func streamError(r *http.Request, err error, log *slog.Logger) string {
	// The store's own not-found and conflict errors keep the driver's text
	// out of theirs.
	if !fromDriver(err) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		return err.Error()
	}
	id := "-"
	if info, _ := r.Context().Value(requestKey{}).(*requestInfo); info != nil {
		id = info.id
	}
	log.Error("request failed", "request_id", id, "method", r.Method, "path", r.URL.Path, "err", err)
	return "internal error (request id " + id + "; the server log has the cause)"
}

// driverPackages are the packages whose errors carry SQL driver text.
var driverPackages = []string{"database/sql", "modernc.org/sqlite", "github.com/jackc/pgx/v5/pgconn"}

// fromDriver reports whether err's chain holds an error made by a SQL
// driver (found by its type's package: httpapi imports no concrete store).
func fromDriver(err error) bool {
	if err == nil {
		return false
	}
	t := reflect.TypeOf(err)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for _, p := range driverPackages {
		if t.PkgPath() == p || strings.HasPrefix(t.PkgPath(), p+"/") {
			return true
		}
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return fromDriver(u.Unwrap())
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if fromDriver(e) {
				return true
			}
		}
	}
	return false
}
