package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-dev/gantry/internal/server"
	"github.com/gantry-dev/gantry/internal/validate"
)

// serverOptions are the flags of `gantry server`.
type serverOptions struct {
	DataDir       string
	Listen        string
	NATSListen    string
	NATSAdvertise string
	NATSURL       string
	Database      string
	Heartbeat     time.Duration
	AgentBinary   string
	Dev           bool
	Log           logOptions
	// TLS is --tls (default true); TLSCert, TLSKey, TLSCA and TLSSANs are
	// --tls-cert, --tls-key, --tls-ca and --tls-san.
	TLS                    bool
	TLSCert, TLSKey, TLSCA string
	TLSSANs                []string

	// MinScheduleInterval is --min-schedule-interval (default 10s).
	MinScheduleInterval time.Duration
}

// logOptions are the logging flags of long-running commands.
type logOptions struct {
	Level  string
	Format string
}

func (o *logOptions) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.Level, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().StringVar(&o.Format, "log-format", "text", "log format: text or json")
}

// logger builds the slog logger the flags ask for.
func (o logOptions) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.Level)); err != nil {
		return nil, usageErrorf("--log-level %q: want debug, info, warn or error", o.Level)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	switch o.Format {
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	}
	return nil, usageErrorf("--log-format %q: want text or json", o.Format)
}

