package bus

import (
	"encoding/base64"
	"fmt"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// AuthCalloutSubject is where NATS asks an auth-callout service to
// authenticate a connection.
const AuthCalloutSubject = "$SYS.REQ.USER.AUTH"

// calloutUserTTL bounds how long an agent admitted by an external NATS stays
// connected without asking again: NATS drops it when its user JWT expires,
// the agent reconnects, and a revoked key is refused then.
const calloutUserTTL = 5 * time.Minute

// NATSConfigSnippet is the authorization block an external NATS needs so
// that it delegates agent authentication to gantry (auth callout). user is
// the user of the server's --nats-url. NATS sends connections the nonce that
// agents sign only when some nkey user is configured, so the block carries a
// placeholder nkey user whose seed was thrown away and which may do nothing.
func NATSConfigSnippet(issuerPub, user string) string {
	kp, _ := nkeys.CreateUser()
	placeholder, _ := kp.PublicKey()
	return fmt.Sprintf(`authorization {
  users: [
    { user: %q, password: "<the password in --nats-url>" }
    { nkey: %q, permissions: { publish: { deny: ">" }, subscribe: { deny: ">" } } }
  ]
  auth_callout {
    issuer: %q
    auth_users: [ %q ]
  }
}`, user, placeholder, issuerPub, user)
}

// serveAuthCallout answers an external NATS's authentication requests with
// the same rules as the embedded Authenticator: a valid nonce signature by
// an enrolled, non-revoked host's key, and exactly that host's subjects.
func serveAuthCallout(nc *nats.Conn, issuer nkeys.KeyPair, lookup HostLookup) error {
	_, err := nc.Subscribe(AuthCalloutSubject, func(m *nats.Msg) {
		req, err := jwt.DecodeAuthorizationRequestClaims(string(m.Data))
		if err != nil {
			return // not a request from a NATS server: no answer
		}
		userJWT, reason := authorizeCallout(req, issuer, lookup)
		res := jwt.NewAuthorizationResponseClaims(req.UserNkey)
		res.Audience = req.Server.ID
		res.Jwt, res.Error = userJWT, reason
		token, err := res.Encode(issuer)
		if err != nil {
			return
		}
		_ = m.Respond([]byte(token))
	})
	return err
}

// authorizeCallout returns a user JWT for an agent, or a refusal reason.
func authorizeCallout(req *jwt.AuthorizationRequestClaims, issuer nkeys.KeyPair, lookup HostLookup) (string, string) {
	o := req.ConnectOptions
	if o.Nkey == "" || o.SignedNonce == "" || req.ClientInformation.Nonce == "" {
		return "", "gantry agents authenticate with an nkey"
	}
	sig, err := base64.RawURLEncoding.DecodeString(o.SignedNonce)
	if err != nil {
		if sig, err = base64.StdEncoding.DecodeString(o.SignedNonce); err != nil {
			return "", "bad signature encoding"
		}
	}
	pub, err := nkeys.FromPublicKey(o.Nkey)
	if err != nil || pub.Verify([]byte(req.ClientInformation.Nonce), sig) != nil {
		return "", "bad nonce signature"
	}
	hostID, ok := lookup(o.Nkey)
	if !ok {
		return "", "unknown or revoked host"
	}
	uc := jwt.NewUserClaims(req.UserNkey)
	uc.Name = hostID
	uc.Audience = "$G" // config-mode NATS: the global account
	uc.Expires = time.Now().Add(calloutUserTTL).Unix()
	pubs, subs := agentPermissions(hostID)
	uc.Pub.Allow.Add(pubs...)
	uc.Sub.Allow.Add(subs...)
	// As in Authenticator.Check: one answer per request received (the
	// load balancer's LB commands), within ReplyWindow.
	uc.Resp = &jwt.ResponsePermission{MaxMsgs: 1, Expires: ReplyWindow}
	token, err := uc.Encode(issuer)
	if err != nil {
		return "", "internal error"
	}
	return token, ""
}
