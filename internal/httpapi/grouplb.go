package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/traffic"
)

// groupLB answers GET /api/v1/apps/{app}/groups/{group}/lb: the servers of
// the group's load balancer backend, as the load balancer reports them.
func (a *API) groupLB(w http.ResponseWriter, r *http.Request) {
	app, name := r.PathValue("app"), r.PathValue("group")
	g, err := a.d.Store.GetGroup(r.Context(), app, name)
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	if g.LoadBalancer == nil {
		writeError(w, r, &apiError{http.StatusUnprocessableEntity, "no_load_balancer",
			fmt.Sprintf("group %s/%s has no load balancer. Put it behind one with: gantry group update %s %s --lb HOST/BACKEND", app, name, app, name)}, a.d.Log)
		return
	}
	if a.d.Traffic == nil {
		writeError(w, r, &apiError{http.StatusServiceUnavailable, "unavailable", "this server drives no load balancer"}, a.d.Log)
		return
	}
	v, err := a.d.Traffic.View(r.Context(), *g.LoadBalancer)
	if err != nil {
		writeError(w, r, LBError(err), a.d.Log)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// LBError gives an error of traffic.Controller its status: an unknown
// load balancer host is 404, an offline one 503 (code lb_offline), any
// other failure to reach or drive the load balancer 502 (code lb_error),
// with the controller's message, which names the host and says what
// failed.
func LBError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return err
	case errors.Is(err, traffic.ErrOffline):
		return &apiError{http.StatusServiceUnavailable, "lb_offline", err.Error()}
	}
	return &apiError{http.StatusBadGateway, "lb_error", err.Error()}
}
