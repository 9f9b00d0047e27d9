// Package archtest checks the project's dependency directions (the
// design's "Layout" and "Dependency direction": which package may import
// which) on the module's real import graph, so that CI fails when a
// package breaks them. Its test (deps_test.go) loads the graph with
// `go list` (no dependency on golang.org/x/tools) and prints each
// violation as
//
//	internal/fleet imports internal/bus via internal/x (rule: engines never import …)
//
// Decisions, written here because the rules are the project's contract:
//
//   - The rules constrain the code that ships: non-test Go files built for
//     the current platform (GoFiles and CgoFiles of `go list`). Tests may
//     compose what they need (an engine's tests may open a real SQLite
//     store; e2e tests build the whole binary).
//   - Imports of packages outside the module (standard library, third
//     parties) are not constrained here; only gantry's own packages are.
//   - The CLI reaches the server only through api. The one exception is the
//     composition of `gantry server` itself: internal/cli/server.go, and
//     internal/cli/dev.go which starts the dev agents beside it, may import
//     internal/server; dev mode uses the server only for its URL and CA,
//     and makes its join tokens and watches its agents through the HTTP
//     API with the api client, like any client. No file of the CLI imports
//     httpapi, the store (interfaces or implementations), the bus, the
//     protocol or an engine.
//   - Engines (fleet, deploy, infra, heal, monitor, pipeline, image,
//     traffic, present or future) never depend, even indirectly, on
//     httpapi, cli, server, a concrete store (store/sqlite, store/postgres,
//     store/sqlstore) or the concrete bus (internal/bus): they declare the
//     narrow interfaces they need (internal/store holds the repository
//     interfaces and is allowed). infra/planview, a renderer shared with the
//     CLI, is part of infra for this rule and may be imported by the CLI.
//   - Concrete implementations are imported only by composition roots:
//     concrete stores by internal/server (and bench/, test/); the bus by
//     internal/server and internal/agent; built-in providers by cmd/gantry.
//   - api imports nothing else of the module; the leaves (api, dag, diag,
//     appspec, bundle, provider) import only each other and packages that
//     import no gantry package at all (e.g. ids, selector).
//   - agent never depends on server, httpapi, cli or the store, even
//     indirectly.
package archtest

import (
	"fmt"
	"sort"
	"strings"
)

// Package is one package of the module as the rules see it. Paths are
// relative to the module ("internal/fleet"; the module root package is ".").
type Package struct {
	// Path is the package's path relative to the module.
	Path string
	// Files maps each non-test Go file of the package, as a module-relative
	// path ("internal/cli/dev.go"), to the module packages it imports
	// (module-relative paths; imports outside the module are left out).
	Files map[string][]string
}

