package config

import (
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/diag"
	"github.com/gantry-dev/gantry/internal/provider"
)

func init() {
	notImplemented := func(map[string]string, provider.Env) (provider.Provider, error) {
		return nil, errors.New("test provider")
	}
	provider.Register(provider.Factory{
		Info: provider.Info{
			Type: "testcloud", Doc: "containers, for tests", Networks: true, Images: true,
			InPlace:      []string{"cpus", "memory"},
			Config:       map[string]string{"region": "where", "endpoint": "API URL"},
			MachineAttrs: map[string]string{"zone": "availability zone"},
		},
		New: notImplemented,
	})
	provider.Register(provider.Factory{
		Info: provider.Info{
			Type: "testssh", Doc: "existing hosts, for tests",
			Config:       map[string]string{"key_file": "private key"},
			MachineAttrs: map[string]string{"address": "host", "port": "ssh port", "user": "login"},
		},
		New: notImplemented,
	})
}

const shop = "testdata/good/shop"

func mustLoad(t *testing.T, dir, env string, vars ...string) *Definition {
	t.Helper()
	d, err := Load(dir, env, vars)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return d
}

func addrs(bs []*Block) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Address()
	}
	return out
}

func TestLoadShop(t *testing.T) {
	d := mustLoad(t, shop, "staging")
	if got, want := addrs(d.Graph()), []string{"host.legacy", "network.app", "group.db", "group.web", "group.lb"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Graph = %v, want %v", got, want)
	}
	deps := map[string][]string{
		"group.db":    {"network.app"},
		"group.web":   {"group.db", "network.app"},
		"group.lb":    {"group.web", "network.app"},
		"host.legacy": {},
		"network.app": {},
	}
	for _, b := range d.Graph() {
		if got := b.DependsOn; !reflect.DeepEqual(append([]string{}, got...), deps[b.Address()]) {
			t.Errorf("%s.DependsOn = %v, want %v", b.Address(), got, deps[b.Address()])
		}
	}
	if got, want := d.Outputs["lb_url"].DependsOn, []string{"group.lb"}; !reflect.DeepEqual(got, want) {
		t.Errorf("output lb_url DependsOn = %v, want %v", got, want)
	}
	if got := d.Outputs["lb_url"].Description; got != "the shop's front door" {
		t.Errorf("lb_url description = %q", got)
	}
	if d.Groups["web"].Count != 2 || d.Groups["db"].Count != 1 || d.Groups["lb"].Count != 1 || d.Hosts["legacy"].Count != 1 {
		t.Errorf("counts: web %d db %d lb %d legacy %d", d.Groups["web"].Count, d.Groups["db"].Count,
			d.Groups["lb"].Count, d.Hosts["legacy"].Count)
	}
	p := d.Providers["testcloud.local"]
	if p == nil || !reflect.DeepEqual(p.Config, map[string]string{"region": "eu"}) || p.Key() != "testcloud.local" {
		t.Errorf("provider testcloud.local = %+v", p)
	}
	if got := d.Locals["greeting"]; !got.RawEquals(cty.StringVal("HELLO STAGING")) {
		t.Errorf("local.greeting = %#v", got)
	}
	if v := d.Variables["image"]; v.Description != "base image of every machine" || v.Source != "default" || v.Type != cty.String {
		t.Errorf("variable image = %+v", v)
	}
	if _, ok := d.Files["main.hcl"]; !ok || len(d.Files) != 3 {
		t.Errorf("Files = %v", slices.Sorted(maps.Keys(d.Files)))
	}
}

