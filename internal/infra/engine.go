package infra

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/bundle"
	"github.com/gantry-dev/gantry/internal/diag"
	"github.com/gantry-dev/gantry/internal/infra/config"
	"github.com/gantry-dev/gantry/internal/provider"
	"github.com/gantry-dev/gantry/internal/store"
)

// Store is what the environments engine needs from the store.
type Store interface {
	GetEnvironment(ctx context.Context, name string) (store.Environment, error)
	ListEnvironments(ctx context.Context) ([]store.Environment, error)
	SaveEnvironment(ctx context.Context, e store.Environment, prev int64) error
	SetEnvironmentEvents(ctx context.Context, name string, events []byte) error
	AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (store.Lease, error)
	GetLease(ctx context.Context, name string) (store.Lease, error)
	ReleaseLease(ctx context.Context, name, holder string) error
	ListHosts(ctx context.Context, includeRevoked bool) ([]store.HostRecord, error)
	GetHostByName(ctx context.Context, name string) (store.HostRecord, error)
	SetHostLabels(ctx context.Context, id string, labels map[string]string) error
	RevokeHost(ctx context.Context, id string) error
	CreateJoinToken(ctx context.Context, t store.JoinTokenRecord) error
	GetJob(ctx context.Context, id string) (api.Job, error)
	GetApplication(ctx context.Context, name string) (api.Application, error)
	ListRevisions(ctx context.Context, app string) ([]api.Revision, error)
	GetRevision(ctx context.Context, app, id string) (api.Revision, error)
	GetGroup(ctx context.Context, app, name string) (api.DeploymentGroup, error)
	UpdateGroupSettings(ctx context.Context, g api.DeploymentGroup) error
	DeleteGroup(ctx context.Context, app, name string) error
	HostRevisions(ctx context.Context, groupID string) (map[string]store.HostRevision, error)
	ListDeployments(ctx context.Context, app string, limit int) ([]api.Deployment, error)
	GetDeployment(ctx context.Context, id string) (api.Deployment, error)
}

// Fleet is what the engine needs from the fleet engine.
type Fleet interface {
	CreateInternalJob(ctx context.Context, job api.Job, execs []api.Execution) (api.Job, error)
	HostOnline(hostID string) bool
}

// Deployer is what the engine needs from the deployment engine.
type Deployer interface {
	CreateGroup(ctx context.Context, app string, req api.CreateGroupRequest) (api.DeploymentGroup, error)
	Deploy(ctx context.Context, app, group string, req api.DeployRequest) (api.Deployment, error)
	HostBusy(hostID string) bool
	Active(groupID string) string
	// CatchUpSoon deploys groups' revisions to newly matching hosts now.
	CatchUpSoon()
}

// Config configures the engine.
type Config struct {
	// DataDir is where provider instances keep files of their own and
	// where definitions are unpacked (--data-dir/infra).
	DataDir string
	// Agent is how new machines start the agent: binary, server and bus
	// URLs (JoinToken and Name are set per machine).
	Agent provider.Agent
	// Revoke drops a revoked host's bus connections at once.
	Revoke func(hostID string)
	// NewJoinToken makes a single-use, internal join token with these
	// labels for owner, the machine it is made for (MachineOwner).
	NewJoinToken func(ctx context.Context, owner string, labels map[string]string, ttl time.Duration) (string, error)
	// VoidJoinTokens deletes the join tokens made for owner once its
	// machine is deleted (nil: they expire on their own).
	VoidJoinTokens func(ctx context.Context, owner string)
	// LockTTL is how long an apply's lock lives without renewal (default
	// 30s; renewed every third of it while the apply runs, so a killed
	// server's lock frees itself).
	LockTTL time.Duration
	// Tick is the lifecycle controller's period (default 500ms).
	Tick time.Duration
	// Debounce is how long configure waits for a burst of membership
	// changes to settle (default 500ms).
	Debounce time.Duration
	// LB drives the load balancers of environments (the traffic
	// controller); nil leaves them alone (load_balancer blocks are then
	// recorded, not acted on).
	LB LB
}

