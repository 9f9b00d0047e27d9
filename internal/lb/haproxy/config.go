package haproxy

import (
	"fmt"
	"net"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/gantry-dev/gantry/api"
)

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	headerRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,62}$`)
	addrRE   = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)
	balances = []string{"roundrobin", "leastconn", "first", "random"}
)

// normalize checks cfg and fills in its defaults; it returns a copy.
func normalize(cfg api.LBConfig) (api.LBConfig, error) {
	out := api.LBConfig{Backends: make([]api.LBBackend, 0, len(cfg.Backends))}
	seenBackend, seenListen := map[string]bool{}, map[int]string{}
	for i, b := range cfg.Backends {
		where := fmt.Sprintf("backends[%d]", i)
		if !nameRE.MatchString(b.Name) {
			return out, fmt.Errorf("%s.name %q: letters, digits, '.', '_' and '-' only (1 to 63)", where, b.Name)
		}
		where = fmt.Sprintf("backend %q", b.Name)
		if seenBackend[b.Name] {
			return out, fmt.Errorf("%s: named twice", where)
		}
		seenBackend[b.Name] = true
		if b.Listen < 1 || b.Listen > 65535 {
			return out, fmt.Errorf("%s: listen %d: a port from 1 to 65535", where, b.Listen)
		}
		if other, dup := seenListen[b.Listen]; dup {
			return out, fmt.Errorf("%s: listen %d is already backend %q's port", where, b.Listen, other)
		}
		seenListen[b.Listen] = b.Name
		if b.Balance == "" {
			b.Balance = "roundrobin"
		}
		if !contains(balances, b.Balance) {
			return out, fmt.Errorf("%s: balance %q (valid: %s)", where, b.Balance, strings.Join(balances, ", "))
		}
		if b.Check.Path != "" && (!strings.HasPrefix(b.Check.Path, "/") || strings.ContainsAny(b.Check.Path, " \t\r\n\"'\\#")) {
			return out, fmt.Errorf("%s: check path %q: an absolute URL path without spaces or quotes", where, b.Check.Path)
		}
		if b.Check.IntervalMillis == 0 {
			b.Check.IntervalMillis = 1000
		}
		if b.Check.Rise == 0 {
			b.Check.Rise = 2
		}
		if b.Check.Fall == 0 {
			b.Check.Fall = 2
		}
		if b.Check.IntervalMillis < 10 || b.Check.Rise < 1 || b.Check.Fall < 1 {
			return out, fmt.Errorf("%s: check interval_ms (>= 10), rise and fall (>= 1) must be positive", where)
		}
		if b.Header != "" && !headerRE.MatchString(b.Header) {
			return out, fmt.Errorf("%s: header %q: a header name (letters, digits, '-')", where, b.Header)
		}
		servers := make([]api.LBServer, 0, len(b.Servers))
		seenServer := map[string]bool{}
		for j, s := range b.Servers {
			if !nameRE.MatchString(s.Name) {
				return out, fmt.Errorf("%s: servers[%d].name %q: letters, digits, '.', '_' and '-' only (1 to 63)", where, j, s.Name)
			}
			if seenServer[s.Name] {
				return out, fmt.Errorf("%s: server %q named twice", where, s.Name)
			}
			seenServer[s.Name] = true
			if !addrRE.MatchString(s.Addr) {
				return out, fmt.Errorf("%s: server %q: addr %q is not an address", where, s.Name, s.Addr)
			}
			if s.Port < 1 || s.Port > 65535 {
				return out, fmt.Errorf("%s: server %q: port %d: from 1 to 65535", where, s.Name, s.Port)
			}
			if s.Weight == 0 {
				s.Weight = 100
			}
			if s.Weight < 0 || s.Weight > 256 {
				return out, fmt.Errorf("%s: server %q: weight %d: from 0 to 256", where, s.Name, s.Weight)
			}
			if s.State == "" {
				s.State = api.LBReady
			}
			if err := checkState(s.State); err != nil {
				return out, fmt.Errorf("%s: server %q: %w", where, s.Name, err)
			}
			servers = append(servers, s)
		}
		b.Servers = servers
		out.Backends = append(out.Backends, b)
	}
	return out, nil
}

func checkState(state string) error {
	switch state {
	case api.LBReady, api.LBDrain, api.LBMaint:
		return nil
	}
	return fmt.Errorf("state %q (valid: %s, %s, %s)", state, api.LBReady, api.LBDrain, api.LBMaint)
}

// sameShape reports whether two configurations have the same backends
// apart from their servers: if so, going from one to the other needs no
// reload, only servers added and deleted at runtime.
func sameShape(a, b api.LBConfig) bool {
	if len(a.Backends) != len(b.Backends) {
		return false
	}
	for i := range a.Backends {
		x, y := a.Backends[i], b.Backends[i]
		x.Servers, y.Servers = nil, nil
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

// serverLine is a server's parameters after its name, as both the
// configuration file and `add server` take them (a dynamic server does not
// inherit default-server, so everything is spelled out).
func serverLine(b api.LBBackend, s api.LBServer) string {
	return fmt.Sprintf("%s weight %d check inter %dms rise %d fall %d", net.JoinHostPort(s.Addr, strconv.Itoa(s.Port)), s.Weight, b.Check.IntervalMillis, b.Check.Rise, b.Check.Fall)
}

// render writes haproxy.cfg for cfg, whose servers carry their desired
// state and weight (maint servers are `disabled`; drain comes back from
// the server-state file and the reconciliation after start).
func render(cfg api.LBConfig, socket, stateFile string) string {
	var w strings.Builder
	fmt.Fprintf(&w, `# Written by the gantry agent; do not edit: it is rewritten at every change.
# Servers' runtime state and weights come back from %s after a reload.
global
    stats socket %s mode 600 level admin expose-fd listeners
    stats timeout 30s
    server-state-file %s

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 30s
    option redispatch
    retries 3
    load-server-state-from-file global
`, stateFile, socket, stateFile)
	for _, b := range cfg.Backends {
		fmt.Fprintf(&w, "\nfrontend fe_%s\n    bind :%d\n    default_backend %s\n", b.Name, b.Listen, b.Name)
		fmt.Fprintf(&w, "\nbackend %s\n    balance %s\n", b.Name, b.Balance)
		if b.Check.Path != "" {
			fmt.Fprintf(&w, "    option httpchk GET %s\n", b.Check.Path)
		}
		if b.Header != "" {
			// %si:%sp: the address and port of the server that answered.
			fmt.Fprintf(&w, "    http-response set-header %s %%si:%%sp\n", b.Header)
		}
		for _, s := range b.Servers {
			fmt.Fprintf(&w, "    server %s %s", s.Name, serverLine(b, s))
			if s.State == api.LBMaint {
				w.WriteString(" disabled")
			}
			w.WriteString("\n")
		}
	}
	return w.String()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
