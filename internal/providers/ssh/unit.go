package ssh

import (
	"fmt"
	"strings"
)

// unitName is the systemd unit of the agent of machine name.
func unitName(name string) string { return "gantry-agent-" + name + ".service" }

// unitDir is where units are installed.
const unitDir = "/etc/systemd/system"

// systemdQuote quotes one ExecStart argument: double quotes, with the
// characters systemd gives a meaning escaped (\ and " by a backslash, %
// specifiers as %%, $ variables as $$).
func systemdQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`, `$`, `$$`)
	return `"` + r.Replace(s) + `"`
}

// systemdPath escapes a path for a unit setting that takes no quotes
// (EnvironmentFile=, the executable of ExecStart=). Agent directories are
// validated to hold no space, quote or backslash (checkAgentDir), so only
// specifiers remain to escape.
func systemdPath(p string) string { return strings.ReplaceAll(p, "%", "%%") }

// renderUnit is the unit that runs the agent of machine name from dir with
// args (after the executable).
func renderUnit(name, dir string, args []string) (string, error) {
	for _, v := range append([]string{name, dir}, args...) {
		if err := checkPrintable(v); err != nil {
			return "", err
		}
	}
	var exec strings.Builder
	exec.WriteString(systemdPath(dir + "/gantry"))
	for _, a := range args {
		exec.WriteByte(' ')
		exec.WriteString(systemdQuote(a))
	}
	return fmt.Sprintf(`# The gantry agent of host %[1]s, installed by gantry's ssh provider.
# Deleting the machine in gantry stops and removes this unit and %[2]s.
[Unit]
Description=gantry agent (%[1]s)
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=0

[Service]
Type=simple
EnvironmentFile=%[3]s
ExecStart=%[4]s
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
`, name, systemdPath(dir), systemdPath(dir+"/agent.env"), exec.String()), nil
}

// checkPrintable refuses control characters (a newline in a unit or an
// environment file would start a new setting).
func checkPrintable(s string) error {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %q contains a control character", errBadValue, s)
		}
	}
	return nil
}
