package appspec

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/gantry-dev/gantry/internal/diag"
)

var permissionKeys = []string{"object", "pattern", "except", "type", "owner", "group", "mode", "acls", "context"}

func (p *parser) permission(item *yaml.Node, field string) (Permission, bool) {
	if !p.mappingOf(item, field, "a mapping with object, owner, mode, …") {
		return Permission{}, false
	}
	before := len(p.ds)
	f := p.fields(item, field, permissionKeys, nil)
	perm := Permission{Pattern: DefaultPattern, Type: []string{TypeFile, TypeDirectory}}

	if e, ok := f.get("object"); ok {
		perm.Object, _ = p.absPath(e.val, field+".object")
	} else if f.missing("object") {
		p.errorf(item, field, `missing required key "object" (the absolute path the permission applies to)`)
	}
	if v, ok := f.value("pattern"); ok {
		if s, ok := scalarText(v); ok && s != "" && !hasControl(s) {
			perm.Pattern = s
		} else {
			p.errorf(v, field+".pattern", "must be a pattern such as ** or *.sh, got %s", describe(v))
		}
	}
	if v, ok := f.value("except"); ok {
		perm.Except = p.stringList(v, field+".except", "a list of patterns such as *.log", func(s string) (string, string) {
			if s == "" || hasControl(s) {
				return "must be a pattern such as *.log", ""
			}
			return "", ""
		})
	}
	if v, ok := f.value("type"); ok {
		perm.Type = p.stringList(v, field+".type", "a list such as [file] or [file, directory]", func(s string) (string, string) {
			if s == TypeFile || s == TypeDirectory {
				return "", ""
			}
			return "must be file or directory", diag.DidYouMean(s, []string{TypeFile, TypeDirectory})
		})
	}
	if v, ok := f.value("owner"); ok {
		perm.Owner = p.name(v, field+".owner", "a user name or numeric id")
	}
	if v, ok := f.value("group"); ok {
		perm.Group = p.name(v, field+".group", "a group name or numeric id")
	}
	if v, ok := f.value("mode"); ok {
		perm.Mode = p.mode(v, field+".mode")
	}
	if v, ok := f.value("acls"); ok {
		perm.ACLs = p.stringList(v, field+".acls", `a list of ACL entries such as "u:bob:rw"`, func(s string) (string, string) {
			return checkACE(s), ""
		})
	}
	if v, ok := f.value("context"); ok {
		perm.Context = p.context(v, field+".context")
	}
	return perm, len(p.ds) == before
}

// stringList reads a list of strings, each checked by check, which returns
// "" or what is wrong ("must be …") and a hint to put after the value. An
// empty list is an empty, non-nil slice.
func (p *parser) stringList(n *yaml.Node, field, what string, check func(string) (problem, hint string)) []string {
	items, ok := p.list(n, field, what)
	if !ok {
		return nil
	}
	out := []string{}
	for i, item := range items {
		f := fmt.Sprintf("%s[%d]", field, i)
		s, ok := scalarText(item)
		if !ok {
			p.errorf(item, f, "must be a string, got %s", describe(item))
			continue
		}
		if problem, hint := check(s); problem != "" {
			p.errorf(item, f, "%s, got %q%s", problem, s, hint)
			continue
		}
		out = append(out, s)
	}
	return out
}

// name reads a POSIX user or group name.
func (p *parser) name(n *yaml.Node, field, what string) string {
	s, ok := scalarText(n)
	if !ok || !validName(s) {
		p.errorf(n, field, "must be %s (letters, digits, ., _ and -, not starting with -), got %s", what, describe(n))
		return ""
	}
	return s
}

// validName reports whether s is a portable POSIX user or group name: made
// of the portable filename characters (letters, digits, ".", "_", "-"), not
// starting with "-", optionally ending with "$" (Samba machine accounts), at
// most 256 bytes long (LOGIN_NAME_MAX on Linux).
func validName(s string) bool {
	if s == "" || len(s) > 256 || s[0] == '-' || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		case c == '$' && i == len(s)-1 && i > 0:
		default:
			return false
		}
	}
	return true
}

// mode reads a mode of one to four octal digits, as written (an unquoted
// 0644 is the digits 0644, not the YAML 1.1 octal number 420), and returns it
// as four digits.
func (p *parser) mode(n *yaml.Node, field string) string {
	r := resolve(n)
	s := r.Value
	ok := r.Kind == yaml.ScalarNode && (r.ShortTag() == "!!int" || r.ShortTag() == "!!str") &&
		len(s) >= 1 && len(s) <= 4 && strings.Trim(s, "01234567") == ""
	if !ok {
		p.errorf(n, field, "must be an octal mode of one to four digits such as 644 or 4755, got %s", describe(n))
		return ""
	}
	return strings.Repeat("0", 4-len(s)) + s
}

