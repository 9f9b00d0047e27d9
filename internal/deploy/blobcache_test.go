package deploy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
)

type countingSource struct {
	blobs map[string][]byte
	opens atomic.Int64
}

func (s *countingSource) OpenBlob(ctx context.Context, d string) (io.ReadCloser, int64, error) {
	s.opens.Add(1)
	b, ok := s.blobs[d]
	if !ok {
		return nil, 0, errors.New("missing")
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

func TestBlobCache(t *testing.T) {
	src := &countingSource{blobs: map[string][]byte{
		"a": bytes.Repeat([]byte("a"), 100), "b": bytes.Repeat([]byte("b"), 100),
		"c": bytes.Repeat([]byte("c"), 100), "d": bytes.Repeat([]byte("d"), 100),
		"e": bytes.Repeat([]byte("e"), 100), "big": bytes.Repeat([]byte("x"), 101),
	}}
	c := NewBlobCache(src, 400)
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if b, err := c.Get(ctx, "a"); err != nil || !bytes.Equal(b, src.blobs["a"]) {
				t.Errorf("Get a = %d bytes, %v", len(b), err)
			}
		}()
	}
	wg.Wait()
	if n := src.opens.Load(); n != 1 {
		t.Fatalf("20 concurrent Gets opened the blob %d times, want 1", n)
	}
	// b to e: 500 bytes > 400, so the least recently used (a) goes.
	for _, d := range []string{"b", "c", "d", "e"} {
		_, _ = c.Get(ctx, d)
	}
	before := src.opens.Load()
	for _, d := range []string{"e", "d", "c", "b"} {
		_, _ = c.Get(ctx, d)
	}
	if src.opens.Load() != before {
		t.Fatal("b to e should be cached")
	}
	_, _ = c.Get(ctx, "a")
	if src.opens.Load() != before+1 {
		t.Fatal("a should have been evicted")
	}
	if b, err := c.Get(ctx, "big"); b != nil || err != nil {
		t.Fatalf("a blob over max/4 = %d bytes, %v; want nil, nil (not cached)", len(b), err)
	}
	if _, err := c.Get(ctx, "nope"); err == nil {
		t.Fatal("missing blob: no error")
	}
	if _, err := c.Get(ctx, "nope"); err == nil || src.opens.Load() != before+4 {
		t.Fatal("a failed read must not be cached")
	}
}
