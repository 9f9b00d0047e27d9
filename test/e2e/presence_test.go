package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// hostsByName lists the cluster's hosts with `gantry hosts ls -o json`.
func (c *cluster) hostsByName() map[string]api.Host {
	c.t.Helper()
	r := c.gantry("hosts", "ls", "-o", "json")
	r.ok(c.t)
	var hs []api.Host
	if err := json.Unmarshal([]byte(r.stdout), &hs); err != nil {
		c.t.Fatalf("hosts ls: %v\n%s", err, r.stdout)
	}
	m := map[string]api.Host{}
	for _, h := range hs {
		m[h.Name] = h
	}
	return m
}

// notOnline names the hosts of want that are not online in hs.
func notOnline(hs map[string]api.Host, want []string) []string {
	var out []string
	for _, name := range want {
		if h, ok := hs[name]; !ok || h.Status != api.HostOnline {
			out = append(out, fmt.Sprintf("%s=%s", name, h.Status))
		}
	}
	sort.Strings(out)
	return out
}

// TestPresenceSurvivesServerPause: the server is stopped (SIGSTOP) for 20 s
// with 30 agents heartbeating every 500ms, then continued. Every host is
// online again within 3 heartbeats and stays online; none was ever recorded
// offline (its status change time is the one from before the pause), though
// the pause was 40 heartbeats long: the presence loop noticed it had been
// stopped itself and gave the hosts a grace period, and no late "offline"
// write overwrote a newer "online".
func TestPresenceSurvivesServerPause(t *testing.T) {
	if testing.Short() {
		t.Skip("20 s pause of the server with 30 agents")
	}
	const n = 30
	hb := 500 * time.Millisecond
	c := newCluster(t, clusterOpts{heartbeat: hb})
	tok := c.joinToken("--uses", fmt.Sprint(n), "--labels", "role=p")
	var names []string
	for i := range n {
		name := fmt.Sprintf("p-%02d", i)
		names = append(names, name)
		c.startAgent(name, "", tok)
	}
	eventually(t, 60*time.Second, "30 hosts online", func() (bool, string) {
		bad := notOnline(c.hostsByName(), names)
		return len(bad) == 0, strings.Join(bad, " ")
	})
	before := c.hostsByName()

	pid := c.server.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Second) // the fault itself: the server stays stopped this long
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	eventually(t, 3*hb, "all 30 online within 3 heartbeats of SIGCONT", func() (bool, string) {
		bad := notOnline(c.hostsByName(), names)
		return len(bad) == 0, strings.Join(bad, " ")
	})
	t.Logf("all %d online %s after SIGCONT", n, time.Since(resumed).Round(time.Millisecond))

	// They stay online (20 heartbeats), and none was ever recorded offline.
	for time.Since(resumed) < 20*hb {
		if bad := notOnline(c.hostsByName(), names); len(bad) > 0 {
			t.Fatalf("%s after SIGCONT, not online: %s", time.Since(resumed).Round(time.Millisecond), strings.Join(bad, " "))
		}
		time.Sleep(hb / 2) // sampling period of the check, not synchronisation
	}
	after := c.hostsByName()
	for _, name := range names {
		if b, a := before[name], after[name]; !a.StatusChangedAt.Equal(b.StatusChangedAt) {
			t.Errorf("%s changed status during or after the pause: online since %v before, %s since %v after",
				name, b.StatusChangedAt, a.Status, a.StatusChangedAt)
		}
	}

	// And they take work at once.
	r := c.gantry("run", "--selector", "role=p", "-o", "json", "--", "echo ok")
	r.ok(t)
	var job api.Job
	if err := json.Unmarshal([]byte(r.stdout), &job); err != nil {
		t.Fatalf("run: %v\n%s", err, r.stdout)
	}
	succeeded := 0
	for _, x := range job.Executions {
		if x.State == api.ExecSucceeded {
			succeeded++
		}
	}
	if succeeded != n {
		t.Errorf("job after the pause: %d of %d succeeded: %+v", succeeded, n, job.Executions)
	}
}