func TestEvalGroupPlanAndKnown(t *testing.T) {
	d := mustLoad(t, shop, "staging")
	plan := PlanWorld(d)

	db, err := d.EvalGroup("db", plan)
	if err != nil {
		t.Fatal(err)
	}
	wantDB := GroupSpec{
		Name: "db", Provider: "testcloud.local", Image: "gantry-shop-base:dev", CPUs: 0.5, MemoryMB: 256,
		Count: 1, Networks: []string{"app"}, Labels: map[string]string{"role": "db", "app": "shop"},
		Setup:        "#!/bin/sh\necho setting up the database\n",
		SetupTimeout: 600, ConfigureTimeout: 300, ShutdownTimeout: 120,
		Attrs: map[string]string{"zone": "z1"},
	}
	if !reflect.DeepEqual(db, wantDB) {
		t.Errorf("db =\n%+v\nwant\n%+v", db, wantDB)
	}

	web, err := d.EvalGroup("web", plan)
	if err != nil {
		t.Fatal(err)
	}
	wantWeb := GroupSpec{
		Name: "web", Provider: "testcloud.local", Image: "gantry-shop-base:dev", MemoryMB: 1024,
		Count: 2, Networks: []string{"app"}, Labels: map[string]string{"role": "web"},
		Shutdown:     "echo bye",
		SetupTimeout: 90, ConfigureTimeout: 300, ShutdownTimeout: 120,
		HealthCheck: &api.HealthCheck{HTTP: "http://127.0.0.1:8080/healthz", TimeoutSeconds: 30, IntervalMillis: 500},
		Deploy:      &DeploySpec{App: "shop", Config: "HalfAtATime"},
		Unknown:     map[string]bool{"configure": true},
	}
	if !reflect.DeepEqual(web, wantWeb) {
		t.Errorf("web (db unknown) =\n%+v\nwant\n%+v", web, wantWeb)
	}

	// Once db exists, configure is known.
	w := PlanWorld(d)
	w.Groups["db"] = GroupValue("db", map[string]string{"role": "db"}, []MachineRef{
		{Name: "staging-db-0", Index: 0, Address: "10.91.0.2", ID: "c1", Known: true},
	})
	web, err = d.EvalGroup("web", w)
	if err != nil {
		t.Fatal(err)
	}
	if web.Configure != "DB=10.91.0.2\nPORT=8080\n" || web.Unknown != nil {
		t.Errorf("web (db known): configure %q, unknown %v", web.Configure, web.Unknown)
	}

	// lb: labels known from the plan (count is static), configure not.
	lb, err := d.EvalGroup("lb", plan)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(lb.Labels, map[string]string{"role": "lb", "backends": "2"}) ||
		!reflect.DeepEqual(lb.Unknown, map[string]bool{"configure": true}) {
		t.Errorf("lb = %+v", lb)
	}
	w.Groups["web"] = GroupValue("web", nil, []MachineRef{
		{Name: "staging-web-0", Index: 0, Address: "10.91.0.3", Known: true},
		{Name: "staging-web-1", Index: 1, Address: "10.91.0.4", Known: true},
	})
	lb, err = d.EvalGroup("lb", w)
	if err != nil {
		t.Fatal(err)
	}
	if want := "server staging-web-0 10.91.0.3:8080\nserver staging-web-1 10.91.0.4:8080"; lb.Configure != want {
		t.Errorf("lb.Configure = %q, want %q", lb.Configure, want)
	}

	if _, err := d.EvalGroup("nope", plan); err == nil {
		t.Error("EvalGroup of an undeclared group: no error")
	}
}

func TestEvalHostNetworkOutputs(t *testing.T) {
	d := mustLoad(t, shop, "staging")
	plan := PlanWorld(d)
	h, err := d.EvalHost("legacy", plan)
	if err != nil {
		t.Fatal(err)
	}
	want := GroupSpec{
		Name: "legacy", Host: true, Provider: "testssh.dc1", Count: 1,
		Labels:       map[string]string{"role": "web"},
		SetupTimeout: 600, ConfigureTimeout: 300, ShutdownTimeout: 120,
		HealthCheck: &api.HealthCheck{TCP: "10.0.0.5:22"},
		Deploy:      &DeploySpec{App: "legacy"},
		Attrs:       map[string]string{"address": "10.0.0.5", "port": "22", "user": "deploy"},
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("legacy =\n%+v\nwant\n%+v", h, want)
	}

	n, err := d.EvalNetwork("app", plan)
	if err != nil {
		t.Fatal(err)
	}
	if want := (NetworkSpec{Name: "app", Provider: "testcloud.local", Attrs: map[string]string{"subnet": "10.91.0.0/24"}}); !reflect.DeepEqual(n, want) {
		t.Errorf("network app = %+v, want %+v", n, want)
	}

	outs, err := d.EvalOutputs(plan)
	if err != nil {
		t.Fatal(err)
	}
	if outs["lb_url"].IsKnown() || outs["web"].IsWhollyKnown() || outs["web"].LengthInt() != 2 {
		t.Errorf("plan outputs: lb_url %#v, web %#v", outs["lb_url"], outs["web"])
	}
	if !outs["greeting"].RawEquals(cty.StringVal("HELLO STAGING")) {
		t.Errorf("greeting = %#v", outs["greeting"])
	}

	w := PlanWorld(d)
	w.Groups["lb"] = GroupValue("lb", nil, []MachineRef{{Name: "staging-lb-0", Address: "10.91.0.9", ID: "x", Known: true}})
	w.Groups["web"] = GroupValue("web", nil, []MachineRef{
		{Name: "staging-web-0", Address: "10.91.0.3", Known: true},
		{Name: "staging-web-1", Index: 1, Known: false},
	})
	outs, err = d.EvalOutputs(w)
	if err != nil {
		t.Fatal(err)
	}
	if !outs["lb_url"].RawEquals(cty.StringVal("http://10.91.0.9:80")) {
		t.Errorf("lb_url = %#v", outs["lb_url"])
	}
	web := outs["web"].AsValueSlice()
	if !web[0].RawEquals(cty.StringVal("10.91.0.3")) || web[1].IsKnown() {
		t.Errorf("web = %#v", outs["web"])
	}
}

