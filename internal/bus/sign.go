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
		if err := os.WriteFile(path, seed, 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
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
type Verifier struct {
	key    nkeys.KeyPair
	hostID string
	now    func() time.Time
}

// NewVerifier verifies commands for hostID signed by serverKey.
func NewVerifier(serverKey, hostID string) (*Verifier, error) {
	kp, err := nkeys.FromPublicKey(serverKey)
	if err != nil {
		return nil, fmt.Errorf("server key %q: %w", serverKey, err)
	}
	return &Verifier{key: kp, hostID: hostID, now: time.Now}, nil
}

// Errors returned by Verify.
var (
	ErrBadSignature = errors.New("command signature is missing or invalid")
	ErrWrongHost    = errors.New("command is addressed to another host")
	ErrExpired      = errors.New("command has expired")
)

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
	if !v.now().Before(cmd.ExpiresAt) {
		return cmd, ErrExpired
	}
	return cmd, nil
}
