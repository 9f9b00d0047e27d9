package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// TestHostsClockSkew: `hosts ls` and `hosts show` show each host's clock
// skew and flag one off by more than api.MaxClockSkew; JSON has the field.
func TestHostsClockSkew(t *testing.T) {
	f := newFakeServer(t)
	ms := func(d time.Duration) *int64 { v := d.Milliseconds(); return &v }
	f.hosts[0].ClockSkewMillis = ms(-3 * time.Millisecond)
	f.hosts[1].ClockSkewMillis = ms(10*time.Minute + 200*time.Millisecond)
	f.hosts[1].StatusChangedAt = time.Now().Add(-time.Minute)

	r := f.gantry(t, nil, "--insecure", "hosts", "ls")
	r.expect(t, 0)
	rows := map[string]string{}
	for _, line := range strings.Split(r.stdout, "\n") {
		if name, _, ok := strings.Cut(line, " "); ok {
			rows[name] = line
		}
	}
	for name, want := range map[string]string{"web-1": "-3ms", "web-22": "+10m0s (!)", "db-1": "  -"} {
		if !strings.HasSuffix(rows[name], want) {
			t.Errorf("row of %s %q: want its clock skew %q last", name, rows[name], want)
		}
	}
	if strings.HasSuffix(rows["web-1"], "(!)") {
		t.Errorf("a 3ms skew is flagged: %q", rows["web-1"])
	}
	if !strings.Contains(r.stdout, "(!) 1 host(s) with a clock off by more than 30s") {
		t.Errorf("no footnote for the skewed host:\n%s", r.stdout)
	}

	f.gantry(t, nil, "--insecure", "hosts", "show", "web-22").expect(t, 0,
		"Clock skew:", "host clock 10m0s ahead of the server (!) over 30s: fix this host's clock (NTP)", "Status since:", "(1m ago)")
	f.gantry(t, nil, "--insecure", "hosts", "show", "web-1").expect(t, 0, "host clock 3ms behind the server")
	f.gantry(t, nil, "--insecure", "hosts", "show", "db-1").expect(t, 0, "Clock skew:", "not measured yet")

	r = f.gantry(t, nil, "--insecure", "hosts", "show", "web-22", "-o", "json")
	var h map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil || h["clock_skew_ms"] != float64(600200) {
		t.Errorf("json clock_skew_ms: %v %v\n%s", err, h["clock_skew_ms"], r.stdout)
	}
}

func TestDescribeClockSkew(t *testing.T) {
	for _, tc := range []struct {
		skew time.Duration
		want string
	}{
		{0, "in step with the server"},
		{400 * time.Microsecond, "in step with the server"},
		{10*time.Minute + 400*time.Millisecond, "10m0s ahead of the server"},
		{-1500 * time.Millisecond, "1.5s behind the server"},
		{-45 * time.Second, "45s behind the server"},
	} {
		if got := api.DescribeClockSkew(tc.skew); got != tc.want {
			t.Errorf("DescribeClockSkew(%s) = %q, want %q", tc.skew, got, tc.want)
		}
	}
}
