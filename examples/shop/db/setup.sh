#!/bin/sh
# setup of group db: a stand-in database, busybox httpd on :5432 serving
# /srv/db/greeting ("hello from <host>"), detached, pid in /run/db.pid.
# Idempotent: a second run rewrites the greeting and keeps the server.
set -eu
name=${GANTRY_HOST_NAME:-$(hostname)}
mkdir -p /srv/db /run /var/log
echo "hello from $name" >/srv/db/greeting.new
mv -f /srv/db/greeting.new /srv/db/greeting

alive() {
	[ -f /run/db.pid ] || return 1
	pid=$(cat /run/db.pid)
	[ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
	state=$(sed 's/^.*) //' "/proc/$pid/stat" | cut -c1)
	[ "$state" != Z ] && grep -q httpd "/proc/$pid/cmdline"
}
if alive; then
	echo "db already running (pid $(cat /run/db.pid))"
else
	setsid httpd -f -p 5432 -h /srv/db >/var/log/db.log 2>&1 </dev/null &
	echo $! >/run/db.pid
	echo "db started (pid $!)"
fi

# (busybox 1.35's wget -T crashes: timeout(1) bounds each try instead.)
end=$(($(date +%s) + 10))
until timeout 2 wget -q -O- http://127.0.0.1:5432/greeting >/dev/null 2>&1; do
	if [ "$(date +%s)" -ge "$end" ]; then
		echo "db does not answer on :5432 after 10 s" >&2
		cat /var/log/db.log >&2
		exit 1
	fi
	sleep 0.1
done
echo "db serves: $(cat /srv/db/greeting)"
