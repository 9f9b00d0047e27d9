// Command fakeagent stands in for `gantry agent` in the ssh provider's
// tests: it records its arguments and GANTRY_JOIN_TOKEN under --data-dir,
// appends its pid to --data-dir/starts and waits for SIGTERM.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	dataDir := ""
	for i, a := range os.Args {
		if a == "--data-dir" && i+1 < len(os.Args) {
			dataDir = os.Args[i+1]
		}
	}
	if dataDir == "" {
		fmt.Fprintln(os.Stderr, "fakeagent: no --data-dir")
		os.Exit(2)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	must(os.MkdirAll(dataDir, 0o700))
	must(os.WriteFile(filepath.Join(dataDir, "argv"), []byte(strings.Join(os.Args, "\n")), 0o600))
	must(os.WriteFile(filepath.Join(dataDir, "token"), []byte(os.Getenv("GANTRY_JOIN_TOKEN")), 0o600))
	f, err := os.OpenFile(filepath.Join(dataDir, "starts"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	must(err)
	_, err = fmt.Fprintf(f, "%d\n", os.Getpid())
	must(err)
	must(f.Close())
	<-sig
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakeagent:", err)
		os.Exit(1)
	}
}
