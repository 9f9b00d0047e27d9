// Package fleet owns hosts' presence and jobs: it turns a job request into
// one persisted execution per matching host, dispatches them as signed
// commands (at least once), takes the agents' status reports (persisted in
// batches, acknowledged only once stored), streams live output to watchers,
// and accounts for every host: succeeded, failed, timed out, offline or
// unknown.
//
// Durable state is in the store; what the engine keeps in memory (presence,
// running jobs) is rebuilt from the store at start, so a server killed at
// any point resumes its jobs: executions that were sent but never confirmed
// are sent again under the same id, and the agent's journal turns a repeat
// into the recorded result instead of a second run.
//
// A status report is acknowledged only once it is stored, or recognised as
// stored already, whatever the engine's phase: reports that arrive before
// Start has loaded the unfinished jobs wait in the result queue, whose loop
// starts only after the load, and a report for an execution not tracked in
// memory is judged and stored from the store (its job is then tracked and
// finished). A report that could not be stored is answered with an error
// that is not ErrRefused, and the agent sends it again. Reports are
// attributed to the host the bus authenticated, never to a payload field.
//
// Presence writes are ordered: each status change carries its time and the
// store keeps only the newest, so a late "offline" never overwrites a newer
// "online"; a presence loop that finds it ran late (the server was paused)
// gives hosts a grace period instead of marking them all offline (see
// presence.go).
//
// The engine assumes it is the only active engine on its store. Several
// servers may share a store for the API, but only one should run engines
// (see docs/architecture.md).
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/validate"
	"github.com/gantry-dev/gantry/internal/watch"
)

// Store is what the engine needs from the store.
type Store interface {
	GetHost(ctx context.Context, id string) (store.HostRecord, error)
	ListHosts(ctx context.Context, includeRevoked bool) ([]store.HostRecord, error)
	SetHostFacts(ctx context.Context, id string, facts api.Facts) error
	SetHostStatus(ctx context.Context, id, status string, at time.Time) error
	SetHostClockSkew(ctx context.Context, id string, skew time.Duration) error
	TouchHosts(ctx context.Context, seen map[string]time.Time) error
	RevokeHost(ctx context.Context, id string) error
	CreateJob(ctx context.Context, j api.Job, execs []api.Execution) error
	GetJob(ctx context.Context, id string) (api.Job, error)
	GetExecution(ctx context.Context, id string) (api.Execution, error)
	UpdateExecutions(ctx context.Context, ups []store.ExecUpdate) error
	ListUnfinishedJobs(ctx context.Context) ([]api.Job, error)
	FinishJob(ctx context.Context, id string, at time.Time) error
	ListSchedules(ctx context.Context) ([]api.Schedule, error)
	MarkScheduleRun(ctx context.Context, id string, slot time.Time, jobID string) (bool, error)
}

// Sender delivers a command to its host (the bus signs and publishes it).
type Sender func(protocol.Command) error

// Config tunes the engine. Zero values take the defaults named.
type Config struct {
	// Heartbeat is the agents' heartbeat interval (default 5s); a host is
	// offline after 3 missed.
	Heartbeat time.Duration
	// Resend is how long a sent command may go unconfirmed before it is sent
	// again (default 3s).
	Resend time.Duration
	// CommandTTL is how long a command stays valid after it is sent
	// (default 60s); an execution never confirmed by then is given up.
	CommandTTL time.Duration
	// ResultGrace is how long past its timeout a running execution may stay
	// silent before it is marked unknown (default 30s).
	ResultGrace time.Duration
	// OutputCap is the bytes of each output stream kept per execution
	// (default 1 MiB).
	OutputCap int
	// MinScheduleInterval is the shortest interval between two runs of a
	// new schedule (default validate.DefaultMinScheduleInterval, 10s; the
	// server's --min-schedule-interval).
	MinScheduleInterval time.Duration
	// OnExecDone, if set, is called (without locks held) after the final
	// state of an execution of a job that is not of kind exec is stored:
	// the deployment engine uses it to take a host's result at once.
	OnExecDone func(jobID, execID string)
}

func (c *Config) defaults() {
	if c.Heartbeat <= 0 {
		c.Heartbeat = 5 * time.Second
	}
	if c.Resend <= 0 {
		c.Resend = 3 * time.Second
	}
	if c.CommandTTL <= 0 {
		c.CommandTTL = 60 * time.Second
	}
	if c.ResultGrace <= 0 {
		c.ResultGrace = 30 * time.Second
	}
	if c.OutputCap <= 0 {
		c.OutputCap = 1 << 20
	}
	if c.MinScheduleInterval <= 0 {
		c.MinScheduleInterval = validate.DefaultMinScheduleInterval
	}
}

// Errors the API maps to statuses.
var (
	// ErrInvalid wraps every validation error of a request.
	ErrInvalid = errors.New("invalid request")
	// ErrNoHosts means a job's selector matched no host.
	ErrNoHosts = errors.New("no host matches the selector")
	// ErrRefused wraps the reasons an agent's report is refused for good
	// (another host's or an unknown execution, an invalid state): the
	// agent may drop it. Any other error from SubmitStatus means "not
	// stored now, send it again".
	ErrRefused = errors.New("refused")
)

