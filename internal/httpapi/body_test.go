package httpapi

import (
	"strings"
	"testing"
)

// jsonFieldAt names the value or key that holds a byte, through nested
// objects and arrays.
func TestJSONFieldAt(t *testing.T) {
	for _, tc := range []struct{ body, at, want string }{
		{`{"script":"ab@"}`, "@", `field "script"`},
		{`{"health_check":{"command":["a","b@"]},"x":1}`, "@", `field "health_check.command[1]"`},
		{`{"a":[{"b":1},{"c":["x",{"d":"@"}]}]}`, "@", `field "a[1].c[1].d"`},
		{`{"labels":{"k@":"v"}}`, "@", `a key of "labels"`},
		{`{"k@":"v"}`, "@", "a key of the body"},
		{`["@"]`, "@", `field "[0]"`},
		{`"@"`, "@", ""},
	} {
		if got := jsonFieldAt([]byte(tc.body), strings.Index(tc.body, tc.at)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.body, got, tc.want)
		}
	}
}

// loneSurrogate finds a half pair, not a whole one nor an escaped
// backslash before "u".
func TestLoneSurrogate(t *testing.T) {
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"s":"\ud83d\ude00"}`, -1},
		{`{"s":"\\ud83d"}`, -1},
		{`{"s":"\u00e9\n\"\\"}`, -1},
		{`{"s":"\ud83d"}`, 6},
		{`{"s":"\ud83dx\ude00"}`, 6},
		{`{"s":"ok\ude00"}`, 8},
		{`{"s":"\\\ud83d"}`, 8},
	} {
		if got := loneSurrogate([]byte(tc.body)); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.body, got, tc.want)
		}
	}
}