// Engine plans and applies environments and runs their machines'
// lifecycle.
type Engine struct {
	st  Store
	fl  Fleet
	dep Deployer
	cfg Config
	log *slog.Logger
	now func() time.Time

	pmu   sync.Mutex
	provs map[string]provider.Provider // by type + config hash

	lc   *lifecycle
	kick chan struct{}
	// fops runs the applies of blue/green replacement fleets (fleet.go).
	fops fleetOps
}

// Errors the API maps to statuses.
var (
	// ErrInvalid is a bad request (the message says what).
	ErrInvalid = errors.New("invalid")
	// ErrLocked means another apply holds the environment's lock.
	ErrLocked = errors.New("the environment is locked")
	// ErrStale means a saved plan no longer matches the state.
	ErrStale = errors.New("the plan is stale")
	// ErrProvider wraps what a provider answered (Docker down, SSH
	// refused): not gantry's fault, and the message says what to fix.
	ErrProvider = errors.New("provider")
)

// DiagError carries a definition's diagnostics to the API.
type DiagError struct{ Diags []api.Diagnostic }

func (e *DiagError) Error() string {
	var b strings.Builder
	for i, d := range e.Diags {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%s:%d:%d: %s", d.File, d.Line, d.Column, d.Message)
	}
	return b.String()
}

// New makes an engine; call Start to run the lifecycle controller.
func New(st Store, fl Fleet, dep Deployer, cfg Config, log *slog.Logger) *Engine {
	if cfg.LockTTL <= 0 {
		cfg.LockTTL = 30 * time.Second
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 500 * time.Millisecond
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 500 * time.Millisecond
	}
	if cfg.Revoke == nil {
		cfg.Revoke = func(string) {}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{st: st, fl: fl, dep: dep, cfg: cfg, log: log, now: time.Now, provs: map[string]provider.Provider{}, kick: make(chan struct{}, 1)}
	e.lc = newLifecycle(e)
	return e
}

// Kick wakes the lifecycle controller (a host joined, a job ended).
func (e *Engine) Kick() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Close releases provider resources (forwarders).
func (e *Engine) Close() {
	e.pmu.Lock()
	defer e.pmu.Unlock()
	for _, p := range e.provs {
		if c, ok := p.(interface{ Close() error }); ok {
			_ = c.Close()
		}
	}
}

// providerFor returns the provider instance of a provider block.
func (e *Engine) providerFor(p *config.Provider) (provider.Provider, provider.Info, error) {
	f, err := provider.Lookup(p.Type)
	if err != nil {
		return nil, provider.Info{}, err
	}
	keys := make([]string, 0, len(p.Config))
	for k := range p.Config {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\n", k, p.Config[k])
	}
	key := p.Type + "/" + hex.EncodeToString(h.Sum(nil))[:16]
	e.pmu.Lock()
	defer e.pmu.Unlock()
	if inst, ok := e.provs[key]; ok {
		return inst, f.Info, nil
	}
	dir := filepath.Join(e.cfg.DataDir, "providers", p.Type)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, f.Info, err
	}
	inst, err := f.New(p.Config, provider.Env{DataDir: dir})
	if err != nil {
		return nil, f.Info, fmt.Errorf("provider %q %q: %w", p.Type, p.Name, err)
	}
	e.provs[key] = inst
	return inst, f.Info, nil
}

// loadDefinition unpacks a packed definition and loads it. Definitions
// are unpacked once into a directory named by their digest, kept while
// they may be evaluated (file() and templatefile() read it at apply time);
// the oldest beyond maxDefinitions are removed.
func (e *Engine) loadDefinition(env string, packed []byte, vars []string) (*config.Definition, error) {
	if len(packed) == 0 {
		return nil, fmt.Errorf("%w: no definition: pass the directory of the environment's *.hcl files", ErrInvalid)
	}
	sum := sha256.Sum256(packed)
	parent := filepath.Join(e.cfg.DataDir, "definitions")
	dir := filepath.Join(parent, hex.EncodeToString(sum[:]))
	if _, err := os.Stat(dir); err != nil {
		if err := e.unpackDefinition(parent, dir, packed); err != nil {
			return nil, err
		}
	} else {
		now := time.Now()
		_ = os.Chtimes(dir, now, now)
	}
	def, err := config.Load(dir, env, vars)
	if err != nil {
		return nil, diagError(err)
	}
	return def, nil
}

