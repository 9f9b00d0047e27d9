package infra

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/provider"
	"github.com/gantry-dev/gantry/internal/store"
)

const defOwn = `
provider "mem" "main" {}
group "web" {
  provider = provider.mem.main
  image    = "web:1"
  count    = 2
  labels   = { role = "web" }
}
`

// enroll enrolls a live host named name with labels (through a join token
// of the test's own) and returns its id.
func (h *harness) enroll(name string, labels map[string]string) string {
	h.t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	hash := "th-" + name
	if err := h.st.CreateJoinToken(ctx, store.JoinTokenRecord{Hash: hash, JoinToken: api.JoinToken{ID: "jt-" + name, MaxUses: 1, ExpiresAt: now.Add(time.Hour), CreatedAt: now}}); err != nil {
		h.t.Fatal(err)
	}
	id := "h-" + name
	if err := h.st.EnrollHost(ctx, hash, now, store.HostRecord{Host: api.Host{ID: id, Name: name, Labels: labels, EnrolledAt: now}, NKey: "U" + name}); err != nil {
		h.t.Fatal(err)
	}
	return id
}

// live reports whether a live (not revoked) host has that id and name.
func (h *harness) live(name, id string) bool {
	h.t.Helper()
	got, err := h.st.GetHostByName(context.Background(), name)
	return err == nil && got.ID == id
}

// memMachines lists the in-memory provider's machines of an environment.
func memMachines(env string) string {
	var out []string
	for _, n := range mem.Names() {
		if strings.HasPrefix(n, env+"-") {
			out = append(out, n)
		}
	}
	return strings.Join(out, ",")
}

// A plan whose machine would take the name of a host the environment does
// not own (an agent started by hand, another environment's) is refused,
// naming the machine and the host, and nothing is revoked or created.
func TestPlanRefusesNameOfUnownedHost(t *testing.T) {
	h := newHarness(t)
	const env = "own"
	def := h.definition(map[string]string{"main.hcl": defOwn})
	// own-web-1 is a hand-started agent's name: not a machine of "own".
	byHand := h.enroll("own-web-1", map[string]string{"role": "web"})
	// own-web-0 is another environment's machine that happens to carry it
	// (same name, other env label): not owned either.
	other := h.enroll("own-web-0", map[string]string{provider.LabelEnv: "elsewhere", provider.LabelResource: "group.web[0]"})

	_, err := h.e.Plan(context.Background(), env, api.EnvRequest{Definition: def})
	var nt *NameTakenError
	if !errors.As(err, &nt) || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("plan with two taken names: %v, want a NameTakenError (a conflict)", err)
	}
	msg := err.Error()
	for _, want := range []string{
		`group.web[1]: machine name "own-web-1" is already taken by host own-web-1 (` + byHand + `, a host that is not an environment's machine), which environment "own" does not own`,
		`group.web[0]: machine name "own-web-0" is already taken by host own-web-0 (` + other + `, machine group.web[0] of environment "elsewhere")`,
		"'gantry hosts rm own-web-1'",
		"2 machine names are taken",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the refusal lacks %q:\n%s", want, msg)
		}
	}
	// Apply (which plans again) is refused the same way, and changes nothing.
	_, err = h.e.Apply(context.Background(), env, api.EnvRequest{Definition: def, Who: "test"}, func(api.ApplyEvent) {})
	if !errors.As(err, &nt) {
		t.Fatalf("apply with taken names: %v, want a NameTakenError", err)
	}
	if !h.live("own-web-1", byHand) || !h.live("own-web-0", other) {
		t.Fatal("a refused plan or apply revoked a host it does not own")
	}
	if got := memMachines(env); got != "" {
		t.Fatalf("machines created by a refused apply: %s", got)
	}
}

// A host the environment owns (its labels name the environment and the
// machine's address: an earlier incarnation of the machine) is no
// collision: the plan goes on, and the apply revokes that old host before
// it creates the machine again.
func TestPlanAcceptsOwnedHost(t *testing.T) {
	h := newHarness(t)
	const env = "mine"
	def := h.definition(map[string]string{"main.hcl": defOwn})
	old := h.enroll("mine-web-1", map[string]string{provider.LabelEnv: env, provider.LabelResource: "group.web[1]", "role": "web"})
	p := h.plan(env, api.EnvRequest{Definition: def})
	if p.Summary.Create != 3 {
		t.Fatalf("plan = %+v, want the record and 2 machines created", p.Summary)
	}
	if _, _, err := h.apply(env, p); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if h.live("mine-web-1", old) {
		t.Fatal("the old incarnation's host was not revoked when its machine was created again")
	}
	if got := memMachines(env); got != "mine-web-0,mine-web-1" {
		t.Fatalf("machines = %s", got)
	}
	_, _, _ = h.apply(env, h.plan(env, api.EnvRequest{Destroy: true}))
}

// A host that takes a machine's name after the plan was made is caught at
// apply: that machine fails with the same message, the host stays, the
// other machines are made. Destroying a machine whose name an unowned host
// holds leaves that host alone, and the environment never counts it as
// its machine.
func TestApplyNeverRevokesUnownedHost(t *testing.T) {
	h := newHarness(t)
	const env = "late"
	def := h.definition(map[string]string{"main.hcl": defOwn})
	p := h.plan(env, api.EnvRequest{Definition: def})
	late := h.enroll("late-web-1", nil)
	_, _, err := h.apply(env, p)
	if err == nil || !strings.Contains(err.Error(), `group.web[1]: machine name "late-web-1" is already taken by host late-web-1 (`+late) {
		t.Fatalf("apply of a plan whose name was taken since: %v, want group.web[1] refused naming host %s", err, late)
	}
	if !h.live("late-web-1", late) {
		t.Fatal("apply revoked a host it does not own")
	}
	if got := memMachines(env); got != "late-web-0" {
		t.Fatalf("machines = %q, want late-web-0 only", got)
	}

	// late-web-0 is made; a host of its name that is not its own appears
	// (its own agent never joined).
	imposter := h.enroll("late-web-0", map[string]string{provider.LabelEnv: env, provider.LabelResource: "group.web[7]"})
	e, err := h.e.Get(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range e.Machines {
		if m.HostID != "" || m.Phase != api.PhaseJoining {
			t.Errorf("machine %s is bound to host %q in phase %s, want no host (joining): the host of its name is not its own", m.Address, m.HostID, m.Phase)
		}
	}
	if _, _, err := h.apply(env, h.plan(env, api.EnvRequest{Destroy: true})); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if got := memMachines(env); got != "" {
		t.Fatalf("machines after destroy: %s", got)
	}
	if !h.live("late-web-0", imposter) || !h.live("late-web-1", late) {
		t.Fatal("destroy revoked a host the environment does not own")
	}
}
