package ssh

import (
	"errors"
	"fmt"
	"strings"
)

// SSH runs a command line through the remote user's login shell (`$SHELL
// -c LINE`), so something has to be a shell string. gantry's rule (never
// interpolate user values into sh -c) is kept this way: every remote
// command is one of the constant scripts of scripts.go, run as
//
//	/bin/sh -c 'SCRIPT' gantry-ssh 'ARG1' 'ARG2' …
//
// where the values (paths, names, URLs) are only positional parameters
// ("$1", "$2"…) of the script, each validated by checkValue and quoted by
// quote. The login shell must be POSIX-like (sh, dash, bash, zsh, ksh).

// quote is the one shell-quoting function: s as a single-quoted POSIX
// shell word, where each single quote closes the quoted part, adds an
// escaped quote and reopens it:
//
//	it's  →  'it'\''s'
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// errBadValue is wrapped by checkValue's errors.
var errBadValue = errors.New("value cannot be passed on a remote command line")

// checkValue refuses what must never be in a value placed on a remote
// command line: NUL (it cannot be passed at all), newline and carriage
// return (they end a command in a login shell that mishandles quotes).
func checkValue(s string) error {
	if i := strings.IndexAny(s, "\x00\n\r"); i >= 0 {
		return fmt.Errorf("%w: %q contains a NUL, newline or carriage return", errBadValue, s)
	}
	return nil
}

// remoteCommand is the command line that runs the constant script with
// args as its positional parameters.
func remoteCommand(script string, args ...string) (string, error) {
	if strings.IndexByte(script, 0) >= 0 {
		return "", fmt.Errorf("%w: script contains a NUL", errBadValue)
	}
	var b strings.Builder
	b.WriteString("/bin/sh -c ")
	b.WriteString(quote(script))
	b.WriteString(" gantry-ssh") // $0
	for _, a := range args {
		if err := checkValue(a); err != nil {
			return "", err
		}
		b.WriteByte(' ')
		b.WriteString(quote(a))
	}
	return b.String(), nil
}
