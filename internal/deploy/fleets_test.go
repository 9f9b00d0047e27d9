package deploy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// fakeFleets is an environment engine (Fleets) in memory: it owns every
// group (unless owns is false), answers Provision with no host and a
// status for its first provisionAfter calls (or with provisionErr), then
// with hosts; Release records its calls and reports done on the
// releaseAfter-th one.
type fakeFleets struct {
	mu             sync.Mutex
	notOwned       bool
	provisionAfter int
	provisionErr   error
	hosts          []FleetHost
	releaseAfter   int

	provisions []api.Deployment // the deployment of each Provision call
	releases   []bool           // keepReplacements of each Release call
	// releasePhase is the stored phase and state of the deployment when
	// each Release call came.
	releaseSeen []string
}

const (
	fakeProvisionStatus = "fake: green1 setting up, green2 joining"
	fakeReleaseStatus   = "fake: removing the losing machines"
)

func (f *fakeFleets) Owns(ctx context.Context, g api.DeploymentGroup) (bool, error) {
	return !f.notOwned, nil
}

func (f *fakeFleets) Provision(ctx context.Context, d api.Deployment) ([]FleetHost, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.provisions = append(f.provisions, d)
	if f.provisionErr != nil {
		return nil, "", f.provisionErr
	}
	if len(f.provisions) <= f.provisionAfter {
		return nil, fakeProvisionStatus, nil
	}
	return slices.Clone(f.hosts), "", nil
}

func (f *fakeFleets) Release(ctx context.Context, d api.Deployment, keepReplacements bool) (bool, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.releases = append(f.releases, keepReplacements)
	phase := ""
	if d.Traffic != nil {
		phase = d.Traffic.Phase
	}
	f.releaseSeen = append(f.releaseSeen, d.State+"/"+phase)
	if len(f.releases) >= f.releaseAfter {
		return true, "", nil
	}
	return false, fakeReleaseStatus, nil
}

func (f *fakeFleets) calls() (provisions int, releases []bool, seen []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.provisions), slices.Clone(f.releases), slices.Clone(f.releaseSeen)
}

// newFleetEnv is the strategy environment (web1, web2 in group web;
// green1, green2 enrolled, servers of the backend in maint) whose engine
// has the fake environment engine f: green1 and green2 are the
// replacement machines it makes.
func newFleetEnv(t *testing.T, f *fakeFleets) *stratEnv {
	t.Helper()
	s := newStratEnv(t, 2, "green1", "green2")
	f.hosts = []FleetHost{{ID: "h-green2", Name: "green2"}, {ID: "h-green1", Name: "green1"}}
	s.eng.SetFleets(f)
	return s
}

// fleetReq is a blue/green deploy request of an environment's group: no
// replacement selector, no keep period.
func fleetReq() api.DeployRequest {
	return bgReq(api.BlueGreenSpec{NoKeep: true})
}

// A blue/green deployment of an environment's group starts with no host,
// the group's hosts as the originals, in phase provisioning; a
// replacement selector is refused there.
func TestFleetDeployCreatesProvisioning(t *testing.T) {
	t.Parallel()
	f := &fakeFleets{provisionAfter: 1 << 30, releaseAfter: 1}
	s := newFleetEnv(t, f)
	_, err := s.eng.Deploy(s.ctx, "shop", "web", bgReq(api.BlueGreenSpec{ReplacementSelector: "role=green", NoKeep: true}))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "replacement-selector") {
		t.Fatalf("replacement selector on an environment's group: %v, want %v naming --replacement-selector", err, ErrInvalid)
	}
	d, err := s.eng.Deploy(s.ctx, "shop", "web", fleetReq())
	must(t, err)
	if len(d.Hosts) != 0 || d.Traffic == nil || !d.Traffic.ManagedFleet || d.Traffic.Phase != PhaseProvisioning ||
		strings.Join(d.Traffic.Original, ",") != "web1,web2" || len(d.Traffic.Replacement) != 0 || d.State != api.DeployRunning {
		t.Fatalf("created: state %s, %d host(s), traffic %+v; want running, no host, managed fleet, provisioning, originals web1,web2", d.State, len(d.Hosts), d.Traffic)
	}
	if d.Config != AllAtOnce.Name {
		t.Errorf("config %q, want %q (the replacement machines take no traffic yet)", d.Config, AllAtOnce.Name)
	}
	stored, err := s.st.GetDeployment(context.Background(), d.ID)
	must(t, err)
	if len(stored.Hosts) != 0 || stored.Traffic == nil || !stored.Traffic.ManagedFleet || strings.Join(stored.Traffic.Original, ",") != "web1,web2" {
		t.Fatalf("stored: %d host(s), traffic %+v", len(stored.Hosts), stored.Traffic)
	}
	// It waits on the environment; nothing is deployed meanwhile.
	got := s.waitFor(d.ID, 10*time.Second, "the environment's status", func(d api.Deployment) bool {
		return d.Traffic != nil && d.Traffic.Status == fakeProvisionStatus
	})
	if got.State != api.DeployRunning || got.Traffic.Phase != PhaseProvisioning || len(got.Hosts) != 0 {
		t.Fatalf("provisioning: %s phase %s with %d host(s)", got.State, got.Traffic.Phase, len(got.Hosts))
	}
	if n, rel, _ := f.calls(); n == 0 || len(rel) != 0 {
		t.Fatalf("Provision called %d times, Release %v; want Provision, no Release", n, rel)
	}
}

