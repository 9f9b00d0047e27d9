package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const testProviders = `
provider "testcloud" "local" {}
provider "testssh" "dc1" {}
`

func TestValidDefinitions(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		vars  []string
		graph []string
		deps  map[string][]string
		check func(t *testing.T, d *Definition)
	}{
		{
			name: "independent blocks by address",
			files: map[string]string{"main.hcl": testProviders + `
group "b" {
  provider = provider.testcloud.local
  image    = "x"
}
group "a" {
  provider = provider.testcloud.local
  image    = "x"
  count    = 0
}
network "n" { provider = provider.testcloud.local }
host "h" {
  provider = provider.testssh.dc1
  address  = "10.0.0.1"
}
`},
			graph: []string{"group.a", "group.b", "host.h", "network.n"},
			check: func(t *testing.T, d *Definition) {
				if d.Groups["a"].Count != 0 {
					t.Errorf("count = %d", d.Groups["a"].Count)
				}
				w := PlanWorld(d)
				if n := w.Groups["a"].GetAttr("hosts").LengthInt(); n != 0 {
					t.Errorf("plan hosts of a: %d", n)
				}
			},
		},
		{
			name: "host address flows into a group; locals chain",
			files: map[string]string{
				"a.hcl": testProviders + `
locals {
  c = local.b + 1
  b = local.a * 2
  a = 20
}
host "gw" {
  provider = provider.testssh.dc1
  address  = "10.0.0.1"
}
`,
				"b.hcl": `
group "app" {
  provider = provider.testcloud.local
  image    = "x"
  count    = local.c
  labels   = { gw = host.gw.name, env = env.name }
  setup    = "route add default gw ${host.gw.address}"
}
output "n" { value = local.c }
`},
			graph: []string{"host.gw", "group.app"},
			deps:  map[string][]string{"group.app": {"host.gw"}, "host.gw": {}},
			check: func(t *testing.T, d *Definition) {
				if d.Groups["app"].Count != 41 {
					t.Errorf("count = %d", d.Groups["app"].Count)
				}
				spec, err := d.EvalGroup("app", PlanWorld(d))
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(spec.Labels, map[string]string{"gw": "gw", "env": "test"}) || !spec.Unknown["setup"] {
					t.Errorf("plan spec %+v", spec)
				}
				w := World{Hosts: map[string]cty.Value{"gw": HostValue("gw", MachineRef{Address: "10.0.0.1", ID: "ssh", Known: true})}}
				spec, err = d.EvalGroup("app", w)
				if err != nil {
					t.Fatal(err)
				}
				if spec.Setup != "route add default gw 10.0.0.1" || spec.Unknown != nil {
					t.Errorf("spec %+v", spec)
				}
				outs, err := d.EvalOutputs(World{})
				if err != nil || !outs["n"].RawEquals(cty.NumberIntVal(41)) {
					t.Errorf("outputs %v, %v", outs, err)
				}
			},
		},
		{
			name: "unknown provider-specific attribute and network attribute",
			files: map[string]string{"main.hcl": testProviders + `
group "db" {
  provider = provider.testcloud.local
  image    = "pg"
}
network "n" {
  provider = provider.testcloud.local
  internal = true
  note     = "db at ${group.db.hosts[0].address}"
}
group "web" {
  provider = provider.testcloud.local
  image    = "x"
  zone     = group.db.hosts[0].id
  networks = [network.n]
}
`},
			graph: []string{"group.db", "network.n", "group.web"},
			deps:  map[string][]string{"group.web": {"group.db", "network.n"}, "network.n": {"group.db"}, "group.db": {}},
			check: func(t *testing.T, d *Definition) {
				spec, err := d.EvalGroup("web", PlanWorld(d))
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(spec.Unknown, map[string]bool{"attrs.zone": true}) || spec.Attrs != nil {
					t.Errorf("spec %+v", spec)
				}
				n, err := d.EvalNetwork("n", PlanWorld(d))
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(n.Attrs, map[string]string{"internal": "true"}) || !n.Unknown["attrs.note"] {
					t.Errorf("network %+v", n)
				}
			},
		},
		{
			name: "typed variables from the variables file and --var",
			files: map[string]string{
				"main.hcl": testProviders + `
variable "zones" { type = list(string) }
variable "sizes" {
  type    = map(number)
  default = { web = 1 }
}
variable "debug" {
  type    = bool
  default = false
}
variable "anything" { default = "x" }
group "web" {
  provider = provider.testcloud.local
  image    = "x"
  count    = length(var.zones) * var.sizes["web"]
  labels   = { debug = var.debug, any = var.anything }
}
`,
				"envs/test.hcl": `zones = ["a", "b"]
sizes = { web = 2 }
`},
			vars:  []string{"debug=true", "anything=007"}, // a string: a number would be 7
			graph: []string{"group.web"},
			check: func(t *testing.T, d *Definition) {
				if d.Groups["web"].Count != 4 {
					t.Errorf("count = %d", d.Groups["web"].Count)
				}
				spec, err := d.EvalGroup("web", PlanWorld(d))
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(spec.Labels, map[string]string{"debug": "true", "any": "007"}) {
					t.Errorf("labels %v", spec.Labels)
				}
				if d.Variables["zones"].Source != "envs/test.hcl" || d.Variables["debug"].Source != "--var" {
					t.Errorf("sources %q %q", d.Variables["zones"].Source, d.Variables["debug"].Source)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustLoad(t, writeFiles(t, tt.files), "test", tt.vars...)
			if got := addrs(d.Graph()); !reflect.DeepEqual(got, tt.graph) {
				t.Errorf("Graph = %v, want %v", got, tt.graph)
			}
			for addr, want := range tt.deps {
				var b *Block
				for _, g := range d.Graph() {
					if g.Address() == addr {
						b = g
					}
				}
				if b == nil || !reflect.DeepEqual(append([]string{}, b.DependsOn...), want) {
					t.Errorf("%s.DependsOn = %v, want %v", addr, b, want)
				}
			}
			if tt.check != nil {
				tt.check(t, d)
			}
		})
	}
}
