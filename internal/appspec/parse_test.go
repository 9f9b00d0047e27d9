package appspec

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gantry-dev/gantry/internal/golden"

	"github.com/gantry-dev/gantry/internal/diag"
)

// TestParseInvalid parses every testdata/invalid/*.yml and compares the
// diagnostics with the .golden file next to it: the exact text a user sees.
// Run go test -update to rewrite the goldens, then read every one of them.
func TestParseInvalid(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "invalid", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 25 {
		t.Fatalf("only %d invalid cases, want at least 25", len(paths))
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".yml")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			spec, err := Parse("appspec.yml", src)
			if err == nil {
				t.Fatalf("Parse() succeeded: %+v", spec)
			}
			if spec != nil {
				t.Errorf("Parse() returned a spec along with an error")
			}
			var ds diag.Diagnostics
			if !errors.As(err, &ds) || !ds.HasErrors() {
				t.Fatalf("error is %T, want diag.Diagnostics", err)
			}
			lines := strings.Split(string(src), "\n")
			for _, d := range ds {
				if d.File != "appspec.yml" {
					t.Errorf("diagnostic %q has file %q", d.Message, d.File)
				}
				line := strings.TrimSuffix(lines[max(d.Line, 1)-1], "\r")
				if !utf8.ValidString(line) || strings.ContainsFunc(line, func(r rune) bool { return r < ' ' && r != '\t' }) {
					continue // diag replaces these characters
				}
				if d.Line > 0 && line != d.Snippet {
					t.Errorf("diagnostic %q has snippet %q, line %d is %q", d.Message, d.Snippet, d.Line, line)
				}
			}
			golden.Check(t, strings.TrimSuffix(path, ".yml")+".golden", err.Error()+"\n")
		})
	}
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		file string
		want *AppSpec
	}{
		{
			file: "minimal.yml",
			want: &AppSpec{
				Version:            "0.0",
				OS:                 "linux",
				FileExistsBehavior: "DISALLOW",
				Hooks:              map[string][]Hook{},
			},
		},
		{
			file: "codedeploy-sample.yml",
			want: &AppSpec{
				Version: "0.0",
				OS:      "linux",
				Files: []File{
					{Source: "index.html", Destination: "/var/www/html"},
				},
				FileExistsBehavior: "DISALLOW",
				Hooks: map[string][]Hook{
					"BeforeInstall": {
						{Location: "scripts/install_dependencies", Timeout: 300 * time.Second, RunAs: "root"},
						{Location: "scripts/start_server", Timeout: 300 * time.Second, RunAs: "root"},
					},
					"ApplicationStop": {
						{Location: "scripts/stop_server", Timeout: 300 * time.Second, RunAs: "root"},
					},
				},
			},
		},
		{
			file: "real-world.yml",
			want: &AppSpec{
				Version: "0.0",
				OS:      "linux",
				Files: []File{
					{Source: ".", Destination: "/opt/shop"},
					{Source: "deploy/shop.service", Destination: "/etc/systemd/system"},
				},
				FileExistsBehavior: "OVERWRITE",
				Permissions: []Permission{
					{Object: "/opt/shop", Pattern: "**", Type: []string{"file", "directory"}, Owner: "shop", Group: "shop"},
					{Object: "/opt/shop/bin", Pattern: "*.sh", Type: []string{"file"}, Mode: "0755"},
				},
				Hooks: map[string][]Hook{
					"ApplicationStop": {
						{Location: "deploy/stop.sh", Timeout: time.Hour},
					},
					"BeforeInstall": {
						{Location: "deploy/install-deps.sh", Timeout: 600 * time.Second, RunAs: "root"},
					},
					"AfterInstall": {
						{Location: "deploy/migrate.sh", Timeout: time.Hour, RunAs: "shop"},
						{Location: "deploy/collect-static.sh", Timeout: time.Hour, RunAs: "shop"},
					},
					"ApplicationStart": {
						{Location: "deploy/start.sh", Timeout: 60 * time.Second},
					},
					"ValidateService": {
						{Location: "deploy/healthcheck.sh", Timeout: 120 * time.Second},
					},
				},
			},
		},
		{
			file: "full.yml",
			want: &AppSpec{
				Version: "0.0",
				OS:      "linux",
				Files: []File{
					{Source: ".", Destination: "/srv/app"},
					{Source: "config/app.conf", Destination: "/etc/app"},
					{Source: "bin", Destination: "/usr/local/bin"},
				},
				FileExistsBehavior: "RETAIN",
				Permissions: []Permission{
					{
						Object:  "/srv/app",
						Pattern: "**",
						Except:  []string{"*.log", "tmp*"},
						Type:    []string{"directory"},
						Owner:   "app",
						Group:   "www-data",
						Mode:    "2775",
						ACLs:    []string{"u:deploy:rwx", "d:g:ops:rx", "m::rwx", "default:user:backup:r-x", "g:1001:5"},
						Context: &Context{User: "system_u", Type: "httpd_sys_content_t", Range: "s0-s0:c0.c1023"},
					},
					{
						Object:  "/srv/app/public",
						Pattern: "*.html",
						Except:  []string{},
						Type:    []string{"file"},
						Owner:   "1001",
						Group:   "1001",
						Mode:    "0644",
						Context: &Context{Type: "httpd_sys_content_t"},
					},
					{
						Object:  "/usr/local/bin",
						Pattern: "**",
						Type:    []string{"file", "directory"},
						Mode:    "4755",
					},
				},
				Hooks: map[string][]Hook{
					"BeforeBlockTraffic": {{Location: "hooks/drain.sh", Timeout: 300 * time.Second, RunAs: "deploy"}},
					"AfterBlockTraffic":  {{Location: "hooks/drained.sh", Timeout: 300 * time.Second, RunAs: "deploy"}},
					"ApplicationStop":    {{Location: "hooks/stop.sh", Timeout: 300 * time.Second, RunAs: "deploy"}},
					"BeforeInstall":      {{Location: "hooks/backup.sh", Timeout: 900 * time.Second, RunAs: "root"}},
					"AfterInstall": {
						{Location: "hooks/migrate.sh", Timeout: 1800 * time.Second, RunAs: "app"},
						{Location: "hooks/warm.sh", Timeout: 1800 * time.Second, RunAs: "app"},
					},
					"ApplicationStart":   {{Location: "hooks/start.sh", Timeout: time.Hour}},
					"ValidateService":    {{Location: "hooks/check.sh", Timeout: 120 * time.Second, RunAs: "nobody"}},
					"BeforeAllowTraffic": {{Location: "hooks/warmup.sh", Timeout: 300 * time.Second, RunAs: "deploy"}},
					"AfterAllowTraffic":  {{Location: "hooks/announce.sh", Timeout: 300 * time.Second, RunAs: "deploy"}},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("testdata", "valid", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse("appspec.yml", src)
			if err != nil {
				t.Fatalf("Parse() error:\n%v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse() =\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
}

// TestParseValues checks small variations that must be accepted, one
// field at a time.
func TestParseValues(t *testing.T) {
	const head = "version: 0.0\nos: linux\n"
	tests := []struct {
		name  string
		src   string
		check func(*AppSpec) bool
	}{
		{"version as a string", "version: \"0.0\"\nos: linux\n", nil},
		{"version as 0", "version: 0\nos: linux\n", nil},
		{"empty sections", head + "files:\npermissions:\nhooks:\nfile_exists_behavior:\n",
			func(s *AppSpec) bool {
				return s.Files == nil && s.FileExistsBehavior == "DISALLOW" && len(s.Hooks) == 0
			}},
		{"event with no scripts", head + "hooks:\n  AfterInstall: []\n",
			func(s *AppSpec) bool { return s.HookScripts("AfterInstall") == nil }},
		{"source / and .", head + "files:\n  - source: /\n    destination: /a\n  - source: .\n    destination: /b/\n  - source: ./x/../y\n    destination: /\n",
			func(s *AppSpec) bool {
				return s.Files[0] == File{".", "/a"} && s.Files[1] == File{".", "/b"} && s.Files[2] == File{"y", "/"} &&
					s.Files[0].WholeBundle() && !s.Files[2].WholeBundle()
			}},
		{"timeout as a quoted number", head + "hooks:\n  AfterInstall:\n    - location: a.sh\n      timeout: \"45\"\n",
			func(s *AppSpec) bool { return s.Hooks["AfterInstall"][0].Timeout == 45*time.Second }},
		{"timeout bounds", head + "hooks:\n  AfterInstall:\n    - location: a.sh\n      timeout: 1\n  BeforeInstall:\n    - location: b.sh\n      timeout: 3600\n",
			func(s *AppSpec) bool { return s.Hooks["BeforeInstall"][0].Timeout == time.Hour }},
		{"timeouts adding up to exactly an hour", head + "hooks:\n  AfterInstall:\n    - location: a.sh\n      timeout: 1800\n    - location: b.sh\n      timeout: 1800\n", nil},
		{"runas null", head + "hooks:\n  AfterInstall:\n    - location: a.sh\n      runas:\n", nil},
		{"location cleaned", head + "hooks:\n  AfterInstall:\n    - location: ./scripts//a.sh\n",
			func(s *AppSpec) bool { return s.Hooks["AfterInstall"][0].Location == "scripts/a.sh" }},
		{"mode written as a short number", head + "permissions:\n  - object: /a\n    mode: 5\n",
			func(s *AppSpec) bool { return s.Permissions[0].Mode == "0005" }},
		{"mode quoted", head + "permissions:\n  - object: /a\n    mode: \"0640\"\n",
			func(s *AppSpec) bool { return s.Permissions[0].Mode == "0640" }},
		{"empty type list", head + "permissions:\n  - object: /a\n    type: []\n",
			func(s *AppSpec) bool { return s.Permissions[0].Type != nil && len(s.Permissions[0].Type) == 0 }},
		{"json", `{"version": 0.0, "os": "linux", "hooks": {"AfterInstall": [{"location": "a.sh", "timeout": 10}]}}`,
			func(s *AppSpec) bool { return s.Hooks["AfterInstall"][0].Timeout == 10*time.Second }},
		{"crlf line endings", "version: 0.0\r\nos: linux\r\nfiles:\r\n  - source: /\r\n    destination: /srv\r\n",
			func(s *AppSpec) bool { return s.Files[0].Destination == "/srv" }},
		{"trailing document marker", head + "---\n", nil},
		{"byte order mark", "\ufeff" + head, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := Parse("appspec.yml", []byte(tt.src))
			if err != nil {
				t.Fatalf("Parse() error:\n%v", err)
			}
			if tt.check != nil && !tt.check(spec) {
				t.Errorf("Parse() = %+v", spec)
			}
		})
	}
}

func TestFileMode(t *testing.T) {
	tests := []struct {
		mode string
		want fs.FileMode
		ok   bool
	}{
		{"", 0, false},
		{"0644", 0o644, true},
		{"0755", 0o755, true},
		{"4755", fs.ModeSetuid | 0o755, true},
		{"2775", fs.ModeSetgid | 0o775, true},
		{"1777", fs.ModeSticky | 0o777, true},
		{"7000", fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky, true},
	}
	for _, tt := range tests {
		got, ok := Permission{Mode: tt.mode}.FileMode()
		if got != tt.want || ok != tt.ok {
			t.Errorf("FileMode(%q) = %v, %v; want %v, %v", tt.mode, got, ok, tt.want, tt.ok)
		}
	}
}

func TestCheckACE(t *testing.T) {
	tests := []struct {
		ace string
		ok  bool
	}{
		{"u:bob:rw", true},
		{"user:bob:rwx", true},
		{"bob:r", true}, // a bare name is a user
		{"g:ops:r-x", true},
		{"group:ops:7", true},
		{"m::rwx", true},
		{"mask:rw", true},
		{"o::r", false}, // base entries, even other, are set with mode
		{"other:r", false},
		{"d:u:bob:rw", true},
		{"default:g:ops:rx", true},
		{"d:u::rwx", true}, // a default base entry
		{"d:bob:rw", true},
		{"u:bob:", true}, // no permissions at all, as the agent allows
		{"u::rw", false}, // base entry: use mode
		{"g::r", false},
		{"m:bob:r", false},
		{"o:bob:r", false},
		{"d:d:u:bob:r", false},
		{"x:bob:rw", false},
		{"u:bob:rwz", false},
		{"u:bob:8", false},
		{"u:bob:77", false},
		{"bob", false},
		{"a:b:c:d:e", false},
	}
	for _, tt := range tests {
		if got := checkACE(tt.ace) == ""; got != tt.ok {
			t.Errorf("checkACE(%q) ok = %v, want %v (%s)", tt.ace, got, tt.ok, checkACE(tt.ace))
		}
	}
}

func TestCheckRange(t *testing.T) {
	tests := []struct {
		r  string
		ok bool
	}{
		{"s0", true},
		{"s0-s0", true},
		{"s0-s15:c0.c1023", true},
		{"s0:c1,c3,c5.c7", true},
		{"s1-s0", false},
		{"s", false},
		{"0", false},
		{"s0-", false},
		{"s0:", false},
		{"s0:c1024", false},
		{"s0:c5.c2", false},
		{"s0:c1,c1", false},
		{"s0:c0.c3,c2", false},
		{"s0:c0.c1.c2", false},
		{"s0-s1-s2", false},
		{"sx", false},
	}
	for _, tt := range tests {
		if got := checkRange(tt.r) == ""; got != tt.ok {
			t.Errorf("checkRange(%q) ok = %v, want %v (%s)", tt.r, got, tt.ok, checkRange(tt.r))
		}
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"root", true},
		{"www-data", true},
		{"_apt", true},
		{"svc.app", true},
		{"Deploy01", true},
		{"1001", true},
		{"host$", true},
		{"", false},
		{"-root", false},
		{"web user", false},
		{"a:b", false},
		{"$", false},
		{"a$b", false},
		{".", false},
		{"..", false},
		{"bob@example.com", false},
		{strings.Repeat("a", 256), true},
		{strings.Repeat("a", 257), false},
	}
	for _, tt := range tests {
		if got := validName(tt.name); got != tt.ok {
			t.Errorf("validName(%q) = %v, want %v", tt.name, got, tt.ok)
		}
	}
}

// TestParseTerminates feeds self-referencing and exponentially merging
// documents, which must end with an error rather than loop or blow up.
func TestParseTerminates(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - &s0 {location: a.sh}\n")
	prev := "s0"
	for i := 1; i <= 20; i++ {
		name := "s" + strings.Repeat("x", i)
		b.WriteString("    - &" + name + " {<<: [*" + prev + ", *" + prev + ", *" + prev + "], location: a.sh}\n")
		prev = name
	}
	tests := []string{
		"version: 0.0\nos: linux\nhooks: &h\n  <<: *h\n",
		"version: 0.0\nos: linux\nhooks:\n  AfterInstall: &l\n    - *l\n",
		b.String(),
	}
	for _, src := range tests {
		_, _ = Parse("appspec.yml", []byte(src))
	}
}
