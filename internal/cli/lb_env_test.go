package cli

import (
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/api"
)

// TestMachineTableLBColumn: env show has an LB column (a machine's state
// in its load balancer) only when some machine is behind one.
func TestMachineTableLBColumn(t *testing.T) {
	var b strings.Builder
	ms := []api.EnvMachine{
		{Address: "group.lb[0]", Name: "dev-lb-0", IP: "10.0.0.9", Phase: api.PhaseOnline},
		{Address: "group.web[0]", Name: "dev-web-0", IP: "10.0.0.2", Phase: api.PhaseOnline, Revision: "r1", LB: "ready 100"},
		{Address: "group.web[1]", Name: "dev-web-1", IP: "10.0.0.3", Phase: api.PhaseDeploying, LB: "maint"},
	}
	if err := machineTable(&b, ms); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if f := strings.Fields(lines[0]); len(f) != 7 || f[4] != "LB" {
		t.Fatalf("header %q, want an LB column after PHASE", lines[0])
	}
	if !strings.Contains(lines[2], "ready 100") || !strings.Contains(lines[3], "maint") || !strings.Contains(lines[1], " - ") {
		t.Fatalf("table:\n%s", b.String())
	}
	b.Reset()
	for i := range ms {
		ms[i].LB = ""
	}
	if err := machineTable(&b, ms); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Split(b.String(), "\n")[0], "LB") {
		t.Fatalf("an LB column without any load balancer:\n%s", b.String())
	}
}
