// Command loadgen is the load generator of gantry's traffic tests and
// benchmarks (issue "Traffic control"): C concurrent HTTP clients that GET
// one URL as fast as they can (or at a total rate), and count every
// request, every non-2xx answer by status and every connection or
// transport error by kind. Standard library only, so that it can run as a
// second process anywhere.
//
//	loadgen -url http://172.18.0.4/ -c 8 [-duration 0] [-rate 0] [-out summary.json]
//	        [-timeline] [-new-conn] [-backend-header X-Backend] [-stop FILE] [-timeout 10s]
//
// It runs until SIGTERM or SIGINT, until -duration has passed (0: no
// limit) or until the file named by -stop exists (checked every 20 ms; one
// that exists already at start is refused, exit 2: an earlier run's would
// end this one at once). On
// stop, no client starts a new request; the requests in flight finish (each
// bounded by -timeout) and are counted. The JSON summary is written to -out
// (atomically: a temporary file renamed over it) once a second while it runs
// ("running": true) and once at the end ("running": false), so that a test
// can poll it. The last line on stdout is
//
//	requests 12345, failed 0 (0.000%), p99 3.1 ms
//
// Connections: by default each client has its own http.Transport holding
// one keep-alive connection (MaxIdleConnsPerHost 1), the way C independent
// users (or browsers) would. A shared transport would also work with
// MaxIdleConnsPerHost >= C, but it lets any client pick up any idle
// connection, so a connection the load balancer closes is seen by whichever
// client takes it next; with one transport per client the C connections
// are C clients' own, and the counts per client stay meaningful. With
// -new-conn every request opens a new connection (DisableKeepAlives): each
// one is a fresh pick of the load balancer and sees every connect error.
//
// Retries: Go's transport (like browsers) silently retries a GET once
// when a reused keep-alive connection turns out to be closed or reset
// before any answer was read. That would hide exactly the connection
// resets a load balancer reload can cause, so loadgen turns it off by
// default (the request carries an empty body without GetBody, which makes
// it non-replayable; nothing different goes on the wire) and counts such
// a request as failed ("eof" or "reset"). -retry allows the retry, as a
// browser would; the summary's "retried" counts the requests that needed
// a second connection.
//
// A request fails when it gets no response (an error: refused, reset, eof,
// timeout, other) or a status outside 200–299. Latency is measured from the
// request's start to the end of its body. -backend-header names a response
// header (the load balancer's X-Backend) whose values are counted, so that
// a client can tell which servers answered.
//
// Exit status: 0 after a run (whatever it counted), 2 on a usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Summary is the JSON that -out receives.
type Summary struct {
	URL       string    `json:"url"`
	Clients   int       `json:"clients"`
	NewConn   bool      `json:"new_conn"`
	Rate      float64   `json:"rate,omitempty"`
	Running   bool      `json:"running"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	DurationS float64   `json:"duration_s"`
	Requests  int64     `json:"requests"`
	OK        int64     `json:"ok"`
	Failed    int64     `json:"failed"`
	// Retried counts the requests that needed a second connection (only
	// with -retry; they are not failures).
	Retried     int64             `json:"retried"`
	FailedPct   float64           `json:"failed_pct"`
	PerSecond   float64           `json:"per_second"`
	Status      map[string]int64  `json:"status"`                 // every status code answered → count (2xx included)
	Errors      map[string]int64  `json:"errors"`                 // error kind → count
	ErrorSample map[string]string `json:"error_sample,omitempty"` // error kind → one message
	Latency     Latency           `json:"latency_ms"`
	Backends    map[string]int64  `json:"backends,omitempty"` // -backend-header value → answers ("" without it)
	// FailuresByBackend counts the failed answers per backend header value.
	FailuresByBackend map[string]int64 `json:"failures_by_backend,omitempty"`
	// Failures are the first 100 failures, in order.
	Failures []Failure `json:"failures,omitempty"`
	Timeline []Second  `json:"timeline"`
}

// Latency figures in milliseconds, over every request that got a response.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// Failure is one failed request.
type Failure struct {
	AtMillis int64  `json:"at_ms"` // since the start
	Kind     string `json:"kind"`  // "status 503", "reset", ...
	Backend  string `json:"backend,omitempty"`
	Detail   string `json:"detail,omitempty"`
}

// Second is one second of the run.
type Second struct {
	T        int     `json:"t"` // seconds since the start
	Requests int64   `json:"requests"`
	Failed   int64   `json:"failed"`
	MaxMs    float64 `json:"max_ms"`
}

// stats is what the clients record into (one mutex: at tens of thousands
// of requests a second it is not the bottleneck; the network is).
type stats struct {
	mu        sync.Mutex
	start     time.Time
	requests  int64
	ok        int64
	failed    int64
	retried   int64
	status    map[string]int64
	errs      map[string]int64
	errSample map[string]string
	lat       []float64 // ms, every answered request
	backends  map[string]int64
	failBk    map[string]int64
	failures  []Failure
	timeline  []Second
}

func (s *stats) record(at time.Time, lat time.Duration, code int, kind, backend, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	sec := int(at.Sub(s.start) / time.Second)
	for len(s.timeline) <= sec {
		s.timeline = append(s.timeline, Second{T: len(s.timeline)})
	}
	b := &s.timeline[sec]
	b.Requests++
	ms := float64(lat) / float64(time.Millisecond)
	failed := false
	if code != 0 {
		s.status[strconv.Itoa(code)]++
		s.lat = append(s.lat, ms)
		if ms > b.MaxMs {
			b.MaxMs = ms
		}
		if s.backends != nil {
			s.backends[backend]++
		}
		failed = code < 200 || code > 299
		if failed {
			kind = "status " + strconv.Itoa(code)
		}
	} else {
		failed = true
		s.errs[kind]++
		if _, ok := s.errSample[kind]; !ok {
			s.errSample[kind] = detail
		}
	}
	if !failed {
		s.ok++
		return
	}
	s.failed++
	b.Failed++
	if s.failBk != nil {
		s.failBk[backend]++
	}
	if len(s.failures) < 100 {
		s.failures = append(s.failures, Failure{AtMillis: at.Sub(s.start).Milliseconds(), Kind: kind, Backend: backend, Detail: detail})
	}
}

func (s *stats) summary(cfg config, running bool, end time.Time) Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := Summary{URL: cfg.url, Clients: cfg.clients, NewConn: cfg.newConn, Rate: cfg.rate, Running: running,
		StartedAt: s.start, EndedAt: end, DurationS: end.Sub(s.start).Seconds(),
		Requests: s.requests, OK: s.ok, Failed: s.failed, Retried: s.retried,
		Status: copyMap(s.status), Errors: copyMap(s.errs), ErrorSample: map[string]string{},
		Failures: append([]Failure(nil), s.failures...), Timeline: append([]Second(nil), s.timeline...)}
	for k, v := range s.errSample {
		sum.ErrorSample[k] = v
	}
	if s.backends != nil {
		sum.Backends = copyMap(s.backends)
		sum.FailuresByBackend = copyMap(s.failBk)
	}
	if s.requests > 0 {
		sum.FailedPct = 100 * float64(s.failed) / float64(s.requests)
	}
	if sum.DurationS > 0 {
		sum.PerSecond = float64(s.requests) / sum.DurationS
	}
	lat := append([]float64(nil), s.lat...)
	sort.Float64s(lat)
	if n := len(lat); n > 0 {
		q := func(p float64) float64 { return lat[min(n-1, int(math.Ceil(p*float64(n)))-1)] }
		total := 0.0
		for _, v := range lat {
			total += v
		}
		sum.Latency = Latency{P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: lat[n-1], Mean: total / float64(n)}
	}
	return sum
}

func copyMap[V any](m map[string]V) map[string]V {
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// errKind classifies a request error.
func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), strings.Contains(err.Error(), "server closed"):
		return "eof"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	}
	return "other"
}

type config struct {
	url           string
	clients       int
	duration      time.Duration
	rate          float64
	out           string
	timeline      bool
	newConn       bool
	retry         bool
	backendHeader string
	stopFile      string
	timeout       time.Duration
}

func main() {
	var cfg config
	flag.StringVar(&cfg.url, "url", "", "URL to GET (required; http:// or https://)")
	flag.IntVar(&cfg.clients, "c", 8, "concurrent clients")
	flag.DurationVar(&cfg.duration, "duration", 0, "stop after this long (0: until SIGTERM/SIGINT or -stop)")
	flag.Float64Var(&cfg.rate, "rate", 0, "total requests per second over all clients (0: as fast as they can)")
	flag.StringVar(&cfg.out, "out", "", "write the JSON summary here (atomically; also once a second while running)")
	flag.BoolVar(&cfg.timeline, "timeline", false, "print one line per second to stderr while running")
	flag.BoolVar(&cfg.newConn, "new-conn", false, "a new connection per request (default: one keep-alive connection per client)")
	flag.BoolVar(&cfg.retry, "retry", false, "let Go's transport retry a GET whose reused connection was closed before the answer (as browsers do; counted in \"retried\", not failed)")
	flag.StringVar(&cfg.backendHeader, "backend-header", "X-Backend", "response header naming the server that answered, counted per value (\"\": none)")
	flag.StringVar(&cfg.stopFile, "stop", "", "stop when this file exists")
	flag.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "timeout of one request")
	flag.Parse()
	if err := cfg.check(); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		flag.Usage()
		os.Exit(2)
	}
	sum := run(cfg)
	fmt.Printf("requests %d, failed %d (%.3f%%), p99 %.1f ms\n", sum.Requests, sum.Failed, sum.FailedPct, sum.Latency.P99)
}

func (c config) check() error {
	u, err := url.Parse(c.url)
	switch {
	case c.url == "":
		return errors.New("-url is required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("-url %q: want an http:// or https:// URL", c.url)
	case c.clients < 1:
		return fmt.Errorf("-c %d: want at least 1 client", c.clients)
	case c.duration < 0:
		return fmt.Errorf("-duration %s: want 0 (no limit) or more", c.duration)
	case c.rate < 0:
		return fmt.Errorf("-rate %g: want 0 (no limit) or more", c.rate)
	case c.timeout <= 0:
		return fmt.Errorf("-timeout %s: want more than 0", c.timeout)
	}
	if c.stopFile != "" {
		if _, err := os.Stat(c.stopFile); err == nil {
			// A stop file left by an earlier run would end this one at
			// once, with a summary of nothing that looks like success.
			return fmt.Errorf("-stop %s exists already (an earlier run's?): remove it first, then start the load", c.stopFile)
		}
	}
	return nil
}

func run(cfg config) Summary {
	st := &stats{start: time.Now(), status: map[string]int64{}, errs: map[string]int64{}, errSample: map[string]string{}}
	if cfg.backendHeader != "" {
		st.backends, st.failBk = map[string]int64{}, map[string]int64{}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.stopFile != "" {
		go func() {
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			for {
				if _, err := os.Stat(cfg.stopFile); err == nil {
					cancel()
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}

	// -rate: a token per request, handed out at the total rate.
	var tokens chan struct{}
	if cfg.rate > 0 {
		tokens = make(chan struct{}, cfg.clients)
		go func() {
			every := time.Duration(float64(time.Second) / cfg.rate)
			next := time.Now()
			for ctx.Err() == nil {
				next = next.Add(every)
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
				select {
				case tokens <- struct{}{}:
				case <-ctx.Done():
				}
			}
		}()
	}

	var wg sync.WaitGroup
	for range cfg.clients {
		tr := &http.Transport{
			Proxy:               nil, // straight to the URL, whatever $HTTP_PROXY says
			DialContext:         (&net.Dialer{Timeout: cfg.timeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     90 * time.Second,
			DisableKeepAlives:   cfg.newConn,
			DisableCompression:  true,
		}
		client := &http.Client{Transport: tr, Timeout: cfg.timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer tr.CloseIdleConnections()
			for {
				if tokens != nil {
					select {
					case <-tokens:
					case <-ctx.Done():
						return
					}
				}
				if ctx.Err() != nil {
					return
				}
				one(cfg, client, st)
			}
		}()
	}

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastPrinted := -1
	for {
		select {
		case <-done:
			sum := st.summary(cfg, false, time.Now())
			if cfg.out != "" {
				if err := writeAtomic(cfg.out, sum); err != nil {
					fmt.Fprintf(os.Stderr, "loadgen: -out: %v\n", err)
				}
			}
			if cfg.timeline {
				printTimeline(sum.Timeline, lastPrinted, true)
			}
			return sum
		case <-tick.C:
			sum := st.summary(cfg, true, time.Now())
			if cfg.out != "" {
				if err := writeAtomic(cfg.out, sum); err != nil {
					fmt.Fprintf(os.Stderr, "loadgen: -out: %v\n", err)
				}
			}
			if cfg.timeline {
				lastPrinted = printTimeline(sum.Timeline, lastPrinted, false)
			}
		}
	}
}

// printTimeline prints the complete seconds after last (all with final)
// and returns the last one printed.
func printTimeline(tl []Second, last int, final bool) int {
	n := len(tl) - 1 // the current second is still counting
	if final {
		n = len(tl)
	}
	for i := last + 1; i < n; i++ {
		s := tl[i]
		fmt.Fprintf(os.Stderr, "t=%ds requests %d failed %d max %.1f ms\n", s.T, s.Requests, s.Failed, s.MaxMs)
		last = i
	}
	return last
}

// one makes one request and records it.
func one(cfg config, client *http.Client, st *stats) {
	t0 := time.Now()
	var body io.Reader
	if !cfg.retry {
		body = emptyBody{} // not replayable: no silent retry (see the package doc)
	}
	req, err := http.NewRequest(http.MethodGet, cfg.url, body)
	if err != nil {
		st.record(t0, 0, 0, "other", "", err.Error())
		return
	}
	conns := 0
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { conns++ }}))
	resp, err := client.Do(req)
	if conns > 1 {
		st.mu.Lock()
		st.retried++
		st.mu.Unlock()
	}
	if err != nil {
		st.record(t0, time.Since(t0), 0, errKind(err), "", err.Error())
		return
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	backend := ""
	if cfg.backendHeader != "" {
		backend = resp.Header.Get(cfg.backendHeader)
	}
	if err != nil { // the body was cut: the answer did not arrive whole
		st.record(t0, time.Since(t0), 0, errKind(err), backend, "reading the body: "+err.Error())
		return
	}
	st.record(t0, time.Since(t0), resp.StatusCode, "", backend, "")
}

// emptyBody is a request body with nothing in it, of a type that
// http.NewRequest does not know: the request gets no GetBody, so the
// transport does not replay it, and for a GET the transport finds it empty
// and sends no body (no Content-Length, no chunking).
type emptyBody struct{}

func (emptyBody) Read([]byte) (int, error) { return 0, io.EOF }

// writeAtomic writes v as JSON to a temporary file next to path and
// renames it over path.
func writeAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".loadgen-*.json")
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
}
