package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

// call sends one request to the API and returns its status, body and
// headers.
func call(t *testing.T, a *API, tok, method, path, body string, header ...string) (int, string, http.Header) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	a.ServeHTTP(w, req)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b), w.Result().Header
}

// addHost enrolls a host with labels straight into the store.
func addHost(t *testing.T, a *API, id, name string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	hash := "hash-for-" + id
	if err := a.d.Store.CreateJoinToken(ctx, store.JoinTokenRecord{Hash: hash, JoinToken: api.JoinToken{ID: "jt-" + id, Labels: labels, ExpiresAt: now.Add(time.Hour), MaxUses: 1, CreatedAt: now}}); err != nil {
		t.Fatal(err)
	}
	if err := a.d.Store.EnrollHost(ctx, hash, now, store.HostRecord{NKey: "U" + id, Host: api.Host{ID: id, Name: name}}); err != nil {
		t.Fatal(err)
	}
}

func jobCount(t *testing.T, a *API) int {
	t.Helper()
	jobs, err := a.d.Store.ListJobs(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(jobs)
}

func jobID(t *testing.T, body string) string {
	t.Helper()
	var j api.Job
	if err := json.Unmarshal([]byte(body), &j); err != nil || j.ID == "" {
		t.Fatalf("not a job: %v %s", err, body)
	}
	return j.ID
}

// The same Idempotency-Key twice creates one job and answers the first
// result twice; another body with the key is refused; no key, no replay.
func TestIdempotentJobCreate(t *testing.T) {
	a, tok := newAPI(t)
	addHost(t, a, "h-1", "web-1", map[string]string{"role": "web"})
	const body = `{"selector":"role=web","script":"true"}`

	code1, b1, _ := call(t, a, tok, "POST", "/api/v1/jobs", body, IdempotencyKeyHeader, "key-1")
	code2, b2, h2 := call(t, a, tok, "POST", "/api/v1/jobs", body, IdempotencyKeyHeader, "key-1")
	if code1 != 201 || code2 != 201 {
		t.Fatalf("statuses %d, %d; want 201 twice\n%s\n%s", code1, code2, b1, b2)
	}
	if id1, id2 := jobID(t, b1), jobID(t, b2); id1 != id2 {
		t.Fatalf("the retry made job %s, the first %s", id2, id1)
	}
	if h2.Get("Idempotent-Replayed") != "true" {
		t.Errorf("a replay lacks Idempotent-Replayed: true")
	}
	if n := jobCount(t, a); n != 1 {
		t.Fatalf("%d jobs after two requests with one key, want 1", n)
	}

	code, b, _ := call(t, a, tok, "POST", "/api/v1/jobs", `{"selector":"role=web","script":"false"}`, IdempotencyKeyHeader, "key-1")
	if code != http.StatusUnprocessableEntity || !strings.Contains(b, "idempotency_key_reused") || !strings.Contains(b, "different request") {
		t.Fatalf("same key, other body: %d %s", code, b)
	}
	code, b, _ = call(t, a, tok, "POST", "/api/v1/jobs", body, IdempotencyKeyHeader, "bad key")
	if code != http.StatusBadRequest || !strings.Contains(b, "Idempotency-Key") {
		t.Fatalf("a key with a space: %d %s", code, b)
	}
	call(t, a, tok, "POST", "/api/v1/jobs", body)
	call(t, a, tok, "POST", "/api/v1/jobs", body)
	if n := jobCount(t, a); n != 3 {
		t.Fatalf("%d jobs after two requests without a key, want 3", n)
	}

	// Keys are per caller: another token's key-1 is a new request.
	other := "other-token-0123456789"
	if err := a.d.Store.CreateAPIToken(context.Background(), store.APIToken{ID: "t-2", Name: "ci", Hash: HashToken(other), Role: "admin", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if code, b, _ := call(t, a, other, "POST", "/api/v1/jobs", body, IdempotencyKeyHeader, "key-1"); code != 201 || jobID(t, b) == jobID(t, b1) {
		t.Fatalf("another caller's key-1: %d %s", code, b)
	}
}

// A create that fails releases its key: the retry with the same key runs
// again (here once a matching host exists).
func TestIdempotentFailureReleasesKey(t *testing.T) {
	a, tok := newAPI(t)
	const body = `{"selector":"role=db","script":"true"}`
	if code, b, _ := call(t, a, tok, "POST", "/api/v1/jobs", body, IdempotencyKeyHeader, "k"); code != http.StatusUnprocessableEntity {
		t.Fatalf("no hosts: %d %s", code, b)
	}
	addHost(t, a, "h-1", "db-1", map[string]string{"role": "db"})
	if code, b, _ := call(t, a, tok, "POST", "/api/v1/jobs", body, IdempotencyKeyHeader, "k"); code != 201 {
		t.Fatalf("retry after the failure: %d %s", code, b)
	}
	if n := jobCount(t, a); n != 1 {
		t.Fatalf("%d jobs, want 1", n)
	}
}

// Concurrent requests with one key make one job, and all answer it.
func TestIdempotentConcurrent(t *testing.T) {
	a, tok := newAPI(t)
	addHost(t, a, "h-1", "web-1", map[string]string{"role": "web"})
	const n = 8
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		ids = map[string]int{}
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, b, _ := call(t, a, tok, "POST", "/api/v1/jobs", `{"selector":"role=web","script":"true"}`, IdempotencyKeyHeader, "race")
			mu.Lock()
			defer mu.Unlock()
			ids[fmt.Sprint(code, " ", jobIDOrBody(b))]++
		}()
	}
	wg.Wait()
	if len(ids) != 1 || jobCount(t, a) != 1 {
		t.Fatalf("%d concurrent requests with one key: answers %v, %d jobs; want one job answered to all", n, ids, jobCount(t, a))
	}
}

func jobIDOrBody(b string) string {
	var j api.Job
	if json.Unmarshal([]byte(b), &j) == nil && j.ID != "" {
		return j.ID
	}
	return b
}