func TestVariablePrecedence(t *testing.T) {
	tests := []struct {
		name, env string
		vars      []string
		count     int
		source    string
	}{
		{"default", "staging", nil, 2, "default"},
		{"variables file", "prod", nil, 3, "envs/prod.hcl"},
		{"--var over the file", "prod", []string{"web_count=5"}, 5, "--var"},
		{"--var over the default", "staging", []string{"web_count=0"}, 0, "--var"},
		{"last --var wins", "staging", []string{"web_count=1", "web_count=4"}, 4, "--var"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustLoad(t, shop, tt.env, tt.vars...)
			if got := d.Groups["web"].Count; got != tt.count {
				t.Errorf("count = %d, want %d", got, tt.count)
			}
			if got := d.Variables["web_count"].Source; got != tt.source {
				t.Errorf("source = %q, want %q", got, tt.source)
			}
			if got := d.Vars["web_count"]; !got.RawEquals(cty.NumberIntVal(int64(tt.count))) {
				t.Errorf("var.web_count = %#v", got)
			}
		})
	}
}

func TestVarValueTypes(t *testing.T) {
	d := mustLoad(t, shop, "staging", "tags={team = \"shop\", tier = 1}", "image=a b=c", "region=")
	if got := d.Locals["labels"]; !got.RawEquals(cty.ObjectVal(map[string]cty.Value{
		"app": cty.StringVal("shop"), "team": cty.StringVal("shop"), "tier": cty.StringVal("1"),
	})) {
		t.Errorf("local.labels = %#v", got)
	}
	if got := d.Vars["image"]; !got.RawEquals(cty.StringVal("a b=c")) {
		t.Errorf("var.image = %#v", got)
	}
	if got := d.Providers["testcloud.local"].Config["region"]; got != "" {
		t.Errorf("region = %q", got)
	}
}

func TestWorldValues(t *testing.T) {
	g := GroupValue("web", map[string]string{"role": "web"}, []MachineRef{
		{Name: "p-web-0", Index: 0, Address: "10.0.0.1", ID: "a", Known: true},
		{Name: "p-web-1", Index: 1},
	})
	if g.GetAttr("count").AsBigFloat().String() != "2" || !g.GetAttr("labels").Index(cty.StringVal("role")).RawEquals(cty.StringVal("web")) {
		t.Errorf("group value %#v", g)
	}
	hosts := g.GetAttr("hosts").AsValueSlice()
	if !hosts[0].GetAttr("address").RawEquals(cty.StringVal("10.0.0.1")) || hosts[1].GetAttr("id").IsKnown() ||
		!hosts[1].GetAttr("name").RawEquals(cty.StringVal("p-web-1")) {
		t.Errorf("hosts %#v", hosts)
	}
	if e := GroupValue("none", nil, nil); e.GetAttr("hosts").LengthInt() != 0 || !e.Type().Equals(g.Type()) {
		t.Errorf("empty group %#v", e)
	}
	h := HostValue("legacy", MachineRef{Address: "10.0.0.5", ID: "ssh://10.0.0.5", Known: true})
	if !h.GetAttr("address").RawEquals(cty.StringVal("10.0.0.5")) || !h.GetAttr("name").RawEquals(cty.StringVal("legacy")) {
		t.Errorf("host %#v", h)
	}
	n := NetworkValue("app", "", "", "", false)
	if n.GetAttr("id").IsKnown() || !n.GetAttr("name").RawEquals(cty.StringVal("app")) {
		t.Errorf("network %#v", n)
	}
	if got := MachineName("prod", "web", 3); got != "prod-web-3" {
		t.Errorf("MachineName = %q", got)
	}
}

func TestLoadErrorsAreDiagnostics(t *testing.T) {
	_, err := Load(shop, "Bad_Env", nil)
	var ds diag.Diagnostics
	if !errors.As(err, &ds) || !strings.Contains(err.Error(), "--env") {
		t.Errorf("bad env: %v", err)
	}
	if _, err := Load(t.TempDir(), "x", nil); err == nil || !strings.Contains(err.Error(), "no .hcl files") {
		t.Errorf("empty dir: %v", err)
	}
}
