package e2e

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the test reads the server's database itself

	"github.com/gantry-dev/gantry/api"
)

// 20 kill -9 restarts of the server while jobs of short scripts run on 10
// hosts: every script that ran to its end (exit 0) is stored succeeded and
// none unknown, and SQLite's integrity check passes after each kill. Many
// scripts end while the server is down, so their results reach a server
// that is starting: it must store a result before it acknowledges it.
func TestServerKill9Repeated(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 20 server restarts")
	}
	c := newCluster(t, clusterOpts{})
	agents := map[string]string{}
	for i := 1; i <= 10; i++ {
		agents[fmt.Sprintf("k%02d", i)] = "role=k9"
	}
	c.agentsOnline(agents)
	client := c.apiClient()
	marks := t.TempDir()
	db := filepath.Join(c.dir, "server", "gantry.db")
	var jobs []string
	for round := range 20 {
		// Every host online first, so that no execution is "offline".
		eventually(t, 20*time.Second, "10 hosts online", func() (bool, string) {
			hs, err := client.ListHosts(t.Context(), "role=k9", false)
			if err != nil {
				return false, err.Error()
			}
			n := 0
			for _, h := range hs {
				if h.Status == api.HostOnline {
					n++
				}
			}
			return n == 10, fmt.Sprintf("%d online", n)
		})
		// A 10 s timeout: a result acknowledged but lost shows as unknown
		// after 10 s plus the 30 s grace, within the wait below.
		// Scripts of 0.2 to 0.8 s, killed 0 to 0.3 s after half of them
		// started: scripts end before, during and after the restart (the
		// other half may start only after it).
		sleep := fmt.Sprintf("0.%d", 2+round%7)
		script := fmt.Sprintf(`echo started >> '%[1]s'/"$GANTRY_JOB_ID.$GANTRY_HOST_NAME.start"; sleep %[2]s; echo "ok $GANTRY_HOST_NAME"; touch '%[1]s'/"$GANTRY_JOB_ID.$GANTRY_HOST_NAME"`, marks, sleep)
		r := c.gantry("run", "--selector", "role=k9", "--no-wait", "--timeout", "10s", "--", script)
		r.ok(t)
		id := regexp.MustCompile(`j-[a-z0-9]+`).FindString(r.stdout)
		if id == "" {
			t.Fatalf("no job id in %q", r.stdout)
		}
		jobs = append(jobs, id)
		eventually(t, 20*time.Second, "round "+fmt.Sprint(round)+": 5 scripts started", func() (bool, string) {
			m, _ := filepath.Glob(filepath.Join(marks, id+".*.start"))
			return len(m) >= 5, fmt.Sprintf("%d started", len(m))
		})
		time.Sleep(time.Duration(round%4) * 100 * time.Millisecond) // where the kill lands, not a wait for anything
		c.server.kill()
		if got := integrityCheck(t, db); got != "ok" {
			t.Fatalf("round %d: integrity_check after kill -9: %s", round, got)
		}
		c.startServer()
	}

	exited0, succeeded := 0, 0
	for _, id := range jobs {
		var job api.Job
		eventually(t, 90*time.Second, "job "+id+" finished", func() (bool, string) {
			var err error
			job, err = client.GetJob(t.Context(), id)
			if err != nil {
				return false, err.Error()
			}
			return job.State == api.JobFinished, fmt.Sprint(job.Counts)
		})
		for _, x := range job.Executions {
			_, err := os.Stat(filepath.Join(marks, id+"."+x.HostName))
			ran := err == nil
			if ran {
				exited0++
			}
			if n := countLines(t, filepath.Join(marks, id+"."+x.HostName+".start")); n != 1 {
				t.Errorf("job %s on %s: the script started %d times, want once", id, x.HostName, n)
			}
			if x.State == api.ExecSucceeded {
				succeeded++
			}
			switch {
			case x.State == api.ExecUnknown:
				t.Errorf("job %s on %s: unknown (%s); the script ran to its end: %v", id, x.HostName, x.Error, ran)
			case ran && (x.State != api.ExecSucceeded || x.Stdout != "ok "+x.HostName+"\n"):
				t.Errorf("job %s on %s: the script exited 0 but is stored %s, stdout %q, error %q", id, x.HostName, x.State, x.Stdout, x.Error)
			}
		}
	}
	t.Logf("%d jobs, %d scripts ran to their end, %d stored succeeded", len(jobs), exited0, succeeded)
	if exited0 < len(jobs)*10/2 {
		t.Errorf("only %d of %d scripts ran to their end: the test did not test much", exited0, len(jobs)*10)
	}
}

// integrityCheck runs PRAGMA integrity_check on a SQLite database, read-only
// and without a server running.
func integrityCheck(t *testing.T, path string) string {
	t.Helper()
	d, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer d.Close()
	var rows []string
	q, err := d.Query("PRAGMA integrity_check")
	if err != nil {
		t.Fatalf("integrity_check %s: %v", path, err)
	}
	defer q.Close()
	for q.Next() {
		var s string
		if err := q.Scan(&s); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, s)
	}
	if err := q.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(rows, "; ")
}
