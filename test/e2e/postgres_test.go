package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gantry-dev/gantry/api"
)

// postgresURL returns a URL to a fresh schema of the test PostgreSQL.
func postgresURL(t *testing.T) string {
	t.Helper()
	base := os.Getenv("GANTRY_TEST_POSTGRES_URL")
	if base == "" {
		if testing.Short() {
			t.Skip("-short: no PostgreSQL")
		}
		t.Fatal("GANTRY_TEST_POSTGRES_URL is not set: PostgreSQL tests need a server (make test starts one); run with -short to skip")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to GANTRY_TEST_POSTGRES_URL: %v", err)
	}
	defer conn.Close(ctx)
	schema := fmt.Sprintf("e2e_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// The same server behaviour on PostgreSQL: enrollment, jobs, restart.
func TestPostgresBackend(t *testing.T) {
	c := newCluster(t, clusterOpts{database: postgresURL(t)})
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