// Without an owning environment the group needs a replacement selector,
// as before.
func TestFleetNotOwnedNeedsSelector(t *testing.T) {
	t.Parallel()
	s := newFleetEnv(t, &fakeFleets{notOwned: true})
	if _, err := s.eng.Deploy(s.ctx, "shop", "web", fleetReq()); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "replacement_selector is required") {
		t.Fatalf("group not an environment's, no selector: %v, want %v", err, ErrInvalid)
	}
}

// The whole blue/green deployment of an environment's group: the
// environment's status while it makes the machines, the machines added
// as the deployment's hosts, the traffic moved, the originals removed
// (Release keeping the replacements) before the deployment succeeds, and
// the group's selector left as it is.
func TestFleetBlueGreenSucceeds(t *testing.T) {
	t.Parallel()
	f := &fakeFleets{provisionAfter: 2, releaseAfter: 3}
	s := newFleetEnv(t, f)
	go s.lb.load(s.ctx, 10)
	d, err := s.eng.Deploy(s.ctx, "shop", "web", fleetReq())
	must(t, err)
	prov := s.waitFor(d.ID, 10*time.Second, "the environment's status", func(d api.Deployment) bool {
		return d.Traffic != nil && d.Traffic.Status == fakeProvisionStatus
	})
	if prov.Traffic.Phase != PhaseProvisioning || len(prov.Hosts) != 0 {
		t.Fatalf("while provisioning: phase %s, %d host(s)", prov.Traffic.Phase, len(prov.Hosts))
	}
	// The hosts are stored just before the phase (a restart in between
	// adds no host twice): wait for both.
	added := s.waitFor(d.ID, 10*time.Second, "the replacement machines", func(d api.Deployment) bool {
		return len(d.Hosts) > 0 && d.Traffic != nil && d.Traffic.Phase != PhaseProvisioning
	})
	var names []string
	for _, h := range added.Hosts {
		names = append(names, h.HostName)
		if h.HostID != "h-"+h.HostName {
			t.Errorf("host %s has id %s, want h-%s", h.HostName, h.HostID, h.HostName)
		}
	}
	if strings.Join(names, ",") != "green1,green2" {
		t.Fatalf("deployment hosts %v, want green1,green2", names)
	}
	if p := added.Traffic.Phase; p == PhaseProvisioning || p == PhaseReleasing || strings.Join(added.Traffic.Replacement, ",") != "green1,green2" || added.Traffic.Status == fakeProvisionStatus {
		t.Fatalf("after the machines were added: phase %s replacement %v status %q; want past provisioning, replacement green1,green2, status cleared",
			p, added.Traffic.Replacement, added.Traffic.Status)
	}
	if added.MinHealthy != AllAtOnce.MinHealthy(2) {
		t.Errorf("min healthy %d, want %d (all at once, 2 hosts)", added.MinHealthy, AllAtOnce.MinHealthy(2))
	}
	// The traffic moves as for hand-onboarded hosts; the deployment then
	// waits for the originals' removal.
	rel := s.waitFor(d.ID, 20*time.Second, "the releasing phase", func(d api.Deployment) bool {
		return d.Traffic != nil && d.Traffic.Phase == PhaseReleasing
	})
	if rel.State != api.DeployRunning && rel.State != api.DeploySucceeded {
		t.Fatalf("releasing, state %s: %s", rel.State, rel.Error)
	}
	waiting := s.waitFor(d.ID, 10*time.Second, "the environment's release status", func(d api.Deployment) bool {
		return d.Traffic != nil && d.Traffic.Status == fakeReleaseStatus
	})
	if waiting.State != api.DeployRunning || waiting.Traffic.Outcome != api.DeploySucceeded || waiting.FinishedAt != nil {
		t.Fatalf("while the originals are removed: state %s outcome %q finished %v; want running, outcome succeeded", waiting.State, waiting.Traffic.Outcome, waiting.FinishedAt)
	}
	got := s.wait(d.ID, 20*time.Second)
	if got.State != api.DeploySucceeded || got.Traffic.Phase != PhaseDone || got.Error != "" {
		t.Fatalf("ended %s phase %s: %q", got.State, got.Traffic.Phase, got.Error)
	}
	provs, releases, seen := f.calls()
	if provs != f.provisionAfter+1 {
		t.Errorf("Provision called %d times, want %d (no more once the hosts came)", provs, f.provisionAfter+1)
	}
	if len(releases) != f.releaseAfter {
		t.Errorf("Release called %d times (%v), want %d: the deployment ends once it reports done", len(releases), releases, f.releaseAfter)
	}
	for i, keep := range releases {
		if !keep {
			t.Errorf("Release call %d: keepReplacements false after a success", i+1)
		}
		if seen[i] != api.DeployRunning+"/"+PhaseReleasing {
			t.Errorf("Release call %d saw the deployment %s, want %s/%s", i+1, seen[i], api.DeployRunning, PhaseReleasing)
		}
	}
	for _, h := range got.Hosts {
		if h.State != api.HostDeploySucceeded {
			t.Errorf("host %s: %s", h.HostName, h.State)
		}
	}
	checkSwapped(t, s, "role=web") // the environment's selector stays
}

