package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

// blobChunk is the size of one blob_chunks row: small enough for any
// driver to move in one value, large enough that a bundle is few rows.
const blobChunk = 1 << 20

// CreateApplication stores a new application.
func (s *Store) CreateApplication(ctx context.Context, a api.Application) error {
	if _, err := s.exec(ctx, "INSERT INTO applications (name, created_at) VALUES (?, ?)", a.Name, ns(a.CreatedAt)); err != nil {
		return fmt.Errorf("create application %s: %w", a.Name, err)
	}
	return nil
}

// GetApplication returns one application.
func (s *Store) GetApplication(ctx context.Context, name string) (api.Application, error) {
	var created sql.NullInt64
	err := s.r.QueryRowContext(ctx, s.q("SELECT created_at FROM applications WHERE name = ?"), name).Scan(&created)
	if err != nil {
		return api.Application{}, fmt.Errorf("application %s: %w", name, notFound(err))
	}
	return api.Application{Name: name, CreatedAt: tm(created)}, nil
}

// ListApplications returns applications ordered by name.
func (s *Store) ListApplications(ctx context.Context) ([]api.Application, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT name, created_at FROM applications ORDER BY name COLLATE bytewise`))
	if err != nil {
		return nil, fmt.Errorf("list applications: %w", err)
	}
	defer rows.Close()
	var out []api.Application
	for rows.Next() {
		var a api.Application
		var created sql.NullInt64
		if err := rows.Scan(&a.Name, &created); err != nil {
			return nil, err
		}
		a.CreatedAt = tm(created)
		out = append(out, a)
	}
	return out, rows.Err()
}

const revisionCols = "app, id, digest, size, description, created_at"

func scanRevision(sc scanner, withSpec bool) (api.Revision, error) {
	var r api.Revision
	var created sql.NullInt64
	dest := []any{&r.App, &r.ID, &r.Digest, &r.Size, &r.Description, &created}
	if withSpec {
		dest = append(dest, &r.AppSpec)
	}
	if err := sc.Scan(dest...); err != nil {
		return r, err
	}
	r.CreatedAt = tm(created)
	return r, nil
}

// CreateRevision stores a revision of an existing application.
func (s *Store) CreateRevision(ctx context.Context, r api.Revision) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, s.q("SELECT 1 FROM applications WHERE name = ?"), r.App).Scan(&one); err != nil {
			return fmt.Errorf("application %s: %w", r.App, notFound(err))
		}
		_, err := tx.ExecContext(ctx, s.q("INSERT INTO revisions ("+revisionCols+", appspec) VALUES (?, ?, ?, ?, ?, ?, ?)"),
			r.App, r.ID, r.Digest, r.Size, cleanText(r.Description), ns(r.CreatedAt), cleanText(r.AppSpec))
		return s.conflict(err)
	})
	if err != nil {
		return fmt.Errorf("create revision %s of %s: %w", r.ID, r.App, err)
	}
	return nil
}

// GetRevision returns one revision with its appspec text.
func (s *Store) GetRevision(ctx context.Context, app, id string) (api.Revision, error) {
	r, err := scanRevision(s.r.QueryRowContext(ctx, s.q("SELECT "+revisionCols+", appspec FROM revisions WHERE app = ? AND id = ?"), app, id), true)
	if err != nil {
		return r, fmt.Errorf("revision %s of %s: %w", id, app, notFound(err))
	}
	return r, nil
}

// ListRevisions returns an application's revisions, newest first.
func (s *Store) ListRevisions(ctx context.Context, app string) ([]api.Revision, error) {
	if _, err := s.GetApplication(ctx, app); err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, s.q("SELECT "+revisionCols+" FROM revisions WHERE app = ? ORDER BY created_at DESC, id COLLATE bytewise"), app)
	if err != nil {
		return nil, fmt.Errorf("list revisions of %s: %w", app, err)
	}
	defer rows.Close()
	var out []api.Revision
	for rows.Next() {
		r, err := scanRevision(rows, false)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// PutBlob stores r in chunks under digest, in one transaction.
func (s *Store) PutBlob(ctx context.Context, digest string, r io.Reader) (int64, error) {
	var size int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var existing int64
		err := tx.QueryRowContext(ctx, s.q("SELECT size FROM blob_meta WHERE digest = ?"), digest).Scan(&existing)
		if err == nil {
			size = existing
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		// Chunks of an earlier, interrupted attempt never committed, but
		// be safe against a partial set anyway.
		if _, err := tx.ExecContext(ctx, s.q("DELETE FROM blob_chunks WHERE digest = ?"), digest); err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, s.q("INSERT INTO blob_chunks (digest, seq, data) VALUES (?, ?, ?)"))
		if err != nil {
			return err
		}
		defer stmt.Close()
		buf := make([]byte, blobChunk)
		seq := 0
		for {
			n, rerr := io.ReadFull(r, buf)
			if n > 0 {
				if _, err := stmt.ExecContext(ctx, digest, seq, bytes.Clone(buf[:n])); err != nil {
					return err
				}
				seq++
				size += int64(n)
			}
			if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
				break
			}
			if rerr != nil {
				return rerr
			}
		}
		_, err = tx.ExecContext(ctx, s.q("INSERT INTO blob_meta (digest, size, chunks, created_at) VALUES (?, ?, ?, ?)"), digest, size, seq, ns(time.Now()))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("put blob %s: %w", digest, err)
	}
	return size, nil
}

// OpenBlob streams a stored blob chunk by chunk.
func (s *Store) OpenBlob(ctx context.Context, digest string) (io.ReadCloser, int64, error) {
	var size int64
	var chunks int
	err := s.r.QueryRowContext(ctx, s.q("SELECT size, chunks FROM blob_meta WHERE digest = ?"), digest).Scan(&size, &chunks)
	if err != nil {
		return nil, 0, fmt.Errorf("blob %s: %w", digest, notFound(err))
	}
	return &blobReader{ctx: ctx, s: s, digest: digest, chunks: chunks}, size, nil
}

// blobReader reads one chunk at a time, so a large bundle is never held
// in memory whole.
type blobReader struct {
	ctx    context.Context
	s      *Store
	digest string
	chunks int
	next   int
	cur    []byte
}

func (b *blobReader) Read(p []byte) (int, error) {
	for len(b.cur) == 0 {
		if b.next >= b.chunks {
			return 0, io.EOF
		}
		err := b.s.r.QueryRowContext(b.ctx, b.s.q("SELECT data FROM blob_chunks WHERE digest = ? AND seq = ?"), b.digest, b.next).Scan(&b.cur)
		if err != nil {
			return 0, fmt.Errorf("blob %s chunk %d: %w", b.digest, b.next, notFound(err))
		}
		b.next++
	}
	n := copy(p, b.cur)
	b.cur = b.cur[n:]
	return n, nil
}

func (b *blobReader) Close() error { return nil }

var _ store.Store = (*Store)(nil)
