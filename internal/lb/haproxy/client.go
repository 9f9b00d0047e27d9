package haproxy

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// Client speaks HAProxy's runtime API on its stats socket (a unix socket
// with `level admin`). Each command is one connection: HAProxy answers a
// non-interactive connection and closes it, which costs well under a
// millisecond on a local socket.
type Client struct {
	// Socket is the stats socket's path.
	Socket string
	// Timeout caps one command (default 5 s).
	Timeout time.Duration
}

// Run sends one command line (several commands may be joined with ";")
// and returns HAProxy's whole answer.
func (c *Client) Run(ctx context.Context, cmd string) (string, error) {
	if strings.ContainsAny(cmd, "\n\r") {
		return "", fmt.Errorf("haproxy: command %q has a line break", cmd)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return "", fmt.Errorf("haproxy runtime socket %s: %w", c.Socket, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", fmt.Errorf("haproxy runtime socket %s: %w", c.Socket, err)
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		return "", fmt.Errorf("haproxy runtime socket %s: %s: %w", c.Socket, firstWord(cmd), err)
	}
	return string(b), nil
}

// Exec runs commands that answer nothing on success (set, enable, …):
// any answer is HAProxy's error message.
func (c *Client) Exec(ctx context.Context, cmd string) error {
	out, err := c.Run(ctx, cmd)
	if err != nil {
		return err
	}
	if msg := strings.TrimSpace(out); msg != "" {
		return fmt.Errorf("haproxy refused %q: %s", cmd, oneLine(msg))
	}
	return nil
}

// ServerState is one line of `show servers state`.
type ServerState struct {
	Backend, Name, Addr string
	Port                int
	// OpState: 0 stopped (DOWN), 1 starting, 2 running, 3 stopping.
	OpState int
	// AdminState is HAProxy's admin flags (maint 0x01/0x02/0x20/0x40,
	// drain 0x08/0x10; 0x04 only records `disabled` in the configuration).
	AdminState int
	UWeight    int
	// CheckState is HAProxy's check flags (0x02 configured, 0x04 enabled).
	CheckState int
}

// Admin returns the admin state as gantry names it.
func (s ServerState) Admin() string {
	switch {
	case s.AdminState&(0x01|0x02|0x20|0x40) != 0:
		return api.LBMaint
	case s.AdminState&(0x08|0x10) != 0:
		return api.LBDrain
	}
	return api.LBReady
}

// Snapshot is the result of Status: `show stat` and `show servers state`
// read over one connection.
type Snapshot struct {
	Servers []api.LBServerStatus
	// Backends are the backends' names, in HAProxy's order.
	Backends []string
}

// Snapshot reads every server's counters and states.
func (c *Client) Snapshot(ctx context.Context) (Snapshot, error) {
	out, err := c.Run(ctx, "show stat;show servers state")
	if err != nil {
		return Snapshot{}, err
	}
	return parseSnapshot(out)
}

// parseSnapshot parses the joined answers of `show stat` (CSV whose
// header line starts "# pxname") and `show servers state` (a version line,
// then a header line starting "# be_id", then space-separated fields).
func parseSnapshot(out string) (Snapshot, error) {
	var statLines, stateLines []string
	mode := ""
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "# pxname"):
			mode = "stat"
		case strings.HasPrefix(line, "# be_id"):
			mode = "state"
		case strings.TrimSpace(line) == "":
			continue
		}
		switch mode {
		case "stat":
			statLines = append(statLines, line)
		case "state":
			stateLines = append(stateLines, line)
		}
	}
	if len(statLines) == 0 || len(stateLines) == 0 {
		return Snapshot{}, fmt.Errorf("haproxy: unexpected answer to show stat / show servers state: %q", truncate(out, 200))
	}
	states, err := parseServersState(stateLines)
	if err != nil {
		return Snapshot{}, err
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(strings.Join(statLines, "\n"), "# ")))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return Snapshot{}, fmt.Errorf("haproxy: show stat: %w", err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return rec[i]
		}
		return ""
	}
	num := func(rec []string, name string) int64 {
		n, _ := strconv.ParseInt(get(rec, name), 10, 64)
		return n
	}
	var snap Snapshot
	for _, rec := range recs[1:] {
		px, sv := get(rec, "pxname"), get(rec, "svname")
		switch sv {
		case "FRONTEND":
			continue
		case "BACKEND":
			snap.Backends = append(snap.Backends, px)
			continue
		}
		st, ok := states[px+"/"+sv]
		if !ok {
			continue // gone between the two commands
		}
		s := api.LBServerStatus{
			Backend:        px,
			Name:           sv,
			Addr:           st.Addr,
			Port:           st.Port,
			Weight:         st.UWeight,
			State:          st.Admin(),
			Check:          get(rec, "check_status"),
			Sessions:       int(num(rec, "scur")),
			Total:          num(rec, "stot"),
			HTTP5xx:        num(rec, "hrsp_5xx"),
			Errors:         num(rec, "eresp") + num(rec, "econ"),
			RespTimeMillis: int(num(rec, "rtime")),
		}
		for _, h := range []string{"hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx"} {
			s.Responses += num(rec, h)
		}
		if st.CheckState&0x02 != 0 { // checks configured
			s.Health = "DOWN"
			if st.OpState != 0 {
				s.Health = "UP"
			}
		}
		snap.Servers = append(snap.Servers, s)
	}
	return snap, nil
}

// ServersState runs `show servers state`.
func (c *Client) ServersState(ctx context.Context) (map[string]ServerState, string, error) {
	out, err := c.Run(ctx, "show servers state")
	if err != nil {
		return nil, "", err
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "# be_id") || (len(lines) > 0 && strings.TrimSpace(l) != "") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return nil, "", fmt.Errorf("haproxy: unexpected answer to show servers state: %q", truncate(out, 200))
	}
	m, err := parseServersState(lines)
	return m, out, err
}

// parseServersState parses `show servers state` from its "# be_id" header
// line on, by "backend/server".
func parseServersState(lines []string) (map[string]ServerState, error) {
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "# be_id") {
		return nil, errors.New("haproxy: show servers state: no header line")
	}
	col := map[string]int{}
	for i, h := range strings.Fields(strings.TrimPrefix(lines[0], "# ")) {
		col[h] = i
	}
	m := map[string]ServerState{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(f) {
				return f[i]
			}
			return ""
		}
		atoi := func(name string) int {
			n, _ := strconv.Atoi(get(name))
			return n
		}
		s := ServerState{Backend: get("be_name"), Name: get("srv_name"), Addr: get("srv_addr"), Port: atoi("srv_port"),
			OpState: atoi("srv_op_state"), AdminState: atoi("srv_admin_state"), UWeight: atoi("srv_uweight"), CheckState: atoi("srv_check_state")}
		if s.Backend == "" || s.Name == "" {
			continue
		}
		m[s.Backend+"/"+s.Name] = s
	}
	return m, nil
}

func firstWord(s string) string {
	if i := strings.IndexByte(s, ' '); i > 0 {
		return s[:i]
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
