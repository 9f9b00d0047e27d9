package httpapi

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

// expect checks a recorded response's status, error code and message
// fragments, and returns its body.
func expect(t *testing.T, what string, status int, code string, body string, gotStatus int, frags ...string) {
	t.Helper()
	if gotStatus != status {
		t.Fatalf("%s: status %d, want %d; body %s", what, gotStatus, status, body)
	}
	if code == "" {
		return
	}
	var e api.Error
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("%s: body %s: %v", what, body, err)
	}
	if e.Code != code {
		t.Errorf("%s: code %q, want %q (%s)", what, e.Code, code, e.Error)
	}
	for _, f := range frags {
		if !strings.Contains(e.Error, f) {
			t.Errorf("%s: message %q lacks %q", what, e.Error, f)
		}
	}
}

// envState is the JSON of an environment state with a group "web" whose
// deploy block deploys app shop to deployment group dev-web.
const envState = `{"env":"dev","resources":{"group.web":{"address":"group.web","kind":"group","group":"web","spec":{"app":"shop","deploy_group":"dev-web"},"created_at":"2031-01-01T00:00:00Z"}}}`

func TestAppAndGroupRemoval(t *testing.T) {
	a, st, tok := validationAPI(t)
	ctx := t.Context()
	for _, n := range []string{"shop", "web"} {
		w := send(t, a, tok, "POST", "/api/v1/apps", `{"name":"`+n+`"}`)
		expect(t, "create app "+n, 201, "", w.Body.String(), w.Code)
	}
	for _, g := range []string{"prod", "staging", "dev-web"} {
		w := send(t, a, tok, "POST", "/api/v1/apps/shop/groups", `{"name":"`+g+`","selector":"role=`+g+`"}`)
		expect(t, "create group "+g, 201, "", w.Body.String(), w.Code)
	}
	if err := st.SaveEnvironment(ctx, store.Environment{Name: "dev", Serial: 1, State: []byte(envState), Definition: []byte{}, Vars: []byte("[]"), Events: []byte("[]"), CreatedAt: time.Now()}, 0); err != nil {
		t.Fatal(err)
	}

	w := send(t, a, tok, "DELETE", "/api/v1/apps/shpo", "")
	expect(t, "app rm of a typo", 404, "not_found", w.Body.String(), w.Code, `app "shpo" not found; apps: shop, web`)

	w = send(t, a, tok, "DELETE", "/api/v1/apps/shop", "")
	expect(t, "app rm in use", 409, "in_use", w.Body.String(), w.Code,
		`app "shop" is in use by deployment groups dev-web, prod, staging and by environment "dev" (group.web)`,
		`remove them first ('gantry group rm shop prod') or use --force`)

	w = send(t, a, tok, "DELETE", "/api/v1/apps/shop/groups/dev-web", "")
	expect(t, "group rm of an environment's group", 409, "in_use", w.Body.String(), w.Code,
		`group "dev-web" of app "shop" belongs to environment "dev" (group.web)`, "gantry destroy --env dev", "--force")

	w = send(t, a, tok, "DELETE", "/api/v1/apps/shop/groups/nope", "")
	expect(t, "group rm of a typo", 404, "not_found", w.Body.String(), w.Code, `group "nope" of app "shop" not found; groups of shop: dev-web, prod, staging`)

	// A deployment in progress blocks every removal, forced or not.
	g, err := st.GetGroup(ctx, "shop", "prod")
	if err != nil {
		t.Fatal(err)
	}
	d := api.Deployment{ID: "d-running", App: "shop", Group: "prod", GroupID: g.ID, Revision: "r-1", Config: "OneAtATime", State: api.DeployRunning, Kind: "deploy", CreatedAt: time.Now()}
	if err := st.CreateDeployment(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	w = send(t, a, tok, "DELETE", "/api/v1/apps/shop/groups/prod?force=true", "")
	expect(t, "group rm while deploying", 409, "in_use", w.Body.String(), w.Code, "deployment d-running in progress", "gantry deployments stop d-running")
	w = send(t, a, tok, "DELETE", "/api/v1/apps/shop?force=true", "")
	expect(t, "app rm --force while deploying", 409, "in_use", w.Body.String(), w.Code, `app "shop" has deployment d-running in progress`)
	state := api.DeployStopped
	if err := st.UpdateDeployment(ctx, store.DeploymentUpdate{ID: "d-running", State: &state, FinishedAt: ptrTime(time.Now())}); err != nil {
		t.Fatal(err)
	}

	w = send(t, a, tok, "DELETE", "/api/v1/apps/shop/groups/staging", "")
	expect(t, "group rm", 200, "", w.Body.String(), w.Code)
	var removed api.DeploymentGroup
	if err := json.Unmarshal(w.Body.Bytes(), &removed); err != nil || removed.Name != "staging" {
		t.Fatalf("group rm answered %s (%v), want the removed group", w.Body, err)
	}
	w = send(t, a, tok, "DELETE", "/api/v1/apps/shop/groups/dev-web?force=true", "")
	expect(t, "group rm --force of an environment's group", 200, "", w.Body.String(), w.Code)

	w = send(t, a, tok, "DELETE", "/api/v1/apps/shop?force=true", "")
	expect(t, "app rm --force", 200, "", w.Body.String(), w.Code)
	var rm api.AppRemoval
	if err := json.Unmarshal(w.Body.Bytes(), &rm); err != nil || rm.App.Name != "shop" || strings.Join(rm.Groups, ",") != "prod" {
		t.Fatalf("app rm answered %s (%v)", w.Body, err)
	}
	if _, err := st.GetApplication(ctx, "shop"); err == nil {
		t.Fatal("shop still exists")
	}
	if _, err := st.GetDeployment(ctx, "d-running"); err == nil {
		t.Fatal("shop's deployment survived app rm --force")
	}
	// web was never in use: no --force needed.
	w = send(t, a, tok, "DELETE", "/api/v1/apps/web", "")
	expect(t, "app rm of an unused app", 200, "", w.Body.String(), w.Code)
	w = send(t, a, tok, "DELETE", "/api/v1/apps/web", "")
	expect(t, "app rm of the last app again", 404, "not_found", w.Body.String(), w.Code, `app "web" not found`)
}

func ptrTime(t time.Time) *time.Time { return &t }

func TestGroupUpdate(t *testing.T) {
	a, st, tok := validationAPI(t)
	send(t, a, tok, "POST", "/api/v1/apps", `{"name":"shop"}`)
	w := send(t, a, tok, "POST", "/api/v1/apps/shop/groups", `{"name":"web","selector":"role=web","config":"HalfAtATime","health_check":{"tcp":"127.0.0.1:80"}}`)
	expect(t, "create group", 201, "", w.Body.String(), w.Code)

	w = send(t, a, tok, "PATCH", "/api/v1/apps/shop/groups/web", `{"selector":"role=api","auto_rollback":false}`)
	expect(t, "update selector", 200, "", w.Body.String(), w.Code)
	g, err := st.GetGroup(t.Context(), "shop", "web")
	if err != nil {
		t.Fatal(err)
	}
	if g.Selector != "role=api" || g.AutoRollback || g.Config != "HalfAtATime" || g.HealthCheck == nil || g.HealthCheck.TCP != "127.0.0.1:80" {
		t.Fatalf("after update: %+v (only selector and auto rollback should change)", g)
	}
	w = send(t, a, tok, "PATCH", "/api/v1/apps/shop/groups/web", `{"no_health_check":true,"config":"75%"}`)
	expect(t, "remove health check", 200, "", w.Body.String(), w.Code)
	g, _ = st.GetGroup(t.Context(), "shop", "web")
	if g.HealthCheck != nil || g.Config != "75%" {
		t.Fatalf("after update: %+v", g)
	}
	for _, tc := range []struct{ body, frag string }{
		{`{"selector":""}`, "selector is empty"},
		{`{"selector":"role in ("}`, "selector"},
		{`{"config":"Sometimes"}`, "Sometimes"},
		{`{"health_check":{"tcp":"127.0.0.1:80"},"no_health_check":true}`, "exclude each other"},
	} {
		w = send(t, a, tok, "PATCH", "/api/v1/apps/shop/groups/web", tc.body)
		expect(t, "update "+tc.body, 400, "bad_request", w.Body.String(), w.Code, tc.frag)
	}
	w = send(t, a, tok, "PATCH", "/api/v1/apps/shop/groups/wbe", `{"selector":"a=b"}`)
	expect(t, "update of a typo", 404, "not_found", w.Body.String(), w.Code, `group "wbe" of app "shop" not found; groups of shop: web`)
}

func TestEnvRemoval(t *testing.T) {
	a, st, tok := validationAPI(t)
	ctx := t.Context()
	if err := st.SaveEnvironment(ctx, store.Environment{Name: "dev", Serial: 3, State: []byte(envState), Definition: []byte{}, Vars: []byte("[]"), Events: []byte(`[{"id":"x"},{"id":"y"}]`), CreatedAt: time.Now()}, 0); err != nil {
		t.Fatal(err)
	}
	w := send(t, a, tok, "DELETE", "/api/v1/envs/dve", "")
	expect(t, "env rm of a typo", 404, "not_found", w.Body.String(), w.Code, `environment "dve" not found; environments: dev`)
	w = send(t, a, tok, "DELETE", "/api/v1/envs/dev", "")
	expect(t, "env rm of a live environment", 409, "in_use", w.Body.String(), w.Code, `environment "dev" still has 1 resource`, "destroy it first: gantry destroy --env dev")

	// Locked by an apply: refused too.
	if _, err := st.AcquireLease(ctx, "env/dev", "apply by test", time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	w = send(t, a, tok, "DELETE", "/api/v1/envs/dev", "")
	expect(t, "env rm while locked", 409, "in_use", w.Body.String(), w.Code, "locked")
	if err := st.ReleaseLease(ctx, "env/dev", "apply by test"); err != nil {
		t.Fatal(err)
	}

	// Destroyed: an empty state.
	if err := st.SaveEnvironment(ctx, store.Environment{Name: "dev", Serial: 4, State: []byte(`{"env":"dev","resources":{}}`), Definition: []byte{}, Vars: []byte("[]")}, 3); err != nil {
		t.Fatal(err)
	}
	w = send(t, a, tok, "DELETE", "/api/v1/envs/dev", "")
	expect(t, "env rm of a destroyed environment", 200, "", w.Body.String(), w.Code)
	var rm api.EnvRemoval
	if err := json.Unmarshal(w.Body.Bytes(), &rm); err != nil || rm.Name != "dev" || rm.Serial != 4 {
		t.Fatalf("env rm answered %s (%v)", w.Body, err)
	}
	w = send(t, a, tok, "GET", "/api/v1/envs/dev", "")
	expect(t, "env show after rm", 404, "", w.Body.String(), w.Code)
	if l, err := st.GetLease(ctx, "env/dev"); err == nil && l.ExpiresAt.After(time.Now()) && l.Holder != "apply by test" {
		t.Errorf("env rm left its lock held: %+v", l)
	}
}

func TestScheduleUpdate(t *testing.T) {
	a, st, tok := validationAPI(t)
	w := send(t, a, tok, "POST", "/api/v1/schedules", `{"cron":"0 3 * * *","selector":"role=db","script":"backup"}`)
	expect(t, "create schedule", 201, "", w.Body.String(), w.Code)
	var s api.Schedule
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	w = send(t, a, tok, "PATCH", "/api/v1/schedules/"+s.ID, `{"cron":"*/5 * * * *","selector":"role=web","disabled":true}`)
	expect(t, "update schedule", 200, "", w.Body.String(), w.Code)
	got, err := st.GetSchedule(t.Context(), s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Cron != "*/5 * * * *" || got.Selector != "role=web" || got.Script != "backup" || !got.Disabled || got.UpdatedAt == nil {
		t.Fatalf("stored after update: %+v", got)
	}
	w = send(t, a, tok, "GET", "/api/v1/schedules/"+s.ID, "")
	expect(t, "get schedule", 200, "", w.Body.String(), w.Code)
	var shown api.Schedule
	_ = json.Unmarshal(w.Body.Bytes(), &shown)
	if shown.NextRunAt != nil {
		t.Errorf("a disabled schedule shows a next run: %v", shown.NextRunAt)
	}
	w = send(t, a, tok, "PATCH", "/api/v1/schedules/"+s.ID, `{"disabled":false}`)
	expect(t, "enable schedule", 200, "", w.Body.String(), w.Code)
	shown = api.Schedule{}
	_ = json.Unmarshal(w.Body.Bytes(), &shown)
	if shown.Disabled || shown.NextRunAt == nil {
		t.Errorf("enabled schedule: disabled %v next %v", shown.Disabled, shown.NextRunAt)
	}
	w = send(t, a, tok, "PATCH", "/api/v1/schedules/"+s.ID, `{"cron":"every day"}`)
	expect(t, "bad cron", 400, "bad_request", w.Body.String(), w.Code, "cron")
	w = send(t, a, tok, "PATCH", "/api/v1/schedules/"+s.ID, `{"script":""}`)
	expect(t, "empty script", 400, "bad_request", w.Body.String(), w.Code, "script is empty")
	w = send(t, a, tok, "PATCH", "/api/v1/schedules/s-nope", `{"cron":"@daily"}`)
	expect(t, "update of a typo", 404, "not_found", w.Body.String(), w.Code, `schedule "s-nope" not found; schedules: `+s.ID)
}
