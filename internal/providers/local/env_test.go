package local

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/provider"
)

// A machine's agent gets a minimal environment: the server's admin token
// (and anything else of the server's environment) is not passed on.
func TestAgentEnvironmentIsMinimal(t *testing.T) {
	t.Setenv("GANTRY_ADMIN_TOKEN", "admin-secret-token")
	t.Setenv("GANTRY_DATABASE", "postgres://user:pw@db/gantry")
	dir := t.TempDir()
	bin := filepath.Join(dir, "fake-agent")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nenv > env.tmp && mv env.tmp env\nsleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	l := New(filepath.Join(dir, "machines"))
	ctx := context.Background()
	if _, err := l.CreateMachine(ctx, provider.Machine{Env: "dev", Name: "m0",
		Agent: provider.Agent{Binary: bin, ServerURL: "https://127.0.0.1:7070", JoinToken: "gjt_secret", Name: "m0"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.DeleteMachine(ctx, "m0") })
	var env []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if env, err = os.ReadFile(filepath.Join(dir, "machines", "m0", "env")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent did not write its environment")
		}
		time.Sleep(20 * time.Millisecond) // polling a file the child writes
	}
	got := map[string]string{}
	for _, kv := range strings.Split(strings.TrimSpace(string(env)), "\n") {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	if got["GANTRY_JOIN_TOKEN"] != "gjt_secret" || got["PATH"] == "" {
		t.Errorf("the agent lacks its join token or PATH: %q", env)
	}
	for k := range got {
		switch k {
		case "GANTRY_JOIN_TOKEN", "PATH", "HOME", "LANG", "LC_ALL", "TZ", "PWD", "SHLVL", "_": // the last three: set by sh itself
		default:
			t.Errorf("the agent got %s from the server's environment", k)
		}
	}
}
