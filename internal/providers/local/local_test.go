package local

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/provider"
)

// fakeAgent is a stand-in agent binary: it records its arguments and the
// join token it got, then waits to be stopped.
// Each file is written whole (renamed into place), so that a reader never
// sees half of it.
const fakeAgent = "#!/bin/sh\necho \"$@\" > args.tmp && mv args.tmp args\necho \"$GANTRY_JOIN_TOKEN\" > token.tmp && mv token.tmp token\nsleep 600\n"

func TestMachineLifecycle(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "fake-agent")
	if err := os.WriteFile(bin, []byte(fakeAgent), 0o755); err != nil {
		t.Fatal(err)
	}
	l := New(filepath.Join(dir, "machines"))
	ctx := context.Background()
	ms, err := l.CreateMachine(ctx, provider.Machine{Env: "dev", Group: "web", Resource: "group.web[0]", Name: "dev-web-0",
		Agent: provider.Agent{Binary: bin, ServerURL: "http://127.0.0.1:7070", BusURL: "nats://127.0.0.1:7422", JoinToken: "gjt_secret", Name: "dev-web-0"}})
	if err != nil {
		t.Fatal(err)
	}
	if ms.ID != "dev-web-0" || ms.Address != "127.0.0.1" {
		t.Fatalf("CreateMachine = %+v", ms)
	}
	mdir := filepath.Join(dir, "machines", "dev-web-0")
	waitFile := func(name string) string {
		deadline := time.Now().Add(10 * time.Second)
		for {
			if b, err := os.ReadFile(filepath.Join(mdir, name)); err == nil && len(b) > 0 {
				return strings.TrimSpace(string(b))
			}
			if time.Now().After(deadline) {
				t.Fatalf("the agent did not write %s", name)
			}
			time.Sleep(20 * time.Millisecond) // polling a file the child writes
		}
	}
	args := waitFile("args")
	for _, want := range []string{"agent --server http://127.0.0.1:7070", "--name dev-web-0", "--data-dir " + filepath.Join(mdir, "agent"), "--install-root " + filepath.Join(mdir, "root"), "--bus-url nats://127.0.0.1:7422"} {
		if !strings.Contains(args, want) {
			t.Errorf("agent args %q lack %q", args, want)
		}
	}
	if strings.Contains(args, "gjt_secret") || waitFile("token") != "gjt_secret" {
		t.Errorf("the join token must come through the environment only (args %q)", args)
	}
	if st, ok, err := l.ReadMachine(ctx, "dev-web-0"); err != nil || !ok || !st.Running {
		t.Fatalf("ReadMachine = %+v %v %v, want running", st, ok, err)
	}
	found, err := l.List(ctx, "dev")
	if err != nil || len(found) != 1 || found[0].Resource != "group.web[0]" || found[0].ID != "dev-web-0" {
		t.Fatalf("List(dev) = %+v %v", found, err)
	}
	if other, _ := l.List(ctx, "prod"); len(other) != 0 {
		t.Fatalf("List(prod) = %+v, want nothing", other)
	}
	m, _, _ := l.meta("dev-web-0")
	if err := l.DeleteMachine(ctx, "dev-web-0"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(m.PID, 0); err == nil && l.alive(m) {
		t.Fatalf("agent pid %d still running after DeleteMachine", m.PID)
	}
	if _, ok, err := l.ReadMachine(ctx, "dev-web-0"); ok || err != nil {
		t.Fatalf("ReadMachine after delete: exists=%v err=%v", ok, err)
	}
	if err := l.DeleteMachine(ctx, "dev-web-0"); err != nil {
		t.Fatalf("DeleteMachine twice: %v", err)
	}
	if _, err := l.CreateNetwork(ctx, provider.Network{Name: "x"}); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("CreateNetwork = %v, want not supported", err)
	}
	if _, err := l.CreateMachine(ctx, provider.Machine{Name: "../escape"}); err == nil {
		t.Fatal("a machine name with a slash was accepted")
	}
}

// Paths given relative (a server started with `--data-dir gantry-data`,
// `--agent-binary ./bin/gantry`) reach the agent absolute: it runs in its
// machine's directory, where they would point elsewhere.
func TestRelativePathsReachTheAgentAbsolute(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.MkdirAll("bin", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("bin", "fake-agent"), []byte(fakeAgent), 0o755); err != nil {
		t.Fatal(err)
	}
	l := New(filepath.Join("gantry-data", "machines"))
	ctx := context.Background()
	if _, err := l.CreateMachine(ctx, provider.Machine{Env: "dev", Group: "web", Resource: "group.web[0]", Name: "dev-web-0",
		Agent: provider.Agent{Binary: "./" + filepath.Join("bin", "fake-agent"), ServerURL: "http://127.0.0.1:7070", JoinToken: "gjt_secret", Name: "dev-web-0"}}); err != nil {
		t.Fatalf("CreateMachine with a relative directory and binary: %v", err)
	}
	t.Cleanup(func() { _ = l.DeleteMachine(ctx, "dev-web-0") })
	mdir := filepath.Join(dir, "gantry-data", "machines", "dev-web-0")
	var args string
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(mdir, "args")); err == nil {
			args = strings.TrimSpace(string(b))
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent did not start (a relative binary resolved in the machine's directory?)")
		}
		time.Sleep(20 * time.Millisecond) // polling a file the child writes
	}
	for _, want := range []string{"--data-dir " + filepath.Join(mdir, "agent") + " ", "--install-root " + filepath.Join(mdir, "root")} {
		if !strings.Contains(args+" ", want) {
			t.Errorf("agent args %q lack the absolute %q", args, want)
		}
	}
	if st, ok, err := l.ReadMachine(ctx, "dev-web-0"); err != nil || !ok || !st.Running {
		t.Fatalf("ReadMachine = %+v %v %v, want running", st, ok, err)
	}
}
