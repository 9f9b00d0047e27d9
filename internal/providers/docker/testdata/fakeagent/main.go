// Command fakeagent stands in for the gantry agent in the docker provider's
// tests. Run as `fakeagent agent --server URL --bus-url NATS --name N
// --data-dir D`, it reports to the server URL, every 200ms, with an HTTP GET
// carrying its name, host name and the join token from GANTRY_JOIN_TOKEN,
// and sends its name over a TCP connection to the bus URL's address, until
// it is killed (so that a test sees it reconnect after a forwarder restart).
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "agent" {
		fmt.Fprintln(os.Stderr, "usage: fakeagent agent --server URL --bus-url NATS --name N --data-dir D")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("agent", flag.ExitOnError)
	server := fs.String("server", "", "server URL")
	bus := fs.String("bus-url", "", "bus URL")
	name := fs.String("name", "", "name")
	dataDir := fs.String("data-dir", "", "data directory")
	_ = fs.Parse(os.Args[2:])
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	host, _ := os.Hostname()
	token := os.Getenv("GANTRY_JOIN_TOKEN")
	hc := &http.Client{Timeout: 2 * time.Second}
	for n := 0; ; n++ {
		q := url.Values{"name": {*name}, "hostname": {host}, "n": {fmt.Sprint(n)}}
		req, err := http.NewRequest(http.MethodGet, *server+"/fake-agent?"+q.Encode(), nil)
		if err == nil {
			req.Header.Set("X-Join-Token", token)
			if resp, err := hc.Do(req); err != nil {
				fmt.Fprintln(os.Stderr, "server:", err)
			} else {
				resp.Body.Close()
			}
		}
		if u, err := url.Parse(*bus); err == nil && u.Host != "" {
			if c, err := net.DialTimeout("tcp", u.Host, 2*time.Second); err != nil {
				fmt.Fprintln(os.Stderr, "bus:", err)
			} else {
				fmt.Fprintf(c, "%s\n", *name)
				c.Close()
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}
