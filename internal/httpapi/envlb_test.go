package httpapi

import (
	"context"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/internal/store"
)

// TestEnvLBErrors: GET /api/v1/envs/{env}/lb names what is wrong: an
// unknown environment (404), a group that has no load balancer (400,
// listing those that have one), a server that drives none (503).
func TestEnvLBErrors(t *testing.T) {
	a, st, tok := validationAPI(t)
	state := `{"env":"dev","resources":{"group.lb":{"address":"group.lb","kind":"group","group":"lb","created_at":"2026-12-01T00:00:00Z",
	  "spec":{"load_balancer":{"target":"web","listen":80,"port":8080,"balance":"roundrobin","drain_timeout":30,"driver":"haproxy","check":{}}}}}}`
	if err := st.SaveEnvironment(context.Background(), store.Environment{Name: "dev", Serial: 1, State: []byte(state), Definition: []byte{}, Vars: []byte("[]")}, 0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/api/v1/envs/nope/lb", 404, `environment \"nope\" not found`},
		{"/api/v1/envs/dev/lb?group=db", 400, `group \"db\" of environment dev is no load balancer and has none (load balancers: lb (of web))`},
		{"/api/v1/envs/dev/lb?group=web", 503, "this server drives no load balancer"},
		{"/api/v1/envs/dev/lb", 503, "this server drives no load balancer"},
	} {
		w := send(t, a, tok, "GET", tc.path, "")
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("GET %s: %d %s, want %d with %q", tc.path, w.Code, w.Body.String(), tc.code, tc.want)
		}
	}
}
