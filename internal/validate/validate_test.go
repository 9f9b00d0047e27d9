package validate

import (
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// check runs a validator case: want "" means valid, otherwise a part of
// the error's message; every refusal is a *Error matching ErrInvalid.
func check(t *testing.T, name string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: unexpected error %v", name, err)
	case want != "" && err == nil:
		t.Errorf("%s: accepted, want an error with %q", name, want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("%s: error %q, want it to contain %q", name, err, want)
	case err != nil:
		var ve *Error
		if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %T is not a *validate.Error", name, err)
		}
	}
}

func TestRanges(t *testing.T) {
	for _, tc := range []struct {
		r    Range
		v    int64
		want string
	}{
		{JobTimeout, 0, ""},
		{JobTimeout, 1, ""},
		{JobTimeout, 86400, ""},
		{JobTimeout, 86401, "timeout_seconds: 86401 is out of range: want 1 to 86400 (24h); 0 means the default, 600 (10m)"},
		{JobTimeout, 9223372037, "timeout_seconds: 9223372037 is out of range: want 1 to 86400 (24h)"},
		{JobTimeout, math.MaxInt64, "is out of range"},
		{JobTimeout, math.MinInt64, "-9223372036854775808 is out of range"},
		{JobTimeout, -1, "-1 is out of range"},
		{LifecycleTimeout, 0, "timeout: 0 is out of range: want 1 to 86400 (24h)"},
		{HealthInterval, 99, "health_check.interval_ms: 99 is out of range: want 100 to 60000 (100ms to 1m); 0 means the default, 1000 (1s)"},
		{HealthInterval, 0, ""},
		{HealthTimeout, 3601, "want 1 to 3600 (1h)"},
		{GroupCount, 0, ""},
		{GroupCount, 10001, "count: 10001 is out of range: want 0 to 10000"},
		{JoinTokenUses, 0, ""},
		{JoinTokenUses, -1, "max_uses: -1 is out of range: want 1 to 1000000; 0 means unlimited until the token expires"},
		{ScriptSize, 1 << 20, "want 1 to 262144 bytes (256 KiB)"},
		{MinHealthyPercent, 101, "want 0% to 100%"},
		{Port, 65536, "port: 65536 is out of range: want 1 to 65535"},
	} {
		check(t, tc.r.Field+"="+time.Duration(tc.v).String(), tc.r.Check(tc.v), tc.want)
	}
	check(t, "CheckAs", LifecycleTimeout.CheckAs(`group "a".setup_timeout`, -5), `group "a".setup_timeout: -5 is out of range`)
	check(t, "RefuseDuration", LifecycleTimeout.RefuseDuration("", `"48h"`), `"48h" is out of range: want 1s to 24h`)
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"app", AppName("name", "shop-2"), ""},
		{"app upper", AppName("name", "Shop"), `name: application name "Shop": use 1 to 63 lower-case letters`},
		{"app dash", AppName("name", "shop-"), "starting and ending with a letter or digit"},
		{"app long", AppName("name", strings.Repeat("a", 64)), "1 to 63"},
		{"app empty", AppName("name", ""), "application name"},
		{"env", EnvName("env", strings.Repeat("e", 32)), ""},
		{"env long", EnvName("env", strings.Repeat("e", 33)), "1 to 32"},
		{"host", HostName("name", "Web_1.example"), ""},
		{"host space", HostName("name", "web 1"), `host name "web 1": only letters`},
		{"host long", HostName("name", strings.Repeat("h", 254)), "1 to 253 characters (has 254)"},
		{"user", UserName("user", "www-data"), ""},
		{"user dotted", UserName("user", "john.doe"), ""},
		{"user uid", UserName("user", "1000"), ""},
		{"user machine", UserName("user", "host$"), ""},
		{"user empty", UserName("user", ""), ""},
		{"user shell", UserName("user", "$(id)"), `user "$(id)"`},
		{"user space", UserName("user", "a b"), "want a user name"},
		{"user dash", UserName("user", "-x"), "not starting with '-'"},
		{"text", Text("description", "fix: tabs\tand\nnewlines é", 100), ""},
		{"text control", Text("description", "bell\a", 100), "control character U+0007 at byte 4"},
		{"text utf8", Text("description", "ab\xff", 100), "invalid UTF-8 at byte 2"},
		{"text long", Text("description", "abcd", 3), "is 4 bytes; the limit is 3"},
		{"label key space", LabelKey("labels", "my role"), `labels: invalid label key "my role": invalid character ' '`},
		{"label value $(…)", LabelValue("labels", "role", "$(id)"), `labels: role: invalid label value "$(id)": invalid character '$'`},
		{"labels ok", LabelSet("labels", map[string]string{"role": "web", "example.com/tier": "", "a": "b"}), ""},
		{"labels first bad in order", LabelSet("labels", map[string]string{"z z": "x", "a a": "x"}), `"a a"`},
		{"labels many", LabelSet("labels", func() map[string]string {
			m := map[string]string{}
			for i := range 65 {
				m[strings.Repeat("k", i+1)] = ""
			}
			return m
		}()), "65 labels; the limit is 64"},
	} {
		check(t, tc.name, tc.err, tc.want)
	}
}

