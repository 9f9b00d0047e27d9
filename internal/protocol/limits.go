package protocol

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/gantry-dev/gantry/api"
)

// Size caps on what a host reports. A host's credentials may only speak for
// that host, but they may still send anything: the server enforces these
// caps on every message before it stores or forwards a byte of it
// (docs/security.md, internal/bus doc).
const (
	// MaxHelloBytes is the largest encoded Hello the server reads; a larger
	// one still counts as a sign of life, but its facts are not stored.
	MaxHelloBytes = 64 << 10
	// MaxFactString is the longest text fact (hostname, OS, kernel, arch,
	// agent version), in bytes; longer values are cut.
	MaxFactString = 256
	// MaxFactAddresses is how many addresses a host may report; more are
	// dropped.
	MaxFactAddresses = 256
	// MaxFactAddress is the longest address text, in bytes; longer ones
	// are dropped.
	MaxFactAddress = 64
	// MaxCPUs bounds the reported CPU count (a larger count is stored as 0,
	// "unknown").
	MaxCPUs = 1 << 16

	// MaxOutputChunk is the largest live output chunk (decoded bytes) the
	// server forwards to watchers; larger chunks are dropped (the agent
	// sends pipe reads, at most 32 KiB). The stored output comes with the
	// final Status and is capped separately (fleet Config.OutputCap).
	MaxOutputChunk = 64 << 10
	// MaxOutputMessage is the largest encoded Output message the server
	// decodes.
	MaxOutputMessage = 2*MaxOutputChunk + 4<<10

	// MaxStatusError is the longest error text of a Status, in bytes;
	// longer text is cut.
	MaxStatusError = 4 << 10
	// MaxResultBytes is the largest structured Result of a Status (a
	// deployment step's events with their log tails); a larger one is
	// refused.
	MaxResultBytes = 256 << 10
	// OutputSlack is what a stored output stream may exceed the output cap
	// by: the agent's truncation marker.
	OutputSlack = 256

	// MaxProgressEvents is how many distinct lifecycle events one
	// execution's live progress may list; more are ignored.
	MaxProgressEvents = 32
	// MaxEventName is the longest lifecycle event name, in bytes.
	MaxEventName = 64
	// MaxLogTail is the longest log tail of one lifecycle event, in bytes
	// (the agent keeps 4 KiB); longer tails are cut.
	MaxLogTail = 8 << 10
)

// ClipFacts returns f within the caps above (text cut at a rune boundary,
// extra or over-long addresses dropped) and whether anything was changed.
func ClipFacts(f api.Facts) (api.Facts, bool) {
	clipped := false
	for _, s := range []*string{&f.Hostname, &f.OS, &f.Kernel, &f.Arch, &f.AgentVersion} {
		if c := Clip(*s, MaxFactString); c != *s {
			*s, clipped = c, true
		}
	}
	if f.CPUs < 0 || f.CPUs > MaxCPUs {
		f.CPUs, clipped = 0, true
	}
	if len(f.Addresses) > 0 {
		addrs := make([]string, 0, min(len(f.Addresses), MaxFactAddresses))
		for _, a := range f.Addresses {
			if len(addrs) == MaxFactAddresses || len(a) > MaxFactAddress || !utf8.ValidString(a) {
				clipped = true
				continue
			}
			addrs = append(addrs, a)
		}
		f.Addresses = addrs
	}
	return f, clipped
}

// Clip cuts s to at most n bytes without splitting a UTF-8 sequence.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Back up to the start of the rune that would be split (at most
	// UTFMax-1 bytes).
	for i := n; i >= 0 && i > n-utf8.UTFMax; i-- {
		if i == 0 || utf8.RuneStart(s[i]) {
			return s[:i]
		}
	}
	return s[:n]
}

// CheckLifecycleEvent validates one live lifecycle event from a host and
// cuts its texts to the caps.
func CheckLifecycleEvent(ev *api.LifecycleEvent) error {
	if ev.Name == "" || len(ev.Name) > MaxEventName || strings.ContainsFunc(ev.Name, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return fmt.Errorf("lifecycle event name %q: want 1 to %d printable ASCII characters", Clip(ev.Name, MaxEventName), MaxEventName)
	}
	switch ev.State {
	case "running", "succeeded", "failed", "skipped":
	default:
		return fmt.Errorf("lifecycle event %s: state %q is not running, succeeded, failed or skipped", ev.Name, Clip(ev.State, 32))
	}
	ev.LogTail = Clip(ev.LogTail, MaxLogTail)
	ev.Error = Clip(ev.Error, MaxStatusError)
	return nil
}
