package validate

import (
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/gantry-dev/gantry/api"
)

// Limits of a health check command.
const (
	// MaxCommandArgs is the most words a health check command may have.
	MaxCommandArgs = 64
	// MaxCommandBytes is the largest total size of a health check command.
	MaxCommandBytes = 16 << 10
)

// Address checks a network host: an IP address or a DNS name (1 to 253
// letters, digits, '-' and '.', each dot-separated label 1 to 63
// characters, not starting or ending with '-').
func Address(field, host string) error {
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if host == "" || len(host) > 253 {
		return errorf(field, "host %q: want an IP address or a DNS name of 1 to 253 characters", host)
	}
	for _, label := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		ok := label != "" && len(label) <= 63 && label[0] != '-' && label[len(label)-1] != '-'
		for i := 0; i < len(label) && ok; i++ {
			c := label[i]
			ok = isAlnum(c) || c == '-' || c == '_'
		}
		if !ok {
			return errorf(field, "host %q: want an IP address or a DNS name (letters, digits, '-' and '.')", host)
		}
	}
	return nil
}

// PortNumber checks a TCP port written as text: digits only, 1 to 65535.
func PortNumber(field, p string) error {
	if err := port(field, "", p); err != nil {
		return errorf(field, "%s", strings.TrimPrefix(err.(*Error).Msg, ": "))
	}
	return nil
}

// port checks a port number as written (digits only, 1 to 65535); what
// prefixes the message.
func port(field, what, p string) error {
	n, err := strconv.ParseInt(p, 10, 64)
	if err != nil || strings.TrimLeft(p, "0123456789") != "" || n < Port.Min || n > Port.Max {
		return errorf(field, "%s: port %q is out of range: want %s", what, p, Port.Want())
	}
	return nil
}

// TCPAddress checks a TCP health check address: "host:port" (an IPv6 host
// in brackets) or a port alone, meaning 127.0.0.1.
func TCPAddress(field, addr string) error {
	const want = "want host:port (e.g. 127.0.0.1:5432) or a port (5432)"
	if addr == "" {
		return errorf(field, "address is empty: %s", want)
	}
	if strings.TrimLeft(addr, "0123456789") == "" {
		return port(field, "address "+strconv.Quote(addr), addr)
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return errorf(field, "address %q: %s", addr, want)
	}
	if err := port(field, "address "+strconv.Quote(addr), p); err != nil {
		return err
	}
	if err := Address(field, host); err != nil {
		return errorf(field, "address %q: %s", addr, err.(*Error).Msg)
	}
	return nil
}

// HTTPURL checks an HTTP health check URL: http or https, a valid host, an
// optional port from 1 to 65535, no spaces or control characters.
func HTTPURL(field, raw string) error {
	const want = "want an http:// or https:// URL with a host, e.g. http://127.0.0.1:8080/healthz"
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return errorf(field, "URL %q: %s", raw, want)
	}
	if strings.ContainsAny(raw, " \t\r\n") {
		return errorf(field, "URL %q: must not contain spaces (encode them as %%20)", raw)
	}
	if err := Address(field, u.Hostname()); err != nil {
		return errorf(field, "URL %q: %s", raw, err.(*Error).Msg)
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		if err := port(field, "URL "+strconv.Quote(raw), p); err != nil {
			return err
		}
	}
	return nil
}

// Command checks a health check command: a program and its arguments, run
// without a shell. The program must not be empty; no word may contain a
// NUL byte.
func Command(field string, argv []string) error {
	if len(argv) == 0 || argv[0] == "" {
		return errorf(field, "must name a program: [\"PROGRAM\", \"ARG\", ...]")
	}
	if len(argv) > MaxCommandArgs {
		return errorf(field, "has %d words; the limit is %d", len(argv), MaxCommandArgs)
	}
	total := 0
	for i, a := range argv {
		total += len(a)
		if strings.IndexByte(a, 0) >= 0 {
			return errorf(field, "word %d contains a NUL byte", i+1)
		}
	}
	if total > MaxCommandBytes {
		return errorf(field, "is %d bytes; the limit is %d", total, MaxCommandBytes)
	}
	return nil
}

// HealthCheck checks a deployment group's health check: exactly one of
// http, tcp and command, each valid, and its numbers in range. Fields are
// named with prefix ("health_check").
func HealthCheck(prefix string, hc *api.HealthCheck) error {
	if hc == nil {
		return nil
	}
	f := func(name string) string { return prefix + "." + name }
	kinds := 0
	if hc.HTTP != "" {
		kinds++
		if err := HTTPURL(f("http"), hc.HTTP); err != nil {
			return err
		}
	}
	if hc.TCP != "" {
		kinds++
		if err := TCPAddress(f("tcp"), hc.TCP); err != nil {
			return err
		}
	}
	if len(hc.Command) > 0 {
		kinds++
		if err := Command(f("command"), hc.Command); err != nil {
			return err
		}
	}
	if kinds != 1 {
		return errorf(prefix, "needs exactly one of http, tcp and command, got %d", kinds)
	}
	if hc.ExpectStatus != 0 && hc.HTTP == "" {
		return errorf(f("expect_status"), "applies to http checks only")
	}
	if err := HealthStatus.CheckAs(f("expect_status"), int64(hc.ExpectStatus)); err != nil {
		return err
	}
	if err := HealthTimeout.CheckAs(f("timeout_seconds"), int64(hc.TimeoutSeconds)); err != nil {
		return err
	}
	return HealthInterval.CheckAs(f("interval_ms"), int64(hc.IntervalMillis))
}
