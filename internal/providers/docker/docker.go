package docker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/internal/provider"
	"github.com/gantry-dev/gantry/internal/providers/docker/engine"
)

// Type is the provider's type name in HCL: provider "docker" "NAME".
const Type = "docker"

// Labels of the provider's own, beside provider.LabelEnv, LabelGroup and
// LabelResource.
const (
	// LabelNetworks holds a machine's network ids, comma-separated, in the
	// order of its spec (the first gives Address).
	LabelNetworks = "gantry.networks"
	// LabelForward holds the loopback server addresses (host:port,
	// comma-separated) the machine's agent reaches through forwarders.
	LabelForward = "gantry.forward"
	// LabelPrefix prefixes the group's labels: gantry.label.<key>.
	LabelPrefix = "gantry.label."
)

// Where the agent lives inside a container.
const (
	// AgentPath is where the agent binary is copied in the container.
	AgentPath = "/.gantry/gantry"
	// AgentDataDir is the agent's --data-dir in the container.
	AgentDataDir = "/var/lib/gantry-agent"
)

// Timeouts of the engine calls (each also bounded by the caller's context).
const (
	callTimeout   = 30 * time.Second // inspect, list, connect, update, ...
	createTimeout = time.Minute      // create container or network
	copyTimeout   = 3 * time.Minute  // upload of the agent binary
	startTimeout  = time.Minute      // start container
	removeTimeout = time.Minute      // force remove (kills the container)
)

// Config keys of the provider block.
const configHost = "host"

// Info describes the provider type to the engine.
var Info = provider.Info{
	Type:     Type,
	Doc:      "machines are Docker containers running the gantry agent, networks are Docker bridge networks",
	Networks: true,
	Images:   true,
	InPlace:  []string{"cpus", "memory"},
	Config: map[string]string{
		configHost: "Docker daemon address (default $DOCKER_HOST or unix:///var/run/docker.sock)",
	},
	MachineAttrs: map[string]string{},
}

// networkAttrs are the attributes a docker network accepts.
var networkAttrs = map[string]string{
	"subnet":   "the network's IPv4 subnet as a CIDR, e.g. 10.40.0.0/24 (default: the engine picks one)",
	"internal": `"true" for a network without a route out (default "false")`,
}

func init() {
	provider.Register(provider.Factory{
		Info: Info,
		New: func(config map[string]string, env provider.Env) (provider.Provider, error) {
			return New(config, env)
		},
	})
}

// Docker is a provider instance: one Docker daemon. It is safe for
// concurrent use. Call Close when done, to stop the forwarders its
// machines' agents use to reach the server.
type Docker struct {
	c   *engine.Client
	fwd *holder
}

var _ provider.Provider = (*Docker)(nil)

// New returns a provider for the daemon named by config["host"] (default
// $DOCKER_HOST, else unix:///var/run/docker.sock). It makes no request: a
// daemon that is down shows on the first call.
func New(config map[string]string, _ provider.Env) (*Docker, error) {
	if err := checkKeys("provider \"docker\"", config, Info.Config); err != nil {
		return nil, err
	}
	c, err := engine.New(config[configHost])
	if err != nil {
		return nil, err
	}
	c.Hint = `set provider "docker" { host = … } or DOCKER_HOST`
	return &Docker{c: c, fwd: newHolder()}, nil
}

// Host returns the daemon address the provider talks to.
func (d *Docker) Host() string { return d.c.Host() }

// Close stops the forwarders no other provider of the process uses and
// releases idle connections to the daemon. A provider still works after
// Close (forwarders start again when needed); Close it again when done.
func (d *Docker) Close() error {
	d.fwd.releaseAll()
	d.c.Close()
	return nil
}

// List returns the containers (running or not) and networks that carry
// gantry.env=env.
func (d *Docker) List(ctx context.Context, env string) ([]provider.Found, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	q := engine.LabelFilter(provider.LabelEnv + "=" + env)
	var cs []struct {
		ID     string `json:"Id"`
		Labels map[string]string
	}
	q.Set("all", "1")
	if err := d.c.Do(ctx, http.MethodGet, "/containers/json", q, nil, &cs); err != nil {
		return nil, wrap(err, "list containers of env %q", env)
	}
	var out []provider.Found
	for _, c := range cs {
		out = append(out, provider.Found{Kind: "machine", ID: c.ID, Resource: c.Labels[provider.LabelResource]})
	}
	var ns []struct {
		ID     string `json:"Id"`
		Labels map[string]string
	}
	if err := d.c.Do(ctx, http.MethodGet, "/networks", engine.LabelFilter(provider.LabelEnv+"="+env), nil, &ns); err != nil {
		return nil, wrap(err, "list networks of env %q", env)
	}
	for _, n := range ns {
		out = append(out, provider.Found{Kind: "network", ID: n.ID, Resource: n.Labels[provider.LabelResource]})
	}
	return out, nil
}

// wrap adds the operation to an engine error: "docker: <op>: <cause>". A
// daemon that did not answer is reported as such, without the operation:
// the message is about the daemon, not the object.
func wrap(err error, format string, args ...any) error {
	var ue *engine.UnreachableError
	if errors.As(err, &ue) {
		return err
	}
	return fmt.Errorf("docker: %s: %w", fmt.Sprintf(format, args...), err)
}

// cause is wrap without the "docker: " prefix, for errors that wrap will
// wrap again.
func cause(err error, format string, args ...any) error {
	var ue *engine.UnreachableError
	if errors.As(err, &ue) {
		return err
	}
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
}

// checkKeys refuses attributes that are not in known, naming those that are.
func checkKeys(what string, attrs map[string]string, known map[string]string) error {
	var bad []string
	for k := range attrs {
		if _, ok := known[k]; !ok {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, k)
	}
	sort.Strings(names)
	accepted := "none"
	if len(names) > 0 {
		accepted = strings.Join(names, ", ")
	}
	return fmt.Errorf("docker: %s: unknown attribute(s) %s (accepted: %s)", what, strings.Join(bad, ", "), accepted)
}

// detached returns a context for cleanup after ctx may have ended.
func detached(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}
