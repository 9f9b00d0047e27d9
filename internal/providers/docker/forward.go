package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"syscall"
	"time"
)

// Forwarders let agents in containers reach a server that listens on
// loopback: see the package doc. They live in a registry of the process,
// keyed by listen address (gateway:port), because several providers (one per
// provider block, or one created again after a restart) share a gateway.
var registry = struct {
	sync.Mutex
	m map[string]*forwarder // by listen address
}{m: map[string]*forwarder{}}

// holder is the set of forwarders one provider holds a reference on.
type holder struct {
	mu   sync.Mutex
	keys map[string]bool
}

func newHolder() *holder { return &holder{keys: map[string]bool{}} }

// forward makes sure that listen (gateway:port) forwards to target (a
// loopback host:port) for clients inside subnet. It returns nil also when
// listen is taken by another socket (EADDRINUSE: the server itself listens
// on 0.0.0.0), in which case the agent reaches the server there directly.
func (h *holder) forward(listen, target string, subnet *net.IPNet) error {
	registry.Lock()
	defer registry.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if f := registry.m[listen]; f != nil {
		if f.target != target {
			return fmt.Errorf("forward %s to %s: it forwards to %s already", listen, target, f.target)
		}
		f.allowNet(subnet)
		if !h.keys[listen] {
			h.keys[listen] = true
			f.refs++
		}
		return nil
	}
	f, err := startForwarder(listen, target, subnet)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil
	}
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		return fmt.Errorf("forward %s to the server at %s: the gateway address is not on this machine (is the Docker daemon on another one? then run the server on an address the containers can reach): %w", listen, target, err)
	}
	if err != nil {
		return fmt.Errorf("forward %s to the server at %s: %w", listen, target, err)
	}
	f.refs = 1
	registry.m[listen] = f
	h.keys[listen] = true
	return nil
}

// releaseAll drops the holder's references; forwarders nobody holds stop.
func (h *holder) releaseAll() {
	registry.Lock()
	defer registry.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	for k := range h.keys {
		if f := registry.m[k]; f != nil {
			f.refs--
			if f.refs <= 0 {
				delete(registry.m, k)
				f.close()
			}
		}
		delete(h.keys, k)
	}
}

// forwarder is one TCP listener that splices accepted connections to
// target.
type forwarder struct {
	target string
	ln     net.Listener
	refs   int // guarded by registry
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	allow  []*net.IPNet
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// startForwarder listens on listen and forwards connections from inside
// allow to target.
func startForwarder(listen, target string, allow *net.IPNet) (*forwarder, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	f := &forwarder{target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.allowNet(allow)
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

// addr returns the listen address (with the port the system chose, for
// ":0").
func (f *forwarder) addr() string { return f.ln.Addr().String() }

func (f *forwarder) allowNet(n *net.IPNet) {
	if n == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.allow {
		if a.String() == n.String() {
			return
		}
	}
	f.allow = append(f.allow, n)
}

func (f *forwarder) allowed(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.allow {
		if n.Contains(ta.IP) {
			return true
		}
	}
	return false
}

func (f *forwarder) serve() {
	defer f.wg.Done()
	var backoff time.Duration
	for {
		c, err := f.ln.Accept()
		if err != nil {
			f.mu.Lock()
			closed := f.closed
			f.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as net/http does.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !f.allowed(c.RemoteAddr()) {
			c.Close()
			continue
		}
		if !f.track(c) {
			c.Close()
			return
		}
		f.wg.Add(1)
		go f.splice(c)
	}
}

// track registers a connection to close with the forwarder; false when the
// forwarder is closed.
func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *forwarder) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	c.Close()
}

func (f *forwarder) splice(c net.Conn) {
	defer f.wg.Done()
	defer f.untrack(c)
	ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
	var d net.Dialer
	up, err := d.DialContext(ctx, "tcp", f.target)
	cancel()
	if err != nil {
		return
	}
	if !f.track(up) {
		up.Close()
		return
	}
	defer f.untrack(up)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(up, c)
		closeWrite(up)
	}()
	_, _ = io.Copy(c, up)
	closeWrite(c)
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		return
	}
	_ = c.Close()
}

// close stops listening, closes the connections and waits for them.
func (f *forwarder) close() {
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.cancel()
	f.ln.Close()
	f.wg.Wait()
}

// defaultPorts are the ports of URL schemes without an explicit one.
var defaultPorts = map[string]string{"http": "80", "https": "443", "nats": "4222", "tls": "4222"}

// agentURL returns the URL an agent on a container network with gateway gw
// uses for the server URL raw, and the loopback host:port to forward there
// from gw ("" when raw is not a loopback URL and is used unchanged).
func agentURL(raw string, gw net.IP) (out, target string, err error) {
	if raw == "" || gw == nil {
		return raw, "", nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("server address %q: %w", raw, err)
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	if host == "localhost" {
		ip = net.IPv4(127, 0, 0, 1)
	}
	if ip == nil || !ip.IsLoopback() {
		return raw, "", nil
	}
	port := u.Port()
	if port == "" {
		port = defaultPorts[u.Scheme]
	}
	if port == "" {
		return "", "", fmt.Errorf("server address %q: no port", raw)
	}
	u.Host = net.JoinHostPort(gw.String(), port)
	return u.String(), net.JoinHostPort(ip.String(), port), nil
}