func TestHealthChecks(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"tcp port", TCPAddress("tcp", "5432"), ""},
		{"tcp host:port", TCPAddress("tcp", "db.internal:5432"), ""},
		{"tcp ipv6", TCPAddress("tcp", "[::1]:5432"), ""},
		{"tcp empty", TCPAddress("tcp", ""), "address is empty"},
		{"tcp port 0", TCPAddress("tcp", "0"), `port "0" is out of range: want 1 to 65535`},
		{"tcp port overflow", TCPAddress("tcp", "127.0.0.1:99999999999999999999"), "is out of range"},
		{"tcp named port", TCPAddress("tcp", "127.0.0.1:http"), `port "http" is out of range`},
		{"tcp no port", TCPAddress("tcp", "localhost"), "want host:port"},
		{"tcp empty host", TCPAddress("tcp", ":80"), `host "": want an IP address or a DNS name`},
		{"tcp shell host", TCPAddress("tcp", "$(id):80"), `host "$(id)"`},
		{"tcp space host", TCPAddress("tcp", "a b:80"), `host "a b"`},
		{"http", HTTPURL("http", "http://127.0.0.1:8080/healthz?x=1"), ""},
		{"https name", HTTPURL("http", "https://web.internal/up"), ""},
		{"http ipv6", HTTPURL("http", "http://[::1]:80/"), ""},
		{"http no scheme", HTTPURL("http", "127.0.0.1:8080/healthz"), "want an http:// or https:// URL"},
		{"http ftp", HTTPURL("http", "ftp://a/"), "want an http:// or https://"},
		{"http no host", HTTPURL("http", "http:///x"), "with a host"},
		{"http shell host", HTTPURL("http", "http://$(id)/"), `host "$(id)"`},
		{"http port 0", HTTPURL("http", "http://a:0/"), `port "0" is out of range`},
		{"http empty port", HTTPURL("http", "http://a:/"), `port "" is out of range`},
		{"http space in path", HTTPURL("http", "http://a/b c"), "must not contain spaces"},
		{"command", Command("command", []string{"pg_isready", "-q"}), ""},
		{"command empty", Command("command", nil), "must name a program"},
		{"command empty program", Command("command", []string{""}), "must name a program"},
		{"command nul", Command("command", []string{"a", "b\x00"}), "word 2 contains a NUL byte"},
		{"command long", Command("command", make([]string, 65)), "must name a program"},
		{"check ok", HealthCheck("health_check", &api.HealthCheck{HTTP: "http://127.0.0.1/", ExpectStatus: 204, TimeoutSeconds: 3600, IntervalMillis: 100}), ""},
		{"check nil", HealthCheck("health_check", nil), ""},
		{"check none", HealthCheck("health_check", &api.HealthCheck{}), "health_check: needs exactly one of http, tcp and command, got 0"},
		{"check two", HealthCheck("health_check", &api.HealthCheck{TCP: "1", Command: []string{"x"}}), "got 2"},
		{"check status without http", HealthCheck("health_check", &api.HealthCheck{TCP: "1", ExpectStatus: 200}), "health_check.expect_status: applies to http checks only"},
		{"check timeout overflow", HealthCheck("health_check", &api.HealthCheck{TCP: "1", TimeoutSeconds: 9223372037}), "health_check.timeout_seconds: 9223372037 is out of range: want 1 to 3600 (1h)"},
		{"check negative interval", HealthCheck("health_check", &api.HealthCheck{TCP: "1", IntervalMillis: -1}), "health_check.interval_ms: -1 is out of range"},
	} {
		check(t, tc.name, tc.err, tc.want)
	}
	args := make([]string, 65)
	for i := range args {
		args[i] = "x"
	}
	check(t, "command words", Command("command", args), "has 65 words; the limit is 64")
}

