package cli

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/api"
)

func TestHostsList(t *testing.T) {
	f := newFakeServer(t)
	r := f.gantry(t, nil, "hosts", "ls")
	r.expect(t, 0)
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("want header + 3 hosts (revoked hidden), got:\n%s", r.stdout)
	}
	header := regexp.MustCompile(`\s{2,}`).Split(lines[0], -1)
	want := []string{"NAME", "ID", "STATUS", "LABELS", "OS/ARCH", "ADDRESSES", "LAST SEEN", "CLOCK SKEW"}
	if !reflect.DeepEqual(header, want) {
		t.Errorf("header %q, want %q", header, want)
	}
	for _, w := range []string{"web-1", "h1", "online", "env=prod,role=web", "linux/amd64", "10.0.0.1", "3s ago"} {
		if !strings.Contains(lines[1], w) {
			t.Errorf("row %q lacks %q", lines[1], w)
		}
	}
	if !strings.Contains(lines[2], "1m ago") || !strings.Contains(lines[3], "never") {
		t.Errorf("last seen column:\n%s", r.stdout)
	}

	r = f.gantry(t, nil, "hosts", "ls", "--selector", "role=web", "--all")
	r.expect(t, 0, "web-22")
	if line, _ := f.lastRequest(); line != "GET /api/v1/hosts?include_revoked=true&selector=role%3Dweb" {
		t.Errorf("request %q", line)
	}
	f.gantry(t, nil, "hosts", "ls", "--all").expect(t, 0, "old-1", "revoked")

	r = f.gantry(t, nil, "hosts", "ls", "-l", "role=nothing")
	r.expect(t, 0, "No hosts found.")
	if r.stdout != "" {
		t.Errorf("empty table mode wrote stdout %q", r.stdout)
	}
}

func TestHostsListJSON(t *testing.T) {
	f := newFakeServer(t)
	r := f.gantry(t, nil, "hosts", "ls", "-o", "json")
	r.expect(t, 0)
	var hosts []api.Host
	if err := json.Unmarshal([]byte(r.stdout), &hosts); err != nil || len(hosts) != 3 || hosts[0].Facts.CPUs != 4 {
		t.Fatalf("json: %v\n%s", err, r.stdout)
	}
	r = f.gantry(t, nil, "hosts", "ls", "-o", "json", "--selector", "role=nothing")
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("empty list in JSON must be [], got %q", r.stdout)
	}
}

func TestHostsShow(t *testing.T) {
	f := newFakeServer(t)
	r := f.gantry(t, nil, "hosts", "show", "web-1")
	r.expect(t, 0, "Name:", "web-1", "ID:", "h1", "Hostname:", "web-1.example", "CPUs:", "4",
		"Memory:", "8.0 GiB", "Addresses:", "10.0.0.1", "Labels:", "env=prod, role=web", "(3s ago)", "Agent version:")
	r = f.gantry(t, nil, "hosts", "show", "h1", "-o", "json")
	var h api.Host
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil || h.Name != "web-1" {
		t.Errorf("json: %v\n%s", err, r.stdout)
	}
	f.gantry(t, nil, "hosts", "show", "a/b").expect(t, 1, `host "a/b" not found`)
	if line, _ := f.lastRequest(); line != "GET /api/v1/hosts/a%2Fb" {
		t.Errorf("host name not escaped: %q", line)
	}
}

func TestHostsLabel(t *testing.T) {
	f := newFakeServer(t)
	r := f.gantry(t, nil, "hosts", "label", "web-1", "tier=front", "env-", "role=edge")
	r.expect(t, 0, "Labels of web-1: role=edge, tier=front")
	line, body := f.lastRequest()
	var req api.LabelsRequest
	_ = json.Unmarshal([]byte(body), &req)
	if line != "PATCH /api/v1/hosts/web-1/labels" || !reflect.DeepEqual(req, api.LabelsRequest{
		Set: map[string]string{"tier": "front", "role": "edge"}, Remove: []string{"env"}}) {
		t.Errorf("request %s %s", line, body)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"web-1"}, "missing label changes"},
		{[]string{}, "missing HOST"},
		{[]string{"web-1", "novalue"}, `invalid label change "novalue"`},
		{[]string{"web-1", "=x"}, "the key is empty"},
		{[]string{"web-1", "a=1", "a-"}, `label "a" is both set and removed`},
	} {
		f.gantry(t, nil, append([]string{"hosts", "label"}, tc.args...)...).expect(t, 2, tc.want, "Run 'gantry hosts label --help'")
	}
}

func TestHostsRemove(t *testing.T) {
	f := newFakeServer(t)
	f.gantry(t, nil, "hosts", "rm", "web-22").expect(t, 0, "Host web-22 revoked.")
	if line, _ := f.lastRequest(); line != "DELETE /api/v1/hosts/web-22" {
		t.Errorf("request %q", line)
	}
	f.gantry(t, nil, "hosts", "rm", "ghost").expect(t, 1, `host "ghost" not found`)
	r := f.gantry(t, nil, "hosts", "rm", "db-1", "-o", "json")
	var out map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out["status"] != "revoked" {
		t.Errorf("json: %v %q", err, r.stdout)
	}
}
