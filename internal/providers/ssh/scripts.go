package ssh

// The remote scripts. Each is a constant run by remoteCommand with its
// values as positional parameters; none contains a user value. They are
// POSIX sh (checked with dash, bash and busybox sh) and use only what a
// Linux host has: coreutils or busybox, grep, sed, /proc, systemctl where
// systemd runs.
//
// The agent directory carries a marker file, .gantry-agent, written when
// gantry creates the directory: Create refuses a non-empty directory
// without it, Delete refuses to remove one without it, and Read reports a
// directory without it as absent. It also records the machine's name
// ("name=NAME": another machine may not take the directory over) and how
// the agent runs: "mode=systemd" with "unit=gantry-agent-NAME.service", or
// "mode=supervisor".

// markerFile is the name of the marker in the agent directory.
const markerFile = ".gantry-agent"

// Exit statuses of the scripts that callers tell apart.
const (
	// exitNotOurs: prepareScript or deleteScript found an agent directory
	// that gantry did not make.
	exitNotOurs = 3
	// exitOtherMachine: prepareScript found the agent directory of
	// another machine; its name is on standard output.
	exitOtherMachine = 5
)

// stopFuncs defines gantry_stop DIR: stop and remove the systemd unit the
// marker names (or, failing that, the unit of the marker's machine name
// when it runs the agent of DIR), then stop every supervisor and agent of
// DIR (the processes with an argument exactly DIR/supervise.sh or
// DIR/gantry, and their process groups when they lead one): SIGTERM, then
// SIGKILL after 3 s, waiting until none is left.
const stopFuncs = `
gantry_pids() {
	gp_dir=$1
	# Expand the list here: a glob expanded in grep's own process would
	# list grep, whose arguments match.
	set -- /proc/[0-9]*/cmdline
	grep -lzxF -e "$gp_dir/supervise.sh" -e "$gp_dir/gantry" "$@" 2>/dev/null |
	while IFS= read -r f; do
		p=${f#/proc/}
		p=${p%/cmdline}
		if [ "$p" != "$$" ]; then echo "$p"; fi
	done
}
gantry_stop() {
	unit=
	if [ -f "$1/.gantry-agent" ]; then
		unit=$(sed -n 's/^unit=//p' "$1/.gantry-agent")
	fi
	case $unit in
	*/*) unit= ;;
	gantry-agent-*.service) ;;
	*) unit= ;;
	esac
	# A unit installed before the marker recorded it (a failed start).
	if [ -z "$unit" ] && [ -f "$1/.gantry-agent" ]; then
		n=$(sed -n 's/^name=//p' "$1/.gantry-agent")
		case $n in
		''|*/*) ;;
		*)
			if grep -qxF "EnvironmentFile=$1/agent.env" "/etc/systemd/system/gantry-agent-$n.service" 2>/dev/null; then
				unit=gantry-agent-$n.service
			fi
			;;
		esac
	fi
	if [ -n "$unit" ] && command -v systemctl >/dev/null 2>&1; then
		systemctl disable --now "$unit" >/dev/null 2>&1
		rm -f "/etc/systemd/system/$unit"
		systemctl daemon-reload >/dev/null 2>&1
	fi
	i=0
	while :; do
		pids=$(gantry_pids "$1")
		if [ -z "$pids" ]; then return 0; fi
		if [ $i -ge 60 ]; then
			for p in $pids; do
				echo "process $p of $1 still running after SIGKILL: $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null) ($(cut -d' ' -f1-5 "/proc/$p/stat" 2>/dev/null))" >&2
			done
			return 1
		fi
		sig=TERM
		if [ $i -ge 30 ]; then sig=KILL; fi
		for p in $pids; do
			pg=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f3)
			if [ "$pg" = "$p" ]; then kill -s $sig -- "-$p" 2>/dev/null; fi
			kill -s $sig "$p" 2>/dev/null
		done
		sleep 0.1 2>/dev/null || sleep 1
		i=$((i+1))
	done
}
`

// probeScript prints `uname -sm` ("Linux x86_64") and on a second line
// "systemd" where systemd runs and the user is root (it can install a
// unit), else "supervisor".
const probeScript = `
uname -sm
if [ -d /run/systemd/system ] && [ "$(id -u)" = 0 ] && command -v systemctl >/dev/null 2>&1; then
	echo systemd
else
	echo supervisor
fi
`

// prepareScript DIR NAME: refuse a DIR gantry did not make or that
// belongs to another machine, stop an agent left by an earlier install of
// NAME, create DIR (mode 0700) with its marker.
const prepareScript = stopFuncs + `
d=$1
name=$2
if [ -f "$d/.gantry-agent" ]; then
	old=$(sed -n 's/^name=//p' "$d/.gantry-agent")
	if [ -n "$old" ] && [ "$old" != "$name" ]; then
		echo "$old"
		exit 5
	fi
fi
if [ -e "$d" ] && [ ! -f "$d/.gantry-agent" ]; then
	if [ ! -d "$d" ] || [ -n "$(ls -A "$d")" ]; then
		echo "$d exists and was not made by gantry (it has no .gantry-agent file): choose another agent_dir" >&2
		exit 3
	fi
fi
if [ -f "$d/.gantry-agent" ]; then
	gantry_stop "$d" || exit 1
fi
mkdir -p "$d" || exit 1
chmod 0700 "$d" || exit 1
if [ ! -f "$d/.gantry-agent" ]; then
	printf 'mode=installing\nname=%s\n' "$name" > "$d/.gantry-agent" || exit 1
fi
`

