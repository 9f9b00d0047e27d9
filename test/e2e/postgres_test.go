package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store/postgres/pgtest"
)

// The same server behaviour on PostgreSQL: enrollment, jobs, restart.
func TestPostgresBackend(t *testing.T) {
	c := newCluster(t, clusterOpts{database: pgtest.FreshSchema(t)})
	c.agentsOnline(map[string]string{"pg-1": "role=x", "pg-2": "role=y"})
	r := c.gantry("run", "--selector", "role in (x,y)", "-o", "json", "--", "echo $GANTRY_HOST_NAME")
	r.ok(t)
	var job api.Job
	_ = json.Unmarshal([]byte(r.stdout), &job)
	if x := byHost(job); x["pg-1"].Stdout != "pg-1\n" || x["pg-2"].Stdout != "pg-2\n" {
		t.Errorf("executions: %+v", job.Executions)
	}
	c.server.stop()
	c.startServer()
	if got := c.job(job.ID); got.State != api.JobFinished || len(got.Executions) != 2 {
		t.Errorf("after restart: %+v", got)
	}
	c.waitHost("pg-1", api.HostOnline, 15*time.Second)
}

// An environment on a PostgreSQL-backed server: up, scale and destroy of
// local machines, with the state, lock and lifecycle runs in PostgreSQL.
func TestPostgresEnvironment(t *testing.T) {
	c := newCluster(t, clusterOpts{database: pgtest.FreshSchema(t)})
	trace := t.TempDir()
	dir := localDefinition(t, trace)
	c.gantryWithin(90*time.Second, "up", dir, "--env", "test", "--timeout", "60s").ok(t)
	c.gantryWithin(90*time.Second, "scale", "--env", "test", "web=1", "--timeout", "60s").ok(t)
	e := c.env("test")
	if got := machineNames(e); got != "test-db-0,test-web-0" {
		t.Fatalf("machines after scale on PostgreSQL: %s", got)
	}
	shutdowns := 0
	for _, r := range e.Events {
		if r.Event == "shutdown" && r.State == "succeeded" {
			shutdowns++
		}
	}
	if shutdowns != 1 {
		t.Fatalf("%d succeeded shutdown runs recorded, want 1 (web-1): %+v", shutdowns, e.Events)
	}
	c.gantryWithin(60*time.Second, "destroy", "--env", "test", "--auto-approve").ok(t)
	if e := c.env("test"); len(e.Machines) != 0 {
		t.Fatalf("machines after destroy: %s", machineNames(e))
	}
}
