package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/gantry-dev/gantry/internal/appspec"
	"github.com/gantry-dev/gantry/internal/bundle"
)

func (a *app) newAppCmd() *cobra.Command {
	create := &cobra.Command{
		Use:     "create NAME",
		Short:   "Create an application (lower-case letters, digits and '-')",
		Example: "  gantry app create shop",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			app, err := c.CreateApp(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.emit(app, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "Application %s created. Push a bundle with: gantry push %s DIR\n", app.Name, app.Name)
				return err
			})
		},
	}
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List applications",
		Example: "  gantry app ls\n  gantry app ls -o json",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			apps, err := c.ListApps(cmd.Context())
			if err != nil {
				return err
			}
			now := a.now()
			return emitList(a, apps, "No applications. Create one with: gantry app create NAME", func(w io.Writer) error {
				t := newTable(w, "NAME", "CREATED")
				for _, ap := range apps {
					t.row(ap.Name, relTime(ap.CreatedAt, now))
				}
				return t.flush()
			})
		},
	}
	return newGroupCmd("app", "Create, list and remove applications", "  gantry app create shop\n  gantry app ls\n  gantry app rm shop", create, ls, a.newAppRmCmd())
}

// pushOptions are the flags of 'gantry push'.
type pushOptions struct {
	Description string
}

func (a *app) newPushCmd() *cobra.Command {
	var o pushOptions
	cmd := &cobra.Command{
		Use:   "push APP PATH",
		Short: "Push a bundle (a directory, .tar.gz or .zip with appspec.yml) as a new revision",
		Long: `Push an application bundle as a revision. PATH is a directory (packed as a
deterministic .tar.gz), or a .tar.gz or .zip file, with an AWS CodeDeploy
appspec.yml at its root; existing CodeDeploy bundles work unchanged.

appspec.yml is checked here first, with errors that name the line and the
field; the server checks it again, refuses unsafe archives (path traversal,
links out of the bundle, devices, bombs) and hook scripts that are missing.
Revisions are content-addressed: pushing the same bundle again prints the
existing revision. A refused bundle exits 1, whichever side found the
problem; a PATH that does not exist is a usage error (2).`,
		Example: `  gantry push shop examples/shop/app/bundle --description "v1.2.0"
  gantry push shop build/shop.zip -o json`,
		Args: exactArgs("APP", "PATH"),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runPush(cmd.Context(), args[0], args[1], o) },
	}
	cmd.Flags().StringVar(&o.Description, "description", "", "a `note` shown with the revision")
	return cmd
}

func (a *app) runPush(ctx context.Context, appName, path string, o pushOptions) error {
	fi, err := os.Stat(path)
	if err != nil {
		return usageErrorf("PATH %s: %v", path, err)
	}
	var upload *os.File
	if fi.IsDir() {
		src, err := os.ReadFile(filepath.Join(path, "appspec.yml"))
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s has no appspec.yml at its root: a bundle is a directory, .tar.gz or .zip with an AWS CodeDeploy appspec.yml at its root", path)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if _, err := appspec.Parse(filepath.Join(path, "appspec.yml"), src); err != nil {
			return err
		}
		tmp, err := os.CreateTemp("", "gantry-bundle-*.tar.gz")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		if _, err := bundle.Pack(path, tmp); err != nil {
			return fmt.Errorf("pack %s: %w", path, err)
		}
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return err
		}
		upload = tmp
	} else {
		arch, err := bundle.Open(path)
		if errors.Is(err, bundle.ErrFormat) {
			return fmt.Errorf("%s is not a .tar.gz or .zip file: PATH is a directory, or a .tar.gz or .zip file, with appspec.yml at its root", path)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		src, err := bundle.ReadFile(arch, "appspec.yml", 1<<20)
		arch.Close()
		if err != nil {
			return fmt.Errorf("%s: appspec.yml: %w", path, err)
		}
		if _, err := appspec.Parse(path+":appspec.yml", src); err != nil {
			return err
		}
		if upload, err = os.Open(path); err != nil {
			return err
		}
		defer upload.Close()
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	rev, err := c.PushRevision(ctx, appName, upload, o.Description)
	if err != nil {
		return err
	}
	return a.emit(rev, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "Revision %s of %s (%s, %s)\n", rev.ID, rev.App, formatBytes(uint64(rev.Size)), rev.Digest)
		return err
	})
}

func (a *app) newRevisionsCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "revisions APP [REVISION]",
		Short:   "List an application's revisions, or show one with its appspec.yml",
		Example: "  gantry revisions shop\n  gantry revisions shop r-3f2a9c0d1e2b",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageErrorf("want APP, or APP REVISION")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if len(args) == 2 {
				rev, err := c.GetRevision(cmd.Context(), args[0], args[1])
				if err != nil {
					return err
				}
				return a.emit(rev, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "Revision:    %s\nApplication: %s\nDigest:      %s\nSize:        %s\nDescription: %s\nCreated:     %s\n\nappspec.yml:\n%s",
						rev.ID, rev.App, rev.Digest, formatBytes(uint64(rev.Size)), rev.Description, rev.CreatedAt.Format("2006-01-02 15:04:05 MST"), rev.AppSpec)
					return err
				})
			}
			revs, err := c.ListRevisions(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			now := a.now()
			return emitList(a, revs, "No revisions. Push one with: gantry push "+args[0]+" DIR", func(w io.Writer) error {
				t := newTable(w, "REVISION", "SIZE", "CREATED", "DESCRIPTION")
				for _, r := range revs {
					t.row(r.ID, formatBytes(uint64(r.Size)), relTime(r.CreatedAt, now), r.Description)
				}
				return t.flush()
			})
		},
	}
}
