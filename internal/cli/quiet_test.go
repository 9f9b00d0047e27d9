package cli

import "testing"

// `ls -q` prints ids only, one per line, newest first, for
// `$(gantry jobs ls -q | head -n1)`; with -o json it is a usage error.
func TestListQuiet(t *testing.T) {
	f := newFakeServer(t)
	f.gantry(t, nil, "run", "--selector", "", "--", "x").expect(t, 0)
	f.gantry(t, nil, "run", "--selector", "", "--", "y").expect(t, 0)
	if r := f.gantry(t, nil, "jobs", "ls", "-q"); r.code != 0 || r.stdout != "j2\nj1\n" {
		t.Errorf("jobs ls -q: exit %d, stdout %q (want the ids, newest first)", r.code, r.stdout)
	}
	f.gantry(t, nil, "jobs", "ls", "--quiet", "-o", "json").expect(t, 2, "-q/--quiet and -o json exclude each other")

	f.gantry(t, nil, "schedule", "create", "--cron", "@every 1m", "--selector", "", "--", "a").expect(t, 0)
	f.gantry(t, nil, "schedule", "create", "--cron", "@every 1m", "--selector", "", "--", "b").expect(t, 0)
	if r := f.gantry(t, nil, "schedule", "ls", "-q"); r.code != 0 || r.stdout != "s2\ns1\n" {
		t.Errorf("schedule ls -q: exit %d, stdout %q (want the ids, newest first)", r.code, r.stdout)
	}
}