func newServerCmd() *cobra.Command {
	o := serverOptions{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control-plane server (API, bus, store)",
		Long: `Run the gantry control plane: the HTTP API, an embedded NATS bus that agents
connect to, and the store (SQLite in --data-dir, or PostgreSQL with --database).

On its very first start the server creates an admin API token and prints it
once; set GANTRY_ADMIN_TOKEN to choose it yourself. The command-signing key is
kept in --data-dir/server.nkey, apart from the database.

TLS is on by default, for the API and the bus: on its first start the server
makes its own CA (--data-dir/ca.key, ca.crt) and prints the CA's fingerprint
beside its URL; join tokens carry it and 'gantry login' pins it. Serving
certificates cover the listen and advertise addresses, localhost and every
--tls-san, and are renewed in place before they expire. Or bring your own
with --tls-cert, --tls-key and --tls-ca.

--dev runs everything on its embedded defaults plus three local agents
(web1, web2 with role=web; db1 with role=db) as child processes: no Docker,
no root, no external service. Their names cannot be an environment's
machine names (those are ENV-GROUP-N), so any --env is safe beside them.

Relative paths (--data-dir, --agent-binary, --tls-*) are resolved against
the working directory at start: machines and agents the server starts get
absolute ones.`,
		Example: `  # Try gantry on one machine
  gantry server --dev

  # Production-like: PostgreSQL, agents reach the bus on a private address
  GANTRY_DATABASE_URL=postgres://gantry:secret@db/gantry gantry server \
    --listen 0.0.0.0:7070 --nats-listen 0.0.0.0:7422 \
    --nats-advertise tls://10.0.0.5:7422 --tls-san gantry.internal`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error { return runServer(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.DataDir, "data-dir", "gantry-data", "directory for the SQLite database, the signing key and dev-mode agents (a relative path is resolved against the working directory at start)")
	f.StringVar(&o.Listen, "listen", "127.0.0.1:7070", "HTTP `address` of the API")
	f.StringVar(&o.NATSListen, "nats-listen", "127.0.0.1:7422", "`address` of the embedded NATS server that agents connect to")
	f.StringVar(&o.NATSAdvertise, "nats-advertise", "", "bus `URL` given to agents (default tls://<nats-listen>; nats:// with --tls=false); its host is put in the serving certificate")
	f.StringVar(&o.NATSURL, "nats-url", "", "use an external NATS at `URL` instead of the embedded one")
	f.StringVar(&o.Database, "database", "", "PostgreSQL `URL` (postgres://…; env GANTRY_DATABASE_URL); default SQLite in --data-dir")
	f.DurationVar(&o.Heartbeat, "heartbeat", 5*time.Second, "agent heartbeat interval; a host is offline after 3 missed")
	f.DurationVar(&o.MinScheduleInterval, "min-schedule-interval", validate.DefaultMinScheduleInterval, "shortest `interval` between two runs of a new schedule (1s to 24h)")
	f.StringVar(&o.AgentBinary, "agent-binary", "", "static gantry `binary` that environments install as the agent on new machines (default: this binary; it must be built with CGO_ENABLED=0 to run in containers)")
	f.BoolVar(&o.Dev, "dev", false, "dev mode: also start 3 local agents: web1, web2 (role=web) and db1 (role=db)")
	f.BoolVar(&o.TLS, "tls", true, "serve the API and the bus with TLS; --tls=false only behind a TLS-terminating proxy on a trusted network (agents and the CLI then need --insecure)")
	f.StringVar(&o.TLSCert, "tls-cert", "", "serving certificate `file` (PEM, may hold the chain) instead of one from gantry's own CA; needs --tls-key and --tls-ca")
	f.StringVar(&o.TLSKey, "tls-key", "", "private key `file` (PEM) of --tls-cert")
	f.StringVar(&o.TLSCA, "tls-ca", "", "`file` of the CA certificate that issued --tls-cert: its fingerprint is the pin agents and the CLI check")
	f.StringArrayVar(&o.TLSSANs, "tls-san", nil, "extra DNS `name` or IP address for gantry's serving certificate (repeatable); the listen and advertise addresses and localhost are always in")
	o.Log.register(cmd)
	return cmd
}

func runServer(cmd *cobra.Command, o serverOptions) error {
	log, err := o.Log.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	if o.Heartbeat%time.Millisecond != 0 || validate.Heartbeat.Check(int64(o.Heartbeat/time.Millisecond)) != nil {
		return usageErrorf("--heartbeat %s: want a duration from 100ms to 1h", o.Heartbeat)
	}
	if o.MinScheduleInterval%time.Second != 0 || validate.ScheduleInterval.Check(int64(o.MinScheduleInterval/time.Second)) != nil {
		return usageErrorf("--min-schedule-interval %s: want whole seconds from 1s to 24h", o.MinScheduleInterval)
	}
	if o.Database == "" {
		o.Database = os.Getenv("GANTRY_DATABASE_URL")
	}
	// Resolved once, here: the dev agents, the local provider's machines
	// and every other process the server starts run in directories of
	// their own (server.Config resolves its paths the same way).
	if o.DataDir == "" {
		return usageErrorf("--data-dir: want a directory")
	}
	if o.DataDir, err = filepath.Abs(o.DataDir); err != nil {
		return fmt.Errorf("--data-dir: make the path absolute: %w", err)
	}
	started := time.Now()
	cfg := server.Config{
		DataDir: o.DataDir, Listen: o.Listen, NATSListen: o.NATSListen, NATSAdvertise: o.NATSAdvertise,
		NATSURL: o.NATSURL, Database: o.Database, AdminToken: os.Getenv("GANTRY_ADMIN_TOKEN"), Heartbeat: o.Heartbeat, MinScheduleInterval: o.MinScheduleInterval, AgentBinary: o.AgentBinary, Log: log,
		NoTLS: !o.TLS, TLSCert: o.TLSCert, TLSKey: o.TLSKey, TLSCA: o.TLSCA, TLSSANs: o.TLSSANs,
	}
	devTokenFile := filepath.Join(o.DataDir, "dev-admin-token")
	if o.Dev && cfg.AdminToken == "" {
		if b, err := os.ReadFile(devTokenFile); err == nil {
			cfg.AdminToken = strings.TrimSpace(string(b))
		}
	}
	ctx := cmd.Context()
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	out := cmd.OutOrStdout()
	token := cfg.AdminToken
	if srv.NewAdminToken != "" {
		token = srv.NewAdminToken
		if o.Dev {
			if err := os.WriteFile(devTokenFile, []byte(token+"\n"), 0o600); err != nil {
				return fmt.Errorf("save dev admin token: %w", err)
			}
		} else {
			fmt.Fprintf(out, "\nAdmin API token (shown once; store it safely):\n\n    %s\n\n", token)
		}
	}
	if o.Dev {
		dev, err := startDevAgents(ctx, srv, token, o.DataDir, log)
		if err != nil {
			return err
		}
		defer dev.stop()
		printDevBanner(out, srv.URL(), srv.CAFingerprint(), token, dev.names, time.Since(started))
	} else if fp := srv.CAFingerprint(); fp != "" {
		fmt.Fprintf(out, "gantry server listening on %s\nCA fingerprint %s\n  (clients: gantry login --server %s --ca-fingerprint %s)\n", srv.URL(), fp, srv.URL(), fp)
	} else {
		fmt.Fprintf(out, "gantry server listening on %s\nWARNING: TLS is off (--tls=false): tokens and commands cross the network in clear text unless a TLS-terminating proxy is in front.\n", srv.URL())
	}
	if conf := srv.ExternalNATSConfig(); conf != "" {
		fmt.Fprintf(out, "\nExternal NATS: agents are authenticated by gantry (auth callout). Put this in the\nNATS server's configuration and reload it:\n\n%s\n\n", conf)
	}
	<-ctx.Done()
	log.Info("shutting down")
	return nil
}

func printDevBanner(w io.Writer, url, fp, token string, agents []string, took time.Duration) {
	export := "GANTRY_SERVER=" + url + " GANTRY_TOKEN=" + token
	if fp != "" {
		export += " GANTRY_CA_FINGERPRINT=" + fp
	}
	fmt.Fprintf(w, `
gantry dev server ready in %.1fs

  API      %s
  CA       %s
  Token    %s
  Agents   %s

Try it (in another terminal):

  export %s
  gantry hosts ls
  gantry run --selector role=web -- 'echo "hello from $GANTRY_HOST_NAME"; uname -sr'
  gantry jobs ls
  gantry up examples/local --env demo     # an environment of local machines

Press Ctrl-C to stop.
`, took.Seconds(), url, orDash(fp), token, strings.Join(agents, ", "), export)
}