// Engine runs presence tracking, job dispatch and schedules.
type Engine struct {
	st   Store
	send Sender
	cfg  Config
	log  *slog.Logger
	now  func() time.Time

	mu       sync.Mutex
	hosts    map[string]*presence
	jobs     map[string]*jobState
	execs    map[string]*execState
	watchers watch.Hub[api.JobEvent]

	results chan result
	kick    chan struct{}
}

type jobState struct {
	job       api.Job // without executions
	order     []string
	remaining int // executions not yet final
}

type execState struct {
	id, jobID, hostID, hostName string
	state                       string
	timeout                     time.Duration
	user, script                string
	kind                        string
	deploy                      *protocol.DeployCommand // kind deploy: the command to send
	exec                        *protocol.ExecCommand   // kind lifecycle: the command to send
	dispatchedAt, lastSent      time.Time
	startedAt                   time.Time
}

type result struct {
	host string // the host the bus authenticated: the report's sender
	up   store.ExecUpdate
	done func(error) // called once the update is stored (or refused, or failed)
}

// New makes an engine; call Start to load state and run its loops.
func New(st Store, send Sender, cfg Config, log *slog.Logger) *Engine {
	cfg.defaults()
	return &Engine{
		st: st, send: send, cfg: cfg, log: log, now: time.Now,
		hosts: map[string]*presence{}, jobs: map[string]*jobState{}, execs: map[string]*execState{},
		results: make(chan result, 16384),
		kick:    make(chan struct{}, 1),
	}
}

// Heartbeat is the configured heartbeat interval.
func (e *Engine) Heartbeat() time.Duration { return e.cfg.Heartbeat }

// Start loads hosts and unfinished jobs from the store and runs the loops
// until ctx ends.
func (e *Engine) Start(ctx context.Context) error {
	hosts, err := e.st.ListHosts(ctx, false)
	if err != nil {
		return fmt.Errorf("load hosts: %w", err)
	}
	now := e.now()
	e.mu.Lock()
	for _, h := range hosts {
		e.hosts[h.ID] = loadPresence(h, now)
	}
	e.mu.Unlock()
	jobs, err := e.st.ListUnfinishedJobs(ctx)
	if err != nil {
		return fmt.Errorf("load unfinished jobs: %w", err)
	}
	for _, j := range jobs {
		e.trackNew(j, j.Executions)
	}
	if len(jobs) > 0 {
		e.log.Info("resuming unfinished jobs", "jobs", len(jobs))
	}
	// A server killed after it stored a job's last result but before it
	// marked the job finished left a running job with nothing left to
	// run: finish it now (nothing else would).
	for _, j := range jobs {
		e.maybeFinish(ctx, j.ID)
	}
	// Only now: status reports that arrived during start-up waited in
	// e.results, and are judged against the loaded jobs (or the store).
	go e.resultLoop(ctx)
	go e.dispatchLoop(ctx)
	go e.presenceLoop(ctx)
	go e.scheduleLoop(ctx)
	e.poke()
	return nil
}

// track registers a job and its executions in memory.
func (e *Engine) track(j api.Job, execs []api.Execution) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.trackLocked(j, execs)
}

// trackNew tracks a job unless it is tracked already, and reports whether
// it did.
func (e *Engine) trackNew(j api.Job, execs []api.Execution) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.jobs[j.ID]; ok {
		return false
	}
	e.trackLocked(j, execs)
	return true
}

// trackLocked is track with e.mu held.
func (e *Engine) trackLocked(j api.Job, execs []api.Execution) {
	js := &jobState{job: j}
	js.job.Executions = nil
	for _, x := range execs {
		js.order = append(js.order, x.ID)
		es := &execState{id: x.ID, jobID: j.ID, hostID: x.HostID, hostName: x.HostName, state: x.State,
			timeout: time.Duration(j.TimeoutSeconds) * time.Second, user: j.User, script: j.Script, kind: j.Kind}
		switch j.Kind {
		case api.JobKindDeploy:
			es.deploy = &protocol.DeployCommand{}
			if err := json.Unmarshal(x.Payload, es.deploy); err != nil && !api.ExecDone(x.State) {
				e.log.Error("execution with an unreadable payload: it will fail", "exec", x.ID, "err", err)
				es.deploy = nil
			}
		case api.JobKindLifecycle:
			es.exec = &protocol.ExecCommand{}
			if err := json.Unmarshal(x.Payload, es.exec); err != nil && !api.ExecDone(x.State) {
				e.log.Error("execution with an unreadable payload: it will fail", "exec", x.ID, "err", err)
				es.exec = nil
			}
		}
		if x.DispatchedAt != nil {
			es.dispatchedAt = *x.DispatchedAt
		}
		if x.StartedAt != nil {
			es.startedAt = *x.StartedAt
		}
		e.execs[x.ID] = es
		if !api.ExecDone(x.State) {
			js.remaining++
		}
	}
	e.jobs[j.ID] = js
}

func (e *Engine) poke() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Send signs and publishes a one-off command that needs no tracking (a
// cancel).
func (e *Engine) Send(c protocol.Command) error { return e.send(c) }

// HostOnline reports whether the engine currently sees hostID as online.
func (e *Engine) HostOnline(hostID string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.hosts[hostID]
	return p != nil && p.online
}

// sortExecs orders executions by host name, as the store does.
func sortExecs(xs []api.Execution) {
	sort.Slice(xs, func(i, j int) bool { return xs[i].HostName < xs[j].HostName })
}
