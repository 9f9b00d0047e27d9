package infra

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

const defScripts = `
provider "mem" "main" {}
group "web" {
  provider = provider.mem.main
  image    = "web:1"
  count    = 1
  setup    = "#!/bin/sh\nset -e\napt-get install nginx\nsystemctl start nginx\n"
}
`

// TestMissingEnvironmentOnePhrasing: show, scale, destroy and plan-scale
// of an environment that does not exist fail with one phrasing listing the
// ones that exist, and none of them creates it.
func TestMissingEnvironmentOnePhrasing(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	def := h.definition(map[string]string{"main.hcl": defScripts})
	for _, env := range []string{"dev", "demo"} {
		if _, _, err := h.apply(env, h.plan(env, api.EnvRequest{Definition: def})); err != nil {
			t.Fatalf("apply %s: %v", env, err)
		}
	}
	want := `environment "stagign" not found; environments: demo, dev`
	check := func(what string, err error) {
		t.Helper()
		if err == nil || err.Error() != want || !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: error %v, want %q (store.ErrNotFound)", what, err, want)
		}
	}
	_, err := h.e.Get(ctx, "stagign")
	check("get", err)
	_, err = h.e.Plan(ctx, "stagign", api.EnvRequest{Scale: map[string]int{"web": 2}})
	check("plan scale", err)
	_, err = h.e.Plan(ctx, "stagign", api.EnvRequest{Destroy: true})
	check("plan destroy", err)
	_, err = h.e.Apply(ctx, "stagign", api.EnvRequest{Destroy: true}, func(api.ApplyEvent) {})
	check("destroy", err)
	_, err = h.e.Apply(ctx, "stagign", api.EnvRequest{Scale: map[string]int{"web": 2}}, func(api.ApplyEvent) {})
	check("scale", err)
	envs, _ := h.e.List(ctx)
	if len(envs) != 2 {
		t.Errorf("environments after the refusals: %d, want 2", len(envs))
	}

	// A plan of a new environment creates nothing; its apply says so.
	p := h.plan("staging", api.EnvRequest{Definition: def})
	if p.Serial != 0 || p.Summary.Create == 0 {
		t.Fatalf("plan of a new environment: serial %d, summary %+v", p.Serial, p.Summary)
	}
	if envs, _ := h.e.List(ctx); len(envs) != 2 {
		t.Fatalf("plan created an environment: %d environments", len(envs))
	}
	_, evs, err := h.apply("staging", p)
	if err != nil {
		t.Fatal(err)
	}
	if evs[0].Type != "log" || evs[0].Message != `Creating environment "staging" (new).` {
		t.Errorf("first event of a new environment's apply: %+v", evs[0])
	}
	_, evs, _ = h.apply("staging", h.plan("staging", api.EnvRequest{Definition: def}))
	for _, ev := range evs {
		if strings.Contains(ev.Message, "Creating environment") {
			t.Errorf("an existing environment's apply says %q", ev.Message)
		}
	}
}

// TestPlanScriptDiff: a changed script shows as a unified diff.
func TestPlanScriptDiff(t *testing.T) {
	h := newHarness(t)
	def := h.definition(map[string]string{"main.hcl": defScripts})
	if _, _, err := h.apply("sd", h.plan("sd", api.EnvRequest{Definition: def})); err != nil {
		t.Fatal(err)
	}
	v2 := h.definition(map[string]string{"main.hcl": strings.Replace(defScripts, `apt-get install nginx`, `apt-get install -y nginx`, 1)})
	p := h.plan("sd", api.EnvRequest{Definition: v2})
	var diff string
	for _, c := range p.Changes {
		for _, at := range c.Attrs {
			if c.Address == "group.web" && at.Name == "setup" {
				diff = at.Diff
			}
		}
	}
	want := "@@ -1,4 +1,4 @@\n #!/bin/sh\n set -e\n-apt-get install nginx\n+apt-get install -y nginx\n systemctl start nginx\n"
	if diff != want {
		t.Errorf("setup diff:\n%s\nwant:\n%s\nplan:\n%s", diff, want, render(t, p))
	}
}

// TestDestroyScaleMatch: destroy DIR and scale DIR go ahead with the
// applied definition (or the same directory edited, with a warning) and
// are refused, naming both, with another one.
func TestDestroyScaleMatch(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	def := h.definition(map[string]string{"main.hcl": defScripts})
	p := h.plan("m", api.EnvRequest{Definition: def, Source: "/src/shop"})
	if _, _, err := h.apply("m", p); err != nil {
		t.Fatal(err)
	}
	// The same files from elsewhere match.
	if _, err := h.e.Plan(ctx, "m", api.EnvRequest{Destroy: true, Match: h.definition(map[string]string{"main.hcl": defScripts}), Source: "/elsewhere"}); err != nil {
		t.Errorf("destroy with the same files: %v", err)
	}
	// The same directory, edited, same groups: a warning.
	edited := h.definition(map[string]string{"main.hcl": strings.Replace(defScripts, "count    = 1", "count    = 3", 1)})
	pl, err := h.e.Plan(ctx, "m", api.EnvRequest{Scale: map[string]int{"web": 2}, Match: edited, Source: "/src/shop"})
	if err != nil || len(pl.Warnings) != 1 || !strings.Contains(pl.Warnings[0], "/src/shop changed since it was applied") {
		t.Errorf("scale with the edited directory: warnings %q, err %v", pl.Warnings, err)
	}
	// Another definition (other groups, other directory): refused.
	other := h.definition(map[string]string{"main.hcl": strings.Replace(defScripts, `group "web"`, `group "api"`, 1)})
	_, err = h.e.Plan(ctx, "m", api.EnvRequest{Destroy: true, Match: other, Source: "/src/other"})
	if err == nil || !errors.Is(err, ErrInvalid) {
		t.Fatalf("destroy with another definition: %v", err)
	}
	for _, want := range []string{"/src/other", "groups api", `applied to environment "m" (/src/shop`, "groups web", "destroy acts on the applied definition"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q lacks %q", err, want)
		}
	}
	// An apply records the source: a plan without a definition reports it.
	if pl, err := h.e.Plan(ctx, "m", api.EnvRequest{Destroy: true}); err != nil || pl.Source != "/src/shop" {
		t.Errorf("recorded source = %q (%v), want /src/shop", pl.Source, err)
	}
}
