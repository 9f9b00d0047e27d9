package agent

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/bus"
	"github.com/gantry-dev/gantry/internal/protocol"
)

func TestClockObserve(t *testing.T) {
	c := &clock{}
	if _, ok := c.Skew(); ok || c.report() != nil || !c.stale() {
		t.Fatal("a new clock has a measurement")
	}
	sent := time.Date(2030, 1, 1, 0, 10, 0, 0, time.UTC)
	// The server read its clock at the round trip's midpoint, 10 minutes
	// behind this host.
	skew := c.observe(sent, sent.Add(40*time.Millisecond), sent.Add(20*time.Millisecond-10*time.Minute))
	if skew != 10*time.Minute {
		t.Fatalf("skew %s, want 10m0s", skew)
	}
	if got := c.report(); got == nil || got.SkewMillis != 600000 || got.ErrorMillis != 20 {
		t.Fatalf("report %+v", got)
	}
}

func TestTestClockOffset(t *testing.T) {
	t.Setenv(TestClockOffsetEnv, "")
	if d, err := testClockOffset(); d != 0 || err != nil {
		t.Fatalf("unset: %s %v", d, err)
	}
	t.Setenv(TestClockOffsetEnv, "-90s")
	if d, err := testClockOffset(); d != -90*time.Second || err != nil {
		t.Fatalf("-90s: %s %v", d, err)
	}
	t.Setenv(TestClockOffsetEnv, "10 minutes")
	if _, err := testClockOffset(); err == nil || !strings.Contains(err.Error(), TestClockOffsetEnv) {
		t.Fatalf("bad value: %v", err)
	}
}

// TestSkewedClockRunsCommandsAndNamesTheSkew: a host 10 minutes ahead of
// the server measures its skew from a hello reply (here: when a command
// looks expired by its own clock), runs a command that is valid by the
// server's time, and answers one that is really expired with a failure
// naming the skew.
func TestSkewedClockRunsCommandsAndNamesTheSkew(t *testing.T) {
	r := newRig(t)
	// From now on, hellos are answered by a server 10 minutes behind.
	_, err := r.bus.Conn.Subscribe(bus.AgentSubject(testHost, bus.KindHello), func(m *nats.Msg) {
		b, _ := json.Marshal(protocol.HelloReply{HeartbeatMillis: 1000, ServerTime: time.Now().Add(-10 * time.Minute).UTC()})
		_ = m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	serverNow := func() time.Time { return time.Now().Add(-10 * time.Minute).UTC() }

	valid := r.command("x-valid", "valid")
	valid.IssuedAt, valid.ExpiresAt = serverNow(), serverNow().Add(time.Minute)
	r.publish(r.signed(valid))
	if st := r.next(); st.ExecID != "x-valid" || st.State != api.ExecSucceeded {
		t.Fatalf("a command valid by the server's time, on a host 10m ahead: %+v", st)
	}

	expired := r.command("x-old", "old")
	expired.IssuedAt, expired.ExpiresAt = serverNow().Add(-time.Minute), serverNow().Add(-5*time.Second)
	r.publish(r.signed(expired))
	st := r.next() // within the measurement's error: about 5s ago
	if st.ExecID != "x-old" || st.State != api.ExecFailed ||
		!regexp.MustCompile(`^refused: command expired (4\.9\d*|5(\.\d+)?)s ago: host clock 10m0s ahead of the server$`).MatchString(st.Error) {
		t.Fatalf("an expired command on a host 10m ahead: %+v", st)
	}
	if n := r.runs("old"); n != 0 {
		t.Fatalf("the expired command ran %d times", n)
	}
}
