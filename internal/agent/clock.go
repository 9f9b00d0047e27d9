package agent

// Clock skew. Every hello reply carries the server's time; the agent takes
// the midpoint of the request's round trip on its own clock as the moment
// the server read its clock, so its skew is midpoint - ServerTime, within
// half the round trip. It keeps the skew, reports it in every heartbeat
// (the server stores it and `gantry hosts ls/show` flag a host off by more
// than 30s), and checks commands' expiry against the server's time (its
// clock minus the skew: see bus.Verifier). A command still refused as
// expired makes it measure again (the skew may be stale: the host's clock
// was stepped since), then, if it is still expired, fail with an error
// naming the skew instead of staying silent.

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/protocol"
)

// TestClockOffsetEnv names the environment variable that shifts the
// agent's clock by a duration (e.g. "10m", "-90s"). It is for tests only:
// it emulates a host whose clock is off, and only the agent reads it.
const TestClockOffsetEnv = "GANTRY_TEST_CLOCK_OFFSET"

// remeasureEvery is the least time between two measurements made because a
// command was refused as expired.
const remeasureEvery = 10 * time.Second

// clock is the agent's view of time: its host's clock (shifted by the
// test-only offset) and the skew it last measured against the server's.
type clock struct {
	offset time.Duration

	mu         sync.Mutex
	skew       time.Duration // local minus server
	errBound   time.Duration // half the round trip of the measurement
	measured   bool
	measuredAt time.Time // local clock
}

// testClockOffset reads TestClockOffsetEnv ("" = none).
func testClockOffset() (time.Duration, error) {
	v := os.Getenv(TestClockOffsetEnv)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: want a Go duration such as 10m or -90s: %w", TestClockOffsetEnv, v, err)
	}
	return d, nil
}

// now is the host's clock.
func (c *clock) now() time.Time { return time.Now().Add(c.offset) }

// observe records a measurement: the request left at sent and its reply
// came at received (both on c.now), carrying server's time.
func (c *clock) observe(sent, received, server time.Time) time.Duration {
	rtt := received.Sub(sent)
	mid := sent.Add(rtt / 2)
	skew := mid.Sub(server)
	c.mu.Lock()
	c.skew, c.errBound, c.measured, c.measuredAt = skew, rtt/2, true, received
	c.mu.Unlock()
	return skew
}

// Skew returns the last measured skew (the host's clock minus the
// server's) and whether there is one.
func (c *clock) Skew() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.skew, c.measured
}

// report is the measurement as heartbeats carry it (nil until measured).
func (c *clock) report() *protocol.Clock {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.measured {
		return nil
	}
	return &protocol.Clock{SkewMillis: c.skew.Milliseconds(), ErrorMillis: c.errBound.Milliseconds()}
}

// stale reports whether a new measurement may be made now because a
// command was refused: none yet, or the last is over remeasureEvery old.
func (c *clock) stale() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.measured || c.now().Sub(c.measuredAt).Abs() >= remeasureEvery
}

// logSkew logs a measured skew: a warning beyond api.MaxClockSkew.
func (a *Agent) logSkew(skew time.Duration) {
	if skew.Abs() > api.MaxClockSkew {
		a.log.Warn("this host's clock is off: commands are checked against the server's time; fix the clock (NTP)",
			"clock", api.DescribeClockSkew(skew))
		return
	}
	a.log.Debug("clock measured against the server's", "clock", api.DescribeClockSkew(skew))
}
