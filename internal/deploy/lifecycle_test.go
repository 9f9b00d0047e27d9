package deploy

import (
	"errors"
	"reflect"
	"testing"

	"github.com/gantry-dev/gantry/api"
)

func TestChangeGroup(t *testing.T) {
	base := api.DeploymentGroup{ID: "g-1", App: "shop", Name: "web", Selector: "role=web", Config: "HalfAtATime",
		HealthCheck: &api.HealthCheck{TCP: "127.0.0.1:80"}, AutoRollback: true, Revision: "r-1"}
	str := func(s string) *string { return &s }
	no := false
	for _, tc := range []struct {
		name string
		req  api.UpdateGroupRequest
		want func(g *api.DeploymentGroup)
	}{
		{"selector only", api.UpdateGroupRequest{Selector: str("role=api")}, func(g *api.DeploymentGroup) { g.Selector = "role=api" }},
		{"config", api.UpdateGroupRequest{Config: str("75%")}, func(g *api.DeploymentGroup) { g.Config = "75%" }},
		{"health check replaced", api.UpdateGroupRequest{HealthCheck: &api.HealthCheck{HTTP: "http://127.0.0.1/healthz"}},
			func(g *api.DeploymentGroup) { g.HealthCheck = &api.HealthCheck{HTTP: "http://127.0.0.1/healthz"} }},
		{"health check removed, no rollback", api.UpdateGroupRequest{NoHealthCheck: true, AutoRollback: &no},
			func(g *api.DeploymentGroup) { g.HealthCheck, g.AutoRollback = nil, false }},
	} {
		got, err := ChangeGroup(base, tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want := base
		tc.want(&want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got  %+v\n want %+v", tc.name, got, want)
		}
	}
	for _, bad := range []api.UpdateGroupRequest{
		{Selector: str(" ")},
		{Selector: str("role in (")},
		{Config: str("Sometimes")},
		{HealthCheck: &api.HealthCheck{}},
		{HealthCheck: &api.HealthCheck{TCP: "127.0.0.1:80"}, NoHealthCheck: true},
	} {
		if _, err := ChangeGroup(base, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ChangeGroup(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
}
