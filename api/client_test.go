package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// recorder is a test server that records the last request and answers
// with a fixed status and body.
type recorder struct {
	method, rawPath, query, auth, body string
	status                             int
	reply                              string
}

func (r *recorder) server(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.method, r.rawPath, r.query = req.Method, req.URL.EscapedPath(), req.URL.RawQuery
		r.auth = req.Header.Get("Authorization")
		b, _ := io.ReadAll(req.Body)
		r.body = string(b)
		if r.status == 0 {
			r.status = http.StatusOK
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(r.status)
		_, _ = w.Write([]byte(r.reply))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRoutes(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name        string
		call        func(c *Client) error
		reply       string
		method      string
		path, query string
		body        string
	}{
		{"whoami", func(c *Client) error { _, err := c.Whoami(ctx); return err }, `{}`, "GET", "/api/v1/whoami", "", ""},
		{"hosts", func(c *Client) error { _, err := c.ListHosts(ctx, "env=prod,role!=db", true); return err }, `[]`,
			"GET", "/api/v1/hosts", "include_revoked=true&selector=env%3Dprod%2Crole%21%3Ddb", ""},
		{"hosts all", func(c *Client) error { _, err := c.ListHosts(ctx, "", false); return err }, `[]`, "GET", "/api/v1/hosts", "", ""},
		{"host escaped", func(c *Client) error { _, err := c.GetHost(ctx, "a b/c?"); return err }, `{}`, "GET", "/api/v1/hosts/a%20b%2Fc%3F", "", ""},
		{"label", func(c *Client) error {
			_, err := c.LabelHost(ctx, "web-1", LabelsRequest{Set: map[string]string{"a": "1"}, Remove: []string{"b"}})
			return err
		}, `{}`, "PATCH", "/api/v1/hosts/web-1/labels", "", `{"set":{"a":"1"},"remove":["b"]}`},
		{"rm host", func(c *Client) error { return c.RemoveHost(ctx, "web-1") }, ``, "DELETE", "/api/v1/hosts/web-1", "", ""},
		{"join token", func(c *Client) error {
			_, err := c.CreateJoinToken(ctx, CreateJoinTokenRequest{TTLSeconds: 60, MaxUses: 2})
			return err
		}, `{}`, "POST", "/api/v1/join-tokens", "", `{"ttl_seconds":60,"max_uses":2}`},
		{"join tokens", func(c *Client) error { _, err := c.ListJoinTokens(ctx); return err }, `[]`, "GET", "/api/v1/join-tokens", "", ""},
		{"create job", func(c *Client) error { _, err := c.CreateJob(ctx, JobSpec{Selector: "", Script: "uptime"}); return err }, `{}`,
			"POST", "/api/v1/jobs", "", `{"selector":"","script":"uptime"}`},
		{"jobs", func(c *Client) error { _, err := c.ListJobs(ctx, 5); return err }, `[]`, "GET", "/api/v1/jobs", "limit=5", ""},
		{"job", func(c *Client) error { _, err := c.GetJob(ctx, "j/1"); return err }, `{}`, "GET", "/api/v1/jobs/j%2F1", "", ""},
		{"schedule", func(c *Client) error {
			_, err := c.CreateSchedule(ctx, Schedule{Cron: "@daily", Script: "x"})
			return err
		}, `{}`,
			"POST", "/api/v1/schedules", "", ""},
		{"schedules", func(c *Client) error { _, err := c.ListSchedules(ctx); return err }, `[]`, "GET", "/api/v1/schedules", "", ""},
		{"rm schedule", func(c *Client) error { return c.DeleteSchedule(ctx, "s1") }, ``, "DELETE", "/api/v1/schedules/s1", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{reply: tc.reply}
			c := New(rec.server(t).URL+"/", "tok")
			if err := tc.call(c); err != nil {
				t.Fatalf("call: %v", err)
			}
			if rec.method != tc.method || rec.rawPath != tc.path || rec.query != tc.query {
				t.Errorf("got %s %s?%s, want %s %s?%s", rec.method, rec.rawPath, rec.query, tc.method, tc.path, tc.query)
			}
			if rec.auth != "Bearer tok" {
				t.Errorf("Authorization = %q", rec.auth)
			}
			if tc.body != "" && rec.body != tc.body {
				t.Errorf("body = %s, want %s", rec.body, tc.body)
			}
		})
	}
}

