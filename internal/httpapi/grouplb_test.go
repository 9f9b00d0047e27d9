package httpapi

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/traffic"
)

// TestGroupLoadBalancer: a group's load balancer is validated, stored,
// replaced and removed through the API, and GET …/lb answers with the
// load balancer's view or says why it cannot.
func TestGroupLoadBalancer(t *testing.T) {
	a, st, tok := validationAPI(t)
	ctx := t.Context()
	expect(t, "create app", 201, "", send(t, a, tok, "POST", "/api/v1/apps", `{"name":"shop"}`).Body.String(), 201)

	w := send(t, a, tok, "POST", "/api/v1/apps/shop/groups", `{"name":"web","selector":"role=web","load_balancer":{"host":"lb1","backend":"a b"}}`)
	expect(t, "bad backend", 400, "bad_request", w.Body.String(), w.Code, `load_balancer.backend "a b"`)
	w = send(t, a, tok, "POST", "/api/v1/apps/shop/groups", `{"name":"web","selector":"role=web","load_balancer":{"host":"lb1","backend":"web","drain_timeout_seconds":4000}}`)
	expect(t, "drain timeout out of range", 400, "bad_request", w.Body.String(), w.Code, "load_balancer.drain_timeout_seconds: 4000 is out of range")
	w = send(t, a, tok, "POST", "/api/v1/apps/shop/groups", `{"name":"web","selector":"role=web","load_balancer":{"host":"lb1","backend":"web","socket":"/run/haproxy.sock"}}`)
	expect(t, "create with a load balancer", 201, "", w.Body.String(), w.Code)
	g, err := st.GetGroup(ctx, "shop", "web")
	if err != nil || g.LoadBalancer == nil || g.LoadBalancer.Host != "lb1" || g.LoadBalancer.Socket != "/run/haproxy.sock" {
		t.Fatalf("stored group %+v, %v", g.LoadBalancer, err)
	}

	// No traffic controller: 503.
	w = send(t, a, tok, "GET", "/api/v1/apps/shop/groups/web/lb", "")
	expect(t, "lb without a controller", 503, "unavailable", w.Body.String(), w.Code)
	// The load balancer's host is not enrolled: 404 naming it.
	var sent []protocol.Command
	a.d.Traffic = traffic.New(st, a.d.Fleet, traffic.RequesterFunc(func(_ context.Context, c protocol.Command) ([]byte, error) {
		sent = append(sent, c)
		return json.Marshal(protocol.LBResult{})
	}))
	w = send(t, a, tok, "GET", "/api/v1/apps/shop/groups/web/lb", "")
	expect(t, "lb host unknown", 404, "not_found", w.Body.String(), w.Code, `load balancer host "lb1"`)
	if len(sent) != 0 {
		t.Fatalf("commands sent: %+v", sent)
	}

	w = send(t, a, tok, "PATCH", "/api/v1/apps/shop/groups/web", `{"load_balancer":{"host":"lb2","backend":"api"},"no_load_balancer":true}`)
	expect(t, "both", 400, "bad_request", w.Body.String(), w.Code, "load_balancer and no_load_balancer exclude each other")
	w = send(t, a, tok, "PATCH", "/api/v1/apps/shop/groups/web", `{"load_balancer":{"host":"lb2","backend":"api"}}`)
	expect(t, "replace", 200, "", w.Body.String(), w.Code)
	var got api.DeploymentGroup
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got.LoadBalancer == nil || got.LoadBalancer.Host != "lb2" || got.LoadBalancer.Socket != "" {
		t.Fatalf("replaced: %s", w.Body)
	}
	w = send(t, a, tok, "PATCH", "/api/v1/apps/shop/groups/web", `{"no_load_balancer":true}`)
	expect(t, "remove", 200, "", w.Body.String(), w.Code)
	w = send(t, a, tok, "GET", "/api/v1/apps/shop/groups/web/lb", "")
	expect(t, "lb of a group without one", 422, "no_load_balancer", w.Body.String(), w.Code, "group shop/web has no load balancer", "--lb HOST/BACKEND")
	w = send(t, a, tok, "GET", "/api/v1/apps/shop/groups/nope/lb", "")
	expect(t, "lb of an unknown group", 404, "not_found", w.Body.String(), w.Code)
}
