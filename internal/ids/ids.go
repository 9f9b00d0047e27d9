// Package ids makes the identifiers of gantry's records: a short prefix that
// names the kind, then 16 random base32 characters (80 bits), lower case so
// that every id is a valid NATS subject token and file name.
package ids

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

var enc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// New returns prefix + "-" + 16 random characters, e.g. "h-3kq7…".
func New(prefix string) string {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return prefix + "-" + enc.EncodeToString(b)
}

// Secret returns a random token of 32 bytes for humans to copy: prefix + "_"
// + 52 base32 characters.
func Secret(prefix string) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + "_" + strings.ToLower(enc.EncodeToString(b))
}
