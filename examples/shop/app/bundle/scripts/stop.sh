#!/bin/sh
# ApplicationStop: stop the shop started by start.sh (runs the previous
# revision's copy of this script; nothing to do when none runs).
pidfile=/run/shop.pid
[ -f "$pidfile" ] || { echo "shop not running"; exit 0; }
pid=$(cat "$pidfile")
# alive: the process exists, is not a zombie (PID 1 of a container may not
# reap it) and is the shop.
alive() {
	[ -r "/proc/$pid/stat" ] || return 1
	state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)
	[ "$state" != Z ] && grep -q shop "/proc/$pid/cmdline" 2>/dev/null
}
if [ -n "$pid" ] && alive; then
	kill "$pid"
	i=0
	while alive && [ "$i" -lt 100 ]; do # 10 s, then SIGKILL
		sleep 0.1
		i=$((i + 1))
	done
	if alive; then kill -9 "$pid"; fi
	echo "shop stopped (pid $pid)"
fi
rm -f "$pidfile"
