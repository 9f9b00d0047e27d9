package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// TestLifecycleUsage: the new commands' usage errors exit 2 before any
// request, naming the flag and what is valid.
func TestLifecycleUsage(t *testing.T) {
	f := newFakeServer(t)
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"group", "update", "shop", "web"}, []string{"nothing to change", "--selector"}},
		{[]string{"group", "update", "shop", "web", "--selector", ""}, []string{"--selector is empty"}},
		{[]string{"group", "update", "shop", "web", "--auto-rollback", "--no-auto-rollback"}, []string{"exclude each other"}},
		{[]string{"group", "update", "shop", "web", "--no-health-check", "--health-tcp", "127.0.0.1:80"}, []string{"--no-health-check and a new health check"}},
		{[]string{"group", "update", "shop", "web", "--config", "AllAtOnce", "--min-healthy", "2"}, []string{"--config and --min-healthy are exclusive"}},
		{[]string{"group", "rm", "shop"}, []string{"missing GROUP"}},
		{[]string{"app", "rm"}, []string{"missing APP"}},
		{[]string{"schedule", "update"}, []string{"missing SCHEDULE_ID"}},
		{[]string{"schedule", "update", "s-1"}, []string{"nothing to change", "--cron"}},
		{[]string{"schedule", "update", "s-1", "--enable", "--disable"}, []string{"exclude each other"}},
		{[]string{"schedule", "update", "s-1", "--timeout", "0s"}, []string{"invalid --timeout"}},
		{[]string{"schedule", "update", "s-1", "extra"}, []string{"unexpected argument \"extra\"", "after --"}},
		{[]string{"env", "rm"}, []string{"missing environment NAME"}},
		{[]string{"env", "rm", "a", "--env", "b"}, []string{"differ"}},
	} {
		before := len(f.requests)
		f.gantry(t, nil, tc.args...).expect(t, 2, tc.wants...)
		if len(f.requests) != before {
			t.Errorf("gantry %s sent requests %v after a usage error", strings.Join(tc.args, " "), f.requests[before:])
		}
	}
}

// TestTokenListHidesInternal: per-machine join tokens are listed only with
// --all, and the table says how many were hidden.
func TestTokenListHidesInternal(t *testing.T) {
	f := newFakeServer(t)
	f.gantry(t, nil, "token", "create").expect(t, 0)
	exp := time.Now().Add(time.Hour)
	f.mu.Lock()
	for _, o := range []string{"env:dev/group.web[0]", "env:dev/group.web[1]"} {
		f.tokens = append(f.tokens, api.JoinToken{ID: "jt-" + o[len(o)-2:len(o)-1], ExpiresAt: exp, MaxUses: 1, CreatedAt: time.Now(), Internal: true, Owner: o})
	}
	f.mu.Unlock()
	r := f.gantry(t, nil, "token", "ls", "--join")
	r.expect(t, 0, "jt1", "(2 internal tokens hidden; --all shows them)")
	if strings.Contains(r.stdout, "env:dev") {
		t.Errorf("token ls shows internal tokens:\n%s", r.stdout)
	}
	r = f.gantry(t, nil, "token", "ls", "--join", "--all")
	r.expect(t, 0, "jt1", "env:dev/group.web[0]", "env:dev/group.web[1]")
	if strings.Contains(r.stderr, "hidden") {
		t.Errorf("token ls --all says tokens are hidden: %s", r.stderr)
	}
	var items []tokenItem
	r = f.gantry(t, nil, "token", "ls", "--all", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &items); err != nil {
		t.Fatalf("token ls --all -o json: %v\n%s", err, r.stdout)
	}
	internal := 0
	for _, it := range items {
		if it.Internal {
			internal++
		}
	}
	if internal != 2 {
		t.Errorf("token ls --all -o json has %d internal tokens, want 2: %s", internal, r.stdout)
	}
}
