package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/api"
)

func TestJobsList(t *testing.T) {
	f := newFakeServer(t)
	f.gantry(t, nil, "jobs", "ls").expect(t, 0, "No jobs yet.")
	f.finish = failWeb22
	f.gantry(t, nil, "run", "--selector", "role=web", "--", "x").expect(t, 1)
	f.finish = nil
	f.gantry(t, nil, "run", "--selector", "", "--", "y").expect(t, 0)

	r := f.gantry(t, nil, "jobs", "ls", "--limit", "5")
	r.expect(t, 0, "ID", "SELECTOR", "STATE", "HOSTS", "CREATED", "SCHEDULE",
		"j1", "role=web", "finished", "2 (1 succeeded, 1 failed)", "j2", "(all hosts)", "3 (3 succeeded)", "0s ago")
	if line, _ := f.lastRequest(); line != "GET /api/v1/jobs?limit=5" {
		t.Errorf("request %q", line)
	}
	if strings.Index(r.stdout, "j2") > strings.Index(r.stdout, "j1") {
		t.Errorf("server order (newest first) not kept:\n%s", r.stdout)
	}

	r = f.gantry(t, nil, "jobs", "ls", "-o", "json")
	var jobs []api.Job
	if err := json.Unmarshal([]byte(r.stdout), &jobs); err != nil || len(jobs) != 2 || jobs[1].Counts[api.ExecFailed] != 1 {
		t.Errorf("json: %v\n%s", err, r.stdout)
	}
	f.gantry(t, nil, "jobs", "ls", "--limit", "-1").expect(t, 2, "invalid --limit")
}

func TestJobsShow(t *testing.T) {
	f := newFakeServer(t)
	f.finish = func(e *api.Execution) {
		failWeb22(e)
		if e.HostName == "web-1" {
			e.Stdout, e.StdoutTruncated = "line 1\nline 2", true
		}
	}
	f.gantry(t, nil, "run", "--selector", "role=web", "--timeout", "2m", "--", "echo hi\necho there").expect(t, 1)

	r := f.gantry(t, nil, "jobs", "show", "j1")
	r.expect(t, 0, "ID:", "j1", "State:", "finished (1 succeeded, 1 failed)", "Selector:", "role=web",
		"Timeout:", "2m0s", "Concurrency:", "all hosts at once", "Script:\n  echo hi\n  echo there\n",
		"== web-1 (h1): succeeded, exit 0, 1.2s\nweb-1  | line 1\nweb-1  | line 2\n[stdout truncated",
		"== web-22 (h2): failed, exit 2, 1.2s\nweb-22 | hello from web-22\nweb-22 ! oops\n")

	r = f.gantry(t, nil, "jobs", "show", "j1", "--host", "h2")
	r.expect(t, 0, "web-22 ! oops")
	if strings.Contains(r.stdout, "web-1 ") {
		t.Errorf("--host did not filter:\n%s", r.stdout)
	}
	r = f.gantry(t, nil, "jobs", "show", "j1", "--host", "web-22", "-o", "json")
	var job api.Job
	if err := json.Unmarshal([]byte(r.stdout), &job); err != nil || len(job.Executions) != 1 || job.Executions[0].HostName != "web-22" {
		t.Errorf("json: %v\n%s", err, r.stdout)
	}
	f.gantry(t, nil, "jobs", "show", "j1", "--host", "db-1").expect(t, 1, `job j1 did not run on host "db-1"`, "web-1, web-22")
	f.gantry(t, nil, "jobs", "show", "j9").expect(t, 1, "job j9 not found")
	f.gantry(t, nil, "jobs", "show").expect(t, 2, "missing JOB_ID argument")
}

func TestSchedule(t *testing.T) {
	f := newFakeServer(t)
	f.gantry(t, nil, "schedule", "ls").expect(t, 0, "No schedules.")

	r := f.gantry(t, nil, "schedule", "create", "--cron", "0 3 * * *", "--selector", "role=db", "--timeout", "1h", "--", "backup", "--all")
	r.expect(t, 0, `Schedule s1 created: "0 3 * * *" on role=db; next run`, "(in 5m)")
	var s api.Schedule
	_ = json.Unmarshal([]byte(f.body(1)), &s)
	if s.Cron != "0 3 * * *" || s.Selector != "role=db" || s.Script != "backup --all" || s.TimeoutSeconds != 3600 {
		t.Errorf("request %+v", s)
	}

	r = f.gantry(t, nil, "schedule", "ls")
	r.expect(t, 0, "ID", "CRON", "SELECTOR", "NEXT RUN", "LAST RUN", "LAST JOB", "s1", "0 3 * * *", "in 5m", "never")
	r = f.gantry(t, nil, "schedule", "ls", "-o", "json")
	var list []api.Schedule
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 {
		t.Errorf("json: %v\n%s", err, r.stdout)
	}

	f.gantry(t, nil, "schedule", "rm", "s1").expect(t, 0, "Schedule s1 deleted.")
	f.gantry(t, nil, "schedule", "rm", "s1").expect(t, 1, "schedule s1 not found")

	f.gantry(t, nil, "schedule", "create", "--selector", "", "--", "x").expect(t, 2, "--cron is required")
	f.gantry(t, nil, "schedule", "create", "--cron", "@daily", "--", "x").expect(t, 2, "--selector is required")
	f.gantry(t, nil, "schedule", "create", "--cron", "@daily", "--selector", "").expect(t, 2, "missing script")
	f.gantry(t, nil, "schedule", "create", "--cron", "@daily", "--selector", "", "--timeout", "soon", "--", "x").
		expect(t, 2, `"--timeout"`, "Run 'gantry schedule create --help'")
	// The server validates the expression; its 400 is a usage error.
	f.gantry(t, nil, "schedule", "create", "--cron", "every day", "--selector", "", "--", "x").
		expect(t, 2, `invalid cron expression "every day"`)
}