// An abort while the machines are made removes them (Release without
// keeping the replacements) before the deployment fails.
func TestFleetAbortWhileProvisioning(t *testing.T) {
	t.Parallel()
	f := &fakeFleets{provisionAfter: 1 << 30, releaseAfter: 2}
	s := newFleetEnv(t, f)
	d, err := s.eng.Deploy(s.ctx, "shop", "web", fleetReq())
	must(t, err)
	s.waitFor(d.ID, 10*time.Second, "the environment's status", func(d api.Deployment) bool {
		return d.Traffic != nil && d.Traffic.Status == fakeProvisionStatus
	})
	ab, err := s.eng.Abort(s.ctx, d.ID)
	must(t, err)
	if !ab.Traffic.AbortRequested {
		t.Fatalf("abort not recorded: %+v", ab.Traffic)
	}
	got := s.wait(d.ID, 10*time.Second)
	if got.State != api.DeployFailed || !strings.Contains(got.Error, "aborted by hand") || len(got.Hosts) != 0 {
		t.Fatalf("aborted while provisioning: %s with %d host(s): %q", got.State, len(got.Hosts), got.Error)
	}
	if got.Traffic.Phase != PhaseAborted {
		t.Errorf("final phase %s, want %s", got.Traffic.Phase, PhaseAborted)
	}
	_, releases, seen := f.calls()
	if len(releases) != f.releaseAfter {
		t.Fatalf("Release called %d times (%v), want %d: the deployment ends once it reports done", len(releases), releases, f.releaseAfter)
	}
	for i, keep := range releases {
		if keep {
			t.Errorf("Release call %d kept the replacements after an abort", i+1)
		}
		if seen[i] != api.DeployRunning+"/"+PhaseReleasing {
			t.Errorf("Release call %d saw the deployment %s, want %s/%s", i+1, seen[i], api.DeployRunning, PhaseReleasing)
		}
	}
	for _, n := range []string{"web1", "web2"} {
		if srv := s.lb.server(n); srv.state != api.LBReady || srv.rev != "r-good" {
			t.Errorf("original %s: %s revision %q, want ready r-good", n, srv.state, srv.rev)
		}
	}
	g, err := s.st.GetGroup(context.Background(), "shop", "web")
	must(t, err)
	if g.Selector != "role=web" || g.Revision != "r-good" {
		t.Errorf("group after the abort: %q %q, want role=web r-good", g.Selector, g.Revision)
	}
}

// A Provision error fails the deployment, after the machines made so far
// are removed.
func TestFleetProvisionError(t *testing.T) {
	t.Parallel()
	f := &fakeFleets{provisionErr: errors.New("quota exceeded in region x"), releaseAfter: 2}
	s := newFleetEnv(t, f)
	d, err := s.eng.Deploy(s.ctx, "shop", "web", fleetReq())
	must(t, err)
	got := s.wait(d.ID, 10*time.Second)
	if got.State != api.DeployFailed || !strings.Contains(got.Error, "quota exceeded in region x") || len(got.Hosts) != 0 {
		t.Fatalf("provision error: %s with %d host(s): %q", got.State, len(got.Hosts), got.Error)
	}
	provs, releases, _ := f.calls()
	if provs != 1 {
		t.Errorf("Provision called %d times, want 1 (an error is final)", provs)
	}
	if len(releases) != f.releaseAfter || slices.Contains(releases, true) {
		t.Errorf("Release calls %v, want %d without keeping the replacements", releases, f.releaseAfter)
	}
	g, err := s.st.GetGroup(context.Background(), "shop", "web")
	must(t, err)
	if g.Selector != "role=web" || g.Revision != "r-good" {
		t.Errorf("group after the failure: %q %q, want role=web r-good", g.Selector, g.Revision)
	}
}
