// Package deploy owns applications, their revisions and (next) their
// deployments to groups of hosts. See docs/design/deployments.md.
//
// A revision is accepted only when its bundle would deploy: it is a .tar.gz
// or .zip with a valid appspec.yml at its root, it extracts safely within
// the limits (hostile archives are refused at push time, not on a host),
// and every hook script it names is in it. Bundles are stored
// content-addressed: the same bytes pushed twice are one revision.
package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/appspec"
	"github.com/gantry-dev/gantry/internal/bundle"
	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/validate"
)

// MaxBundleBytes is the largest bundle a push accepts.
const MaxBundleBytes = 512 << 20

// ErrInvalid wraps every reason a push or an application is refused.
var ErrInvalid = errors.New("invalid")

// ErrBundle wraps every reason a pushed bundle's content is refused (not
// an archive, unsafe, a bad appspec.yml, a missing hook script). It is an
// ErrInvalid; the API answers it 422, like a content problem and unlike a
// malformed request (400), so that the CLI exits 1 whether it found the
// problem itself or the server did.
var ErrBundle = fmt.Errorf("%w bundle", ErrInvalid)

// Store is what revisions need from the store.
type Store interface {
	CreateApplication(ctx context.Context, a api.Application) error
	GetApplication(ctx context.Context, name string) (api.Application, error)
	CreateRevision(ctx context.Context, r api.Revision) error
	GetRevision(ctx context.Context, app, id string) (api.Revision, error)
	PutBlob(ctx context.Context, digest string, r io.Reader) (int64, error)
}

// Revisions takes in applications and pushed bundles.
type Revisions struct {
	st Store
	// TempDir is where pushed bundles are staged and test-extracted
	// (default os.TempDir()).
	TempDir string
}

// NewRevisions returns the revision intake over st.
func NewRevisions(st Store) *Revisions { return &Revisions{st: st} }

// CreateApp creates an application; names are lower-case DNS labels.
func (r *Revisions) CreateApp(ctx context.Context, name string) (api.Application, error) {
	if err := validate.AppName("name", name); err != nil {
		return api.Application{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	a := api.Application{Name: name, CreatedAt: time.Now().UTC()}
	if err := r.st.CreateApplication(ctx, a); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return api.Application{}, fmt.Errorf("app %q %w: pick another name, or push to it with: gantry push %s DIR", name, store.ErrConflict, name)
		}
		return api.Application{}, err
	}
	return a, nil
}

// Push validates a bundle and stores it as a revision of app. created is
// false when the same bundle was pushed before (the existing revision is
// returned).
func (r *Revisions) Push(ctx context.Context, app string, body io.Reader, description string) (rev api.Revision, created bool, err error) {
	if _, err := r.st.GetApplication(ctx, app); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return rev, false, fmt.Errorf("app %q %w. Create it with: gantry app create %s", app, store.ErrNotFound, app)
		}
		return rev, false, err
	}
	if err := validate.Text("description", description, validate.MaxDescription); err != nil {
		return rev, false, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	f, err := os.CreateTemp(r.TempDir, "gantry-push-*")
	if err != nil {
		return rev, false, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(body, MaxBundleBytes+1))
	if err != nil {
		return rev, false, fmt.Errorf("receive bundle: %w", err)
	}
	if n > MaxBundleBytes {
		return rev, false, fmt.Errorf("%w: the bundle is larger than %d MiB", ErrBundle, MaxBundleBytes>>20)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	id := "r-" + sum[:12]
	if existing, err := r.st.GetRevision(ctx, app, id); err == nil {
		return existing, false, nil
	}
	spec, err := r.check(f, n)
	if err != nil {
		return rev, false, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return rev, false, err
	}
	digest := "sha256:" + sum
	if _, err := r.st.PutBlob(ctx, digest, f); err != nil {
		return rev, false, err
	}
	rev = api.Revision{ID: id, App: app, Digest: digest, Size: n, Description: description, AppSpec: string(spec), CreatedAt: time.Now().UTC()}
	if err := r.st.CreateRevision(ctx, rev); errors.Is(err, store.ErrConflict) {
		existing, gerr := r.st.GetRevision(ctx, app, id) // pushed concurrently
		return existing, false, gerr
	} else if err != nil {
		return rev, false, err
	}
	return rev, true, nil
}

// check validates a staged bundle and returns its appspec.yml.
func (r *Revisions) check(f *os.File, size int64) ([]byte, error) {
	arch, err := bundle.Detect(f, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v (a bundle is a .tar.gz or .zip with appspec.yml at its root)", ErrBundle, err)
	}
	src, err := bundle.ReadFile(arch, "appspec.yml", 1<<20)
	if err != nil {
		return nil, fmt.Errorf("%w: appspec.yml: %v (it must be at the root of the bundle)", ErrBundle, err)
	}
	spec, err := appspec.Parse("appspec.yml", src)
	if err != nil {
		return nil, fmt.Errorf("%w: the bundle's appspec.yml is not valid:\n%v", ErrBundle, err)
	}
	dir, _, err := bundle.ExtractFresh(r.TempDir, arch, bundle.DefaultLimits())
	if err != nil {
		if !bundleFault(err) {
			// The server's disk, not the bundle: an internal error (its
			// text names server paths and is only logged).
			return nil, fmt.Errorf("extract bundle: %w", err)
		}
		return nil, fmt.Errorf("%w: unsafe or unreadable bundle: %s", ErrBundle, scrubTemp(err.Error(), r.TempDir))
	}
	defer os.RemoveAll(dir)
	for _, ev := range appspec.ScriptEvents() {
		for i, h := range spec.HookScripts(ev) {
			p, err := bundle.SafeJoin(dir, h.Location)
			if err == nil {
				var fi os.FileInfo
				if fi, err = os.Stat(p); err == nil && !fi.Mode().IsRegular() {
					err = errors.New("not a regular file")
				}
			}
			if err != nil {
				// err names the server's extraction directory: keep it out.
				why := "not a script in the bundle (no such file)"
				if !errors.Is(err, os.ErrNotExist) {
					why = "not a script in the bundle (not a regular file)"
				}
				return nil, fmt.Errorf("%w: appspec.yml: hooks.%s[%d].location %q: %s", ErrBundle, ev, i, h.Location, why)
			}
		}
	}
	return src, nil
}

// bundleFault reports whether an extraction error is the bundle's fault
// (one of bundle's categories of refusal) rather than the server's.
func bundleFault(err error) bool {
	for _, cat := range []error{bundle.ErrUnsafePath, bundle.ErrUnsafeLink, bundle.ErrEntryType, bundle.ErrDuplicate,
		bundle.ErrLimit, bundle.ErrCorrupt, bundle.ErrFormat} {
		if errors.Is(err, cat) {
			return true
		}
	}
	return false
}

// scrubTemp removes the server's extraction directory (tempDir/rev-*/)
// from a message that goes back to the user.
func scrubTemp(msg, tempDir string) string {
	if tempDir == "" {
		tempDir = os.TempDir()
	}
	re := regexp.MustCompile(regexp.QuoteMeta(filepath.Clean(tempDir)) + `/rev-[^/\s"]*/?`)
	return re.ReplaceAllString(msg, "")
}
