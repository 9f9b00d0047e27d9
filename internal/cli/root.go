// Package cli is gantry's command line: the root command, the client
// commands that talk to a server through package api, and the registration
// of the server and agent commands.
package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Version is gantry's version, set at build time with
// -ldflags "-X github.com/gantry-dev/gantry/internal/cli.Version=v1.2.3".
var Version = "dev"

// Exit codes returned by Execute.
const (
	exitOK     = 0 // the command did what was asked
	exitFailed = 1 // the command ran and failed (e.g. a host failed)
	exitUsage  = 2 // bad flag, argument or flag value
	// exitChanges is plan --detailed-exitcode's "the plan has changes"
	// (Terraform's meaning; the same number as exitUsage, as in terraform).
	exitChanges = 2
)

// Execute runs the gantry command line on os.Args and returns the process
// exit code: 0 success, 1 the command failed, 2 usage error.
func Execute() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return newApp(os.Stdout, os.Stderr, os.Getenv).execute(ctx, os.Args[1:])
}

// run is Execute with its inputs made explicit, for tests.
func run(args []string, stdout, stderr io.Writer, env func(string) string) int {
	return newApp(stdout, stderr, env).execute(context.Background(), args)
}

// app is one invocation of the command line: its streams, environment and
// global flags. Commands receive it instead of reading process globals.
type app struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	env            func(string) string
	now            func() time.Time
	global         globalOptions
	follow         followTuning
	// args are the command line's arguments (for flag suggestions).
	args []string
}

// globalOptions are the flags every command accepts.
type globalOptions struct {
	Server string
	Token  string
	Output outputFormat
	// CAFingerprint pins the server's CA (flag, else GANTRY_CA_FINGERPRINT,
	// else the profile's for the same server).
	CAFingerprint string
	// Insecure accepts a plain http:// server (and a plain bus for agents).
	Insecure bool
}

func newApp(stdout, stderr io.Writer, env func(string) string) *app {
	return &app{
		stdout: stdout,
		stderr: stderr,
		stdin:  os.Stdin,
		env:    env,
		now:    time.Now,
		global: globalOptions{Output: outputTable},
		follow: defaultFollowTuning,
	}
}

// execute builds the command tree, runs args through it and maps the
// outcome to an exit code, printing errors to stderr. The server's 400
// answers (a malformed selector or cron expression) count as usage errors.
func (a *app) execute(ctx context.Context, args []string) int {
	a.args = args
	root := a.newRootCmd()
	root.SetArgs(args)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var ex *exitError
	if errors.As(err, &ex) {
		return ex.code
	}
	fmt.Fprintf(a.stderr, "Error: %s\n", describeError(err))
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	var ue *usageError
	var se *api.StatusError
	if errors.As(err, &ue) || (errors.As(err, &se) && se.Status == http.StatusBadRequest) {
		path := "gantry"
		if cmd != nil {
			path = cmd.CommandPath()
		}
		fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", path)
		return exitUsage
	}
	return exitFailed
}

