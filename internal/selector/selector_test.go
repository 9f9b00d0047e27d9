package selector

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMatches(t *testing.T) {
	web := map[string]string{"role": "web", "zone": "a", "tier": ""}
	db := map[string]string{"role": "db", "zone": "b"}
	none := map[string]string{}
	tests := []struct {
		sel       string
		canonical string
		web, db   bool
		none      bool
	}{
		{"", "", true, true, true},
		{"   \t ", "", true, true, true},
		{"role=web", "role=web", true, false, false},
		{"role==web", "role=web", true, false, false},
		{" role = web ", "role=web", true, false, false},
		{"role!=web", "role!=web", false, true, true},
		{"role in (web,db)", "role in (db,web)", true, true, false},
		{"role in(web)", "role in (web)", true, false, false},
		{"role  in  ( web , web )", "role in (web)", true, false, false},
		{"role notin (web)", "role notin (web)", false, true, true},
		{"role", "role", true, true, false},
		{"!role", "!role", false, false, true},
		{"! role", "!role", false, false, true},
		{"tier", "tier", true, false, false},
		{"tier=", "tier=", true, false, false},
		{"tier in ()", "tier in ()", true, false, false},
		{"zone in (b,)", "zone in (,b)", false, true, false},
		{"role=web,zone=a", "role=web,zone=a", true, false, false},
		{"zone=a,role=web", "role=web,zone=a", true, false, false},
		{"role=web,zone=b", "role=web,zone=b", false, false, false},
		{"role,!tier", "role,!tier", false, true, false},
		{"!tier,role", "role,!tier", false, true, false},
		{"role=web,role=db", "role=db,role=web", false, false, false},
		{"example.com/team=x", "example.com/team=x", false, false, false},
		{"!example.com/team", "!example.com/team", true, true, true},
		{"a.b-c_d=A.b-9", "a.b-c_d=A.b-9", false, false, false},
		{"role in (web), zone notin (b)", "role in (web),zone notin (b)", true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.sel, func(t *testing.T) {
			s, err := Parse(tt.sel)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.sel, err)
			}
			if got := s.String(); got != tt.canonical {
				t.Errorf("String() = %q, want %q", got, tt.canonical)
			}
			for _, c := range []struct {
				name   string
				labels map[string]string
				want   bool
			}{{"web", web, tt.web}, {"db", db, tt.db}, {"none", none, tt.none}} {
				if got := s.Matches(c.labels); got != c.want {
					t.Errorf("Matches(%s=%v) = %v, want %v", c.name, c.labels, got, c.want)
				}
			}
			if s.Matches(nil) != tt.none {
				t.Errorf("Matches(nil) differs from Matches(empty map)")
			}
			// The canonical form parses back to the same selector.
			again, err := Parse(tt.canonical)
			if err != nil {
				t.Fatalf("Parse(canonical %q): %v", tt.canonical, err)
			}
			if again.String() != tt.canonical {
				t.Errorf("round trip: %q -> %q", tt.canonical, again.String())
			}
			if s.Empty() != (tt.canonical == "") {
				t.Errorf("Empty() = %v for %q", s.Empty(), tt.sel)
			}
		})
	}
}

func TestZeroSelectorMatchesEverything(t *testing.T) {
	var s Selector
	if !s.Matches(map[string]string{"a": "b"}) || !s.Matches(nil) || s.String() != "" {
		t.Fatal("zero Selector must match everything and print as \"\"")
	}
}