// putScript TMP DEST MODE SIZE: write standard input to TMP, check its
// size, chmod it and rename it to DEST (atomic on one file system). TMP is
// removed on failure.
const putScript = `
umask 077
trap 'rm -f "$1"' EXIT
cat > "$1" || exit 1
n=$(wc -c < "$1" | tr -d ' ') || exit 1
if [ "$n" != "$4" ]; then
	echo "short write: $n of $4 bytes" >&2
	exit 1
fi
chmod "$3" "$1" || exit 1
mv -f "$1" "$2" || exit 1
`

// systemdStartScript DIR UNIT NAME: record the unit in the marker, then
// load, enable and (re)start it.
const systemdStartScript = `
umask 077
printf 'mode=systemd\nname=%s\nunit=%s\n' "$3" "$2" > "$1/.gantry-agent.tmp" && mv -f "$1/.gantry-agent.tmp" "$1/.gantry-agent" || exit 1
systemctl daemon-reload || exit 1
systemctl enable --quiet "$2" || exit 1
systemctl restart "$2" || exit 1
if ! systemctl is-active --quiet "$2"; then
	systemctl status --no-pager "$2" >&2
	exit 4
fi
`

// supervisorStartScript DIR NAME AGENT_ARGS...: write DIR/supervise.sh
// (superviseScript) and the marker, start the supervisor detached (own
// session, no terminal, output appended to DIR/agent.log) and wait until
// it has written its pid.
const supervisorStartScript = `
d=$1
name=$2
shift 2
umask 077
cat > "$d/supervise.sh.tmp" <<'GANTRY_SUPERVISE_EOF' || exit 1
` + superviseScript + `GANTRY_SUPERVISE_EOF
chmod 0755 "$d/supervise.sh.tmp" && mv -f "$d/supervise.sh.tmp" "$d/supervise.sh" || exit 1
printf 'mode=supervisor\nname=%s\n' "$name" > "$d/.gantry-agent.tmp" && mv -f "$d/.gantry-agent.tmp" "$d/.gantry-agent" || exit 1
rm -f "$d/supervisor.pid"
cd / || exit 1
if command -v setsid >/dev/null 2>&1; then
	setsid nohup /bin/sh "$d/supervise.sh" "$d" "$@" >> "$d/agent.log" 2>&1 < /dev/null &
else
	nohup /bin/sh "$d/supervise.sh" "$d" "$@" >> "$d/agent.log" 2>&1 < /dev/null &
fi
i=0
while [ $i -lt 100 ]; do
	pid=$(cat "$d/supervisor.pid" 2>/dev/null)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then exit 0; fi
	sleep 0.1 2>/dev/null || sleep 1
	i=$((i+1))
done
echo "the supervisor did not start; see $d/agent.log:" >&2
tail -n 20 "$d/agent.log" >&2
exit 4
`

// superviseScript is uploaded as DIR/supervise.sh where systemd does not
// run.
const superviseScript = `#!/bin/sh
# Supervisor of the gantry agent, installed by gantry's ssh provider on a
# host without systemd. Usage: supervise.sh AGENT_DIR AGENT_ARGS...
# It reads the join token from AGENT_DIR/agent.env, runs AGENT_DIR/gantry
# with AGENT_ARGS and restarts it 2 s after it exits. Deleting the machine
# stops it (its process group) and removes AGENT_DIR.
d=$1
shift
echo $$ > "$d/supervisor.pid.tmp" && mv -f "$d/supervisor.pid.tmp" "$d/supervisor.pid"
while :; do
	GANTRY_JOIN_TOKEN=
	if [ -r "$d/agent.env" ]; then
		. "$d/agent.env"
	fi
	export GANTRY_JOIN_TOKEN
	"$d/gantry" "$@" &
	agent=$!
	echo "$agent" > "$d/agent.pid"
	wait "$agent"
	status=$?
	echo "gantry supervisor: agent $agent exited with status $status; restarting in 2 s" >&2
	sleep 2
done
`

// readScript DIR: print "state=absent" (no DIR or no marker),
// "state=running" or "state=stopped".
const readScript = `
d=$1
if [ ! -f "$d/.gantry-agent" ]; then
	echo state=absent
	exit 0
fi
unit=$(sed -n 's/^unit=//p' "$d/.gantry-agent")
case $unit in */*) unit= ;; esac
if [ -n "$unit" ]; then
	if systemctl is-active --quiet "$unit"; then echo state=running; else echo state=stopped; fi
	exit 0
fi
pid=$(cat "$d/supervisor.pid" 2>/dev/null)
case $pid in
''|*[!0-9]*)
	echo state=stopped
	exit 0
	;;
esac
if kill -0 "$pid" 2>/dev/null && grep -qzxF "$d/supervise.sh" "/proc/$pid/cmdline" 2>/dev/null; then
	echo state=running
else
	echo state=stopped
fi
`

// deleteScript DIR: stop the agent and remove DIR; nothing else. A missing
// DIR is success; a DIR without the marker is refused.
const deleteScript = stopFuncs + `
d=$1
if [ ! -e "$d" ]; then exit 0; fi
if [ ! -f "$d/.gantry-agent" ]; then
	echo "refusing to remove $d: it has no .gantry-agent file, so gantry did not make it" >&2
	exit 3
fi
gantry_stop "$d" || exit 1
rm -rf "$d" || exit 1
`
