package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
)

// Digest is the lowercase hexadecimal SHA-256 of a bundle's archive bytes,
// the key under which the server stores it.
type Digest string

// digestPrefix is the algorithm prefix of a digest's string form.
const digestPrefix = "sha256:"

// String returns the digest with its algorithm, "sha256:<64 hex digits>".
func (d Digest) String() string { return digestPrefix + string(d) }

// Hex returns the 64 lowercase hexadecimal digits without the prefix.
func (d Digest) Hex() string { return string(d) }

// ParseDigest parses "sha256:<hex>" or a bare 64-digit hexadecimal SHA-256.
// Upper-case digits are accepted and lowered; anything else is an error.
func ParseDigest(s string) (Digest, error) {
	h := strings.TrimPrefix(s, digestPrefix)
	if len(h) != 2*sha256.Size {
		return "", fmt.Errorf("bundle: digest %q: want %d hexadecimal digits after %q", s, 2*sha256.Size, digestPrefix)
	}
	h = strings.ToLower(h)
	if _, err := hex.DecodeString(h); err != nil {
		return "", fmt.Errorf("bundle: digest %q: not hexadecimal", s)
	}
	return Digest(h), nil
}

// DigestOf returns the digest of everything r yields.
func DigestOf(r io.Reader) (Digest, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("bundle: digest: %w", err)
	}
	return Digest(hex.EncodeToString(h.Sum(nil))), nil
}

// DigestFile returns the digest of the file at path.
func DigestFile(path string) (Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("bundle: %w", err)
	}
	defer f.Close()
	return DigestOf(f)
}