func TestRequirementsAreCopies(t *testing.T) {
	s := MustParse("role in (a,b)")
	reqs := s.Requirements()
	if len(reqs) != 1 || reqs[0].Key != "role" || reqs[0].Op != In || strings.Join(reqs[0].Values, ",") != "a,b" {
		t.Fatalf("Requirements() = %+v", reqs)
	}
	reqs[0].Values[0] = "zzz"
	if !s.Matches(map[string]string{"role": "a"}) {
		t.Fatal("modifying Requirements() result changed the selector")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		col  int    // 1-based column the error must point at
		msg  string // substring of Msg
	}{
		{"empty term", "role=web,,zone", 10, "expected a label key"},
		{"leading comma", ",role", 1, "expected a label key"},
		{"trailing comma", "role=web,", 10, "expected a label key"},
		{"missing paren", "role in web,db", 9, "expected '(' to open the value list after \"in\""},
		{"missing paren at end", "role notin", 11, "expected '(' to open the value list after \"notin\""},
		{"unknown operator =~", "role=~web", 5, `unknown operator "=~"`},
		{"unknown operator ~=", "role~=web", 5, `unknown operator "~="`},
		{"unknown operator >", "cpu>4", 4, `unknown operator ">"`},
		{"unknown word operator", "role is web", 6, `unknown operator "is"`},
		{"bad key character", "ro$le=web", 3, "invalid character '$'"},
		{"bad key character unicode", "rôle=web", 2, "invalid character 'ô'"},
		{"key starts with dash", "-role=web", 1, "must start with a letter or digit"},
		{"key ends with dot", "role.=web", 5, "must end with a letter or digit"},
		{"key name too long", strings.Repeat("k", 64) + "=v", 1, "63 characters or less"},
		{"uppercase prefix", "Example.com/x=y", 1, "prefix must be lowercase"},
		{"empty prefix", "/x=y", 1, "prefix before '/' must not be empty"},
		{"empty name", "example.com/=y", 13, "name after '/' must not be empty"},
		{"two slashes", "a/b/c=y", 4, "at most one '/'"},
		{"bad value character", "role=we$b", 8, "invalid character '$'"},
		{"value too long", "role=" + strings.Repeat("v", 64), 6, "63 characters or less"},
		{"value ends badly", "role=web-", 9, "must end with a letter or digit"},
		{"unterminated in", "role in (web,db", 16, "unterminated value list: missing ')' to close the '(' at column 9"},
		{"unterminated in empty", "role in (", 10, "unterminated value list"},
		{"junk in list", "role in (a b)", 12, "expected ',' or ')' in value list"},
		{"junk after term", "role=web zone=a", 10, "expected ',' or end of selector"},
		{"value after not-exists", "!role=web", 6, "a '!key' term takes no operator or value"},
		{"paren after key", "role(web)", 5, "expected an operator"},
		{"bang alone", "!", 2, "expected a label key"},
		{"operator only", "=web", 1, "expected a label key, found '='"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded, want error", tt.in)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			if e.Input != tt.in {
				t.Errorf("Input = %q, want %q", e.Input, tt.in)
			}
			if e.Column() != tt.col {
				t.Errorf("column = %d, want %d (err: %v)", e.Column(), tt.col, err)
			}
			if !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("Msg = %q, want it to contain %q", e.Msg, tt.msg)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != 3 {
				t.Fatalf("Error() has %d lines, want 3:\n%s", len(lines), err)
			}
			if lines[1] != "  "+tt.in {
				t.Errorf("second line = %q, want the input", lines[1])
			}
			if want := "  " + strings.Repeat(" ", tt.col-1) + "^"; lines[2] != want {
				t.Errorf("caret line = %q, want %q", lines[2], want)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	_, err := Parse("role=web,,zone")
	want := "invalid selector \"role=web,,zone\": at column 10: expected a label key\n" +
		"  role=web,,zone\n" +
		"           ^"
	if err == nil || err.Error() != want {
		t.Fatalf("got:\n%v\nwant:\n%s", err, want)
	}
	// Control characters in the input must not break the caret alignment.
	_, err = Parse("a=b,\t,c")
	lines := strings.Split(err.Error(), "\n")
	if lines[1] != "  a=b, ,c" || lines[2] != "       ^" {
		t.Fatalf("tab input rendered as %q / %q", lines[1], lines[2])
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("MustParse of an invalid selector did not panic")
		}
	}()
	MustParse("a in (")
}

func TestValidateKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
		msg string
	}{
		{"role", true, ""},
		{"a", true, ""},
		{"A9", true, ""},
		{"app.kubernetes.io/name", true, ""},
		{"gantry.dev/zone_2", true, ""},
		{strings.Repeat("a", 63), true, ""},
		{strings.Repeat("a", 64), false, "63 characters or less"},
		{strings.Repeat("a", 253) + "/x", true, ""},
		{strings.Repeat("a", 254) + "/x", false, "253 characters or less"},
		{"", false, "must not be empty"},
		{"_role", false, "must start with a letter or digit"},
		{"role_", false, "must end with a letter or digit"},
		{"ro le", false, "invalid character ' '"},
		{"ex_ample.com/x", false, "invalid character '_' in prefix"},
		{"example..com/x", false, "empty DNS label"},
		{"-example.com/x", false, "must start with a lowercase letter or digit"},
		{"example-.com/x", false, "must end with a lowercase letter or digit"},
		{"example.com/", false, "name after '/' must not be empty"},
	}
	for _, tt := range tests {
		err := ValidateKey(tt.key)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateKey(%q) = %v, want ok=%v", tt.key, err, tt.ok)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ValidateKey(%q) = %q, want it to contain %q", tt.key, err, tt.msg)
		}
	}
}

