package dockertest

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestBuildImageRunsBusybox(t *testing.T) {
	c := Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const tag = "gantry-test-dockertest-busybox:dev"
	t.Cleanup(func() { _ = RemoveImage(context.Background(), c, tag) })
	err := BuildImage(ctx, tag, map[string]File{
		"/etc/gantry/hello.txt": {Data: []byte("hello from the image\n")},
		"/usr/local/bin/greet":  {Data: []byte("#!/bin/sh\necho greet \"$@\"\n"), Mode: 0o755},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, code, err := Run(ctx, c, tag, "/bin/sh", "-c", "cat /etc/gantry/hello.txt && /usr/local/bin/greet a b && ls -ld /tmp && id -u && wget --help 2>&1 | head -1 && echo done")
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, want := range []string{"hello from the image", "greet a b", "drwxrwxrwt", "0\n", "done"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestBuildImageWithBinaries(t *testing.T) {
	c := Require(t)
	const bin = "/usr/sbin/haproxy"
	if _, err := libraries(context.Background(), bin); err != nil {
		t.Skipf("%s: %v", bin, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const tag = "gantry-test-dockertest-haproxy:dev"
	t.Cleanup(func() { _ = RemoveImage(context.Background(), c, tag) })
	if err := BuildImageWithBinaries(ctx, tag, []string{bin}); err != nil {
		t.Fatal(err)
	}
	out, code, err := Run(ctx, c, tag, bin, "-v")
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || !strings.Contains(out, "HAProxy version") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func TestLibrariesOfStaticBinary(t *testing.T) {
	libs, err := libraries(context.Background(), BusyboxPath)
	if err != nil {
		t.Fatalf("%v (make test installs busybox-static)", err)
	}
	if len(libs) != 0 {
		t.Fatalf("static busybox has libraries %v", libs)
	}
}
