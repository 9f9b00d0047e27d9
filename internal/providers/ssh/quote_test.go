package ssh

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `''`},
		{"plain", `'plain'`},
		{"it's", `'it'\''s'`},
		{"''", `''\'''\'''`},
		{"a b", `'a b'`},
		{`$HOME $(id) ` + "`id`" + ` \ " * ? ~ ; & | < > ! # {a,b}`, `'$HOME $(id) ` + "`id`" + ` \ " * ? ~ ; & | < > ! # {a,b}'`},
	}
	for _, tt := range tests {
		if got := quote(tt.in); got != tt.want {
			t.Errorf("quote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// The quoted word must come out of a real shell as exactly the input, in
// every shell there is on this machine.
func TestQuoteRoundTrip(t *testing.T) {
	values := []string{
		"", "plain", "it's", "'", "''''", `\`, `\'`, `'\''`, "a b\tc", "$HOME", "${x:-y}", "$(touch /tmp/gantry-pwned)",
		"`touch /tmp/gantry-pwned`", `"; rm -rf / #`, "-n", "--", "*", "~root", "!!", "é ünïcödé ✓", "%s%n", "a\x01b",
	}
	for _, sh := range []string{"/bin/sh", "bash", "dash", "busybox"} {
		if _, err := exec.LookPath(strings.Fields(sh)[0]); err != nil {
			continue
		}
		for _, v := range values {
			args := []string{"-c", "printf '%s' " + quote(v)}
			if sh == "busybox" {
				args = append([]string{"sh"}, args...)
			}
			out, err := exec.Command(sh, args...).Output()
			if err != nil || string(out) != v {
				t.Errorf("%s: printf %s = %q (%v), want %q", sh, quote(v), out, err, v)
			}
		}
	}
}

func TestRemoteCommand(t *testing.T) {
	args := []string{"/opt/gantry agent", "it's", "$(id)", "", "--name"}
	line, err := remoteCommand(`for a in "$@"; do printf '[%s]' "$a"; done`, args...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(line, "/bin/sh -c '") {
		t.Errorf("line = %s", line)
	}
	// The login shell (here bash, like a root login) parses the line.
	out, err := exec.Command("bash", "-c", line).Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "[/opt/gantry agent][it's][$(id)][][--name]"; string(out) != want {
		t.Errorf("got %s, want %s", out, want)
	}

	for _, bad := range []string{"a\nb", "a\rb", "a\x00b", "\n"} {
		if _, err := remoteCommand("true", "ok", bad); !errors.Is(err, errBadValue) {
			t.Errorf("remoteCommand with %q: err = %v, want errBadValue", bad, err)
		}
	}
}

// Every script is valid POSIX sh (dash -n parses without running).
func TestScriptsParse(t *testing.T) {
	scripts := map[string]string{
		"probe": probeScript, "prepare": prepareScript, "put": putScript, "systemdStart": systemdStartScript,
		"supervisorStart": supervisorStartScript, "supervise": superviseScript, "read": readScript, "delete": deleteScript,
	}
	for _, sh := range []string{"dash", "bash"} {
		if _, err := exec.LookPath(sh); err != nil {
			continue
		}
		for name, s := range scripts {
			if out, err := exec.Command(sh, "-n", "-c", s).CombinedOutput(); err != nil {
				t.Errorf("%s -n %s: %v: %s", sh, name, err, out)
			}
		}
	}
}

func TestRenderUnit(t *testing.T) {
	got, err := renderUnit("prod-web-0", "/opt/gantry-agent", []string{"agent", "--server", "http://10.0.0.1:7070/?a=%x&b=$y", "--name", `we"ird\`, "--data-dir", "/opt/gantry-agent/data"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nEnvironmentFile=/opt/gantry-agent/agent.env\n",
		"\nExecStart=/opt/gantry-agent/gantry \"agent\" \"--server\" \"http://10.0.0.1:7070/?a=%%x&b=$$y\" \"--name\" \"we\\\"ird\\\\\" \"--data-dir\" \"/opt/gantry-agent/data\"\n",
		"\nRestart=always\n",
		"\nWantedBy=multi-user.target\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("unit lacks %q:\n%s", want, got)
		}
	}
	if _, err := renderUnit("x", "/opt/g", []string{"agent", "--name", "a\nExecStartPre=/bin/evil"}); err == nil {
		t.Error("a newline in an argument was accepted")
	}
}
