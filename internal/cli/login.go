package cli

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"strings"

	"github.com/gantry-dev/gantry/api"
	"github.com/spf13/cobra"
)

// loginOptions are the inputs of 'gantry login'.
type loginOptions struct {
	Server string // resolved from --server or GANTRY_SERVER
	Token  string // resolved from --token or GANTRY_TOKEN
}

func (a *app) newLoginCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "login --server URL --token TOKEN",
		Short: "Check an API token and save it as the default profile",
		Long: `Check an API token against a server and save both as the profile that client
commands use when --server/--token and GANTRY_SERVER/GANTRY_TOKEN are unset.

The server is trusted by the fingerprint of its CA, which 'gantry server'
prints beside its URL. Give it with --ca-fingerprint (or
GANTRY_CA_FINGERPRINT): a server with another CA is then refused. Without
it, login shows the fingerprint the server presents and pins it (trust on
first use: compare it with the one the server printed); a server whose
certificate the system's roots trust is not pinned. Once saved, a server
presenting another CA is refused, also by a later login.

The profile is written to $GANTRY_CONFIG if set, else
$XDG_CONFIG_HOME/gantry/config.json, else ~/.config/gantry/config.json,
readable by you only (mode 0600).`,
		Example: `  # Log in to a local dev server with the token it printed at start-up
  gantry login --server https://127.0.0.1:7070 --token TOKEN

  # Pin the CA fingerprint the server printed (a proxy in between is refused)
  gantry login --server https://10.0.0.5:7070 --token TOKEN --ca-fingerprint sha256:3f1c…

  # Keep the token out of your shell history
  GANTRY_TOKEN=$(cat token.txt) gantry login --server https://gantry.example.com`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := loginOptions{
				Server: firstNonEmpty(a.global.Server, a.env("GANTRY_SERVER")),
				Token:  firstNonEmpty(a.global.Token, a.env("GANTRY_TOKEN")),
			}
			return a.runLogin(cmd.Context(), o)
		},
	}
}

func (a *app) runLogin(ctx context.Context, o loginOptions) error {
	if o.Server == "" {
		return usageErrorf("--server is required (or set GANTRY_SERVER)")
	}
	if o.Token == "" {
		return usageErrorf("--token is required (or set GANTRY_TOKEN)")
	}
	server, err := normalizeServer(o.Server)
	if err != nil {
		return err
	}
	path, err := profilePath(a.env)
	if err != nil {
		return err
	}
	pin, how, err := a.loginPin(ctx, server, path)
	if err != nil {
		return err
	}
	c, err := a.newClient(server, o.Token, pin)
	if err != nil {
		return err
	}
	id, err := c.Whoami(ctx)
	if err != nil {
		return fmt.Errorf("checking the token: %w", err)
	}
	if err := saveProfile(path, profile{Server: server, Token: o.Token, CAFingerprint: pin.Fingerprint}); err != nil {
		return err
	}
	out := struct {
		Server        string `json:"server"`
		Profile       string `json:"profile"`
		CAFingerprint string `json:"ca_fingerprint,omitempty"`
		api.Identity
	}{server, path, pin.Fingerprint, id}
	return a.emit(out, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "Logged in to %s as %s (role %s).\n%s\nProfile saved to %s.\n",
			server, orDash(id.Name), orDash(id.Role), how, path)
		return err
	})
}

// loginPin decides how login trusts an https:// server: the fingerprint
// given (flag or environment), else the one the profile already pins for
// this server, else the CA the server presents now (trust on first use),
// unless the system's roots trust its certificate. how tells the user.
func (a *app) loginPin(ctx context.Context, server, profilePath string) (pin api.Pin, how string, err error) {
	if !strings.HasPrefix(server, "https://") {
		return api.Pin{}, "TLS: none (plain http://).", nil
	}
	if pin = a.givenPin(); pin.Fingerprint != "" {
		return pin, "Server CA " + pin.Fingerprint + " (as given by " + pin.PinnedBy + ") pinned.", nil
	}
	if p, err := loadProfile(profilePath); err == nil && p.CAFingerprint != "" && sameServer(server, p.Server) {
		return api.Pin{Fingerprint: p.CAFingerprint, PinnedBy: "the profile (" + profilePath + ")"},
			"Server CA " + p.CAFingerprint + " (already pinned in the profile).", nil
	}
	ca, err := api.FetchCA(ctx, server)
	if err != nil {
		return api.Pin{}, "", err
	}
	if roots, err := x509.SystemCertPool(); err == nil {
		if _, err := ca.Verify(x509.VerifyOptions{Roots: roots}); err == nil && !api.IsSelfManagedCA(ca) {
			return api.Pin{}, "Server certificate trusted by this machine's roots (not pinned).", nil
		}
	}
	fp := api.Fingerprint(ca.Raw)
	return api.Pin{Fingerprint: fp, PinnedBy: "the server at first use"},
		"Server CA " + fp + " pinned (trust on first use: check it against the fingerprint 'gantry server' printed; pass --ca-fingerprint to give it instead).", nil
}
