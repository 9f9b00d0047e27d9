#!/bin/sh
# ValidateService: the shop answers /healthz within about 10 s.
# (busybox 1.35's wget -T crashes: timeout(1) bounds each try instead.)
end=$(($(date +%s) + 10))
while :; do
	if timeout 2 wget -q -O- http://127.0.0.1:8080/healthz >/dev/null 2>&1; then
		echo "shop healthy"
		exit 0
	fi
	[ "$(date +%s)" -lt "$end" ] || break
	sleep 0.1
done
echo "shop does not answer http://127.0.0.1:8080/healthz after 10 s; /var/log/shop.log:" >&2
tail -n 20 /var/log/shop.log >&2
exit 1