// Imports returns the module packages the package imports, sorted, once
// each.
func (p Package) Imports() []string {
	seen := map[string]bool{}
	var out []string
	for _, imps := range p.Files {
		for _, imp := range imps {
			if !seen[imp] {
				seen[imp] = true
				out = append(out, imp)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Rule is one dependency direction. Patterns are module-relative package
// paths; "x/..." matches x and every package below it, as in `go list`.
type Rule struct {
	// Name says what the rule is; it ends every violation's message.
	Name string
	// From are the packages the rule constrains.
	From []string
	// Except are packages matched by From that the rule leaves alone.
	Except []string
	// ExceptFiles are files (module-relative paths) of the From packages
	// whose imports the rule leaves alone. Only for direct rules.
	ExceptFiles []string
	// Deny are the packages the constrained packages may not import.
	Deny []string
	// DenyExcept are packages matched by Deny that may be imported anyway.
	DenyExcept []string
	// Allow, when set, lists the only module packages the constrained
	// packages may import (besides themselves); Deny is then unused.
	Allow []string
	// AllowLeaves also allows any module package that imports no module
	// package itself.
	AllowLeaves bool
	// Transitive applies Deny to every package reached through imports,
	// not only to direct imports.
	Transitive bool
}

// Violation is one import that breaks a rule.
type Violation struct {
	// Pkg is the constrained package (module-relative).
	Pkg string
	// File is the importing file when the rule is checked per file.
	File string
	// Imported is the forbidden package.
	Imported string
	// Via is the chain of packages between Pkg and Imported, for
	// transitive rules (empty for a direct import).
	Via []string
	// Rule is the broken rule's name.
	Rule string
}

// String renders the violation as "pkg imports forbidden (rule: …)".
func (v Violation) String() string {
	var b strings.Builder
	b.WriteString(v.Pkg)
	if v.File != "" {
		b.WriteString(" (" + v.File + ")")
	}
	b.WriteString(" imports " + v.Imported)
	if len(v.Via) > 0 {
		b.WriteString(" via " + strings.Join(v.Via, " → "))
	}
	b.WriteString(" (rule: " + v.Rule + ")")
	return b.String()
}

// Match reports whether path matches one of the patterns.
func Match(path string, patterns []string) bool {
	for _, p := range patterns {
		if base, ok := strings.CutSuffix(p, "/..."); ok {
			if path == base || strings.HasPrefix(path, base+"/") {
				return true
			}
		} else if path == p {
			return true
		}
	}
	return false
}

// engines are the engine packages, present and planned (DESIGN "Layout").
var engines = []string{
	"internal/fleet/...", "internal/deploy/...", "internal/infra/...", "internal/heal/...",
	"internal/monitor/...", "internal/pipeline/...", "internal/image/...", "internal/traffic/...",
}

// concreteStores are the store implementations.
var concreteStores = []string{"internal/store/sqlite/...", "internal/store/postgres/...", "internal/store/sqlstore/..."}

// leaves are DESIGN's leaf packages: they import only each other.
var leaves = []string{"api/...", "internal/dag/...", "internal/diag/...", "internal/appspec/...", "internal/bundle/...", "internal/provider/..."}

// Rules are the dependency directions of DESIGN, as checked by this
// package's test. The package doc explains each decision.
var Rules = []Rule{
	{
		Name:  "api imports nothing internal: it is the wire contract third-party programs use",
		From:  []string{"api/..."},
		Allow: []string{"api/..."},
	},
	{
		Name:        "api, dag, diag, appspec, bundle and provider import no other gantry package but each other and leaves",
		From:        leaves,
		Allow:       leaves,
		AllowLeaves: true,
	},
	{
		Name:       "engines never import httpapi, cli, server, a concrete store or the concrete bus",
		From:       engines,
		Deny:       append([]string{"internal/httpapi/...", "internal/cli/...", "internal/server/...", "internal/bus/..."}, concreteStores...),
		Transitive: true,
	},
	{
		Name:       "agent never imports server (nor httpapi, cli or the store)",
		From:       []string{"internal/agent/..."},
		Deny:       []string{"internal/server/...", "internal/httpapi/...", "internal/cli/...", "internal/store/..."},
		Transitive: true,
	},
	{
		Name:       "cli reaches the server only through api: no httpapi, store, bus, protocol or engine",
		From:       []string{"internal/cli/..."},
		Deny:       append([]string{"internal/httpapi/...", "internal/store/...", "internal/bus/...", "internal/protocol/..."}, engines...),
		DenyExcept: []string{"internal/infra/planview"},
	},
	{
		Name:        "only the composition of `gantry server` (internal/cli/server.go, dev.go) imports internal/server",
		From:        []string{"internal/cli/..."},
		Deny:        []string{"internal/server/..."},
		ExceptFiles: []string{"internal/cli/server.go", "internal/cli/dev.go"},
	},
	{
		Name:   "concrete stores are imported only by the composition root internal/server",
		From:   []string{"..."},
		Except: []string{"internal/server/...", "internal/store/...", "bench/...", "test/..."},
		Deny:   concreteStores,
	},
	{
		Name:   "the concrete bus is imported only by the composition roots internal/server and internal/agent",
		From:   []string{"..."},
		Except: []string{"internal/server/...", "internal/agent/...", "internal/bus/...", "bench/...", "test/..."},
		Deny:   []string{"internal/bus/..."},
	},
	{
		Name:   "built-in providers are imported only by the composition root cmd/gantry",
		From:   []string{"..."},
		Except: []string{"cmd/...", "internal/providers/...", "bench/...", "test/..."},
		Deny:   []string{"internal/providers/..."},
	},
}

// Check returns every violation of rules in pkgs, sorted.
func Check(pkgs []Package, rules []Rule) []Violation {
	byPath := map[string]Package{}
	for _, p := range pkgs {
		byPath[p.Path] = p
	}
	var out []Violation
	for _, r := range rules {
		for _, p := range pkgs {
			if !from(r, p.Path) {
				continue
			}
			out = append(out, checkPackage(r, p, byPath)...)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Constrains returns the packages of pkgs that rule r constrains.
func Constrains(r Rule, pkgs []Package) []string {
	var out []string
	for _, p := range pkgs {
		if from(r, p.Path) {
			out = append(out, p.Path)
		}
	}
	return out
}

func from(r Rule, path string) bool {
	return matchAll(path, r.From) && !Match(path, r.Except)
}

// matchAll is Match with "..." matching every package.
func matchAll(path string, patterns []string) bool {
	for _, p := range patterns {
		if p == "..." {
			return true
		}
	}
	return Match(path, patterns)
}

func (r Rule) forbids(imp string, byPath map[string]Package) bool {
	if r.Allow != nil {
		if Match(imp, r.Allow) {
			return false
		}
		return !r.AllowLeaves || len(byPath[imp].Imports()) > 0
	}
	return Match(imp, r.Deny) && !Match(imp, r.DenyExcept)
}

func checkPackage(r Rule, p Package, byPath map[string]Package) []Violation {
	var out []Violation
	if !r.Transitive {
		files := make([]string, 0, len(p.Files))
		for f := range p.Files {
			files = append(files, f)
		}
		sort.Strings(files)
		seen := map[string]bool{}
		for _, f := range files {
			if Match(f, r.ExceptFiles) {
				continue
			}
			for _, imp := range p.Files[f] {
				if !r.forbids(imp, byPath) {
					continue
				}
				v := Violation{Pkg: p.Path, Imported: imp, Rule: r.Name}
				if r.ExceptFiles != nil {
					v.File = f
				} else if seen[imp] {
					continue
				}
				seen[imp] = true
				out = append(out, v)
			}
		}
		return out
	}
	// Breadth first, remembering how each package was reached, so that a
	// violation shows the shortest chain.
	parent := map[string]string{p.Path: ""}
	queue := []string{p.Path}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, imp := range byPath[cur].Imports() {
			if _, ok := parent[imp]; ok {
				continue
			}
			parent[imp] = cur
			if r.forbids(imp, byPath) {
				var via []string
				for x := cur; x != p.Path; x = parent[x] {
					via = append([]string{x}, via...)
				}
				out = append(out, Violation{Pkg: p.Path, Imported: imp, Via: via, Rule: r.Name})
				continue // one report per forbidden package; do not walk below it
			}
			queue = append(queue, imp)
		}
	}
	return out
}

// Describe explains a rule set's violations, one per line, for a test
// failure.
func Describe(vs []Violation) string {
	lines := make([]string, len(vs))
	for i, v := range vs {
		lines[i] = v.String()
	}
	return fmt.Sprintf("%d dependency rule violation(s) (see internal/archtest's package doc):\n%s", len(vs), strings.Join(lines, "\n"))
}
