package bus

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/protocol"
)

// TestVerifyExpiryUsesServerTime: expiry is checked against the host's
// clock corrected by its measured skew, and the error names the skew.
func TestVerifyExpiryUsesServerTime(t *testing.T) {
	s, err := LoadOrCreateSigner(filepath.Join(t.TempDir(), "server.nkey"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(s.PublicKey(), "h1")
	if err != nil {
		t.Fatal(err)
	}
	server := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	local := server.Add(10 * time.Minute) // this host is 10 minutes ahead
	var skew time.Duration
	var known bool
	v.SetClock(func() time.Time { return local }, func() (time.Duration, bool) { return skew, known })
	msg := func(expires time.Time) protocol.Command {
		return protocol.Command{ID: "x1", HostID: "h1", Kind: protocol.CmdExec, IssuedAt: server, ExpiresAt: expires}
	}
	check := func(expires time.Time) error {
		t.Helper()
		m, err := s.Message(msg(expires))
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(m)
		return err
	}
	for _, tc := range []struct {
		name    string
		skew    time.Duration
		known   bool
		expires time.Time
		want    string // "" = accepted
	}{
		{"unmeasured: the host's own clock decides", 0, false, server.Add(time.Minute),
			"command expired 9m0s ago by this host's clock: host clock not yet measured against the server's"},
		{"measured: valid by the server's time", 10 * time.Minute, true, server.Add(time.Minute), ""},
		{"measured: really expired", 10 * time.Minute, true, server.Add(-2 * time.Second),
			"command expired 2s ago: host clock 10m0s ahead of the server"},
		{"behind", -90 * time.Second, true, server.Add(10*time.Minute + 80*time.Second),
			"command expired 10s ago: host clock 1m30s behind the server"},
	} {
		skew, known = tc.skew, tc.known
		err := check(tc.expires)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want || !errors.Is(err, ErrExpired)):
			t.Errorf("%s: error %v, want %q (matching ErrExpired)", tc.name, err, tc.want)
		}
	}
}
