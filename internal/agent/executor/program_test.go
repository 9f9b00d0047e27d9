package executor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeProgram writes an executable file and returns its absolute path.
func writeProgram(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hook.sh")
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// A program runs under the interpreter its "#!" line names, with its
// absolute path as $0; without a "#!" line it runs under /bin/sh.
func TestProgramInterpreter(t *testing.T) {
	if _, err := os.Stat("/bin/bash"); err != nil {
		t.Fatalf("this test needs /bin/bash: %v", err)
	}
	tests := []struct {
		name, body, want string
	}{
		// Under dash, `[[` is "not found" and the array a syntax error.
		{"bash", "#!/bin/bash\na=(x y)\n[[ ${a[1]} == y ]] && echo \"bash $0\"\n", "bash %s\n"},
		{"sh without shebang", "echo \"sh $0\"\n", "sh %s\n"},
		{"env", "#!/usr/bin/env sh\necho \"env $0\"\n", "env %s\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeProgram(t, tt.body)
			res := Run(context.Background(), Spec{Program: p}, nil)
			if res.Err != "" || res.ExitCode != 0 {
				t.Fatalf("got %+v (stderr %q)", res, res.Stderr)
			}
			if want := strings.Replace(tt.want, "%s", p, 1); string(res.Stdout) != want {
				t.Errorf("stdout %q, want %q", res.Stdout, want)
			}
		})
	}
}

// A missing interpreter is named in the error.
func TestProgramMissingInterpreter(t *testing.T) {
	p := writeProgram(t, "#!/no/such/interpreter -x\necho hi\n")
	res := Run(context.Background(), Spec{Program: p}, nil)
	if res.PID != 0 || !strings.Contains(res.Err, `"#!/no/such/interpreter -x"`) || !strings.Contains(res.Err, "not found") {
		t.Fatalf("got %+v, want an error naming the interpreter", res)
	}
}

// A relative program path is refused before anything starts.
func TestProgramRelative(t *testing.T) {
	res := Run(context.Background(), Spec{Program: "hook.sh"}, nil)
	if res.PID != 0 || !strings.Contains(res.Err, "not an absolute path") {
		t.Fatalf("got %+v", res)
	}
}

// A program's timeout kills its whole process group, as for scripts.
func TestProgramTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	p := writeProgram(t, "#!/bin/bash\nsleep 30 &\necho $! > \"$PIDFILE\"\nsleep 30\n")
	res := Run(context.Background(), Spec{Program: p, Timeout: 500 * time.Millisecond, Env: []string{"PIDFILE=" + pidFile}}, nil)
	killGroup(t, res.PID)
	if !res.TimedOut || res.ExitCode != -1 || res.Err != "" {
		t.Fatalf("got %+v, want TimedOut", res)
	}
	waitGone(t, readPID(t, pidFile), 5*time.Second)
}
