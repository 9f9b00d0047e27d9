package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/gantry-dev/gantry/api"
)

type identity struct {
	HostID   string   `json:"host_id"`
	Seed     string   `json:"nkey_seed"`
	NATSURLs []string `json:"nats_urls"`
	// CACert is the server's CA (PEM) the agent verifies the bus with;
	// empty without TLS.
	CACert string `json:"ca_cert"`
}

func (c *cluster) identity(name string) identity {
	c.t.Helper()
	path := filepath.Join(c.agentDir(name), "identity.json")
	st, err := os.Stat(path)
	if err != nil {
		c.t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		c.t.Errorf("%s has mode %v, want 0600", path, st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	var id identity
	if err := json.Unmarshal(b, &id); err != nil {
		c.t.Fatal(err)
	}
	return id
}

// connectAs opens a NATS connection with a host's own credentials and
// collects the asynchronous errors the server sends back.
func connectAs(t *testing.T, id identity) (*nats.Conn, func() []string, error) {
	t.Helper()
	kp, err := nkeys.FromSeed([]byte(id.Seed))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	var mu sync.Mutex
	var errs []string
	opts := []nats.Option{nats.Nkey(pub, kp.Sign), nats.MaxReconnects(0),
		nats.CustomInboxPrefix("_INBOX." + id.HostID),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			mu.Lock()
			errs = append(errs, err.Error())
			mu.Unlock()
		})}
	if id.CACert != "" { // the bus is TLS: trust the server's CA, as the agent does
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(id.CACert)) {
			t.Fatalf("identity of %s: unreadable ca_cert", id.HostID)
		}
		opts = append(opts, nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	}
	nc, err := nats.Connect(strings.Join(id.NATSURLs, ","), opts...)
	if err != nil {
		return nil, nil, err
	}
	t.Cleanup(nc.Close)
	return nc, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), errs...) }, nil
}

// Agent A's credentials can neither receive B's commands nor publish as B;
// a removed host is dropped at once and cannot reconnect.
func TestAgentIsolationAndRevocation(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.agentsOnline(map[string]string{"a": "role=x", "b": "role=x"})
	a, b := c.identity("a"), c.identity("b")

	nc, errs, err := connectAs(t, a)
	if err != nil {
		t.Fatalf("connect with A's own identity: %v", err)
	}
	// Allowed: its own command subject and its own subjects.
	if _, err := nc.SubscribeSync("gantry.cmd." + a.HostID); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("gantry.agent."+a.HostID+".hb", []byte(`{"seq":1}`)); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	if e := errs(); len(e) != 0 {
		t.Fatalf("own subjects refused: %v", e)
	}
	// Refused: B's commands, B's subjects, anything else.
	_, _ = nc.SubscribeSync("gantry.cmd." + b.HostID)
	_, _ = nc.SubscribeSync("gantry.cmd.>")
	_ = nc.Publish("gantry.agent."+b.HostID+".status", []byte(`{"exec_id":"x-forged","state":"succeeded"}`))
	_ = nc.Publish("gantry.cmd."+b.HostID, []byte(`{}`))
	_ = nc.Flush()
	eventually(t, 5*time.Second, "4 permission violations", func() (bool, string) {
		n := 0
		for _, e := range errs() {
			if strings.Contains(strings.ToLower(e), "permissions violation") {
				n++
			}
		}
		return n >= 4, strings.Join(errs(), "; ")
	})
	for _, want := range []string{"Subscription to \"gantry.cmd." + b.HostID, "Subscription to \"gantry.cmd.>", "Publish to \"gantry.agent." + b.HostID, "Publish to \"gantry.cmd." + b.HostID} {
		if !strings.Contains(strings.Join(errs(), "\n"), want) {
			t.Errorf("no violation for %s in %v", want, errs())
		}
	}

	// Removal: the live agent is dropped and exits non-zero.
	c.gantry("hosts", "rm", "a").ok(t)
	if code := c.agents["a"].exitCode(15 * time.Second); code == 0 {
		t.Errorf("revoked agent exited 0")
	}
	if !strings.Contains(c.agents["a"].out.String(), "refused this agent's identity") {
		t.Errorf("revoked agent output:\n%s", c.agents["a"].out)
	}
	eventually(t, 5*time.Second, "test connection with A's key dropped", func() (bool, string) { return nc.IsClosed(), nc.Status().String() })
	if _, _, err := connectAs(t, a); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("reconnect with a revoked key: %v, want an authorization error", err)
	}
	p := c.startAgent("a", "", "")
	if code := p.exitCode(15 * time.Second); code == 0 {
		t.Errorf("restarted revoked agent exited 0")
	}
	r := c.gantry("hosts", "ls", "-o", "json")
	var hosts []api.Host
	_ = json.Unmarshal([]byte(r.stdout), &hosts)
	if len(hosts) != 1 || hosts[0].Name != "b" {
		t.Errorf("hosts after rm: %+v", hosts)
	}
	// B is unaffected.
	c.gantry("run", "--selector", "role=x", "--", "true").ok(t)
}
