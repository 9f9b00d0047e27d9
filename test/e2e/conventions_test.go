package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// convDefinition writes files into a new directory and returns it.
func convDefinition(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// convEnvNames lists the environments (`gantry env ls -o json`).
func (c *cluster) convEnvNames(t *testing.T) string {
	t.Helper()
	r := c.gantry("env", "ls", "-o", "json")
	r.ok(t)
	var envs []api.Environment
	if err := json.Unmarshal([]byte(r.stdout), &envs); err != nil {
		t.Fatalf("env ls -o json: %v\n%s", err, r.stdout)
	}
	var names []string
	for _, e := range envs {
		names = append(names, e.Name)
	}
	return strings.Join(names, ",")
}

// convExpect checks an exit code and that stdout+stderr contain each want.
func (r result) convExpect(t *testing.T, code int, wants ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("gantry %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, code, r.stdout, r.stderr)
	}
	for _, w := range wants {
		if !strings.Contains(r.stdout+r.stderr, w) {
			t.Fatalf("gantry %s: output lacks %q\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), w, r.stdout, r.stderr)
		}
	}
}

// TestConventions drives the conventions users of terraform, kubectl and gh
// expect, against a real server with local machines: plan
// --detailed-exitcode, a new environment created only by up (and saying
// so), one "not found" phrasing for a mistyped --env (which creates
// nothing), the envs/NAME.hcl warning, env show --env, scale and destroy
// with the definition directory (another one refused, naming both), and
// flag suggestions.
func TestConventions(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e")
	}
	c := newCluster(t, clusterOpts{})
	const env = "demo"
	shop := convDefinition(t, map[string]string{
		"main.hcl": `
variable "web_count" {
  type    = number
  default = 1
}
provider "local" "here" {}
group "web" {
  provider = provider.local.here
  count    = var.web_count
  labels   = { role = "conv" }
}
output "web" { value = group.web.hosts[*].name }
`,
		"envs/demo.hcl": "web_count = 1\n",
		"envs/prod.hcl": "web_count = 1\n",
	})
	other := convDefinition(t, map[string]string{"main.hcl": `
provider "local" "here" {}
group "api" {
  provider = provider.local.here
  count    = 1
}
`})
	bad := convDefinition(t, map[string]string{"main.hcl": "group \"web\" {\n  count = \n}\n"})

	// plan of a new environment: changes (exit 2 with --detailed-exitcode),
	// "(new environment)", and nothing created.
	c.gantry("plan", shop, "--env", env, "--detailed-exitcode").convExpect(t, 2, `Plan to apply environment "demo" (new environment):`, "count = 1", `labels = { role = "conv" }`)
	if got := c.convEnvNames(t); got != "" {
		t.Fatalf("plan created environments: %s", got)
	}
	// A bad definition: 1 with --detailed-exitcode (2 would read as "changes").
	c.gantry("plan", bad, "--env", env, "--detailed-exitcode").convExpect(t, 1, "main.hcl:2")

	// up creates it and says so.
	r := c.gantryWithin(90*time.Second, "up", shop, "--env", env, "--timeout", "60s")
	r.convExpect(t, 0, `Creating environment "demo" (new).`)
	c.gantry("plan", shop, "--env", env, "--detailed-exitcode").convExpect(t, 0, "No changes")

	// env show / outputs accept --env (and the positional, for compatibility).
	c.gantry("env", "show", "--env", env).convExpect(t, 0, "Environment demo", "demo-web-0")
	c.gantry("env", "show", env).convExpect(t, 0, "Environment demo")
	c.gantry("env", "outputs", "--env", env, "web", "-o", "json").convExpect(t, 0, `"demo-web-0"`)
	c.gantry("env", "show", "other", "--env", env).convExpect(t, 2, `environment given twice: --env demo and argument "other"`)

	// A mistyped --env: one phrasing everywhere, listing what exists, and
	// nothing is created.
	notFound := `environment "demi" not found; environments: demo`
	c.gantry("env", "show", "--env", "demi").convExpect(t, 1, notFound)
	c.gantry("env", "outputs", "--env", "demi").convExpect(t, 1, notFound)
	c.gantryWithin(60*time.Second, "scale", "--env", "demi", "web=2").convExpect(t, 1, notFound)
	c.gantryWithin(60*time.Second, "scale", shop, "--env", "demi", "web=2").convExpect(t, 1, notFound)
	c.gantryWithin(60*time.Second, "destroy", "--env", "demi", "--auto-approve").convExpect(t, 1, notFound)
	if got := c.convEnvNames(t); got != env {
		t.Fatalf("environments after the mistyped --env: %s, want only %s", got, env)
	}

	// A missing envs/NAME.hcl next to others: a warning naming the file
	// and the ones that exist.
	r = c.gantry("plan", shop, "--env", "stagign")
	r.convExpect(t, 0, "(new environment)")
	if want := "Warning: " + filepath.Join(shop, "envs", "stagign.hcl") + ` does not exist: environment "stagign" gets the variables' defaults and --var values only (variable files for: demo, prod)`; !strings.Contains(r.stderr, want) {
		t.Fatalf("plan --env stagign stderr lacks the warning %q:\n%s", want, r.stderr)
	}
	if strings.Contains(c.gantry("plan", shop, "--env", env).stderr, "Warning") {
		t.Fatal("warning for an environment whose envs/ file exists")
	}

	// scale and destroy with another definition: refused, naming both;
	// nothing changes.
	r = c.gantryWithin(60*time.Second, "scale", other, "--env", env, "api=2")
	r.convExpect(t, 2, other, "groups api", `applied to environment "demo" (`+shop, "groups web", "scale acts on the applied definition")
	r = c.gantryWithin(60*time.Second, "destroy", other, "--env", env, "--auto-approve")
	r.convExpect(t, 2, other, shop, "destroy acts on the applied definition")
	if e := c.env(env); len(e.Machines) != 1 {
		t.Fatalf("machines after the refusals: %d, want 1", len(e.Machines))
	}

	// Flag habits from terraform, and typos.
	c.gantry("apply", shop, "--env", env, "-auto-approve").convExpect(t, 2, "unknown shorthand flag 'a' in -auto-approve: did you mean --auto-approve?")
	c.gantry("run", "--selecter", "role=conv", "--", "true").convExpect(t, 2, "unknown flag: --selecter (did you mean --selector?)")
	// --auto-approve is accepted by everything that changes an environment.
	for _, cmd := range []string{"apply", "up", "scale", "destroy"} {
		c.gantry(cmd, "--help").convExpect(t, 0, "--auto-approve")
	}

	// scale and destroy with the definition directory, as main.hcl headers say.
	c.gantryWithin(90*time.Second, "scale", shop, "--env", env, "web=2", "--timeout", "60s").convExpect(t, 0)
	if e := c.env(env); len(e.Machines) != 2 {
		t.Fatalf("machines after scale DIR web=2: %d, want 2", len(e.Machines))
	}
	c.gantryWithin(90*time.Second, "destroy", shop, "--env", env, "--auto-approve").convExpect(t, 0)
	if e := c.env(env); len(e.Machines) != 0 || len(e.Resources) != 0 {
		t.Fatalf("after destroy DIR: %d machines, %d resources", len(e.Machines), len(e.Resources))
	}
}
