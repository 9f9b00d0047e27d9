package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// kill -9 of the server while the second of four hosts is being deployed
// (OneAtATime): after a restart on the same data dir the deployment goes on
// where it was and succeeds, and no hook ran twice or was left out.
func TestDeployServerKill9(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	hosts := []string{"k1", "k2", "k3", "k4"}
	agents := map[string]string{}
	for _, h := range hosts {
		agents[h] = "role=k9"
	}
	c.deployAgentsOnline(agents)
	c.gantry("app", "create", "k9").ok(t)
	c.createGroup("k9", "g", "--selector", "role=k9", "--config", "OneAtATime")
	traces := t.TempDir()
	revision := func(version string) string {
		var hooks []hook
		for _, ev := range hookEvents {
			s := fmt.Sprintf(`echo "$LIFECYCLE_EVENT $DEPLOYMENT_ID" >> '%s'/"$GANTRY_HOST_NAME"`, traces)
			if ev == "ApplicationStart" {
				s += "\nsleep 2"
			}
			hooks = append(hooks, hook{event: ev, script: s})
		}
		return c.push("k9", bundle("/srv/k9", map[string]string{"version.txt": version + "\n"}, hooks...))
	}
	v1, v2 := revision("v1"), revision("v2")
	// v1 first (at once), so that v2's ApplicationStop runs too.
	c.deployWait(0, "deploy", "k9", "g", "--revision", v1, "--config", "AllAtOnce")

	id := c.deployNoWait("deploy", "k9", "g", "--revision", v2)
	// Poll through the API client: a CLI process per poll (slow when
	// race-built) could miss k2's few seconds.
	client := c.apiClient()
	eventually(t, 30*time.Second, "k2 in progress", func() (bool, string) {
		d, err := client.GetDeployment(t.Context(), id)
		if err != nil {
			return false, err.Error()
		}
		st := states(d)
		if api.DeployDone(d.State) {
			t.Fatalf("the deployment ended before k2 started: %v", st)
		}
		return st["k2"] == api.HostDeployInProgress, fmt.Sprint(st)
	})
	c.server.kill() // SIGKILL, mid-deployment
	c.startServer()
	d := c.waitDeployment(id, 60*time.Second)
	if d.State != api.DeploySucceeded || d.Batch != 4 {
		t.Fatalf("after the restart: %s, batch %d, hosts %v (%s)", d.State, d.Batch, states(d), d.Error)
	}
	for i, h := range hosts {
		dh := hostsByName(d)[h]
		if dh.State != api.HostDeploySucceeded || dh.Batch != i+1 {
			t.Errorf("%s: %s batch %d, want succeeded batch %d", h, dh.State, dh.Batch, i+1)
		}
		count := map[string]int{}
		for _, l := range readLines(t, filepath.Join(traces, h)) {
			if ev, dep, ok := strings.Cut(l, " "); ok && dep == id {
				count[ev]++
			}
		}
		for _, ev := range hookEvents {
			if count[ev] != 1 {
				t.Errorf("%s: %s ran %d times in %s, want once (all: %v)", h, ev, count[ev], id, count)
			}
		}
		if len(count) != len(hookEvents) {
			t.Errorf("%s: unexpected hooks: %v", h, count)
		}
		if got, _ := c.installedFile(h, "/srv/k9/version.txt"); got != "v2\n" {
			t.Errorf("%s: version.txt %q, want v2", h, got)
		}
	}
	if g := c.group("k9", "g"); g.Revision != v2 {
		t.Errorf("group revision %s, want %s", g.Revision, v2)
	}
}
