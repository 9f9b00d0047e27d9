#!/bin/sh
# configure of group lb: runs on the lb machine whenever a machine of the
# environment enters or leaves online. Regenerates /etc/haproxy/haproxy.cfg
# with a round-robin backend of the web machines online now
# ($GANTRY_GROUP_WEB_ADDRESSES, space-separated, port 8080, health-checked),
# checks it (haproxy -c), then starts haproxy or reloads it gracefully: the
# new process takes over the port, the old ones (-sf) finish their requests
# and exit. Responses carry X-Backend: the address of the web machine that
# served them. With no web machine online, every request gets a 503.
set -eu
cfg=/etc/haproxy/haproxy.cfg
pidfile=/run/haproxy.pid
log=/var/log/haproxy.log
addrs=${GANTRY_GROUP_WEB_ADDRESSES:-}
mkdir -p /etc/haproxy /run /var/log

new=$cfg.new.$$
trap 'rm -f "$new"' EXIT
{
	cat <<'CFG'
# Written by configure.sh (gantry configure event): do not edit.
global
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    retries 2
    option redispatch

frontend shop
    bind :80
    default_backend web

backend web
CFG
	if [ -z "$addrs" ]; then
		echo '    http-request return status 503 content-type text/plain string "no web machine online"'
	else
		echo '    balance roundrobin'
		echo '    option httpchk GET /healthz'
		echo '    default-server check inter 1s fall 2 rise 1'
		echo '    http-response set-header X-Backend %s'
		for a in $addrs; do
			# Only plain host names and IPv4 addresses go into the file.
			case $a in
			*[!A-Za-z0-9.-]* | "")
				echo "configure: refusing web address '$a'" >&2
				exit 1
				;;
			esac
			echo "    server $a $a:8080"
		done
	fi
} >"$new"

if ! out=$(haproxy -c -f "$new" 2>&1); then
	echo "configure: the new haproxy configuration is invalid:" >&2
	echo "$out" >&2
	exit 1
fi

# live_pids prints the pids in the pid file that are haproxy processes
# still running (not zombies: a container's PID 1 may not reap them).
live_pids() {
	[ -f "$pidfile" ] || return 0
	for p in $(cat "$pidfile"); do
		[ -r "/proc/$p/stat" ] || continue
		state=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | cut -c1)
		[ "$state" != Z ] || continue
		grep -q haproxy "/proc/$p/cmdline" 2>/dev/null && echo "$p"
	done
	return 0
}

old=$(live_pids)
if [ -n "$old" ] && [ -f "$cfg" ] && [ "$(cat "$cfg")" = "$(cat "$new")" ]; then
	echo "haproxy (pid $old) already serves: ${addrs:-no web machine (503)}"
	exit 0
fi
mv -f "$new" "$cfg"
if [ -n "$old" ]; then
	# shellcheck disable=SC2086 # one argument per pid
	haproxy -D -f "$cfg" -p "$pidfile" -sf $old </dev/null >>"$log" 2>&1 || {
		echo "configure: haproxy reload failed:" >&2
		tail -n 20 "$log" >&2
		exit 1
	}
	echo "haproxy reloaded (pid $(cat "$pidfile"), was $old): ${addrs:-no web machine (503)}"
else
	haproxy -D -f "$cfg" -p "$pidfile" </dev/null >>"$log" 2>&1 || {
		echo "configure: haproxy did not start:" >&2
		tail -n 20 "$log" >&2
		exit 1
	}
	echo "haproxy started (pid $(cat "$pidfile")): ${addrs:-no web machine (503)}"
fi
