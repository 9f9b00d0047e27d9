package api

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestParseFingerprint(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	for _, in := range []string{"sha256:" + hex, "SHA256:" + strings.ToUpper(hex), " sha256:" + strings.Repeat("ab:", 31) + "ab "} {
		if got, err := ParseFingerprint(in); err != nil || got != "sha256:"+hex {
			t.Errorf("ParseFingerprint(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", hex, "sha256:" + hex[:62], "md5:" + hex, "sha256:" + strings.Repeat("zz", 32)} {
		if _, err := ParseFingerprint(in); err == nil {
			t.Errorf("ParseFingerprint(%q) accepted", in)
		}
	}
}

// A client pinned to another CA refuses the server before sending its
// request; pinned to the right one it gets through.
func TestClientPinCA(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		_, _ = w.Write([]byte(`{"token_id":"t1","name":"n","role":"admin"}`))
	}))
	defer srv.Close()
	right := Fingerprint(srv.Certificate().Raw)

	c := New(srv.URL, "secret")
	if err := c.PinCA("sha256:" + strings.Repeat("00", 32)); err != nil {
		t.Fatal(err)
	}
	_, err := c.Whoami(t.Context())
	var pm *PinMismatchError
	if !errors.As(err, &pm) || pm.Presented != right {
		t.Fatalf("wrong pin: %v, want a PinMismatchError naming %s", err, right)
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("the server got %d requests from a client that refused it", n)
	}

	c = New(srv.URL, "secret")
	if err := c.PinCA(right); err != nil {
		t.Fatal(err)
	}
	if id, err := c.Whoami(t.Context()); err != nil || id.TokenID != "t1" {
		t.Fatalf("right pin: %+v %v", id, err)
	}

	ca, err := FetchCA(t.Context(), srv.URL)
	if err != nil || Fingerprint(ca.Raw) != right {
		t.Fatalf("FetchCA: %v, fingerprint %v", err, ca)
	}
}
