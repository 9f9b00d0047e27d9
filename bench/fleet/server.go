package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/gantry-dev/gantry/internal/server"
)

// serverSubcommand re-executes this program as the server, for
// -server-cpuprofile: the same server.Start as `gantry server` (store, bus,
// engine, API), plus CPU profiling between SIGUSR2 (start) and SIGUSR1 (stop;
// also writes a heap profile to <file>.heap).
const serverSubcommand = "__profiled-server"

// serverProfile is -server-cpuprofile.
var serverProfile string

func profiledServer(args []string) int {
	fs := flag.NewFlagSet(serverSubcommand, flag.ContinueOnError)
	var cfg server.Config
	var level, profile string
	fs.StringVar(&cfg.DataDir, "data-dir", "", "")
	fs.StringVar(&cfg.Listen, "listen", "", "")
	fs.StringVar(&cfg.NATSListen, "nats-listen", "", "")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", 5*time.Second, "")
	fs.StringVar(&level, "log-level", "info", "")
	fs.StringVar(&profile, "cpuprofile", "", "")
	tlsOn := fs.Bool("tls", true, "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(level))
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	cfg.AdminToken = os.Getenv("GANTRY_ADMIN_TOKEN")
	cfg.NoTLS = !*tlsOn
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		return 1
	}
	defer srv.Close()
	fmt.Printf("profiled gantry server listening on %s\n", srv.URL())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
	var f *os.File
	for {
		select {
		case <-ctx.Done():
			if f != nil {
				pprof.StopCPUProfile()
				f.Close()
			}
			return 0
		case s := <-sigs:
			switch {
			case s == syscall.SIGUSR2 && f == nil:
				if f, err = os.Create(profile); err == nil {
					err = pprof.StartCPUProfile(f)
				}
				cfg.Log.Info("cpu profile started", "file", profile, "err", err)
			case s == syscall.SIGUSR1 && f != nil:
				pprof.StopCPUProfile()
				f.Close()
				f = nil
				if h, err := os.Create(profile + ".heap"); err == nil {
					runtime.GC()
					_ = pprof.WriteHeapProfile(h)
					h.Close()
				}
				cfg.Log.Info("cpu profile written", "file", profile)
			}
		}
	}
}
