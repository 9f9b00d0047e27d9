package engine

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestErrorsAndRequests(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1.41/containers/nope/json":
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"message":"No such container: nope"}`))
		case "/v1.41/containers/create":
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte("plain conflict\n"))
		case "/v1.41/images/reg.example/a/b:1/json":
			_ = json.NewEncoder(w).Encode(map[string]string{"Id": "sha256:x", "q": r.URL.Query().Get("filters")})
		default:
			http.Error(w, "unexpected "+r.URL.Path, http.StatusTeapot)
		}
	}))
	defer srv.Close()
	c, err := New("tcp://" + srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err = c.Do(ctx, http.MethodGet, "/containers/nope/json", nil, nil, nil)
	if !IsNotFound(err) || err.Error() != "No such container: nope" {
		t.Errorf("404: %v", err)
	}
	err = c.Do(ctx, http.MethodPost, "/containers/create", nil, map[string]string{"Image": "x"}, nil)
	if !IsConflict(err) || err.Error() != "plain conflict" {
		t.Errorf("409: %v", err)
	}
	var out struct {
		ID string `json:"Id"`
		Q  string `json:"q"`
	}
	if err := c.Do(ctx, http.MethodGet, "/images/reg.example/a/b:1/json", LabelFilter("a=b"), nil, &out); err != nil || out.ID != "sha256:x" || out.Q != `{"label":["a=b"]}` {
		t.Errorf("image inspect: %+v, %v", out, err)
	}
}

func TestUnreachable(t *testing.T) {
	c, err := New("unix:///nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	c.Hint = "try harder"
	err = c.Ping(context.Background())
	var ue *UnreachableError
	if !errors.As(err, &ue) || !strings.HasPrefix(err.Error(), "docker: cannot reach the daemon at unix:///nonexistent: ") || !strings.HasSuffix(err.Error(), "; is Docker running? try harder") {
		t.Errorf("err = %v", err)
	}
}

func TestNew(t *testing.T) {
	t.Setenv("DOCKER_HOST", "")
	for host, want := range map[string]string{
		"":                    DefaultHost,
		"unix:///run/x.sock":  "unix:///run/x.sock",
		"tcp://10.0.0.1:2375": "tcp://10.0.0.1:2375",
		"ssh://me@host":       "unsupported scheme",
		"unix://":             "no socket path",
		"tcp://":              "no host:port",
	} {
		c, err := New(host)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = c.Host()
		}
		if !strings.Contains(got, want) {
			t.Errorf("New(%q) = %q, want %q", host, got, want)
		}
	}
	t.Setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
	if c, err := New(""); err != nil || c.Host() != "tcp://127.0.0.1:1" {
		t.Errorf("from DOCKER_HOST: %v", err)
	}
}
