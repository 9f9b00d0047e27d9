package validate

import (
	"fmt"
	"maps"
	"slices"
	"unicode/utf8"

	"github.com/gantry-dev/gantry/internal/selector"
)

// Name lengths.
const (
	// MaxAppName is the longest application or deployment group name.
	MaxAppName = 63
	// MaxEnvName is the longest environment name (it prefixes machine names).
	MaxEnvName = 32
	// MaxBlockName is the longest name of an environment's group, host or
	// network block (it becomes part of host names).
	MaxBlockName = 30
	// MaxHostName is the longest host name in the inventory.
	MaxHostName = 253
	// MaxUserName is the longest user name a job may run as.
	MaxUserName = 64
	// MaxDescription is the longest description (deployments, revisions).
	MaxDescription = 1024
	// MaxTokenName is the longest API token name.
	MaxTokenName = 64
	// MaxIdempotencyKey is the longest Idempotency-Key header.
	MaxIdempotencyKey = 255
)

// DNSLabel checks a lower-case DNS label of 1 to max characters: letters,
// digits and '-', starting and ending with a letter or digit. Application,
// deployment group, environment and block names are such labels.
func DNSLabel(field, what, s string, max int) error {
	bad := s == "" || len(s) > max || s[0] == '-' || s[len(s)-1] == '-'
	for i := 0; i < len(s) && !bad; i++ {
		c := s[i]
		bad = !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-')
	}
	if bad {
		return errorf(field, "%s %q: use 1 to %d lower-case letters, digits and '-', starting and ending with a letter or digit", what, s, max)
	}
	return nil
}

// AppName checks an application name.
func AppName(field, s string) error { return DNSLabel(field, "application name", s, MaxAppName) }

// GroupName checks a deployment group name.
func GroupName(field, s string) error { return DNSLabel(field, "group name", s, MaxAppName) }

// EnvName checks an environment name.
func EnvName(field, s string) error { return DNSLabel(field, "environment name", s, MaxEnvName) }

// HostName checks a host's name in the inventory: 1 to 253 letters,
// digits, '-', '_' and '.'.
func HostName(field, s string) error {
	if s == "" || len(s) > MaxHostName {
		return errorf(field, "host name must be 1 to %d characters (has %d)", MaxHostName, len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(isAlnum(c) || c == '-' || c == '.' || c == '_') {
			return errorf(field, "host name %q: only letters, digits, '-', '_' and '.' are allowed", s)
		}
	}
	return nil
}

// TokenName checks an API token's name: 1 to 64 letters, digits, '-',
// '_', '.' and '@'.
func TokenName(field, s string) error {
	if s == "" || len(s) > MaxTokenName {
		return errorf(field, "token name must be 1 to %d characters (has %d)", MaxTokenName, len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '@') {
			return errorf(field, "token name %q: only letters, digits, '-', '_', '.' and '@' are allowed", s)
		}
	}
	return nil
}

// UserName checks the user a job runs as: empty (the agent's user), or a
// user name or numeric uid of 1 to 64 letters, digits, '.', '_', '@' and
// '-' (not starting with '-'), optionally ending in '$'. Names from
// directories (john.doe, svc@corp) pass; spaces, '/', ':' and shell
// characters do not.
func UserName(field, s string) error {
	if s == "" {
		return nil
	}
	ok := len(s) <= MaxUserName && s[0] != '-'
	for i := 0; i < len(s) && ok; i++ {
		c := s[i]
		ok = isAlnum(c) || c == '.' || c == '_' || c == '@' || c == '-' || c == '$' && i == len(s)-1 && i > 0
	}
	if !ok {
		return errorf(field, "user %q: want a user name or a numeric uid: 1 to %d letters, digits, '.', '_', '@' and '-', not starting with '-'", s, MaxUserName)
	}
	return nil
}

// Text checks free text (descriptions): valid UTF-8 without control
// characters other than tab and newline, at most max bytes.
func Text(field, s string, max int) error {
	if len(s) > max {
		return errorf(field, "is %d bytes; the limit is %d", len(s), max)
	}
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return errorf(field, "invalid UTF-8 at byte %d", i)
			}
		}
		if r < 0x20 && r != '\t' && r != '\n' || r == 0x7f {
			return errorf(field, "control character %U at byte %d", r, i)
		}
	}
	return nil
}

// LabelKey checks a label key (Kubernetes style: an optional lower-case
// DNS-subdomain prefix and '/', then 1 to 63 of [A-Za-z0-9_.-] starting
// and ending with a letter or digit).
func LabelKey(field, k string) error {
	if err := selector.ValidateKey(k); err != nil {
		return &Error{Field: field, Msg: err.Error()}
	}
	return nil
}

// LabelValue checks a label value: empty, or 1 to 63 of [A-Za-z0-9_.-]
// starting and ending with a letter or digit.
func LabelValue(field, k, v string) error {
	if err := selector.ValidateValue(v); err != nil {
		return &Error{Field: field, Msg: fmt.Sprintf("%s: %v", k, err)}
	}
	return nil
}

// LabelSet checks a set of labels: at most 64, every key and value valid.
// Keys are checked in sorted order, so the error is the same every time.
func LabelSet(field string, m map[string]string) error {
	if n := int64(len(m)); n > Labels.Max {
		return errorf(field, "%d labels; the limit is %d", n, Labels.Max)
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if err := LabelKey(field, k); err != nil {
			return err
		}
		if err := LabelValue(field, k, m[k]); err != nil {
			return err
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
