package deploy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// CapabilityTTL is how long a bundle download capability stays valid. A
// batch's commands are stored with their capability and resent after a
// server restart, so it outlives the longest expected outage.
const CapabilityTTL = 24 * time.Hour

// Capabilities signs and checks bundle download capabilities: a host may
// fetch a blob without an API token with
// GET /api/v1/blobs/{digest}?host=H&exp=UNIX&sig=HMAC, where the HMAC-SHA256
// (with a server secret) covers the digest, the host and the expiry. The
// capability travels only inside signed commands to that host.
type Capabilities struct {
	Key []byte
	now func() time.Time
}

// ErrCapability is returned for a missing, forged or expired capability.
var ErrCapability = errors.New("invalid bundle capability")

func (c Capabilities) mac(digest, host string, exp int64) string {
	m := hmac.New(sha256.New, c.Key)
	fmt.Fprintf(m, "%s\n%s\n%d", digest, host, exp)
	return hex.EncodeToString(m.Sum(nil))
}

func (c Capabilities) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// Path returns the download path of digest for host.
func (c Capabilities) Path(host, digest string) string {
	exp := c.clock().Add(CapabilityTTL).Unix()
	q := url.Values{"host": {host}, "exp": {strconv.FormatInt(exp, 10)}, "sig": {c.mac(digest, host, exp)}}
	return "/api/v1/blobs/" + url.PathEscape(digest) + "?" + q.Encode()
}

// Check verifies a capability's query for digest.
func (c Capabilities) Check(digest string, q url.Values) error {
	exp, err := strconv.ParseInt(q.Get("exp"), 10, 64)
	if err != nil || q.Get("host") == "" || q.Get("sig") == "" {
		return fmt.Errorf("%w: host, exp and sig are required", ErrCapability)
	}
	if !hmac.Equal([]byte(q.Get("sig")), []byte(c.mac(digest, q.Get("host"), exp))) {
		return fmt.Errorf("%w: bad signature", ErrCapability)
	}
	if c.clock().Unix() > exp {
		return fmt.Errorf("%w: expired", ErrCapability)
	}
	return nil
}