func TestValidateValue(t *testing.T) {
	tests := []struct {
		val string
		ok  bool
		msg string
	}{
		{"", true, ""},
		{"web", true, ""},
		{"v1.2-rc_3", true, ""},
		{strings.Repeat("v", 63), true, ""},
		{strings.Repeat("v", 64), false, "63 characters or less"},
		{"a/b", false, "invalid character '/'"},
		{".hidden", false, "must start with a letter or digit"},
		{"a=b", false, "invalid character '='"},
	}
	for _, tt := range tests {
		err := ValidateValue(tt.val)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateValue(%q) = %v, want ok=%v", tt.val, err, tt.ok)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ValidateValue(%q) = %q, want it to contain %q", tt.val, err, tt.msg)
		}
	}
}

func TestParseLabels(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
	}{
		{"", map[string]string{}},
		{"  ", map[string]string{}},
		{"role=web", map[string]string{"role": "web"}},
		{"role=web,zone=a", map[string]string{"role": "web", "zone": "a"}},
		{" role = web , zone=a ", map[string]string{"role": "web", "zone": "a"}},
		{"canary=", map[string]string{"canary": ""}},
		{"example.com/team=infra", map[string]string{"example.com/team": "infra"}},
	}
	for _, tt := range tests {
		got, err := ParseLabels(tt.in)
		if err != nil {
			t.Errorf("ParseLabels(%q): %v", tt.in, err)
			continue
		}
		if got == nil || len(got) != len(tt.want) {
			t.Errorf("ParseLabels(%q) = %v, want %v", tt.in, got, tt.want)
			continue
		}
		for k, v := range tt.want {
			if gv, ok := got[k]; !ok || gv != v {
				t.Errorf("ParseLabels(%q)[%q] = %q, %v; want %q", tt.in, k, gv, ok, v)
			}
		}
	}
}

func TestParseLabelsErrors(t *testing.T) {
	tests := []struct {
		in  string
		col int
		msg string
	}{
		{"role", 1, `pair 1 "role" has no '=' (expected key=value)`},
		{"role=web,zone", 10, `pair 2 "zone" has no '='`},
		{"role=web,,zone=a", 10, "pair 2 is empty"},
		{"role=web,", 10, "pair 2 is empty"},
		{",role=web", 1, "pair 1 is empty"},
		{"role=web,ro$le=x", 12, `pair 2 "ro$le=x": invalid label key "ro$le": invalid character '$'`},
		{"role=web, zone=a b", 17, `pair 2 "zone=a b": invalid label value "a b": invalid character ' '`},
		{"role=a=b", 7, `invalid label value "a=b": invalid character '='`},
		{"=web", 1, `pair 1 "=web": invalid label key "": must not be empty`},
		{"role=web,role=db", 10, `pair 2 "role=db": duplicate key "role" (already set by pair 1)`},
		{"role=" + strings.Repeat("x", 64), 6, "63 characters or less"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			m, err := ParseLabels(tt.in)
			if err == nil {
				t.Fatalf("ParseLabels(%q) = %v, want error", tt.in, m)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error", err)
			}
			if !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("Msg = %q, want it to contain %q", e.Msg, tt.msg)
			}
			if e.Column() != tt.col {
				t.Errorf("column = %d, want %d\n%v", e.Column(), tt.col, err)
			}
			if !strings.HasPrefix(err.Error(), "invalid labels ") {
				t.Errorf("Error() = %q, want it to start with \"invalid labels \"", err)
			}
		})
	}
}
