package cli

import (
	"context"
	"fmt"
	"io"

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

The profile is written to $GANTRY_CONFIG if set, else
$XDG_CONFIG_HOME/gantry/config.json, else ~/.config/gantry/config.json,
readable by you only (mode 0600).`,
		Example: `  # Log in to a local dev server with the token it printed at start-up
  gantry login --server http://127.0.0.1:7070 --token TOKEN

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
	id, err := api.New(server, o.Token).Whoami(ctx)
	if err != nil {
		return fmt.Errorf("checking the token: %w", err)
	}
	path, err := profilePath(a.env)
	if err != nil {
		return err
	}
	if err := saveProfile(path, profile{Server: server, Token: o.Token}); err != nil {
		return err
	}
	out := struct {
		Server  string `json:"server"`
		Profile string `json:"profile"`
		api.Identity
	}{server, path, id}
	return a.emit(out, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "Logged in to %s as %s (role %s).\nProfile saved to %s.\n",
			server, orDash(id.Name), orDash(id.Role), path)
		return err
	})
}