// maxDefinitions is how many unpacked definitions are kept.
const maxDefinitions = 64

func (e *Engine) unpackDefinition(parent, dir string, packed []byte) error {
	a, err := bundle.Detect(bytes.NewReader(packed), int64(len(packed)))
	if err != nil {
		return fmt.Errorf("%w: definition archive: %v", ErrInvalid, err)
	}
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return err
	}
	lim := bundle.DefaultLimits()
	lim.MaxTotalBytes, lim.MaxEntries = 256<<20, 20_000
	tmp, _, err := bundle.ExtractFresh(parent, a, lim)
	if err != nil {
		return fmt.Errorf("%w: definition archive: %v", ErrInvalid, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		if _, serr := os.Stat(dir); serr != nil { // not a concurrent unpack of the same
			return err
		}
	}
	ents, err := os.ReadDir(parent)
	if err != nil || len(ents) <= maxDefinitions {
		return nil
	}
	type aged struct {
		name string
		at   time.Time
	}
	var all []aged
	for _, en := range ents {
		if fi, err := en.Info(); err == nil && en.Name() != filepath.Base(dir) {
			all = append(all, aged{en.Name(), fi.ModTime()})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	for _, x := range all[:len(all)-maxDefinitions+1] {
		_ = os.RemoveAll(filepath.Join(parent, x.name))
	}
	return nil
}

// diagError turns a config error into a DiagError when it has diagnostics.
func diagError(err error) error {
	var ds diag.Diagnostics
	if !errors.As(err, &ds) {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	de := &DiagError{}
	for _, d := range ds {
		de.Diags = append(de.Diags, api.Diagnostic{File: d.File, Line: d.Line, Column: d.Column, Field: d.Field, Message: d.Message, Snippet: d.Snippet})
	}
	return de
}

// env loads an environment's record and state (a missing one is empty).
func (e *Engine) env(ctx context.Context, name string) (store.Environment, *State, error) {
	rec, err := e.st.GetEnvironment(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return store.Environment{Name: name}, newState(name), nil
	}
	if err != nil {
		return rec, nil, err
	}
	st, err := decodeState(name, rec.State)
	return rec, st, err
}

// lock takes the environment's apply lock, waiting up to wait. It returns
// the release function; the lock is renewed until then.
func (e *Engine) lock(ctx context.Context, env, who string, wait time.Duration) (func(), error) {
	name := "env/" + env
	holder := fmt.Sprintf("apply by %s since %s", who, e.now().UTC().Format(time.RFC3339))
	deadline := e.now().Add(wait)
	for {
		_, err := e.st.AcquireLease(ctx, name, holder, e.now(), e.cfg.LockTTL)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrLeaseHeld) {
			return nil, err
		}
		if !e.now().Before(deadline) {
			msg := strings.TrimPrefix(err.Error(), "acquire lease "+name+" for "+holder+": ")
			return nil, fmt.Errorf("%w (%s): wait for it to finish, or retry with --lock-timeout", ErrLocked, strings.TrimPrefix(msg, store.ErrLeaseHeld.Error()+": "))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(e.cfg.LockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if _, err := e.st.AcquireLease(context.Background(), name, holder, e.now(), e.cfg.LockTTL); err != nil {
					e.log.Error("renew environment lock", "env", env, "err", err)
				}
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		_ = e.st.ReleaseLease(context.Background(), name, holder)
	}, nil
}

// lockHolder returns who holds an environment's lock, "" if nobody.
func (e *Engine) lockHolder(ctx context.Context, env string) string {
	l, err := e.st.GetLease(ctx, "env/"+env)
	if err != nil || !l.ExpiresAt.After(e.now()) {
		return ""
	}
	return l.Holder + " until " + l.ExpiresAt.Format(time.RFC3339)
}

// stateJSON encodes a state.
func stateJSON(s *State) []byte {
	b, _ := json.Marshal(s)
	return b
}
