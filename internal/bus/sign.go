package bus

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/atomicfile"
	"github.com/gantry-dev/gantry/internal/protocol"
)

// SigHeader carries the base64 signature of a command message body.
const SigHeader = "Gantry-Sig"

// Signer signs commands with the server's key.
type Signer struct {
	kp nkeys.KeyPair
	// priv is the ed25519 key, derived from the seed once: nkeys derives it
	// again on every Sign, which doubles the cost of signing a command.
	priv ed25519.PrivateKey
}

// LoadOrCreateSigner reads the server's signing seed from path, or makes a
// new one there (mode 0600). The key lives in the data directory, apart from
// the database; servers sharing one database must share this file.
func LoadOrCreateSigner(path string) (*Signer, error) {
	kp, err := loadOrCreateKey(path, nkeys.CreateServer)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	raw, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	_, seed, err := nkeys.DecodeSeed(raw)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return &Signer{kp: kp, priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// loadOrCreateKey reads an nkey seed from path, or makes one with create
// and saves it with mode 0600.
func loadOrCreateKey(path string, create func() (nkeys.KeyPair, error)) (nkeys.KeyPair, error) {
	seed, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		kp, err := create()
		if err != nil {
			return nil, err
		}
		seed, _ = kp.Seed()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		if err := atomicfile.Write(path, seed, 0o600); err != nil {
			return nil, fmt.Errorf("save the signing key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return kp, nil
}

// PublicKey is the key agents verify commands with.
func (s *Signer) PublicKey() string { pk, _ := s.kp.PublicKey(); return pk }

// Message encodes and signs cmd as a NATS message for its host.
func (s *Signer) Message(cmd protocol.Command) (*nats.Msg, error) {
	body, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	sig := ed25519.Sign(s.priv, body)
	m := nats.NewMsg(CommandSubject(cmd.HostID))
	m.Data = body
	m.Header.Set(SigHeader, base64.RawStdEncoding.EncodeToString(sig))
	return m, nil
}

// Verifier checks commands on the agent side.
//
// Expiry is checked against the server's time as the agent knows it: its
// own clock minus the skew it measured from the server's hello replies
// (SetClock). A host whose clock is minutes off thus still runs commands
// within their validity, and a command refused as expired names the skew.
// The skew comes over the agent's authenticated bus connection, in reply to
// its own request; a command is still signed, addressed and run at most
// once (the journal), so the expiry is a bound on how late a command may
// start, not its only protection against replay.
type Verifier struct {
	key    nkeys.KeyPair
	hostID string
	now    func() time.Time
	skew   func() (time.Duration, bool)
}

// NewVerifier verifies commands for hostID signed by serverKey. Its clock
// is the local one, with no skew known, until SetClock.
func NewVerifier(serverKey, hostID string) (*Verifier, error) {
	kp, err := nkeys.FromPublicKey(serverKey)
	if err != nil {
		return nil, fmt.Errorf("server key %q: %w", serverKey, err)
	}
	return &Verifier{key: kp, hostID: hostID, now: time.Now, skew: func() (time.Duration, bool) { return 0, false }}, nil
}

// SetClock sets the verifier's clock (now) and the source of the host's
// measured clock skew against the server (its clock minus the server's;
// false while not measured). Call it before the first Verify.
func (v *Verifier) SetClock(now func() time.Time, skew func() (time.Duration, bool)) {
	v.now, v.skew = now, skew
}

// Errors returned by Verify.
var (
	ErrBadSignature = errors.New("command signature is missing or invalid")
	ErrWrongHost    = errors.New("command is addressed to another host")
	// ErrExpired matches every *ExpiredError.
	ErrExpired = errors.New("command has expired")
)

// ExpiredError is Verify's error for a command past its expiry. It names
// the host's clock skew, the usual cause when commands expire on arrival.
type ExpiredError struct {
	// ExpiresAt is the command's expiry.
	ExpiresAt time.Time
	// Now is the time it was checked against: the server's time as the
	// host knows it if SkewKnown, else the host's own clock.
	Now time.Time
	// Skew is the host's clock minus the server's, if SkewKnown.
	Skew      time.Duration
	SkewKnown bool
}

// Error says how long ago the command expired and how the host's clock
// stands against the server's, e.g. "command expired 2s ago: host clock
// 10m0s ahead of the server".
func (e *ExpiredError) Error() string {
	ago := e.Now.Sub(e.ExpiresAt).Round(time.Millisecond)
	if !e.SkewKnown {
		return fmt.Sprintf("command expired %s ago by this host's clock: host clock not yet measured against the server's", ago)
	}
	return fmt.Sprintf("command expired %s ago: host clock %s", ago, api.DescribeClockSkew(e.Skew))
}

// Is makes errors.Is(err, ErrExpired) hold.
func (e *ExpiredError) Is(target error) bool { return target == ErrExpired }

// Verify checks signature, addressee and expiry, and decodes the command.
func (v *Verifier) Verify(m *nats.Msg) (protocol.Command, error) {
	var cmd protocol.Command
	sig, err := base64.RawStdEncoding.DecodeString(m.Header.Get(SigHeader))
	if err != nil || len(sig) == 0 || v.key.Verify(m.Data, sig) != nil {
		return cmd, ErrBadSignature
	}
	if err := json.Unmarshal(m.Data, &cmd); err != nil {
		return cmd, fmt.Errorf("decode command: %w", err)
	}
	if cmd.HostID != v.hostID {
		return cmd, ErrWrongHost
	}
	now := v.now()
	skew, known := v.skew()
	if known {
		now = now.Add(-skew)
	}
	if !now.Before(cmd.ExpiresAt) {
		return cmd, &ExpiredError{ExpiresAt: cmd.ExpiresAt, Now: now, Skew: skew, SkewKnown: known}
	}
	return cmd, nil
}
