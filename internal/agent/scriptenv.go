package agent

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"

	"github.com/gantry-dev/gantry/internal/protocol"
)

// envName is what an extra environment variable's name may be.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// scriptEnv is the environment of an exec command's script: the command's
// extra variables, then the agent's own GANTRY_* variables (which win),
// and GANTRY_CONTEXT when the command carries a context, written to a
// 0600 file under the data directory that cleanup removes.
func (a *Agent) scriptEnv(cmd protocol.Command) (env []string, cleanup func(), err error) {
	x := cmd.Exec
	cleanup = func() {}
	keys := make([]string, 0, len(x.Env))
	for k := range x.Env {
		if !envName.MatchString(k) {
			return nil, cleanup, fmt.Errorf("environment variable name %q is not valid", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+x.Env[k])
	}
	if len(x.Context) > 0 {
		dir := filepath.Join(a.cfg.DataDir, "context")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, cleanup, fmt.Errorf("context directory: %w", err)
		}
		path := filepath.Join(dir, cmd.ID+".json")
		if err := os.WriteFile(path, x.Context, 0o600); err != nil {
			return nil, cleanup, fmt.Errorf("write context: %w", err)
		}
		cleanup = func() { _ = os.Remove(path) }
		if x.User != "" {
			if err := chownTo(path, x.User); err != nil {
				cleanup()
				return nil, func() {}, err
			}
			// The user must reach the file through the directory.
			_ = os.Chmod(dir, 0o711)
		}
		env = append(env, "GANTRY_CONTEXT="+path)
	}
	env = append(env, "GANTRY_JOB_ID="+x.JobID, "GANTRY_EXECUTION_ID="+cmd.ID, "GANTRY_HOST_ID="+a.id.HostID, "GANTRY_HOST_NAME="+a.id.Name)
	return env, cleanup, nil
}

// chownTo gives a file to a user (name or uid) and its primary group.
func chownTo(path, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return fmt.Errorf("user %q: %w", name, err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(path, uid, gid)
}
