package cli

import (
	"io"
	"os"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/spf13/cobra"
)

// maxScriptBytes is the largest script the CLI sends.
const maxScriptBytes = 256 << 10

// jobOptions are the inputs 'gantry run' and 'gantry schedule create'
// share: where to run, how, and what.
type jobOptions struct {
	Selector    string
	SelectorSet bool // --selector was given (possibly as '', meaning all hosts)
	Concurrency int
	Timeout     time.Duration
	User        string
	ScriptFile  string   // --script FILE
	ScriptWords []string // the words after "--"
}

// addFlags registers the shared flags on cmd.
func (o *jobOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&o.Selector, "selector", "l", "", "label `SELECTOR` of the target hosts (required; '' means all hosts)")
	f.IntVar(&o.Concurrency, "concurrency", 0, "run on at most `N` hosts at a time (0 = all at once)")
	f.DurationVar(&o.Timeout, "timeout", 0, "kill the script on a host after this long, e.g. 30s, 5m (default: server's, 10m)")
	f.StringVar(&o.User, "user", "", "run the script as this `USER` (the agent must run as root)")
	f.StringVar(&o.ScriptFile, "script", "", "read the script from `FILE` instead of the words after --")
}

// bind records what the flag values alone do not tell: whether --selector
// was given and the script words after "--".
func (o *jobOptions) bind(cmd *cobra.Command, args []string) error {
	o.SelectorSet = cmd.Flags().Changed("selector")
	dash := cmd.ArgsLenAtDash()
	if (dash < 0 && len(args) > 0) || dash > 0 {
		return usageErrorf("unexpected argument %q: put the script after --, as in: %s --selector 'role=web' -- uptime",
			args[0], cmd.CommandPath())
	}
	if dash == 0 {
		o.ScriptWords = args
	}
	return nil
}

// spec validates the options and returns the job they describe, reading
// the script file if one was given.
func (o *jobOptions) spec() (api.JobSpec, error) {
	if !o.SelectorSet {
		return api.JobSpec{}, usageErrorf("--selector is required: give a label selector such as 'role=web', or --selector '' for all hosts")
	}
	if o.Concurrency < 0 {
		return api.JobSpec{}, usageErrorf("invalid --concurrency %d: must be 0 (all at once) or more", o.Concurrency)
	}
	if o.Timeout < 0 {
		return api.JobSpec{}, usageErrorf("invalid --timeout %s: must be positive", o.Timeout)
	}
	script, err := o.script()
	if err != nil {
		return api.JobSpec{}, err
	}
	spec := api.JobSpec{Selector: o.Selector, Script: script, Concurrency: o.Concurrency, User: o.User}
	if o.Timeout > 0 {
		spec.TimeoutSeconds = ceilSeconds(o.Timeout)
	}
	return spec, nil
}

// script returns the script from exactly one of --script and the words
// after "--", checking its size.
func (o *jobOptions) script() (string, error) {
	hasWords := len(o.ScriptWords) > 0
	switch {
	case hasWords && o.ScriptFile != "":
		return "", usageErrorf("give the script either after -- or with --script FILE, not both")
	case !hasWords && o.ScriptFile == "":
		return "", usageErrorf("missing script: give it after -- (as in: -- uptime) or with --script FILE")
	}
	var script string
	if hasWords {
		script = strings.Join(o.ScriptWords, " ")
	} else {
		var err error
		if script, err = readScript(o.ScriptFile); err != nil {
			return "", err
		}
	}
	if err := checkScriptSize(int64(len(script))); err != nil {
		return "", err
	}
	if strings.TrimSpace(script) == "" {
		return "", usageErrorf("the script is empty")
	}
	return script, nil
}

// readScript reads a script file without loading more than the size
// limit allows.
func readScript(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", usageErrorf("--script: %v", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		if err := checkScriptSize(fi.Size()); err != nil {
			return "", err
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, maxScriptBytes+1))
	if err != nil {
		return "", usageErrorf("--script: %v", err)
	}
	return string(b), nil
}

func checkScriptSize(n int64) error {
	if n <= maxScriptBytes {
		return nil
	}
	return usageErrorf("the script is %s (%d bytes), over the limit of %s (%d bytes); copy large files to the hosts another way and run a short script",
		formatBytes(uint64(n)), n, formatBytes(maxScriptBytes), maxScriptBytes)
}