// checkACE checks one acls entry as the CodeDeploy agent does:
// [d[efault]:][u[ser]|g[roup]|m[ask]|o[ther]:][name]:perms, where perms is
// made of r, w, x and - or is one octal digit.
func checkACE(s string) string {
	const shape = `must be an ACL entry such as "u:bob:rw" or "d:g:ops:rx" ([d:][u|g|m|o:][name]:perms)`
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 4 {
		return shape
	}
	isDefault := false
	if len(parts) == 4 {
		if parts[0] != "d" && parts[0] != "default" {
			return shape
		}
		isDefault = true
		parts = parts[1:]
	}
	typ, name := "", ""
	if len(parts) == 3 {
		switch parts[0] {
		case "d", "default":
			if isDefault {
				return shape
			}
			isDefault = true
		case "u", "user":
			typ = "user"
		case "g", "group":
			typ = "group"
		case "m", "mask":
			typ = "mask"
		case "o", "other":
			typ = "other"
		default:
			return "must be an ACL entry whose type is u, g, m or o (or user, group, mask, other)"
		}
		parts = parts[1:]
	}
	switch q := parts[0]; {
	case q == "m" || q == "mask":
		if typ == "" {
			typ = "mask"
		} else {
			name = "mask"
		}
	case q == "o" || q == "other":
		if typ == "" {
			typ = "other"
		} else {
			name = "other"
		}
	default:
		if typ == "" {
			typ = "user"
		}
		name = q
	}
	if (typ == "mask" || typ == "other") && name != "" {
		return "must be an ACL entry without a name for mask and other"
	}
	if !isDefault && typ != "mask" && name == "" {
		return "must be an ACL entry for a named user or group (set the base permissions with mode)"
	}
	perms := parts[1]
	if len(perms) == 1 && perms[0] >= '0' && perms[0] <= '7' {
		return ""
	}
	if strings.Trim(perms, "rwx-") != "" {
		return "must be an ACL entry whose permissions are made of r, w, x and - (or one octal digit)"
	}
	return ""
}

var contextHints = map[string]string{
	"name": "the SELinux user is given as user, e.g. user: unconfined_u",
}

func (p *parser) context(n *yaml.Node, field string) *Context {
	if !p.mappingOf(n, field, "a mapping with type (and optionally user and range)") {
		return nil
	}
	before := len(p.ds)
	f := p.fields(n, field, []string{"user", "type", "range"}, contextHints)
	c := &Context{}
	ident := func(key, example string) string {
		e, ok := f.get(key)
		if !ok {
			return ""
		}
		s, ok := scalarText(e.val)
		if !ok || s == "" || strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" {
			p.errorf(e.val, field+"."+key, "must be an SELinux name such as %s, got %s", example, describe(e.val))
			return ""
		}
		return s
	}
	if _, ok := f.value("user"); ok {
		c.User = ident("user", "unconfined_u")
	}
	if _, ok := f.get("type"); ok {
		c.Type = ident("type", "httpd_sys_content_t")
	} else if f.missing("type") {
		p.errorf(n, field, `missing required key "type" (an SELinux type such as httpd_sys_content_t)`)
	}
	if v, ok := f.value("range"); ok {
		s, ok := scalarText(v)
		problem := "it is not text"
		if ok {
			problem = checkRange(s)
		}
		if problem != "" {
			p.errorf(v, field+".range", "must be an SELinux range such as s0 or s0-s0:c0.c1023 (%s), got %s", problem, describe(v))
		} else {
			c.Range = s
		}
	}
	if len(p.ds) != before {
		return nil
	}
	return c
}

// checkRange checks an SELinux MLS range as the CodeDeploy agent does:
// s#[-s#][:c#[.c#](,c#[.c#])*], the high level not below the low one,
// categories from c0 to c1023, none twice. It returns "" or what is wrong.
func checkRange(r string) string {
	sens, cats, hasCats := strings.Cut(r, ":")
	lo, hi, hasHi := strings.Cut(sens, "-")
	l, ok := level(lo, 's')
	if !ok {
		return fmt.Sprintf("%q is not a sensitivity", lo)
	}
	if hasHi {
		h, ok := level(hi, 's')
		if !ok {
			return fmt.Sprintf("%q is not a sensitivity", hi)
		}
		if h < l {
			return "the high sensitivity is below the low one"
		}
	}
	if !hasCats {
		return ""
	}
	var seen [1024]bool
	for part := range strings.SplitSeq(cats, ",") {
		a, b, isRange := strings.Cut(part, ".")
		x, ok := level(a, 'c')
		if !ok || x > 1023 {
			return fmt.Sprintf("%q is not a category from c0 to c1023", a)
		}
		y := x
		if isRange {
			if y, ok = level(b, 'c'); !ok || y > 1023 {
				return fmt.Sprintf("%q is not a category from c0 to c1023", b)
			}
			if y < x {
				return fmt.Sprintf("the category range %q goes backwards", part)
			}
		}
		for c := x; c <= y; c++ {
			if seen[c] {
				return fmt.Sprintf("category c%d is given twice", c)
			}
			seen[c] = true
		}
	}
	return ""
}

// level parses prefix followed by a decimal number, e.g. s0 or c1023.
func level(s string, prefix byte) (int, bool) {
	if len(s) < 2 || len(s) > 10 || s[0] != prefix || strings.Trim(s[1:], "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(s[1:])
	return n, err == nil
}
