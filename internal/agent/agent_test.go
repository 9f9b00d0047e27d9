package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/bus"
	"github.com/gantry-dev/gantry/internal/protocol"
)

// rig is a real embedded bus, the server's signer and one agent process
// (in-process) already enrolled as host h-test.
type rig struct {
	t        *testing.T
	bus      *bus.Bus
	signer   *bus.Signer
	statuses chan protocol.Status
	dir      string
}

const testHost = "h-test"

func newRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	b, err := bus.Start(bus.Options{Listen: "127.0.0.1:0", Lookup: func(k string) (string, bool) { return testHost, k == pub }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	signer, err := bus.LoadOrCreateSigner(filepath.Join(dir, "server.nkey"))
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, bus: b, signer: signer, statuses: make(chan protocol.Status, 100), dir: dir}
	// The server side: store nothing, acknowledge every final status.
	_, err = b.Conn.Subscribe(bus.AgentSubject(testHost, bus.KindStatus), func(m *nats.Msg) {
		var st protocol.Status
		_ = json.Unmarshal(m.Data, &st)
		if api.ExecDone(st.State) {
			r.statuses <- st
		}
		if m.Reply != "" {
			_ = m.Respond([]byte(`{"ok":true}`))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	hello, _ := b.Conn.SubscribeSync(bus.AgentSubject(testHost, bus.KindHello))
	agentDir := filepath.Join(dir, "agent")
	id := Identity{HostID: testHost, Name: "test", Seed: string(seed), ServerKey: signer.PublicKey(), NATSURLs: b.AgentURLs(), HeartbeatMillis: 1000}
	if err := saveIdentity(filepath.Join(agentDir, "identity.json"), id); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Config{DataDir: agentDir, Insecure: true}) }() // a plain test bus, no pin
	t.Cleanup(func() { cancel(); <-done })
	if _, err := hello.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("agent never said hello: %v", err)
	}
	return r
}

// command is a valid exec command that appends to marker.
func (r *rig) command(id, marker string) protocol.Command {
	now := time.Now().UTC()
	return protocol.Command{ID: id, HostID: testHost, Kind: protocol.CmdExec, IssuedAt: now, ExpiresAt: now.Add(time.Minute),
		Exec: &protocol.ExecCommand{JobID: "j-test", Script: "echo ran >> " + filepath.Join(r.dir, marker) + "; echo " + id, TimeoutSeconds: 10, OutputCap: 1024}}
}

func (r *rig) publish(m *nats.Msg) {
	r.t.Helper()
	if err := r.bus.Conn.PublishMsg(m); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) signed(c protocol.Command) *nats.Msg {
	r.t.Helper()
	m, err := r.signer.Message(c)
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

func (r *rig) next() protocol.Status {
	r.t.Helper()
	select {
	case st := <-r.statuses:
		return st
	case <-time.After(15 * time.Second):
		r.t.Fatal("no status from the agent within 15s")
	}
	return protocol.Status{}
}

// nextNew is the next final status that is not a resend of one of the
// given executions' results: results are delivered at least once, and a
// busy machine's outbox may resend one before the ack arrived.
func (r *rig) nextNew(seen ...string) protocol.Status {
	r.t.Helper()
	for {
		st := r.next()
		if !slices.Contains(seen, st.ExecID) {
			return st
		}
	}
}

func (r *rig) runs(marker string) int {
	b, err := os.ReadFile(filepath.Join(r.dir, marker))
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "ran\n")
}

func TestCommandsRunOnceAndRefuseForgeries(t *testing.T) {
	r := newRig(t)

	// A valid command runs once.
	orig := r.signed(r.command("x-first", "first"))
	r.publish(orig)
	st := r.next()
	if st.ExecID != "x-first" || st.State != api.ExecSucceeded || string(st.Stdout) != "x-first\n" {
		t.Fatalf("first result: %+v", st)
	}

	// The same message replayed: the recorded result, not a second run.
	replay := nats.NewMsg(orig.Subject)
	replay.Data, replay.Header = orig.Data, orig.Header
	r.publish(replay)
	st = r.next()
	if st.ExecID != "x-first" || st.State != api.ExecSucceeded {
		t.Fatalf("replayed result: %+v", st)
	}
	if n := r.runs("first"); n != 1 {
		t.Fatalf("replayed command ran %d times", n)
	}

	// Forgeries are dropped. Commands are handled in order, so once the
	// valid command sent after them has answered, they have been refused.
	otherKey, _ := nkeys.CreateServer()
	forged := r.command("x-forged", "forged")
	body, _ := json.Marshal(forged)
	sig, _ := otherKey.Sign(body)
	fm := nats.NewMsg(bus.CommandSubject(testHost))
	fm.Data = body
	fm.Header.Set(bus.SigHeader, encodeSig(sig))
	r.publish(fm)

	unsigned := nats.NewMsg(bus.CommandSubject(testHost))
	unsigned.Data, _ = json.Marshal(r.command("x-unsigned", "unsigned"))
	r.publish(unsigned)

	tampered := r.signed(r.command("x-tampered", "tampered"))
	tampered.Data = []byte(strings.Replace(string(tampered.Data), "echo ran", "echo RAN", 1))
	r.publish(tampered)

	elsewhere := r.command("x-elsewhere", "elsewhere")
	elsewhere.HostID = "h-other"
	m := r.signed(elsewhere)
	m.Subject = bus.CommandSubject(testHost)
	r.publish(m)

	r.publish(r.signed(r.command("x-sentinel", "sentinel")))
	st = r.nextNew("x-first")
	if st.ExecID != "x-sentinel" {
		t.Fatalf("a refused command produced a result: %+v", st)
	}
	// An expired command is not run but answered: failed, naming the
	// clock (this rig's server never answers hellos: the skew is unknown).
	expired := r.command("x-expired", "expired")
	expired.ExpiresAt = time.Now().Add(-time.Second)
	r.publish(r.signed(expired))
	st = r.nextNew("x-first", "x-sentinel")
	if st.ExecID != "x-expired" || st.State != api.ExecFailed ||
		!strings.HasPrefix(st.Error, "refused: command expired ") || !strings.HasSuffix(st.Error, "host clock not yet measured against the server's") {
		t.Fatalf("expired command's result: %+v", st)
	}
	for _, marker := range []string{"forged", "unsigned", "tampered", "expired", "elsewhere"} {
		if n := r.runs(marker); n != 0 {
			t.Errorf("%s command ran %d times", marker, n)
		}
	}
}

func encodeSig(sig []byte) string { return base64.RawStdEncoding.EncodeToString(sig) }
