package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// TestClockSkew: an agent whose clock is 10 minutes ahead (the agent's
// test-only GANTRY_TEST_CLOCK_OFFSET) measures its skew from the server's
// hello reply and reports it: `hosts show` and `hosts ls` name and flag it,
// the JSON carries it. Its commands run: the agent checks their expiry
// against the server's time (its clock corrected by the skew), where it
// used to refuse every one as expired and leave the job to fail after 60 s.
func TestClockSkew(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	tok := c.joinToken("--uses", "2", "--labels", "role=skew")
	c.startAgent("on-time", "", tok)
	t.Setenv("GANTRY_TEST_CLOCK_OFFSET", "10m") // read only by the agent started next
	c.startAgent("ahead", "", tok)
	c.waitHost("ahead", api.HostOnline, 15*time.Second)
	c.waitHost("on-time", api.HostOnline, 15*time.Second)

	var h api.Host
	eventually(t, 10*time.Second, "the skew of host ahead stored", func() (bool, string) {
		h, _ = c.host("ahead")
		return h.ClockSkewMillis != nil, "not measured yet"
	})
	// 10 minutes, within the measurement's error on loopback.
	if d, _ := h.ClockSkew(); d < 10*time.Minute-time.Second || d > 10*time.Minute+time.Second || !h.ClockSkewed() {
		t.Fatalf("skew of host ahead: %s (flagged: %v), want 10m0s ± 1s", d, h.ClockSkewed())
	}
	r := c.gantry("hosts", "show", "ahead")
	r.ok(t)
	if !strings.Contains(r.stdout, "host clock 10m0s ahead of the server (!) over 30s: fix this host's clock (NTP)") {
		t.Errorf("hosts show ahead does not name the skew:\n%s", r.stdout)
	}
	eventually(t, 10*time.Second, "the skew of host on-time stored", func() (bool, string) {
		h, _ = c.host("on-time")
		return h.ClockSkewMillis != nil, "not measured yet"
	})
	if d, _ := h.ClockSkew(); d.Abs() > time.Second || h.ClockSkewed() {
		t.Errorf("skew of host on-time: %s (flagged: %v)", d, h.ClockSkewed())
	}
	r = c.gantry("hosts", "ls")
	r.ok(t)
	for _, line := range strings.Split(r.stdout, "\n") {
		switch {
		case strings.HasPrefix(line, "ahead "):
			if !strings.HasSuffix(line, " +10m0s (!)") {
				t.Errorf("hosts ls row of ahead: %q, want its skew +10m0s flagged (!)", line)
			}
		case strings.HasPrefix(line, "on-time "):
			if strings.HasSuffix(line, "(!)") {
				t.Errorf("hosts ls flags on-time: %q", line)
			}
		}
	}
	if !strings.Contains(r.stdout, "(!) 1 host(s) with a clock off by more than 30s") {
		t.Errorf("hosts ls has no note of the skewed host:\n%s", r.stdout)
	}

	// Commands run on the skewed host, at once.
	start := time.Now()
	r = c.gantry("run", "--selector", "role=skew", "-o", "json", "--", `echo "ran on $GANTRY_HOST_NAME"`)
	r.ok(t)
	var job api.Job
	if err := json.Unmarshal([]byte(r.stdout), &job); err != nil {
		t.Fatalf("run: %v\n%s", err, r.stdout)
	}
	x := byHost(job)
	if e := x["ahead"]; e.State != api.ExecSucceeded || e.Stdout != "ran on ahead\n" {
		t.Errorf("the job on the host 10m ahead: %+v", e)
	}
	if e := x["on-time"]; e.State != api.ExecSucceeded {
		t.Errorf("the job on host on-time: %+v", e)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the job took %s", d)
	}
}
