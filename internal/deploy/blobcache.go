package deploy

import (
	"context"
	"io"
	"sync"
)

// BlobSource opens stored blobs.
type BlobSource interface {
	OpenBlob(ctx context.Context, digest string) (io.ReadCloser, int64, error)
}

// BlobCache keeps recently served bundles in memory, up to Max bytes
// (least recently used out first), so that a batch of N hosts costs one read
// of the bundle from the store instead of N. Blobs larger than Max/4 are not
// cached. Concurrent misses of one blob share one read.
type BlobCache struct {
	src BlobSource
	max int64

	mu      sync.Mutex
	size    int64
	tick    uint64
	entries map[string]*blobEntry
}

type blobEntry struct {
	ready chan struct{} // closed once data or err is set
	data  []byte
	err   error
	used  uint64
}

// NewBlobCache caches up to max bytes of src's blobs.
func NewBlobCache(src BlobSource, max int64) *BlobCache {
	return &BlobCache{src: src, max: max, entries: map[string]*blobEntry{}}
}

// Get returns a blob's bytes (cached), or nil and no error when the blob is
// too large to cache: the caller then streams it with OpenBlob.
func (c *BlobCache) Get(ctx context.Context, digest string) ([]byte, error) {
	c.mu.Lock()
	c.tick++
	if e, ok := c.entries[digest]; ok {
		e.used = c.tick
		c.mu.Unlock()
		select {
		case <-e.ready:
			return e.data, e.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	e := &blobEntry{ready: make(chan struct{}), used: c.tick}
	c.entries[digest] = e
	c.mu.Unlock()

	rc, size, err := c.src.OpenBlob(ctx, digest)
	if err == nil {
		if size > c.max/4 {
			rc.Close()
			c.forget(digest, e, nil, nil)
			return nil, nil
		}
		e.data = make([]byte, size)
		_, err = io.ReadFull(rc, e.data)
		rc.Close()
	}
	if err != nil {
		c.forget(digest, e, nil, err)
		return nil, err
	}
	c.mu.Lock()
	c.size += size
	for c.size > c.max {
		c.evictOldest(digest)
	}
	c.mu.Unlock()
	close(e.ready)
	return e.data, nil
}

// forget drops a failed or uncacheable entry, waking its waiters.
func (c *BlobCache) forget(digest string, e *blobEntry, data []byte, err error) {
	c.mu.Lock()
	delete(c.entries, digest)
	c.mu.Unlock()
	e.data, e.err = data, err
	close(e.ready)
}

// evictOldest drops the least recently used complete entry other than keep.
func (c *BlobCache) evictOldest(keep string) {
	var oldest string
	var used uint64
	for d, e := range c.entries {
		select {
		case <-e.ready:
		default:
			continue
		}
		if d != keep && (oldest == "" || e.used < used) {
			oldest, used = d, e.used
		}
	}
	if oldest == "" {
		c.size = 0 // only keep is left: it fits by construction (≤ max/4)
		return
	}
	c.size -= int64(len(c.entries[oldest].data))
	delete(c.entries, oldest)
}
