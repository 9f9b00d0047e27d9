package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// A create sends an Idempotency-Key and retries a 503 with the same key;
// a caller's key (WithIdempotencyKey) is the one sent.
func TestCreateRetriesWithOneKey(t *testing.T) {
	var (
		mu   sync.Mutex
		keys []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get(IdempotencyKeyHeader))
		n := len(keys)
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(Job{ID: "j-1"})
	}))
	defer srv.Close()
	c := New(srv.URL, "tok")
	job, err := c.CreateJob(context.Background(), JobSpec{Selector: "", Script: "true"})
	if err != nil || job.ID != "j-1" {
		t.Fatalf("CreateJob: %+v %v", job, err)
	}
	if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
		t.Fatalf("keys sent: %q; want the same non-empty key twice", keys)
	}
	keys = nil
	if _, err := c.CreateJob(WithIdempotencyKey(context.Background(), "mine"), JobSpec{Script: "true"}); err != nil {
		t.Fatal(err)
	}
	if keys[0] != "mine" {
		t.Fatalf("key sent %q, want the caller's", keys[0])
	}
	// Reads never carry a key.
	keys = nil
	_, _ = c.ListJobs(WithIdempotencyKey(context.Background(), "mine"), 0)
	if keys[0] != "" {
		t.Fatalf("a GET sent key %q", keys[0])
	}
}

// A 4xx other than "in progress" is not retried.
func TestCreateDoesNotRetryRefusals(t *testing.T) {
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		w.WriteHeader(http.StatusUnprocessableEntity)
		_ = json.NewEncoder(w).Encode(Error{Error: "no hosts", Code: "no_hosts"})
	}))
	defer srv.Close()
	if _, err := New(srv.URL, "tok").CreateJob(context.Background(), JobSpec{Script: "true"}); err == nil || n != 1 {
		t.Fatalf("err %v after %d attempts; want an error after 1", err, n)
	}
}