func (a *app) newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "gantry",
		Short: "Self-hosted DevOps platform: fleet, jobs, deployments, environments as code",
		Long: `gantry keeps an inventory of your hosts and runs scripts on them, now or on a
schedule; deploys application revisions (CodeDeploy appspec.yml) to
deployment groups, rolling, as a canary or blue/green, with health gates and
rollback, draining each host in the load balancer it drives (haproxy) so that
no request fails; and creates environments from HCL definitions (plan, apply,
up, scale, destroy), setting up and configuring their machines, and their
load balancers, as they come and go.

One binary is the control-plane server, the host agent and this client.
Client commands need the server's URL and an API token, taken in this order
from --server/--token, from GANTRY_SERVER/GANTRY_TOKEN, or from the profile
saved by 'gantry login'.

The server is trusted by its CA's fingerprint (sha256:…), which 'gantry
server' prints at start: 'gantry login' shows and saves it, scripts give it
as GANTRY_CA_FINGERPRINT or --ca-fingerprint. A plain http:// server is
refused unless --insecure.`,
		Example: `  # Try it locally: start a dev server, then log in with the token it prints
  gantry server --dev
  gantry login --server https://127.0.0.1:7070 --token TOKEN

  # Enroll a host, then run a script on every web host
  gantry token create --labels role=web
  gantry run --selector 'role=web' -- uptime

  # Create an environment from its definition, then remove it
  gantry up examples/shop --env demo
  gantry destroy examples/shop --env demo --auto-approve`,
		Version:       Version,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          groupArgs,
		RunE:          showHelp,
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return flagError(cmd, err, a.args) })
	pf := root.PersistentFlags()
	pf.StringVar(&a.global.Server, "server", "", "server `URL` (env GANTRY_SERVER; default from 'gantry login')")
	pf.StringVar(&a.global.Token, "token", "", "API token `T` (env GANTRY_TOKEN; default from 'gantry login')")
	pf.VarP(&a.global.Output, "output", "o", "output format: table or json")
	pf.StringVar(&a.global.CAFingerprint, "ca-fingerprint", "", "trust only a server whose CA has this `sha256:HEX` fingerprint (env GANTRY_CA_FINGERPRINT; default from 'gantry login'; none: the system's roots)")
	pf.BoolVar(&a.global.Insecure, "insecure", false, "accept a plain http:// server (agents: and a plain bus); tokens then cross the network in clear text")
	root.PersistentPreRun = func(*cobra.Command, []string) {
		if a.global.Insecure {
			fmt.Fprintln(a.stderr, "WARNING: --insecure: a plain http:// server is accepted; tokens and commands may cross the network in clear text and anyone in between can impersonate the server.")
		}
	}

	root.AddGroup(
		&cobra.Group{ID: groupFleet, Title: "Fleet:"},
		&cobra.Group{ID: groupDeploy, Title: "Deployments:"},
		&cobra.Group{ID: groupEnv, Title: "Environments:"},
		&cobra.Group{ID: groupSetup, Title: "Server and setup:"},
	)
	root.SetHelpCommandGroupID(groupSetup)
	root.SetCompletionCommandGroupID(groupSetup)
	inGroup := func(id string, cmds ...*cobra.Command) {
		for _, c := range cmds {
			c.GroupID = id
			root.AddCommand(c)
		}
	}
	inGroup(groupFleet,
		a.newHostsCmd(),
		a.newRunCmd(),
		a.newJobsCmd(),
		a.newScheduleCmd(),
		a.newTokenCmd(),
	)
	inGroup(groupDeploy,
		a.newAppCmd(),
		a.newPushCmd(),
		a.newRevisionsCmd(),
		a.newGroupsCmd(),
		a.newDeployCmd(),
		a.newRollbackCmd(),
		a.newDeploymentsCmd(),
		a.newLBCmd(),
	)
	inGroup(groupEnv,
		a.newPlanCmd(),
		a.newApplyCmd(),
		a.newUpCmd(),
		a.newScaleCmd(),
		a.newDestroyCmd(),
		a.newEnvCmd(),
	)
	inGroup(groupSetup,
		newServerCmd(),
		newAgentCmd(),
		a.newLoginCmd(),
		a.newVersionCmd(),
	)
	acceptAutoApprove(root)
	return root
}

// mutating names the commands that change something without asking for
// confirmation; they accept --auto-approve (hidden, no effect), so that a
// Terraform habit is not an error.
var mutating = map[string]bool{"rm": true, "create": true, "update": true, "label": true, "stop": true,
	"run": true, "push": true, "deploy": true, "rollback": true}

// acceptAutoApprove adds the no-op --auto-approve to every mutating leaf
// command of cmd that has no such flag of its own.
func acceptAutoApprove(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		acceptAutoApprove(c)
	}
	if cmd.Runnable() && !cmd.HasSubCommands() && mutating[cmd.Name()] && cmd.Flags().Lookup("auto-approve") == nil {
		cmd.Flags().Bool("auto-approve", false, "accepted for Terraform habits: this command does not ask for confirmation")
		_ = cmd.Flags().MarkHidden("auto-approve")
	}
}

// The groups of the root help.
const (
	groupFleet  = "fleet"
	groupDeploy = "deploy"
	groupEnv    = "env"
	groupSetup  = "setup"
)

