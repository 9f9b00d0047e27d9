// Command weights measures how long a weight change takes on a real
// HAProxy driven by gantry's haproxy driver (internal/lb/haproxy, the code
// the agent runs), under load. Part of bench/traffic (run.sh runs it).
//
//	go run ./bench/traffic/weights [-n 1000] [-loadgen BIN] [-c 8] [-keep]
//
// It starts two HTTP backends on loopback and a managed haproxy in a
// temporary directory (Configure: one backend, two servers ready, HTTP
// health checks), starts BIN (bench/loadgen) with C clients against the
// haproxy's port when -loadgen is given, then makes N weight changes of
// one server (1..256 in turn) and times three things for each:
//
//   - set: the driver's Set (runtime API command, plus writing the change
//     down so that a reload keeps it): what gantry's agent does;
//   - visible: Set, then Status until it reports the new weight (haproxy's
//     own view: the change is applied);
//   - floor: the bare runtime API command on the socket, nothing written.
//
// Last line: weights: N changes, set p99 X ms, visible p99 Y ms (floor Z ms) (goal < 10 ms p99); load: ...
// It stops the haproxy and loadgen it started, and deletes its directory
// (unless -keep), Ctrl-C included.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/lb"
	"github.com/gantry-dev/gantry/internal/lb/haproxy"
)

func main() {
	n := flag.Int("n", 1000, "number of weight changes")
	loadgen := flag.String("loadgen", "", "bench/loadgen binary to run against the haproxy meanwhile (\"\": no load)")
	clients := flag.Int("c", 8, "loadgen clients")
	keep := flag.Bool("keep", false, "keep the temporary directory")
	flag.Parse()
	if *n < 1 {
		fmt.Fprintln(os.Stderr, "weights: -n must be at least 1")
		os.Exit(2)
	}
	if err := run(*n, *loadgen, *clients, *keep); err != nil {
		fmt.Fprintf(os.Stderr, "weights: %v\n", err)
		os.Exit(1)
	}
}

func backend(name string) (int, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok from "+name+"\n")
	})}
	go srv.Serve(l)
	return l.Addr().(*net.TCPAddr).Port, func() { srv.Close() }, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func run(n int, loadgen string, clients int, keep bool) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "gantry-traffic-weights.")
	if err != nil {
		return err
	}
	defer func() {
		// Stop the haproxy processes of this directory's pid file.
		if b, e := os.ReadFile(filepath.Join(dir, haproxy.PidFile)); e == nil {
			for _, f := range strings.Fields(string(b)) {
				if pid, e := strconv.Atoi(f); e == nil && pid > 0 {
					syscall.Kill(pid, syscall.SIGTERM)
				}
			}
		}
		if keep || err != nil {
			fmt.Fprintf(os.Stderr, "weights: directory kept: %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	p1, close1, err := backend("s1")
	if err != nil {
		return err
	}
	defer close1()
	p2, close2, err := backend("s2")
	if err != nil {
		return err
	}
	defer close2()
	listen, err := freePort()
	if err != nil {
		return err
	}
	bal, err := lb.Open(haproxy.Name, lb.Options{Dir: dir})
	if err != nil {
		return err
	}
	cfg := api.LBConfig{Backends: []api.LBBackend{{
		Name: "web", Listen: listen, Header: "X-Backend",
		Check: api.LBCheck{Path: "/", IntervalMillis: 500},
		Servers: []api.LBServer{
			{Name: "s1", Addr: "127.0.0.1", Port: p1, Weight: 100, State: api.LBReady},
			{Name: "s2", Addr: "127.0.0.1", Port: p2, Weight: 100, State: api.LBReady},
		},
	}}}
	if err := bal.Configure(ctx, cfg); err != nil {
		return fmt.Errorf("configure haproxy: %w", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		ss, err := bal.Status(ctx, "web")
		up := 0
		for _, s := range ss {
			if s.Health == "UP" {
				up++
			}
		}
		if err == nil && up == 2 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("haproxy's servers not UP after 15 s: %v %+v", err, ss)
		}
		time.Sleep(50 * time.Millisecond)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", listen)

	var lg *exec.Cmd
	out := filepath.Join(dir, "load.json")
	if loadgen != "" {
		lg = exec.Command(loadgen, "-url", url, "-c", strconv.Itoa(clients), "-out", out)
		lg.Stderr = os.Stderr
		if err := lg.Start(); err != nil {
			return fmt.Errorf("start loadgen: %w", err)
		}
		defer func() {
			if lg.ProcessState == nil {
				lg.Process.Kill()
				lg.Wait()
			}
		}()
		for i := 0; ; i++ { // until it has made requests
			if b, err := os.ReadFile(out); err == nil && strings.Contains(string(b), `"requests"`) {
				break
			}
			if i > 300 {
				return fmt.Errorf("loadgen wrote no summary after 15 s")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	hb := bal.(*haproxy.Balancer)
	var set, visible, floor []float64
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	for i := range n {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w := 1 + i%256
		t0 := time.Now()
		if err := bal.Set(ctx, "web", "s1", "", w); err != nil {
			return fmt.Errorf("change %d: %w", i, err)
		}
		set = append(set, ms(time.Since(t0)))
		for {
			ss, err := bal.Status(ctx, "web")
			if err != nil {
				return err
			}
			seen := false
			for _, s := range ss {
				seen = seen || (s.Name == "s1" && s.Weight == w)
			}
			if seen {
				break
			}
			if time.Since(t0) > 5*time.Second {
				return fmt.Errorf("change %d: weight %d not reported after 5 s", i, w)
			}
		}
		visible = append(visible, ms(time.Since(t0)))
		t1 := time.Now()
		if err := hb.Client().Exec(ctx, fmt.Sprintf("set server web/s2 weight %d", w)); err != nil {
			return err
		}
		floor = append(floor, ms(time.Since(t1)))
	}
	// Back to the configured weights, written down too.
	bal.Set(ctx, "web", "s1", "", 100)
	bal.Set(ctx, "web", "s2", "", 100)

	load := "no load"
	if lg != nil {
		lg.Process.Signal(syscall.SIGTERM)
		lg.Wait()
		var s struct {
			Requests, Failed int64
			Latency          struct{ P99 float64 } `json:"latency_ms"`
		}
		b, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		load = fmt.Sprintf("load: %d requests by %d clients, failed %d, p99 %.1f ms", s.Requests, clients, s.Failed, s.Latency.P99)
	}
	q := func(xs []float64, p float64) float64 {
		sort.Float64s(xs)
		return xs[min(len(xs)-1, int(p*float64(len(xs))))]
	}
	fmt.Fprintf(os.Stderr, "weights: set p50 %.2f ms, visible p50 %.2f ms, floor p50 %.2f ms; max set %.2f ms\n",
		q(set, 0.5), q(visible, 0.5), q(floor, 0.5), q(set, 1))
	fmt.Printf("weights: %d changes, set p99 %.2f ms, visible p99 %.2f ms (floor: bare socket command p99 %.2f ms) (goal < 10 ms p99); %s\n",
		n, q(set, 0.99), q(visible, 0.99), q(floor, 0.99), load)
	return nil
}
