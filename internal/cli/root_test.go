package cli

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunEntryPoint(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"version"}, &out, &errb, func(string) string { return "" })
	if code != 0 || !strings.HasPrefix(out.String(), "gantry "+Version) {
		t.Fatalf("version: code %d, out %q, err %q", code, out.String(), errb.String())
	}
}

func TestUsageErrors(t *testing.T) {
	f := newFakeServer(t)
	cases := []struct {
		args  []string
		wants []string
	}{
		{[]string{"bogus"}, []string{`Error: unknown command "bogus" for "gantry"`, "Run 'gantry --help' for usage."}},
		{[]string{"hosts", "lss"}, []string{`unknown command "lss" for "gantry hosts"`, `did you mean "ls"?`, "Run 'gantry hosts --help'"}},
		{[]string{"hosts", "ls", "--bogus"}, []string{"unknown flag: --bogus", "Run 'gantry hosts ls --help' for usage."}},
		{[]string{"hosts", "ls", "extra"}, []string{`unexpected argument "extra"`}},
		{[]string{"hosts", "show"}, []string{"missing HOST argument", "Run 'gantry hosts show --help'"}},
		{[]string{"-o", "yaml", "hosts", "ls"}, []string{`invalid argument "yaml"`, "table, json"}},
		{[]string{"hosts", "ls", "--output=xml"}, []string{"must be one of: table, json"}},
		{[]string{"token", "create", "--ttl", "5x"}, []string{`"--ttl"`, "Run 'gantry token create --help'"}},
		{[]string{"token", "create", "--ttl", "-5m"}, []string{"invalid --ttl"}},
		{[]string{"token", "create", "--uses", "-1"}, []string{"invalid --uses"}},
		{[]string{"token", "create", "--labels", "a=1,b"}, []string{`invalid --labels entry "b"`}},
		{[]string{"jobs", "ls", "--limit", "x"}, []string{`"--limit"`}},
		{[]string{"--server", "ftp://x", "hosts", "ls"}, []string{"invalid server URL"}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := f.gantry(t, nil, tc.args...)
			r.expect(t, 2, tc.wants...)
			if r.stdout != "" {
				t.Errorf("usage error wrote to stdout: %q", r.stdout)
			}
		})
	}
	if n := f.requestCount(); n != 0 {
		t.Errorf("usage errors must not reach the server; it saw %d requests", n)
	}
}

func TestHelpAndVersion(t *testing.T) {
	r := (*fakeServer)(nil).gantry(t, nil)
	r.expect(t, 0, "Usage:", "gantry run --selector 'role=web' -- uptime", "server", "agent")
	r = (*fakeServer)(nil).gantry(t, nil, "hosts")
	r.expect(t, 0, "Available Commands:", "label")
	r = (*fakeServer)(nil).gantry(t, nil, "run", "--help")
	r.expect(t, 0, "Examples:", "--no-wait", "--script FILE")
	r = (*fakeServer)(nil).gantry(t, nil, "version", "-o", "json")
	var v struct{ Version string }
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Version != Version {
		t.Errorf("version json: %q (%v)", r.stdout, err)
	}
}

func TestNoServerConfigured(t *testing.T) {
	r := (*fakeServer)(nil).gantry(t, nil, "hosts", "ls")
	r.expect(t, 1, "no server configured", "gantry login")
}

func TestUnreachableServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "https://" + l.Addr().String()
	l.Close()
	r := (*fakeServer)(nil).gantry(t, map[string]string{"GANTRY_SERVER": url}, "hosts", "ls")
	r.expect(t, 1, "server at "+url+" is not reachable", "gantry server --dev", "gantry login")
}

func TestUnauthorizedHint(t *testing.T) {
	f := newFakeServer(t)
	r := f.gantry(t, map[string]string{"GANTRY_TOKEN": "wrong"}, "hosts", "ls")
	r.expect(t, 1, "Error: invalid or missing API token", "GANTRY_TOKEN")
}

