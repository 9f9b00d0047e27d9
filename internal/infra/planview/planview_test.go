package planview

import (
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/golden"
)

func TestUnifiedDiff(t *testing.T) {
	cases := []struct {
		name, old, new, want string
	}{
		{"equal", "a\nb\n", "a\nb\n", ""},
		{"one line changed", "a\nb\nc\n", "a\nB\nc\n", "@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"},
		{"added at end", "a\n", "a\nb\n", "@@ -1 +1,2 @@\n a\n+b\n"},
		{"from nothing", "", "x\ny\n", "@@ -0,0 +1,2 @@\n+x\n+y\n"},
		{"to nothing", "x\n", "", "@@ -1 +0,0 @@\n-x\n"},
		{"two hunks", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "1\nTWO\n3\n4\n5\n6\n7\n8\n9\n10\n11\nTWELVE\n",
			"@@ -1,5 +1,5 @@\n 1\n-2\n+TWO\n 3\n 4\n 5\n@@ -9,4 +9,4 @@\n 9\n 10\n 11\n-12\n+TWELVE\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := UnifiedDiff(tc.old, tc.new, 3)
			// unified diff writes a one-line range as "N" too; both forms
			// are valid, ours always has the count.
			want := strings.NewReplacer("@@ -1 +1,2 @@", "@@ -1,1 +1,2 @@", "@@ -1 +0,0 @@", "@@ -1,1 +0,0 @@").Replace(tc.want)
			if got != want {
				t.Errorf("UnifiedDiff:\n got %q\nwant %q", got, want)
			}
		})
	}
}

func TestValue(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"count", "1", "1"},
		{"cpus", "0.5", "0.5"},
		{"image", "1", `"1"`},
		{"attrs.tag", "42", `"42"`},
		{"enabled", "true", "true"},
		{"labels", "role=web,tier=front", `{ role = "web", tier = "front" }`},
		{"networks", "app:net-1,db:net-2", `["app:net-1", "db:net-2"]`},
		{"ports", `[80,443]`, `[80, 443]`},
		{"memory", "256 MiB", `"256 MiB"`},
		{"setup", "<3 lines, sha256 0123456789ab>", "<3 lines, sha256 0123456789ab>"},
		{"image", "(known after apply)", "(known after apply)"},
	} {
		if got := Value(tc.name, tc.in); got != tc.want {
			t.Errorf("Value(%q, %q) = %s, want %s", tc.name, tc.in, got, tc.want)
		}
	}
}

// TestRenderGolden: typed values, a nested block and a script diff.
func TestRenderGolden(t *testing.T) {
	p := api.Plan{Env: "demo", Serial: 7, Changes: []api.PlanChange{
		{Address: "group.web", Action: api.ActionUpdate, Attrs: []api.AttrChange{
			{Name: "configure", Old: "<3 lines, sha256 aaaaaaaaaaaa>", New: "<4 lines, sha256 bbbbbbbbbbbb>",
				Diff: UnifiedDiff("#!/bin/sh\nset -e\nnginx -s reload\n", "#!/bin/sh\nset -e\necho backends: $PEERS\nnginx -s reload\n", 3)},
			{Name: "count", Old: "2", New: "3"},
			{Name: "deploy.revision", Old: "r-1", New: "(known after apply)", Unknown: true},
			{Name: "health_check", Old: `{"path":"/","port":8080}`, New: `{"path":"/health","port":8080,"interval_seconds":5}`},
		}},
		{Address: "group.web[2]", Action: api.ActionCreate, Attrs: []api.AttrChange{
			{Name: "cpus", New: "1"},
			{Name: "image", New: "web:1"},
			{Name: "labels", New: "role=web"},
			{Name: "networks", New: "(known after apply)", Unknown: true},
		}},
		{Address: "group.db", Action: api.ActionCreate, Attrs: []api.AttrChange{
			{Name: "count", New: "1"},
			{Name: "deploy.app", New: "shop"},
			{Name: "deploy.config", New: "OneAtATime"},
			{Name: "health_check", New: `{"path":"/ping","port":5432}`},
		}},
		{Address: "group.old[0]", Action: api.ActionDelete, Attrs: []api.AttrChange{{Name: "name", Old: "demo-old-0"}, {Name: "ip", Old: "10.0.0.9"}}},
	}, Summary: api.PlanSummary{Create: 2, Update: 1, Delete: 1}}
	var b strings.Builder
	if err := Render(&b, p); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/render.golden", b.String())
}

// TestRenderNewEnvironment: a plan for an environment that does not exist
// yet says so instead of a state serial.
func TestRenderNewEnvironment(t *testing.T) {
	var b strings.Builder
	p := api.Plan{Env: "staging", Changes: []api.PlanChange{{Address: "network.app", Action: api.ActionCreate}}, Summary: api.PlanSummary{Create: 1},
		Warnings: []string{"something to know"}}
	if err := Render(&b, p); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Warning: something to know\n", `Plan to apply environment "staging" (new environment):`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in:\n%s", want, b.String())
		}
	}
}