func TestDeployConfig(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want DeployConfig
		err  string
	}{
		{"", DeployConfig{Name: "OneAtATime"}, ""},
		{"CodeDeployDefault.HalfAtATime", DeployConfig{Name: "HalfAtATime"}, ""},
		{"AllAtOnce", DeployConfig{Name: "AllAtOnce"}, ""},
		{"4", DeployConfig{Count: 4}, ""},
		{"75%", DeployConfig{Count: 75, Percent: true}, ""},
		{"10000", DeployConfig{Count: 10000}, ""},
		{"10001", DeployConfig{}, `minimum of healthy hosts "10001" is out of range: want a count 0 to 10000, or a percentage 0% to 100%`},
		{"101%", DeployConfig{}, "is out of range"},
		{"99999999999999999999", DeployConfig{}, "is out of range"},
		{"-1", DeployConfig{}, `unknown deployment configuration "-1"`},
		{"%", DeployConfig{}, "unknown deployment configuration"},
		{"half", DeployConfig{}, "use OneAtATime, HalfAtATime, AllAtOnce"},
	} {
		got, err := ParseDeployConfig("config", tc.in)
		check(t, tc.in, err, tc.err)
		if err == nil && got != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestSchedules(t *testing.T) {
	from := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		expr string
		min  time.Duration
		want string
	}{
		{"@every 10s", 10 * time.Second, ""},
		{"@every 1ns", 10 * time.Second, `cron: "@every 1ns" runs every 1ns, more often than the minimum interval of 10s (the server's --min-schedule-interval)`},
		{"@every 9s", 10 * time.Second, "runs every 9s"},
		{"@every 1m", 2 * time.Minute, "minimum interval of 2m"},
		{"@hourly", 10 * time.Second, ""},
		{"*/5 * * * *", 10 * time.Second, ""},
		{"* * * * *", 10 * time.Second, ""},
		{"* * * * *", 2 * time.Minute, `"* * * * *" runs every 1m at times (e.g. 2026-03-01T12:01:00Z then 2026-03-01T12:02:00Z)`},
		// Runs an hour apart except once a day: found although the first
		// few runs are far apart.
		{"0,59 * * * *", 2 * time.Minute, "runs every 1m at times"},
		// Close runs once a year only.
		{"0,1 0 1 1 *", 2 * time.Minute, "2027-01-01T00:00:00Z then 2027-01-01T00:01:00Z"},
		{"0 0 30 2 *", 10 * time.Second, `"0 0 30 2 *" never runs`},
		{"@every 9999999999h", 10 * time.Second, "want 5 fields"},
		{"61 * * * *", 10 * time.Second, `cron: "61 * * * *": `},
		{"", 10 * time.Second, "want 5 fields"},
	} {
		_, err := Schedule("cron", tc.expr, tc.min, from)
		check(t, tc.expr+" min "+tc.min.String(), err, tc.want)
	}
}

// docs/limits.md shows every documented range: its table is Table().
func TestLimitsDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/limits.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), Table()) {
		t.Errorf("docs/limits.md does not carry the current table of limits; put this in it:\n%s", Table())
	}
}
