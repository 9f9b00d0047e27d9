package bus

import (
	"crypto/subtle"
	"encoding/base64"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// ReplyWindow is how long an agent may answer a request it received (the
// server's load balancer commands, whose drains and health waits take
// that long at most).
const ReplyWindow = 10 * time.Minute

// HostLookup resolves an agent's NATS public key to its host id; ok is false
// for unknown and revoked hosts.
type HostLookup func(nkey string) (hostID string, ok bool)

// Authenticator is the embedded server's custom authentication: the server
// process by secret, agents by nkey signature and store lookup. Everything
// else is refused.
type Authenticator struct {
	serverUser, serverSecret string
	lookup                   HostLookup
	log                      *slog.Logger
}

var _ server.Authentication = (*Authenticator)(nil)

// Check implements server.Authentication.
func (a *Authenticator) Check(c server.ClientAuthentication) bool {
	if c.Kind() != server.CLIENT {
		return false
	}
	o := c.GetOpts()
	if o.Username != "" {
		ok := o.Username == a.serverUser && subtle.ConstantTimeCompare([]byte(o.Password), []byte(a.serverSecret)) == 1
		if ok {
			c.RegisterUser(&server.User{Username: a.serverUser})
		}
		return ok
	}
	if o.Nkey == "" || o.Sig == "" {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(o.Sig)
	if err != nil {
		if sig, err = base64.StdEncoding.DecodeString(o.Sig); err != nil {
			return false
		}
	}
	pub, err := nkeys.FromPublicKey(o.Nkey)
	if err != nil || pub.Verify(c.GetNonce(), sig) != nil {
		return false
	}
	hostID, ok := a.lookup(o.Nkey)
	if !ok {
		a.log.Warn("bus: refused unknown or revoked agent key", "remote", c.RemoteAddress())
		return false
	}
	pubs, subs := agentPermissions(hostID)
	c.RegisterUser(&server.User{
		Username: hostID,
		Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: pubs},
			Subscribe: &server.SubjectPermission{Allow: subs},
			// An agent answers a request it received (a load balancer
			// command) once, on the request's reply subject, within
			// ReplyWindow; it may publish on no other reply subject.
			Response: &server.ResponsePermission{MaxMsgs: 1, Expires: ReplyWindow},
		},
	})
	return true
}
