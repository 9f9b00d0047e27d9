package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gantry-dev/gantry/internal/agent"
	"github.com/gantry-dev/gantry/internal/selector"
	"github.com/gantry-dev/gantry/internal/validate"
)

// agentOptions are the flags of `gantry agent`.
type agentOptions struct {
	JoinToken string
	BusURL    string
	Name      string
	Labels    string
	DataDir   string
	// KeepRevisions and InstallRoot configure deployments.
	KeepRevisions int
	InstallRoot   string
	Log           logOptions
}

// splitNonEmpty splits a comma-separated list, dropping empty items.
func splitNonEmpty(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func defaultAgentDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/gantry-agent"
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "gantry-agent")
	}
	return "gantry-agent-data"
}

func newAgentCmd() *cobra.Command {
	o := agentOptions{}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the host agent (enrolls once with a join token)",
		Long: `Run the gantry agent on a host. The first start enrolls the host with a join
token: the agent makes its own key pair, the server records the public half,
and the identity is saved in --data-dir/identity.json (mode 0600). Later
starts reuse it and ignore the join token.

The agent connects out to the server's bus only (no listening port), reports
facts and heartbeats, and runs the commands signed by the server for this
host, each at most once (journal in --data-dir/journal).

Prefer GANTRY_JOIN_TOKEN to --join-token: the environment is not visible in
the process list.

The join token ends with the fingerprint of the server's CA: the agent checks
the server's certificate chain against it before it sends the token, keeps
that CA in its identity and trusts nothing else afterwards, for the bus and
for bundle downloads. A plain http:// server is refused unless --insecure.`,
		Example: `  # On the server: make a token that labels the host
  gantry token create --labels role=web,zone=a

  # On the host
  GANTRY_JOIN_TOKEN=gjt_… gantry agent --server https://gantry.internal:7070`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := o.Log.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			labels, err := selector.ParseLabels(o.Labels)
			if err != nil {
				return usageErrorf("--labels: %v", err)
			}
			if err := validate.KeepRevisions.Check(int64(o.KeepRevisions)); err != nil {
				return usageErrorf("%v", err)
			}
			srvURL, _ := cmd.Flags().GetString("server")
			if srvURL == "" {
				srvURL = os.Getenv("GANTRY_SERVER")
			}
			if o.JoinToken == "" {
				o.JoinToken = os.Getenv("GANTRY_JOIN_TOKEN")
			}
			insecure, _ := cmd.Flags().GetBool("insecure")
			// Scripts run in other directories: every path the agent hands
			// them (its context files, revisions) must be absolute.
			if o.DataDir, err = filepath.Abs(o.DataDir); err != nil {
				return usageErrorf("--data-dir: %v", err)
			}
			if o.InstallRoot != "" {
				if o.InstallRoot, err = filepath.Abs(o.InstallRoot); err != nil {
					return usageErrorf("--install-root: %v", err)
				}
			}
			err = agent.Run(cmd.Context(), agent.Config{
				Server: srvURL, BusURLs: splitNonEmpty(o.BusURL), JoinToken: o.JoinToken, Name: o.Name, Labels: labels,
				DataDir: o.DataDir, Version: Version, Log: log,
				KeepRevisions: o.KeepRevisions, DestRoot: o.InstallRoot, Insecure: insecure,
			})
			if errors.Is(err, cmd.Context().Err()) {
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.JoinToken, "join-token", "", "join `token` from 'gantry token create' (env GANTRY_JOIN_TOKEN); needed only to enroll")
	f.StringVar(&o.BusURL, "bus-url", "", "bus `URL`s (comma-separated) to use instead of those the server advertises at enrollment, for hosts that reach the bus at another address (containers, NAT)")
	f.StringVar(&o.Name, "name", "", "host `name` in the inventory (default: the hostname)")
	f.StringVar(&o.Labels, "labels", "", "labels to request at enrollment, `k=v,…`: only keys the join token allows (token create --agent-labels); its pinned labels win")
	f.StringVar(&o.DataDir, "data-dir", defaultAgentDataDir(), "`directory` for the identity, the journal and deployed revisions")
	f.IntVar(&o.KeepRevisions, "keep-revisions", 5, "revision `count` kept per application for fast rollback")
	f.StringVar(&o.InstallRoot, "install-root", "", "`directory` prefixed to every appspec destination (default: none, install into /); for running several agents on one machine")
	o.Log.register(cmd)
	return cmd
}