// codedError is printed like any error but ends the command with its own
// exit code (plan --detailed-exitcode: a definition's errors exit 1, not 2).
type codedError struct {
	err  error
	code int
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// flagError turns pflag's parse errors into usage errors, suggesting the
// closest flag for a mistyped one and the double-dash form for
// Terraform's single-dash habit (-auto-approve, which pflag reads as the
// shorthands -a -u -t …).
func flagError(cmd *cobra.Command, err error, args []string) error {
	msg := err.Error()
	var names []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	cmd.InheritedFlags().VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	switch {
	case strings.HasPrefix(msg, "unknown flag: --"):
		typed := strings.TrimPrefix(msg, "unknown flag: --")
		if best := closestName(typed, names); best != "" {
			msg += fmt.Sprintf(" (did you mean --%s?)", best)
		}
	case strings.HasPrefix(msg, "unknown shorthand flag: "):
		// "unknown shorthand flag: 'a' in -auto-approve"
		if i := strings.LastIndex(msg, " in -"); i >= 0 {
			word := strings.TrimPrefix(msg[i+len(" in -"):], "-")
			word, _, _ = strings.Cut(word, "=")
			short := strings.TrimPrefix(msg[:i], "unknown shorthand flag: ")
			msg = fmt.Sprintf("unknown shorthand flag %s in -%s", short, word)
			if best := closestName(word, names); best != "" && len(word) > 1 {
				msg += fmt.Sprintf(": did you mean --%s?", best)
			}
		}
	default:
		// -out FILE is read as -o (--output) with the value "ut".
		if m := shorthandValueRE.FindStringSubmatch(msg); m != nil {
			for _, arg := range args {
				if arg == "--" {
					break
				}
				word, _, _ := strings.Cut(strings.TrimPrefix(arg, "-"), "=")
				if strings.HasPrefix(arg, "-"+m[1]) && len(word) > 1 {
					if best := closestName(word, names); best != "" {
						msg += fmt.Sprintf(" (%s was read as -%s %s: did you mean --%s?)", arg, m[1], strings.TrimPrefix(arg, "-"+m[1]), best)
					}
					break
				}
			}
		}
	}
	return &usageError{errors.New(msg)}
}

// shorthandValueRE matches pflag's error for a bad value of a shorthand
// flag, capturing the letter.
var shorthandValueRE = regexp.MustCompile(`^invalid argument ".*" for "-([a-zA-Z0-9]), --`)

// closestName is the name nearest to typed (Levenshtein distance at most
// a third of its length, at least 2), or "".
func closestName(typed string, names []string) string {
	typed, _, _ = strings.Cut(typed, "=")
	best, bestD := "", max(2, len(typed)/3)+1
	for _, n := range names {
		if d := levenshtein(typed, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// levenshtein is the edit distance between a and b.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (a *app) newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print gantry's version",
		Example: "  gantry version\n  gantry version -o json",
		Args:    exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			v := struct {
				Version string `json:"version"`
				Go      string `json:"go"`
				OS      string `json:"os"`
				Arch    string `json:"arch"`
			}{Version, runtime.Version(), runtime.GOOS, runtime.GOARCH}
			return a.emit(v, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "gantry %s (%s, %s/%s)\n", v.Version, v.Go, v.OS, v.Arch)
				return err
			})
		},
	}
}

// newGroupCmd returns a command that only holds subcommands: run bare it
// prints its help; with an unknown subcommand it is a usage error.
func newGroupCmd(use, short, example string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Example: example, Args: groupArgs, RunE: showHelp}
	cmd.AddCommand(subs...)
	return cmd
}

func showHelp(cmd *cobra.Command, _ []string) error { return cmd.Help() }

// groupArgs rejects arguments to a command that only has subcommands.
func groupArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return &usageError{errors.New(msg)}
}

// exactArgs requires exactly the named positional arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) < len(names) {
			return usageErrorf("missing %s argument", strings.Join(names[len(args):], " "))
		}
		if len(args) > len(names) {
			return usageErrorf("unexpected argument %q", args[len(names)])
		}
		return nil
	}
}

// maxArgs allows up to n positional arguments (a usage error beyond).
func maxArgs(n int) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > n {
			return usageErrorf("unexpected argument %q", args[n])
		}
		return nil
	}
}