func TestListNeverNil(t *testing.T) {
	rec := &recorder{reply: `null`}
	hosts, err := New(rec.server(t).URL, "").ListHosts(context.Background(), "", false)
	if err != nil || hosts == nil || len(hosts) != 0 {
		t.Fatalf("hosts = %#v, err = %v", hosts, err)
	}
	if rec.auth != "" {
		t.Errorf("no token must mean no Authorization header, got %q", rec.auth)
	}
}

func TestStatusError(t *testing.T) {
	rec := &recorder{status: 400, reply: `{"error":"selector: unexpected \"!\" at position 4","code":"bad_request"}`}
	_, err := New(rec.server(t).URL, "t").ListHosts(context.Background(), "env!", false)
	var se *StatusError
	if !errors.As(err, &se) {
		t.Fatalf("err = %T %v, want *StatusError", err, err)
	}
	if se.Status != 400 || se.Code != "bad_request" || err.Error() != `selector: unexpected "!" at position 4` {
		t.Errorf("got %+v / %q", se, err.Error())
	}

	rec = &recorder{status: 502, reply: "<html>bad gateway</html>"}
	err = New(rec.server(t).URL, "t").RemoveHost(context.Background(), "x")
	if !errors.As(err, &se) || se.Status != 502 || !strings.Contains(err.Error(), "502") {
		t.Errorf("non-JSON error: %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = New("http://"+addr, "t").Whoami(context.Background())
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %T %v, want *UnreachableError", err, err)
	}
	for _, want := range []string{"http://" + addr, "not reachable", "gantry server --dev", "gantry login"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err.Error(), want)
		}
	}
}

func TestStreamJob(t *testing.T) {
	events := []JobEvent{
		{Type: "state", HostName: "a", Execution: &Execution{State: ExecRunning}},
		{Type: "output", HostName: "a", Stream: "stdout", Data: "hel"},
		{Type: "done", Job: &Job{ID: "j1", State: JobFinished}},
	}
	var body strings.Builder
	for _, ev := range events {
		b, _ := json.Marshal(ev)
		body.Write(b)
		body.WriteByte('\n')
	}
	rec := &recorder{reply: body.String()}
	c := New(rec.server(t).URL, "t")
	var got []JobEvent
	err := c.StreamJob(context.Background(), "j1", func(ev JobEvent) error { got = append(got, ev); return nil })
	if err != nil || len(got) != 3 || got[1].Data != "hel" || got[2].Job.ID != "j1" {
		t.Fatalf("err = %v, events = %+v", err, got)
	}
	if rec.rawPath != "/api/v1/jobs/j1/events" {
		t.Errorf("path = %s", rec.rawPath)
	}

	// A stream that ends before "done" is ErrStreamClosed.
	rec.reply = strings.SplitAfter(body.String(), "\n")[0] + `{"type":"out`
	err = c.StreamJob(context.Background(), "j1", func(JobEvent) error { return nil })
	if !errors.Is(err, ErrStreamClosed) {
		t.Errorf("truncated stream: err = %v", err)
	}
	rec.reply = ""
	if err := c.StreamJob(context.Background(), "j1", func(JobEvent) error { return nil }); !errors.Is(err, ErrStreamClosed) {
		t.Errorf("empty stream: err = %v", err)
	}

	// fn's error stops the stream and is returned as is.
	stop := errors.New("stop")
	rec.reply = body.String()
	if err := c.StreamJob(context.Background(), "j1", func(JobEvent) error { return stop }); err != stop {
		t.Errorf("fn error: err = %v", err)
	}
}
