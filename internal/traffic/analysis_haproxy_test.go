package traffic

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/lb"
	"github.com/gantry-dev/gantry/internal/lb/haproxy"
)

// These tests run the analysis and the weights against a real haproxy
// (Debian's 2.6): its counters, as the driver reports them, are what
// Analyze reads in production.

// hdBackend is an HTTP server that answers its name, and 500 to every
// fifth request when bad.
type hdBackend struct {
	name string
	port int
	bad  atomic.Bool
	n    atomic.Int64
}

func startHD(t *testing.T, name string) *hdBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &hdBackend{name: name, port: ln.Addr().(*net.TCPAddr).Port}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if n := b.n.Add(1); b.bad.Load() && n%5 == 0 {
			http.Error(w, "boom", 500)
			return
		}
		io.WriteString(w, name)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return b
}

// realLB starts a managed haproxy with backend web of the given servers
// (all ready, checks every 100 ms) and returns it with its port.
func realLB(t *testing.T, servers ...*hdBackend) (*haproxy.Balancer, int) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: this test starts a real haproxy")
	}
	if bin, err := haproxy.Binary(); err != nil {
		t.Fatalf("this test needs haproxy (Debian's haproxy package): %v", err)
	} else if _, err := os.Stat(bin); err != nil {
		t.Fatalf("this test needs haproxy at %s: %v", bin, err)
	}
	dir, err := os.MkdirTemp("/tmp", "hD-lb-")
	if err != nil {
		t.Fatal(err)
	}
	b, err := haproxy.Open(lb.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Stop()
		os.RemoveAll(dir)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	var ss []api.LBServer
	for _, s := range servers {
		ss = append(ss, api.LBServer{Name: s.name, Addr: "127.0.0.1", Port: s.port, State: api.LBReady})
	}
	cfg := api.LBConfig{Backends: []api.LBBackend{{Name: "web", Listen: port, Check: api.LBCheck{Path: "/health", IntervalMillis: 100, Rise: 2, Fall: 2}, Servers: ss}}}
	if err := b.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := b.Status(context.Background(), "web")
		if err != nil {
			t.Fatal(err)
		}
		up := 0
		for _, s := range st {
			if s.Health == "UP" {
				up++
			}
		}
		if up == len(servers) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("servers not UP: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return b, port
}

// load sends n requests through the load balancer with 8 concurrent
// clients and returns the answers per server name ("5xx" for 500s).
func load(t *testing.T, port, n int) map[string]int {
	t.Helper()
	var mu sync.Mutex
	out := map[string]int{}
	c := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	per := n / 8
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
				key := "error"
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					key = string(body)
					if resp.StatusCode >= 500 {
						key = "5xx"
					}
				}
				mu.Lock()
				out[key]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

func statusOf(t *testing.T, b *haproxy.Balancer) []api.LBServerStatus {
	t.Helper()
	st, err := b.Status(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// A canary answering 500 to a fifth of its requests fails the analysis of
// haproxy's own counters; a good one passes; no traffic is no data.
func TestAnalyzeRealHAProxy(t *testing.T) {
	c, s1, s2 := startHD(t, "canary"), startHD(t, "s1"), startHD(t, "s2")
	b, port := realLB(t, c, s1, s2)
	ctx := context.Background()
	canary := map[string]bool{"canary": true}
	spec := api.CanarySpec{}

	before := statusOf(t, b)
	if a := Analyze(spec, before, statusOf(t, b), canary); a.Verdict != VerdictNoData {
		t.Errorf("no traffic: %s (%s), want no_data", a.Verdict, a.Reason)
	}
	load(t, port, 600)
	good := Analyze(spec, before, statusOf(t, b), canary)
	if good.Verdict != VerdictPass || good.CanaryRequests < 150 || good.StableRequests < 300 {
		t.Errorf("good canary: %+v, want pass with about 200 canary requests", good)
	}
	c.bad.Store(true)
	before = statusOf(t, b)
	got := load(t, port, 600)
	bad := Analyze(spec, before, statusOf(t, b), canary)
	t.Logf("bad canary through haproxy: answers %v, analysis %+v", got, bad)
	if bad.Verdict != VerdictFail || math.Abs(bad.ErrorRate-0.2) > 0.05 {
		t.Errorf("bad canary: %+v, want fail at about 20%%", bad)
	}
	if int64(got["5xx"]) != bad.CanaryErrors {
		t.Errorf("the analysis counted %d errors, the clients saw %d 5xx", bad.CanaryErrors, got["5xx"])
	}

	// A drain takes the canary out for the very next request.
	start := time.Now()
	if err := b.Set(ctx, "web", "canary", api.LBDrain, -1); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	after := load(t, port, 400)
	t.Logf("canary drain applied in %s; then %v", took, after)
	if after["canary"] != 0 || after["5xx"] != 0 {
		t.Errorf("after the drain returned the canary still answered: %v", after)
	}
	if took > 100*time.Millisecond {
		t.Errorf("drain took %s, want milliseconds", took)
	}
}

// ShareWeights gives the canary its share of real traffic.
func TestShareWeightsRealHAProxy(t *testing.T) {
	c, s1, s2, s3 := startHD(t, "canary"), startHD(t, "s1"), startHD(t, "s2"), startHD(t, "s3")
	b, port := realLB(t, c, s1, s2, s3)
	ctx := context.Background()
	for _, p := range []int{10, 50, 90} {
		w := WeightMap(p, []string{"canary"}, []string{"s1", "s2", "s3"})
		for name, weight := range w {
			if err := b.Set(ctx, "web", name, "", weight); err != nil {
				t.Fatal(err)
			}
		}
		got := load(t, port, 800)
		share := 100 * float64(got["canary"]) / float64(got["canary"]+got["s1"]+got["s2"]+got["s3"])
		t.Logf("%d%%: weights %v → canary share %.1f%%", p, w, share)
		if math.Abs(share-float64(p)) > 3 {
			t.Errorf("%d%%: canary got %.1f%% of the requests (%v)", p, share, got)
		}
	}
}
