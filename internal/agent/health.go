package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// Health check defaults.
const (
	defaultHealthTimeout  = 60 * time.Second
	defaultHealthInterval = time.Second
)

// runHealthCheck retries a group's health check until it passes, its
// timeout passes, or ctx ends. The error names the last failure.
func runHealthCheck(ctx context.Context, hc api.HealthCheck) error {
	timeout := time.Duration(hc.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = defaultHealthTimeout
	}
	every := time.Duration(hc.IntervalMillis) * time.Millisecond
	if every <= 0 {
		every = defaultHealthInterval
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	attempts := 0
	var err error // the last attempt's failure that was not cut short by the deadline
	for {
		attempts++
		e := checkOnce(ctx, hc)
		if e == nil {
			return nil
		}
		if ctx.Err() == nil || err == nil {
			err = e
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("health check did not pass within %s (%d attempts); last: %v", timeout, attempts, err)
			}
			return fmt.Errorf("health check canceled; last: %v", err)
		case <-t.C:
		}
	}
}

// checkOnce runs one attempt.
func checkOnce(ctx context.Context, hc api.HealthCheck) error {
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch {
	case hc.HTTP != "":
		want := hc.ExpectStatus
		if want == 0 {
			want = http.StatusOK
		}
		req, err := http.NewRequestWithContext(actx, http.MethodGet, hc.HTTP, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", hc.HTTP, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Errorf("GET %s: status %d, want %d", hc.HTTP, resp.StatusCode, want)
		}
		return nil
	case hc.TCP != "":
		addr := hc.TCP
		if !strings.Contains(addr, ":") {
			addr = net.JoinHostPort("127.0.0.1", addr)
		}
		var d net.Dialer
		c, err := d.DialContext(actx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("connect to %s: %w", addr, err)
		}
		return c.Close()
	case len(hc.Command) > 0:
		// No shell: the program and its arguments are passed as is.
		cmd := exec.CommandContext(actx, hc.Command[0], hc.Command[1:]...)
		// A check that leaves a child holding its output must not hang.
		cmd.WaitDelay = time.Second
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v: %s", hc.Command[0], err, strings.TrimSpace(tail(string(out), 512)))
		}
		return nil
	}
	return errors.New("health check has no http, tcp or command")
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
