// Command plan measures the environments engine on a large graph: a
// definition of -groups groups of -count machines each (10,000 resources
// by default: 100 groups x 99 machines + 100 group records), each group
// depending on the one before, on the in-memory test provider and a real
// SQLite store. It times a plan of the fresh environment, the apply of
// that plan, and a no-op plan against the applied state (which refreshes
// every machine), and reports the peak RSS. The last line is the figure.
//
//	go run ./bench/plan
//	go run ./bench/plan -groups 200 -count 49
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/bundle"
	"github.com/gantry-dev/gantry/internal/infra"
	"github.com/gantry-dev/gantry/internal/provider"
	"github.com/gantry-dev/gantry/internal/provider/providertest"
	"github.com/gantry-dev/gantry/internal/store/sqlite"
)

type fleet struct{}

func (fleet) CreateInternalJob(_ context.Context, j api.Job, _ []api.Execution) (api.Job, error) {
	return j, nil
}
func (fleet) HostOnline(string) bool { return false }

type deployer struct{}

func (deployer) CreateGroup(_ context.Context, app string, r api.CreateGroupRequest) (api.DeploymentGroup, error) {
	return api.DeploymentGroup{App: app, Name: r.Name}, nil
}
func (deployer) Deploy(context.Context, string, string, api.DeployRequest) (api.Deployment, error) {
	return api.Deployment{}, nil
}
func (deployer) HostBusy(string) bool { return false }
func (deployer) Active(string) string { return "" }
func (deployer) CatchUpSoon()         {}

func main() {
	groups := flag.Int("groups", 100, "groups in the definition")
	count := flag.Int("count", 99, "machines per group")
	flag.Parse()
	dir, err := os.MkdirTemp("", "gantry-bench-plan-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	mem := providertest.NewMemory()
	providertest.Register("mem", mem, provider.Info{Networks: true, Images: true})
	st, err := sqlite.Open(filepath.Join(dir, "gantry.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	e := infra.New(st, fleet{}, deployer{}, infra.Config{DataDir: filepath.Join(dir, "infra"),
		Agent: provider.Agent{Binary: "/bin/true", ServerURL: "http://127.0.0.1:1"},
		NewJoinToken: func(context.Context, string, map[string]string, time.Duration) (string, error) {
			return "gjt_bench", nil
		},
	}, nil)

	def := definition(dir, *groups, *count)
	ctx := context.Background()
	resources := *groups**count + *groups
	t0 := time.Now()
	p, err := e.Plan(ctx, "bench", api.EnvRequest{Definition: def})
	if err != nil {
		log.Fatal(err)
	}
	fresh := time.Since(t0)
	fmt.Printf("fresh plan: %d changes in %.2f s\n", len(p.Changes), fresh.Seconds())

	t0 = time.Now()
	if _, err := e.Apply(ctx, "bench", api.EnvRequest{Plan: &p, Who: "bench"}, func(api.ApplyEvent) {}); err != nil {
		log.Fatal(err)
	}
	applied := time.Since(t0)
	fmt.Printf("apply: %d machines created in %.2f s\n", len(mem.Names()), applied.Seconds())

	t0 = time.Now()
	p, err = e.Plan(ctx, "bench", api.EnvRequest{Definition: def})
	if err != nil {
		log.Fatal(err)
	}
	noop := time.Since(t0)
	if len(p.Changes) != 0 {
		log.Fatalf("the plan after the apply has %d changes, want none", len(p.Changes))
	}
	fmt.Printf("no-op plan (refresh of every machine): %.2f s\n", noop.Seconds())
	fmt.Printf("plan: %d resources: fresh plan %.2f s, no-op plan with refresh %.2f s, apply %.2f s, peak RSS %d MiB (goals: plan < 2 s, < 500 MiB)\n",
		resources, fresh.Seconds(), noop.Seconds(), applied.Seconds(), peakRSS()>>20)
}

// definition packs a generated definition.
func definition(dir string, groups, count int) []byte {
	var b strings.Builder
	b.WriteString("provider \"mem\" \"m\" {}\nnetwork \"net\" { provider = provider.mem.m }\n")
	for i := 0; i < groups; i++ {
		fmt.Fprintf(&b, "group \"g%d\" {\n  provider = provider.mem.m\n  image = \"img:1\"\n  count = %d\n  networks = [network.net]\n  labels = { role = \"g%d\" }\n", i, count, i)
		if i > 0 {
			fmt.Fprintf(&b, "  depends_on = [group.g%d]\n", i-1)
		}
		b.WriteString("}\n")
	}
	src := filepath.Join(dir, "def")
	if err := os.MkdirAll(src, 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "main.hcl"), []byte(b.String()), 0o644); err != nil {
		log.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := bundle.Pack(src, &buf); err != nil {
		log.Fatal(err)
	}
	return buf.Bytes()
}

// peakRSS is the process's peak resident set (VmHWM) in bytes.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:")), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}
