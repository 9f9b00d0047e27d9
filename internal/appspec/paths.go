package appspec

import (
	"path"
	"strings"

	"gopkg.in/yaml.v3"
)

// bundlePath checks a files source: a path relative to the bundle root, where
// a leading slash is allowed and / is the whole bundle.
func (p *parser) bundlePath(n *yaml.Node, field string) (string, bool) {
	return p.inBundle(n, field, "must be a path in the bundle (/ for all of it)")
}

// scriptPath checks a hook location: a path relative to the bundle root (a
// leading slash also means the bundle root, as in CodeDeploy, which joins
// the location onto the bundle directory: existing bundles keep working).
func (p *parser) scriptPath(n *yaml.Node, field string) (string, bool) {
	s, _ := scalarText(n)
	c, ok := p.inBundle(n, field, "must be the path of a script in the bundle")
	if ok && (c == "." || strings.HasSuffix(s, "/")) {
		p.errorf(n, field, "must be the path of a script file, not of a directory, got %q", s)
		return "", false
	}
	return c, ok
}

// inBundle checks a path that must stay inside the bundle and returns it
// cleaned and relative; want says what a missing value should have been.
func (p *parser) inBundle(n *yaml.Node, field, want string) (string, bool) {
	s, ok := scalarText(n)
	if !ok || s == "" {
		p.errorf(n, field, "%s, got %s", want, describe(n))
		return "", false
	}
	if hasControl(s) {
		p.errorf(n, field, "must not contain control characters, got %q", s)
		return "", false
	}
	c := path.Clean(strings.TrimLeft(s, "/"))
	if escapes(c) {
		p.errorf(n, field, "must stay inside the bundle, got %q", s)
		return "", false
	}
	return c, true
}

func escapes(clean string) bool {
	return clean == ".." || strings.HasPrefix(clean, "../")
}

// absPath checks a clean absolute path on the host; a trailing slash is
// allowed and dropped.
func (p *parser) absPath(n *yaml.Node, field string) (string, bool) {
	s, ok := scalarText(n)
	if !ok || s == "" {
		p.errorf(n, field, "must be an absolute path, got %s", describe(n))
		return "", false
	}
	if hasControl(s) {
		p.errorf(n, field, "must not contain control characters, got %q", s)
		return "", false
	}
	if !strings.HasPrefix(s, "/") {
		p.errorf(n, field, "must be an absolute path (starting with /), got %q", s)
		return "", false
	}
	c := path.Clean(s)
	if s != c && s != c+"/" {
		p.errorf(n, field, "must be a clean absolute path (no ., .. or //), got %q (did you mean %q?)", s, c)
		return "", false
	}
	return c, true
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
