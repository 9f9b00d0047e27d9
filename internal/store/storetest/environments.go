package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

var envTests = []test{
	{"Environments/SaveCompareAndSet", testEnvSave},
	{"Environments/EventsAndDelete", testEnvEvents},
	{"Leases/Release", testLeaseRelease},
	{"Groups/UpdateSettings", testGroupUpdateSettings},
}

func testEnvSave(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetEnvironment(ctx, "prod")
	isErr(t, err, store.ErrNotFound, "GetEnvironment of a missing environment")
	e := store.Environment{Name: "prod", Serial: 1, State: []byte(`{"a":1}`), Definition: []byte{0x1f, 0x8b, 0, 0xff}, Vars: []byte(`["n=1"]`), CreatedAt: at(0), UpdatedAt: at(0)}
	ok(t, s.SaveEnvironment(ctx, e, 0), "SaveEnvironment create")
	isErr(t, s.SaveEnvironment(ctx, e, 0), store.ErrConflict, "SaveEnvironment create twice")
	got, err := s.GetEnvironment(ctx, "prod")
	ok(t, err, "GetEnvironment")
	if got.Serial != 1 || string(got.State) != `{"a":1}` || !bytes.Equal(got.Definition, e.Definition) || string(got.Vars) != `["n=1"]` || string(got.Events) != "[]" || !got.CreatedAt.Equal(at(0)) {
		t.Fatalf("GetEnvironment = %+v, want what was saved with events []", got)
	}
	next := e
	next.Serial, next.State, next.UpdatedAt = 2, []byte(`{"a":2}`), at(time.Minute)
	ok(t, s.SaveEnvironment(ctx, next, 1), "SaveEnvironment 1 -> 2")
	stale := e
	stale.Serial, stale.State = 2, []byte(`{"stale":true}`)
	isErr(t, s.SaveEnvironment(ctx, stale, 1), store.ErrConflict, "SaveEnvironment from a stale serial")
	got, _ = s.GetEnvironment(ctx, "prod")
	if got.Serial != 2 || string(got.State) != `{"a":2}` || !got.UpdatedAt.Equal(at(time.Minute)) || !got.CreatedAt.Equal(at(0)) {
		t.Fatalf("after a refused stale write: %+v, want serial 2 state {\"a\":2}", got)
	}
	ok(t, s.SaveEnvironment(ctx, store.Environment{Name: "dev", Serial: 1, State: []byte("{}"), Definition: []byte{}, Vars: []byte("[]")}, 0), "create dev")
	list, err := s.ListEnvironments(ctx)
	ok(t, err, "ListEnvironments")
	if len(list) != 2 || list[0].Name != "dev" || list[1].Name != "prod" {
		t.Fatalf("ListEnvironments = %v, want dev, prod", list)
	}
	if list[1].Serial != 2 || string(list[1].State) != `{"a":2}` || len(list[1].Definition) != 0 {
		t.Fatalf("ListEnvironments prod = serial %d state %s definition %d bytes, want 2, {\"a\":2} and no definition", list[1].Serial, list[1].State, len(list[1].Definition))
	}
}

func testEnvEvents(t *testing.T, s store.Store) {
	ctx := t.Context()
	isErr(t, s.SetEnvironmentEvents(ctx, "nope", []byte("[]")), store.ErrNotFound, "SetEnvironmentEvents of a missing environment")
	ok(t, s.SaveEnvironment(ctx, store.Environment{Name: "qa", Serial: 3, State: []byte("{}"), Definition: []byte{}, Vars: []byte("[]")}, 0), "create")
	ok(t, s.SetEnvironmentEvents(ctx, "qa", []byte(`[{"id":"j1"}]`)), "SetEnvironmentEvents")
	got, err := s.GetEnvironment(ctx, "qa")
	ok(t, err, "GetEnvironment")
	if string(got.Events) != `[{"id":"j1"}]` || got.Serial != 3 {
		t.Fatalf("events/serial = %s/%d, want [{\"id\":\"j1\"}]/3 (events do not move the serial)", got.Events, got.Serial)
	}
	ok(t, s.DeleteEnvironment(ctx, "qa"), "DeleteEnvironment")
	ok(t, s.DeleteEnvironment(ctx, "qa"), "DeleteEnvironment twice")
	_, err = s.GetEnvironment(ctx, "qa")
	isErr(t, err, store.ErrNotFound, "GetEnvironment after delete")
}

func testLeaseRelease(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.AcquireLease(ctx, "env/x", "a", at(0), time.Hour)
	ok(t, err, "AcquireLease a")
	l, err := s.GetLease(ctx, "env/x")
	ok(t, err, "GetLease")
	if l.Holder != "a" || !l.ExpiresAt.Equal(at(time.Hour)) {
		t.Fatalf("GetLease = %+v, want holder a until t0+1h", l)
	}
	ok(t, s.ReleaseLease(ctx, "env/x", "b"), "ReleaseLease by a non-holder")
	_, err = s.AcquireLease(ctx, "env/x", "b", at(time.Second), time.Hour)
	isErr(t, err, store.ErrLeaseHeld, "AcquireLease b while a holds it (a non-holder's release did nothing)")
	ok(t, s.ReleaseLease(ctx, "env/x", "a"), "ReleaseLease by the holder")
	_, err = s.GetLease(ctx, "env/x")
	isErr(t, err, store.ErrNotFound, "GetLease after release")
	if _, err := s.AcquireLease(ctx, "env/x", "b", at(2*time.Second), time.Hour); err != nil {
		t.Fatalf("AcquireLease b after a released it: %v", err)
	}
}

func testGroupUpdateSettings(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.CreateApplication(ctx, api.Application{Name: "shop", CreatedAt: at(0)}), "CreateApplication")
	g := api.DeploymentGroup{ID: "g-1", App: "shop", Name: "prod", Selector: "role=web", Config: "OneAtATime", AutoRollback: true, CreatedAt: at(0)}
	ok(t, s.CreateGroup(ctx, g), "CreateGroup")
	g.Selector, g.Config, g.AutoRollback = "role=api", "HalfAtATime", false
	g.HealthCheck = &api.HealthCheck{HTTP: "http://127.0.0.1:8080/healthz"}
	ok(t, s.UpdateGroupSettings(ctx, g), "UpdateGroupSettings")
	got, err := s.GetGroup(ctx, "shop", "prod")
	ok(t, err, "GetGroup")
	if got.Selector != "role=api" || got.Config != "HalfAtATime" || got.AutoRollback || got.HealthCheck == nil || got.HealthCheck.HTTP != g.HealthCheck.HTTP {
		t.Fatalf("GetGroup after UpdateGroupSettings = %+v, want the new settings", got)
	}
	g.ID = "g-missing"
	isErr(t, s.UpdateGroupSettings(ctx, g), store.ErrNotFound, "UpdateGroupSettings of a missing group")
}