func TestLoginSavesProfile(t *testing.T) {
	f := newFakeServer(t)
	xdg := t.TempDir()
	env := map[string]string{"GANTRY_CONFIG": "", "XDG_CONFIG_HOME": xdg, "GANTRY_SERVER": "", "GANTRY_TOKEN": ""}
	r := f.gantry(t, env, "login", "--server", f.URL+"/", "--token", f.token)
	path := filepath.Join(xdg, "gantry", "config.json")
	r.expect(t, 0, "Logged in to "+f.URL+" as admin", path)

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("profile mode %v, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("profile dir mode %v, want 0700", di.Mode().Perm())
	}
	p, err := loadProfile(path)
	if err != nil || p.Server != f.URL || p.Token != f.token {
		t.Errorf("profile = %+v, %v", p, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}

	// Later commands use the profile.
	f.gantry(t, env, "hosts", "ls").expect(t, 0, "web-1")
}

func TestLoginRejectsBadToken(t *testing.T) {
	f := newFakeServer(t)
	cfg := filepath.Join(t.TempDir(), "sub", "config.json")
	r := f.gantry(t, map[string]string{"GANTRY_CONFIG": cfg}, "login", "--token", "nope")
	r.expect(t, 1, "checking the token", "invalid or missing API token")
	if _, err := os.Stat(cfg); !os.IsNotExist(err) {
		t.Errorf("profile written despite a rejected token: %v", err)
	}
	r = f.gantry(t, map[string]string{"GANTRY_TOKEN": ""}, "login")
	r.expect(t, 2, "--token is required")
}

func TestProfilePath(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"GANTRY_CONFIG": "/a/c.json", "XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "/a/c.json"},
		{map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "/x/gantry/config.json"},
		{map[string]string{"HOME": "/h"}, "/h/.config/gantry/config.json"},
	}
	for _, tc := range cases {
		if got, err := profilePath(env(tc.vars)); err != nil || got != tc.want {
			t.Errorf("profilePath(%v) = %q, %v; want %q", tc.vars, got, err, tc.want)
		}
	}
}

func TestSaveProfileOverwritesLooseFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := saveProfile(path, profile{Server: "http://s", Token: "t"}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestCredentialPrecedence(t *testing.T) {
	f := newFakeServer(t)
	other := newFakeServer(t)
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := saveProfile(cfg, profile{Server: f.URL, Token: f.token}); err != nil {
		t.Fatal(err)
	}
	lastAuth := func(s *fakeServer) string {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.auths) == 0 {
			return ""
		}
		return s.auths[len(s.auths)-1]
	}
	base := map[string]string{"GANTRY_CONFIG": cfg, "GANTRY_SERVER": "", "GANTRY_TOKEN": ""}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	// Profile only.
	f.gantry(t, base, "hosts", "ls").expect(t, 0)
	if got := lastAuth(f); got != "Bearer "+f.token {
		t.Errorf("profile token: server saw %q", got)
	}
	// Environment beats the profile.
	f.gantry(t, with("GANTRY_TOKEN", "env-token"), "hosts", "ls").expect(t, 1)
	if got := lastAuth(f); got != "Bearer env-token" {
		t.Errorf("env token: server saw %q", got)
	}
	// Flags beat the environment.
	f.gantry(t, with("GANTRY_TOKEN", "env-token"), "--token", f.token, "hosts", "ls").expect(t, 0)
	if got := lastAuth(f); got != "Bearer "+f.token {
		t.Errorf("flag token: server saw %q", got)
	}
	f.gantry(t, with("GANTRY_SERVER", "http://127.0.0.1:1"), "--server", f.URL, "hosts", "ls").expect(t, 0)
	// The profile's token is never sent to another server.
	other.gantry(t, with("GANTRY_SERVER", other.URL), "hosts", "ls").expect(t, 1)
	if got := lastAuth(other); got != "" {
		t.Errorf("profile token leaked to another server: %q", got)
	}
}

func TestServerErrors(t *testing.T) {
	f := newFakeServer(t)
	// A 400 means the arguments were wrong: a usage error with the server's message.
	r := f.gantry(t, nil, "hosts", "ls", "--selector", "role==web")
	r.expect(t, 2, "Error: invalid selector \"role==web\": unexpected '=' at position 5", "Run 'gantry hosts ls --help'")
	// Other failures are the command failing.
	r = f.gantry(t, nil, "hosts", "show", "nope")
	r.expect(t, 1, `Error: host "nope" not found`)
	if strings.Contains(r.stderr, "--help") {
		t.Errorf("not found is not a usage error: %s", r.stderr)
	}
}
