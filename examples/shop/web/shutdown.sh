#!/bin/sh
# shutdown of group web: runs before the machine is destroyed (after it
# left online, so the load balancer no longer sends it requests). Stops the
# app the way the bundle's ApplicationStop does.
name=${GANTRY_HOST_NAME:-$(hostname)}
echo "shutdown $name"
pidfile=/run/shop.pid
[ -f "$pidfile" ] || { echo "shop not running"; exit 0; }
pid=$(cat "$pidfile")
alive() {
	[ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
	state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)
	[ "$state" != Z ] && grep -q shop "/proc/$pid/cmdline" 2>/dev/null
}
if alive; then
	kill "$pid" # SIGTERM: the app finishes the requests in flight
	i=0
	while alive && [ "$i" -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if alive; then kill -9 "$pid"; fi
	echo "shop stopped (pid $pid)"
fi
rm -f "$pidfile"
