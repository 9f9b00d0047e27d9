package api

import (
	"fmt"
	"time"
)

// MaxClockSkew is how far a host's clock may be from the server's before
// `gantry hosts ls` and `hosts show` flag it (30s). Commands still run on a
// host beyond it: agents check a command's expiry against the server's
// time, corrected by the skew they measured.
const MaxClockSkew = 30 * time.Second

// ClockSkew returns the host's measured clock skew (its clock minus the
// server's) and whether it was measured at all.
func (h Host) ClockSkew() (time.Duration, bool) {
	if h.ClockSkewMillis == nil {
		return 0, false
	}
	return time.Duration(*h.ClockSkewMillis) * time.Millisecond, true
}

// ClockSkewed reports whether the host's clock is known to be off by more
// than MaxClockSkew.
func (h Host) ClockSkewed() bool {
	d, ok := h.ClockSkew()
	return ok && (d > MaxClockSkew || d < -MaxClockSkew)
}

// DescribeClockSkew says how a clock with the given skew (its time minus
// the server's) stands against the server's: "10m0s ahead of the server",
// "1.5s behind the server", or "in step with the server" within 1ms.
// Skews of 10s or more are rounded to the second, smaller ones to the
// millisecond.
func DescribeClockSkew(skew time.Duration) string {
	skew = RoundClockSkew(skew)
	switch {
	case skew == 0:
		return "in step with the server"
	case skew > 0:
		return fmt.Sprintf("%s ahead of the server", skew)
	default:
		return fmt.Sprintf("%s behind the server", -skew)
	}
}

// RoundClockSkew rounds a skew for display: to the second from 10s on,
// else to the millisecond.
func RoundClockSkew(skew time.Duration) time.Duration {
	if skew.Abs() >= 10*time.Second {
		return skew.Round(time.Second)
	}
	return skew.Round(time.Millisecond)
}