// usageError marks an error as the user's invocation being wrong (exit 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// exitError ends the command with a code and no further message: the
// command has already explained the outcome on its output.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// describeError renders an error for the "Error: " line, adding hints for
// common causes.
func describeError(err error) string {
	if errors.Is(err, context.Canceled) {
		return "interrupted"
	}
	msg := err.Error()
	var se *api.StatusError
	if errors.As(err, &se) && len(se.Diagnostics) > 0 {
		return fmt.Sprintf("%s (%d problems):\n%s", se.Message, len(se.Diagnostics), renderDiagnostics(se.Diagnostics))
	}
	if errors.As(err, &se) && se.Status == http.StatusUnauthorized {
		msg += "\nCheck --token / GANTRY_TOKEN, or log in again with 'gantry login --server URL --token TOKEN'."
	}
	var unknownCA x509.UnknownAuthorityError
	if errors.As(err, &unknownCA) {
		msg += "\nThe server's CA is not one this machine trusts: pin it with 'gantry login --server URL --token TOKEN' (it shows the fingerprint), or give the fingerprint that 'gantry server' printed as --ca-fingerprint / GANTRY_CA_FINGERPRINT."
	}
	return msg
}

// client resolves the server and token (flag > environment > profile) and
// returns an API client for them.
func (a *app) client() (*api.Client, error) {
	server, token, pin, err := a.credentials()
	if err != nil {
		return nil, err
	}
	return a.newClient(server, token, pin)
}

// newClient returns an API client that refuses a plain http:// server
// unless --insecure and trusts an https:// one by pin, or by the system's
// roots when pin.Fingerprint is "".
func (a *app) newClient(server, token string, pin api.Pin) (*api.Client, error) {
	if strings.HasPrefix(server, "http://") && !a.global.Insecure {
		return nil, usageErrorf("server %s is plain http://: the API token would cross the network in clear text; use the server's https:// URL, or pass --insecure (only on a trusted network)", server)
	}
	c := api.New(server, token)
	if pin.Fingerprint != "" {
		fp, err := api.ParseFingerprint(pin.Fingerprint)
		if err != nil {
			return nil, usageErrorf("%s: %v", pin.PinnedBy, err)
		}
		pin.Fingerprint = fp
		c.HTTP = &http.Client{Transport: api.PinnedTransport(pin, server)}
	}
	return c, nil
}

// credentials resolves the server URL, the token and the CA pin. The
// profile's token and pin are only used with the profile's server, so a
// token never leaks to a server it was not issued by.
func (a *app) credentials() (server, token string, pin api.Pin, err error) {
	server = firstNonEmpty(a.global.Server, a.env("GANTRY_SERVER"))
	token = firstNonEmpty(a.global.Token, a.env("GANTRY_TOKEN"))
	pin = a.givenPin()
	if server == "" || token == "" || pin.Fingerprint == "" {
		path, err := profilePath(a.env)
		if err != nil {
			return "", "", pin, err
		}
		p, err := loadProfile(path)
		if err != nil {
			return "", "", pin, err
		}
		if server == "" {
			server = p.Server
		}
		if token == "" && p.Token != "" && sameServer(server, p.Server) {
			token = p.Token
		}
		if pin.Fingerprint == "" && p.CAFingerprint != "" && sameServer(server, p.Server) {
			pin = api.Pin{Fingerprint: p.CAFingerprint, PinnedBy: "the profile (" + path + ")"}
		}
	}
	if server == "" {
		return "", "", pin, errors.New("no server configured: pass --server URL, set GANTRY_SERVER, or run 'gantry login --server URL --token TOKEN'")
	}
	server, err = normalizeServer(server)
	return server, token, pin, err
}

// givenPin is the CA fingerprint from --ca-fingerprint or
// GANTRY_CA_FINGERPRINT (empty Fingerprint if neither).
func (a *app) givenPin() api.Pin {
	if a.global.CAFingerprint != "" {
		return api.Pin{Fingerprint: a.global.CAFingerprint, PinnedBy: "--ca-fingerprint"}
	}
	if fp := a.env("GANTRY_CA_FINGERPRINT"); fp != "" {
		return api.Pin{Fingerprint: fp, PinnedBy: "GANTRY_CA_FINGERPRINT"}
	}
	return api.Pin{}
}

// normalizeServer checks a server URL and adds https:// when no scheme is
// given ("localhost:8080" is accepted).
func normalizeServer(s string) (string, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "/")
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usageErrorf("invalid server URL %q: want http(s)://HOST[:PORT]", s)
	}
	return s, nil
}

func sameServer(a, b string) bool {
	na, errA := normalizeServer(a)
	nb, errB := normalizeServer(b)
	return errA == nil && errB == nil && na == nb
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
