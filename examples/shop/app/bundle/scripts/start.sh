#!/bin/sh
# ApplicationStart: start the shop detached from the hook (own session, no
# stdin/stdout/stderr of the hook's), pid in /run/shop.pid. A shop still
# running (a hand-made one, or an earlier failed deployment's) is stopped
# first, so that ValidateService checks this revision's.
# An optional FAULTS file next to appspec.yml (not in the bundle as
# shipped) makes a bad release for the traffic tests: a line
# "error_rate=0.2" has the app answer that share of GET / with 500.
set -eu
mkdir -p /run /var/log /etc/shop
sh "$(dirname "$0")/stop.sh"
version=$(cat /opt/shop/VERSION 2>/dev/null || echo v1)
error_rate=0
faults="$(dirname "$0")/../FAULTS"
if [ -f "$faults" ]; then
	error_rate=$(sed -n 's/^error_rate=\([0-9.]*\)$/\1/p' "$faults" | tail -n 1)
	[ -n "$error_rate" ] || error_rate=0
fi
setsid /opt/shop/shop -listen :8080 -db-file /etc/shop/db-address -version "$version" -error-rate "$error_rate" \
	>/var/log/shop.log 2>&1 </dev/null &
echo $! >/run/shop.pid
echo "shop $version started (pid $!, error rate $error_rate)"
