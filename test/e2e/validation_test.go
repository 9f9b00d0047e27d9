package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/api"
)

// The CLI shows the API's own message for a value out of range (the
// largest --timeout a duration flag takes, which is 9223372037 seconds
// rounded up, and a schedule every nanosecond), exits 2 (a bad value is a
// usage error, docs/cli.md), and the server stores nothing: no job, no
// schedule.
func TestCLIShowsRangeErrors(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.agentsOnline(map[string]string{"v1": "role=v"})

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--selector", "role=v", "--timeout", "2562047h47m16.854775807s", "--", "echo", "hi"},
			"timeout_seconds: 9223372037 is out of range: want 1 to 86400 (24h)"},
		{[]string{"schedule", "create", "--cron", "@every 1ns", "--selector", "role=v", "--", "echo", "hi"},
			`cron: "@every 1ns" runs every 1ns, more often than the minimum interval of 1s (the server's --min-schedule-interval)`},
	} {
		r := c.gantry(tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("gantry %s: exit %d, stderr:\n%s\nwant exit 2 and %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
		}
	}

	var jobs []api.Job
	if err := json.Unmarshal([]byte(c.gantry("jobs", "ls", "-o", "json").stdout), &jobs); err != nil || len(jobs) != 0 {
		t.Errorf("jobs stored after refused requests: %v %+v", err, jobs)
	}
	var scheds []api.Schedule
	if err := json.Unmarshal([]byte(c.gantry("schedule", "ls", "-o", "json").stdout), &scheds); err != nil || len(scheds) != 0 {
		t.Errorf("schedules stored after refused requests: %v %+v", err, scheds)
	}
	// The same commands with values in range are taken.
	c.gantry("run", "--selector", "role=v", "--timeout", "24h", "--", "echo", "hi").ok(t)
	c.gantry("schedule", "create", "--cron", "@every 1h", "--selector", "role=v", "--", "echo", "hi").ok(t)
}
