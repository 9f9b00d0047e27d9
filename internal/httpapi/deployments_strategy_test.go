package httpapi

import (
	"strings"
	"testing"
)

// promote and abort name the deployment they miss, and refuse a body-less
// request to a deployment that is not running with a 404 or a 400.
func TestPromoteAbortRoutes(t *testing.T) {
	a, _, tok := validationAPI(t)
	for _, op := range []string{"promote", "abort"} {
		w := send(t, a, tok, "POST", "/api/v1/deployments/d-missing/"+op, "")
		if w.Code != 404 || !strings.Contains(w.Body.String(), "d-missing") {
			t.Errorf("%s of a missing deployment: %d %s, want 404 naming it", op, w.Code, w.Body)
		}
	}
	found := map[string]bool{}
	for _, rt := range a.routes() {
		found[rt.Method+" "+rt.Path] = true
	}
	for _, p := range []string{"POST /api/v1/deployments/{id}/promote", "POST /api/v1/deployments/{id}/abort"} {
		if !found[p] {
			t.Errorf("route %s missing", p)
		}
	}
}
