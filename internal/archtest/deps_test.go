package archtest

import (
	"slices"
	"strings"
	"testing"
)

// The module's real import graph keeps every rule of DESIGN.
func TestDependencyRules(t *testing.T) {
	pkgs, err := Load(".")
	if err != nil {
		t.Fatal(err)
	}
	if vs := Check(pkgs, Rules); len(vs) > 0 {
		t.Error(Describe(vs))
	}
	// A rule that constrains no package passes whatever the code does: a
	// rename must update the rules rather than silence them.
	for _, r := range Rules {
		if len(Constrains(r, pkgs)) == 0 {
			t.Errorf("rule %q constrains no package of the module: update its From patterns", r.Name)
		}
	}
	// The loader sees the module and each file's imports (an empty graph
	// would pass every rule).
	byPath := map[string]Package{}
	for _, p := range pkgs {
		byPath[p.Path] = p
	}
	for _, want := range []string{"api", "internal/cli", "internal/fleet", "internal/agent", "internal/server"} {
		if _, ok := byPath[want]; !ok {
			t.Errorf("Load did not list %s", want)
		}
	}
	if imps := byPath["internal/cli"].Files["internal/cli/server.go"]; !slices.Contains(imps, "internal/server") {
		t.Errorf("Load: internal/cli/server.go imports %q, want internal/server among them", imps)
	}
}

// pkg builds a synthetic package whose one file per entry of files imports
// the listed packages.
func pkg(path string, files map[string][]string) Package {
	p := Package{Path: path, Files: map[string][]string{}}
	for f, imps := range files {
		p.Files[path+"/"+f] = imps
	}
	return p
}

