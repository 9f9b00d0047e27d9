package deploy

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCapabilities(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := Capabilities{Key: []byte("k1"), now: func() time.Time { return now }}
	digest := "sha256:" + strings.Repeat("ab", 32)
	p := c.Path("h-1", digest)
	u, err := url.Parse(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(digest, u.Query()); err != nil {
		t.Fatalf("valid capability refused: %v", err)
	}
	bad := func(name string, c Capabilities, digest string, q url.Values) {
		t.Helper()
		if err := c.Check(digest, q); !errors.Is(err, ErrCapability) {
			t.Errorf("%s: got %v, want ErrCapability", name, err)
		}
	}
	bad("other digest", c, "sha256:"+strings.Repeat("cd", 32), u.Query())
	other := u.Query()
	other.Set("host", "h-2")
	bad("other host", c, digest, other)
	longer := u.Query()
	longer.Set("exp", "9999999999")
	bad("extended expiry", c, digest, longer)
	bad("other key", Capabilities{Key: []byte("k2"), now: c.now}, digest, u.Query())
	bad("missing", c, digest, url.Values{})
	late := Capabilities{Key: c.Key, now: func() time.Time { return now.Add(CapabilityTTL + time.Second) }}
	bad("expired", late, digest, u.Query())
}
