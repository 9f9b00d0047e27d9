package selector

import (
	"fmt"
	"strings"
)

// Limits on label keys and values, as in Kubernetes.
const (
	// MaxNameLength is the maximum length of a label value and of the name
	// part of a label key.
	MaxNameLength = 63
	// MaxPrefixLength is the maximum length of the optional DNS-subdomain
	// prefix of a label key.
	MaxPrefixLength = 253
)

// ValidateKey reports whether k is a valid label key: an optional
// DNS-subdomain prefix (lowercase, at most 253 characters) followed by '/',
// then a name of 1 to 63 characters matching
// [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?. The error says what is wrong.
func ValidateKey(k string) error {
	if off, msg := checkKey(k); msg != "" {
		return fmt.Errorf("invalid label key %q: %s%s", k, msg, offsetNote(k, off))
	}
	return nil
}

// ValidateValue reports whether v is a valid label value: empty, or 1 to 63
// characters matching [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?. The error
// says what is wrong.
func ValidateValue(v string) error {
	if off, msg := checkValue(v); msg != "" {
		return fmt.Errorf("invalid label value %q: %s%s", v, msg, offsetNote(v, off))
	}
	return nil
}

// offsetNote locates a problem inside a key or value for the plain errors
// of ValidateKey and ValidateValue.
func offsetNote(s string, off int) string {
	if off < 0 || len(s) < 2 {
		return ""
	}
	return fmt.Sprintf(" (at character %d)", runeColumn(s, off))
}

// checkKey validates a label key. On failure it returns the byte offset of
// the problem within k (or -1 when the key as a whole is at fault) and a
// message; msg is empty when k is valid.
func checkKey(k string) (off int, msg string) {
	if k == "" {
		return -1, "must not be empty"
	}
	name, nameOff := k, 0
	if prefix, rest, hasPrefix := strings.Cut(k, "/"); hasPrefix {
		name = rest
		nameOff = len(prefix) + 1
		if i := strings.IndexByte(name, '/'); i >= 0 {
			return nameOff + i, "may contain at most one '/' (prefix/name)"
		}
		if prefix == "" {
			return 0, "prefix before '/' must not be empty"
		}
		if off, msg := checkPrefix(prefix); msg != "" {
			return off, msg
		}
		if name == "" {
			return nameOff, "name after '/' must not be empty"
		}
	}
	if off, msg := checkName(name, "name"); msg != "" {
		return nameOff + off, msg
	}
	return 0, ""
}

// checkValue validates a label value; see checkKey for the results.
func checkValue(v string) (off int, msg string) {
	if v == "" {
		return 0, ""
	}
	return checkName(v, "value")
}

// checkName validates the name part of a key or a non-empty value:
// at most 63 characters of [A-Za-z0-9_.-], starting and ending with an
// alphanumeric character.
func checkName(s, what string) (off int, msg string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return i, fmt.Sprintf("invalid character %s (%s may contain only letters, digits, '-', '_' and '.')", quoteChar(s, i), what)
		}
	}
	if len(s) > MaxNameLength {
		return -1, fmt.Sprintf("%s must be %d characters or less (has %d)", what, MaxNameLength, len(s))
	}
	if !isAlnum(s[0]) {
		return 0, fmt.Sprintf("%s must start with a letter or digit", what)
	}
	if !isAlnum(s[len(s)-1]) {
		return len(s) - 1, fmt.Sprintf("%s must end with a letter or digit", what)
	}
	return 0, ""
}

// checkPrefix validates a key prefix as a DNS-1123 subdomain: dot-separated
// labels of [a-z0-9-] that start and end with [a-z0-9], 253 characters at
// most.
func checkPrefix(p string) (off int, msg string) {
	if len(p) > MaxPrefixLength {
		return -1, fmt.Sprintf("prefix must be %d characters or less (has %d)", MaxPrefixLength, len(p))
	}
	start := 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) && p[i] != '.' {
			c := p[i]
			switch {
			case c >= 'A' && c <= 'Z':
				return i, "prefix must be lowercase (it is a DNS subdomain)"
			case !isLowerAlnum(c) && c != '-':
				return i, fmt.Sprintf("invalid character %s in prefix (a DNS subdomain: lowercase letters, digits, '-' and '.')", quoteChar(p, i))
			}
			continue
		}
		// p[start:i] is one DNS label.
		if i == start {
			return i, "prefix has an empty DNS label (two dots in a row, or a leading or trailing dot)"
		}
		if !isLowerAlnum(p[start]) {
			return start, "each DNS label of the prefix must start with a lowercase letter or digit"
		}
		if !isLowerAlnum(p[i-1]) {
			return i - 1, "each DNS label of the prefix must end with a lowercase letter or digit"
		}
		start = i + 1
	}
	return 0, ""
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isLowerAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}

// quoteChar quotes the (possibly multi-byte) character starting at s[i].
func quoteChar(s string, i int) string {
	for _, r := range s[i:] {
		return fmt.Sprintf("%q", r)
	}
	return "''"
}