// Each rule catches the violation it exists for, on a synthetic graph, and
// leaves the allowed imports alone: the rule engine cannot pass silently.
func TestRulesCatchViolations(t *testing.T) {
	ok := []Package{
		pkg("api", map[string][]string{"client.go": nil}),
		pkg("internal/ids", map[string][]string{"ids.go": nil}),
		pkg("internal/diag", map[string][]string{"diag.go": nil}),
		pkg("internal/appspec", map[string][]string{"appspec.go": {"internal/diag", "internal/ids"}}),
		pkg("internal/protocol", map[string][]string{"p.go": {"api"}}),
		pkg("internal/store", map[string][]string{"store.go": {"api"}}),
		pkg("internal/store/sqlstore", map[string][]string{"s.go": {"internal/store"}}),
		pkg("internal/store/sqlite", map[string][]string{"s.go": {"internal/store/sqlstore"}}),
		pkg("internal/bus", map[string][]string{"bus.go": {"internal/protocol"}}),
		pkg("internal/fleet", map[string][]string{"engine.go": {"internal/store", "internal/protocol"}}),
		pkg("internal/infra/planview", map[string][]string{"view.go": {"api"}}),
		pkg("internal/httpapi", map[string][]string{"h.go": {"internal/fleet", "internal/store"}}),
		pkg("internal/server", map[string][]string{"server.go": {"internal/httpapi", "internal/bus", "internal/store/sqlite"}}),
		pkg("internal/agent", map[string][]string{"agent.go": {"internal/bus", "api"}}),
		pkg("internal/cli", map[string][]string{
			"server.go": {"internal/server"}, "dev.go": {"internal/server", "api"},
			"agent.go": {"internal/agent"}, "plan.go": {"internal/infra/planview"},
		}),
		pkg("internal/providers/local", map[string][]string{"local.go": nil}),
		pkg("cmd/gantry", map[string][]string{"main.go": {"internal/cli", "internal/providers/local"}}),
	}
	if vs := Check(ok, Rules); len(vs) > 0 {
		t.Fatalf("allowed graph reported:\n%s", Describe(vs))
	}
	tests := []struct {
		name string
		add  []Package
		want []string // one substring of each expected violation's message
	}{
		{"api imports internal", []Package{pkg("api", map[string][]string{"client.go": {"internal/ids"}})},
			[]string{"api imports internal/ids (rule: api imports nothing internal"}},
		{"leaf imports a non-leaf", []Package{pkg("internal/diag", map[string][]string{"diag.go": {"internal/protocol"}})},
			[]string{"internal/diag imports internal/protocol (rule: api, dag, diag, appspec, bundle and provider import no other gantry package but each other and leaves"}},
		{"engine imports httpapi", []Package{pkg("internal/deploy", map[string][]string{"d.go": {"internal/httpapi"}})},
			[]string{"internal/deploy imports internal/httpapi (rule: engines never"}},
		{"engine reaches the bus indirectly", []Package{
			pkg("internal/monitor", map[string][]string{"m.go": {"internal/metrics"}}),
			pkg("internal/metrics", map[string][]string{"m.go": {"internal/bus"}}),
		}, []string{"internal/monitor imports internal/bus via internal/metrics (rule: engines never",
			"internal/metrics imports internal/bus (rule: the concrete bus"}},
		{"engine imports a concrete store", []Package{pkg("internal/fleet", map[string][]string{"engine.go": {"internal/store/sqlite"}})},
			[]string{"internal/fleet imports internal/store/sqlite (rule: engines never",
				"internal/fleet imports internal/store/sqlite (rule: concrete stores"}},
		{"agent reaches server", []Package{
			pkg("internal/agent/executor", map[string][]string{"x.go": {"internal/util"}}),
			pkg("internal/util", map[string][]string{"u.go": {"internal/server"}}),
		}, []string{"internal/agent/executor imports internal/server via internal/util (rule: agent never imports server"}},
		{"cli imports httpapi", []Package{pkg("internal/cli", map[string][]string{"dev.go": {"internal/server", "internal/httpapi"}})},
			[]string{"internal/cli imports internal/httpapi (rule: cli reaches the server only through api"}},
		{"cli imports the store", []Package{pkg("internal/cli", map[string][]string{"dev.go": {"internal/store"}})},
			[]string{"internal/cli imports internal/store (rule: cli reaches"}},
		{"cli imports an engine", []Package{pkg("internal/cli", map[string][]string{"run.go": {"internal/fleet"}})},
			[]string{"internal/cli imports internal/fleet (rule: cli reaches"}},
		{"cli file other than server.go imports server", []Package{pkg("internal/cli", map[string][]string{"hosts.go": {"internal/server"}})},
			[]string{"internal/cli (internal/cli/hosts.go) imports internal/server (rule: only the composition of `gantry server`"}},
		{"httpapi imports a concrete store", []Package{pkg("internal/httpapi", map[string][]string{"h.go": {"internal/store/postgres"}})},
			[]string{"internal/httpapi imports internal/store/postgres (rule: concrete stores"}},
		{"httpapi imports the bus", []Package{pkg("internal/httpapi", map[string][]string{"h.go": {"internal/bus"}})},
			[]string{"internal/httpapi imports internal/bus (rule: the concrete bus"}},
		{"server imports a provider", []Package{pkg("internal/server", map[string][]string{"s.go": {"internal/providers/local"}})},
			[]string{"internal/server imports internal/providers/local (rule: built-in providers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			graph := map[string]Package{}
			var order []string
			for _, p := range append(append([]Package{}, ok...), tt.add...) {
				if _, dup := graph[p.Path]; !dup {
					order = append(order, p.Path)
				}
				graph[p.Path] = p
			}
			var pkgs []Package
			for _, path := range order {
				pkgs = append(pkgs, graph[path])
			}
			vs := Check(pkgs, Rules)
			if len(vs) != len(tt.want) {
				t.Fatalf("want %d violation(s), got:\n%s", len(tt.want), Describe(vs))
			}
			for _, w := range tt.want {
				found := false
				for _, v := range vs {
					found = found || strings.Contains(v.String(), w)
				}
				if !found {
					t.Errorf("no violation says %q:\n%s", w, Describe(vs))
				}
			}
		})
	}
}

func TestMatch(t *testing.T) {
	for _, tt := range []struct {
		path, pattern string
		want          bool
	}{
		{"internal/store", "internal/store/...", true},
		{"internal/store/sqlite", "internal/store/...", true},
		{"internal/storage", "internal/store/...", false},
		{"internal/store/sqlite", "internal/store", false},
		{"internal/store", "internal/store", true},
	} {
		if got := Match(tt.path, []string{tt.pattern}); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.path, tt.pattern, got, tt.want)
		}
	}
}
