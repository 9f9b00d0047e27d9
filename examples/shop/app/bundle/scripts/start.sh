#!/bin/sh
# ApplicationStart: start the shop detached from the hook (own session, no
# stdin/stdout/stderr of the hook's), pid in /run/shop.pid. A shop still
# running (a hand-made one, or an earlier failed deployment's) is stopped
# first, so that ValidateService checks this revision's.
set -eu
mkdir -p /run /var/log /etc/shop
sh "$(dirname "$0")/stop.sh"
version=$(cat /opt/shop/VERSION 2>/dev/null || echo v1)
setsid /opt/shop/shop -listen :8080 -db-file /etc/shop/db-address -version "$version" \
	>/var/log/shop.log 2>&1 </dev/null &
echo $! >/run/shop.pid
echo "shop $version started (pid $!)"
