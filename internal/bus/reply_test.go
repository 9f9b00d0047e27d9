package bus

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// An agent answers a request it received on its command subject (once),
// but cannot publish on an _INBOX subject it did not receive.
func TestAgentRepliesOnlyToRequests(t *testing.T) {
	agentKey, _ := nkeys.CreateUser()
	agentPub, _ := agentKey.PublicKey()
	b, err := Start(Options{Listen: "127.0.0.1:0", Lookup: func(k string) (string, bool) { return "h-1", k == agentPub }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	var mu sync.Mutex
	var errs []string
	nc, err := nats.Connect(b.AgentURLs()[0], nats.Nkey(agentPub, agentKey.Sign), nats.MaxReconnects(0),
		nats.CustomInboxPrefix(InboxPrefix("h-1")),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			mu.Lock()
			errs = append(errs, err.Error())
			mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	// The agent answers twice; only the first answer may pass.
	if _, err := nc.Subscribe(CommandSubject("h-1"), func(m *nats.Msg) {
		_ = m.Respond([]byte("answer"))
		_ = m.Respond([]byte("second"))
	}); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	// The server sees every _INBOX subject (another request's inbox).
	victim, _ := b.Conn.SubscribeSync("_INBOX.victim")
	_ = b.Conn.Flush()
	reply, err := b.Conn.Request(CommandSubject("h-1"), []byte("cmd"), 5*time.Second)
	if err != nil {
		t.Fatalf("the agent's answer to a request did not arrive: %v", err)
	}
	if string(reply.Data) != "answer" {
		t.Fatalf("reply %q", reply.Data)
	}
	// An inbox the agent did not receive a request on: refused.
	_ = nc.Publish("_INBOX.victim", []byte("forged"))
	_ = nc.Flush()
	if m, err := victim.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("the agent published on an inbox it received no request on: %q", m.Data)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		joined := strings.ToLower(strings.Join(errs, "; "))
		mu.Unlock()
		if strings.Contains(joined, `permissions violation for publish to "_inbox.victim"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no permissions violation for the forged inbox: %s", joined)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Listen ":0" is any free port, never NATS's default 4222: two buses
// started with it both run.
func TestListenAnyPort(t *testing.T) {
	var urls []string
	for range 2 {
		b, err := Start(Options{Listen: "127.0.0.1:0", Lookup: func(string) (string, bool) { return "", false }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		urls = append(urls, b.AgentURLs()[0])
	}
	if urls[0] == urls[1] || strings.HasSuffix(urls[0], ":4222") {
		t.Fatalf("two buses on 127.0.0.1:0 got %v: want two free ports", urls)
	}
}
