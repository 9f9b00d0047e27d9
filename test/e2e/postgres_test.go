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
