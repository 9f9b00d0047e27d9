package bus

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// An external NATS configured with gantry's auth_callout block admits
// enrolled hosts with exactly their own subjects and refuses other keys.
func TestExternalNATSAuthCallout(t *testing.T) {
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "nats-callout.nkey")
	issuer, err := loadOrCreateKey(keyPath, nkeys.CreateAccount)
	if err != nil {
		t.Fatal(err)
	}
	issuerPub, _ := issuer.PublicKey()
	// What NATSConfigSnippet tells an operator to configure.
	snippet := NATSConfigSnippet(issuerPub, "gantry")
	placeholder := strings.Split(strings.Split(snippet, `nkey: "`)[1], `"`)[0]
	deny := &server.SubjectPermission{Deny: []string{">"}}
	ext, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Users:       []*server.User{{Username: "gantry", Password: "s3cret"}},
		Nkeys:       []*server.NkeyUser{{Nkey: placeholder, Permissions: &server.Permissions{Publish: deny, Subscribe: deny}}},
		AuthCallout: &server.AuthCallout{Issuer: issuerPub, AuthUsers: []string{"gantry"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	go ext.Start()
	if !ext.ReadyForConnections(10 * time.Second) {
		t.Fatal("external NATS did not start")
	}
	t.Cleanup(ext.Shutdown)

	agentKey, _ := nkeys.CreateUser()
	agentPub, _ := agentKey.PublicKey()
	var mu sync.Mutex
	revoked := false
	lookup := func(k string) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		return "h-ext", k == agentPub && !revoked
	}
	u := strings.Replace(ext.ClientURL(), "nats://", "nats://gantry:s3cret@", 1)
	b, err := Start(Options{ExternalURL: u, CalloutKey: keyPath, Lookup: lookup})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if got := b.AgentURLs()[0]; strings.Contains(got, "s3cret") || strings.Contains(got, "gantry@") {
		t.Fatalf("agents would be given the server's credentials: %s", got)
	}

	connect := func(kp nkeys.KeyPair) (*nats.Conn, func() string, error) {
		pub, _ := kp.PublicKey()
		var errs []string
		var emu sync.Mutex
		nc, err := nats.Connect(b.AgentURLs()[0], nats.Nkey(pub, kp.Sign), nats.MaxReconnects(0),
			// The callout is a round trip through gantry: on a loaded 2-core
			// machine the default 2 s connect timeout was seen to run out.
			nats.Timeout(15*time.Second),
			nats.CustomInboxPrefix(InboxPrefix("h-ext")),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				emu.Lock()
				errs = append(errs, err.Error())
				emu.Unlock()
			}))
		if err == nil {
			t.Cleanup(nc.Close)
		}
		seen := func() string {
			emu.Lock()
			defer emu.Unlock()
			return fmt.Sprint(errs)
		}
		return nc, seen, err
	}
	nc, errs, err := connect(agentKey)
	if err != nil {
		t.Fatalf("enrolled agent refused by the callout: %v", err)
	}
	// The server receives what the agent publishes on its own subject.
	sub, _ := b.Conn.SubscribeSync(AgentSubject("h-ext", KindHeartbeat))
	_ = b.Conn.Flush()
	if err := nc.Publish(AgentSubject("h-ext", KindHeartbeat), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("own heartbeat not delivered: %v", err)
	}
	// It may answer a request the server sends it (the LB commands), once.
	if _, err := nc.Subscribe(CommandSubject("h-ext"), func(m *nats.Msg) { _ = m.Respond([]byte("done")) }); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	reply, err := b.Conn.Request(CommandSubject("h-ext"), []byte("lb"), 10*time.Second)
	if err != nil || string(reply.Data) != "done" {
		t.Fatalf("the agent could not answer the server's request through the callout: %v %v", reply, err)
	}
	// Another host's subjects are refused.
	_, _ = nc.SubscribeSync(CommandSubject("h-other"))
	_ = nc.Publish(AgentSubject("h-other", KindStatus), []byte("{}"))
	_ = nc.Flush()
	deadline := time.Now().Add(5 * time.Second)
	for {
		joined := errs()
		if strings.Count(strings.ToLower(joined), "permissions violation") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no permission violations for another host's subjects: %s", joined)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Unknown keys and revoked hosts are refused.
	stranger, _ := nkeys.CreateUser()
	if _, _, err := connect(stranger); err == nil {
		t.Error("an unknown key was admitted")
	}
	mu.Lock()
	revoked = true
	mu.Unlock()
	if _, _, err := connect(agentKey); err == nil {
		t.Error("a revoked key was admitted")
	}
}
