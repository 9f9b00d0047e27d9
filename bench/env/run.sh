#!/usr/bin/env bash
# bench/env/run.sh: environments as code, from nothing to serving (issue
# "Environments as code").
#
#   1. `gantry up examples/shop --env bench --var web_count=$WEB` (default 5):
#      the time from the command's start until every machine is online (up
#      returns) and until the load balancer's url serves $WEB distinct
#      backends; goal < 20 s;
#   2. `gantry scale --env bench web=$SCALE` (default 10): the time until the
#      url serves $SCALE distinct backends; goal < 10 s;
#   3. `gantry destroy --env bench`, then no container labelled
#      gantry.env=bench may be left.
#
# Everything is real: a `gantry server` child process on free loopback
# ports with a temporary data dir, the docker provider on this machine's
# Docker engine (containers from examples/shop/build.sh's images, each
# running the gantry agent), the shop bundle deployed through the
# deployments engine, haproxy reconfigured by the configure event. The
# backends are counted from the X-Backend header of `curl` requests to the
# url (a new connection each), polled every 0.1 s.
#
# Usage: bench/env/run.sh      (about a minute)
# Environment: WEB (default 5), SCALE (default 10), DEADLINE (seconds to
# wait for each figure, default 120), GANTRY_BIN (a built static gantry;
# default: build one from this checkout), KEEP=1 (keep the work dir).
# Needs: go, curl, jq, docker (and what examples/shop/build.sh needs).
#
# Last line: env: up web=5 serving in X s (goal < 20 s); scale +5 serving in Y s (goal < 10 s)
set -euo pipefail

WEB=${WEB:-5}
SCALE=${SCALE:-10}
DEADLINE=${DEADLINE:-120}
ENV_NAME=bench

log() { printf '[env %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

[[ $WEB =~ ^[1-9][0-9]*$ && $SCALE =~ ^[1-9][0-9]*$ ]] || die "WEB and SCALE must be positive integers"
((SCALE > WEB)) || die "SCALE ($SCALE) must be larger than WEB ($WEB)"
((WEB >= 2)) || die "WEB must be at least 2 (the web group deploys HalfAtATime)"
for c in go curl jq docker python3; do command -v "$c" >/dev/null || die "$c not found in PATH"; done
docker version >/dev/null 2>&1 || die "cannot reach the Docker engine (docker version failed)"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
W=$(mktemp -d /tmp/gantry-env-bench.XXXXXX)
SERVER_PID=
G=

leftovers() { docker ps -aq --filter "label=gantry.env=$ENV_NAME"; }

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
		# Whatever the run left (a failure before destroy): gone before the server.
		if [[ -n $(leftovers) && ${KEEP:-0} != 1 ]]; then
			log "destroying what is left of environment $ENV_NAME"
			timeout 120 "$G" destroy --env "$ENV_NAME" --auto-approve >"$W/destroy-cleanup.log" 2>&1
		fi
		kill -TERM "$SERVER_PID" 2>/dev/null
		for _ in $(seq 1 100); do # 10 s
			kill -0 "$SERVER_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$SERVER_PID" 2>/dev/null
		wait "$SERVER_PID" 2>/dev/null
	fi
	if [[ ${KEEP:-0} != 1 ]]; then
		# shellcheck disable=SC2086 # one argument per id
		ids=$(leftovers) && [[ -z $ids ]] || docker rm -f $ids >/dev/null
		# shellcheck disable=SC2086
		ids=$(docker network ls -q --filter "label=gantry.env=$ENV_NAME") && [[ -z $ids ]] || docker network rm $ids >/dev/null
	fi
	if [[ ${KEEP:-0} == 1 || $rc != 0 ]]; then
		log "work dir kept: $W (server.log, the commands' output)"
	else
		rm -rf "$W"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ -z $(leftovers) ]] || die "containers labelled gantry.env=$ENV_NAME exist already (another run?); remove them first: docker rm -f \$(docker ps -aq --filter label=gantry.env=$ENV_NAME)"

# now: seconds since the epoch, with microseconds.
now() { printf '%s' "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- gantry, the example, a server ---------------------------------------------
if [[ -n ${GANTRY_BIN:-} ]]; then
	G=$GANTRY_BIN
	[[ -x $G ]] || die "GANTRY_BIN=$G is not executable"
else
	G=$W/gantry
	log "building gantry at $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$G" ./cmd/gantry || die "go build failed"
fi
log "examples/shop/build.sh"
examples/shop/build.sh >"$W/build.log" 2>&1 || die "examples/shop/build.sh failed: $(tail -20 "$W/build.log")"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP_PORT=$(free_port)
NATS_PORT=$(free_port)
[[ $HTTP_PORT != "$NATS_PORT" ]] || NATS_PORT=$(free_port)
export GANTRY_SERVER=http://127.0.0.1:$HTTP_PORT
export GANTRY_TOKEN=env-bench-admin-token-0123456789
export GANTRY_CONFIG=$W/cli.json
log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
log "starting gantry server on $GANTRY_SERVER"
GANTRY_ADMIN_TOKEN=$GANTRY_TOKEN "$G" server --data-dir "$W/server" --listen "127.0.0.1:$HTTP_PORT" \
	--nats-listen "127.0.0.1:$NATS_PORT" >"$W/server.log" 2>&1 &
SERVER_PID=$!
for i in $(seq 1 150); do # 15 s
	curl -fsS "$GANTRY_SERVER/readyz" >/dev/null 2>&1 && break
	kill -0 "$SERVER_PID" 2>/dev/null || die "server exited: $(tail -20 "$W/server.log")"
	((i < 150)) || die "server not ready after 15 s: $(tail -20 "$W/server.log")"
	sleep 0.1
done
"$G" app create shop >/dev/null
"$G" push shop examples/shop/app/bundle >"$W/push.log" || die "push failed: $(cat "$W/push.log")"

# backends URL: the number of distinct X-Backend values in 3*N requests.
backends() {
	local url=$1 n=$2
	for _ in $(seq 1 $((3 * n))); do
		curl -s -m 1 -o /dev/null -D - "$url" 2>/dev/null | tr -d '\r' | sed -n 's/^[Xx]-[Bb]ackend: //p'
	done | sort -u | wc -l
}

# serving URL N START: waits until the url serves N distinct backends;
# prints the seconds since START.
serving() {
	local url=$1 n=$2 t0=$3 got=0
	local end=$(($(date +%s) + DEADLINE))
	while :; do
		got=$(backends "$url" "$n")
		((got >= n)) && break
		(($(date +%s) < end)) || die "the url $url serves $got of $n backends after $DEADLINE s (see: $G env show $ENV_NAME)"
		sleep 0.1
	done
	since "$t0"
}

# --- 1. up -------------------------------------------------------------------------
log "gantry up examples/shop --env $ENV_NAME --var web_count=$WEB"
t0=$(now)
"$G" up examples/shop --env "$ENV_NAME" --var "web_count=$WEB" --timeout "${DEADLINE}s" >"$W/up.log" 2>&1 ||
	die "gantry up failed: $(tail -30 "$W/up.log")"
up_online=$(since "$t0")
url=$("$G" env outputs "$ENV_NAME" -o json | jq -r .url)
[[ $url == http://* ]] || die "output url is '$url'"
up_serving=$(serving "$url" "$WEB" "$t0")
log "up: every machine online in $up_online s; $url serves $WEB backends after $up_serving s"

# --- 2. scale ------------------------------------------------------------------------
log "gantry scale --env $ENV_NAME web=$SCALE"
t0=$(now)
"$G" scale --env "$ENV_NAME" "web=$SCALE" --timeout "${DEADLINE}s" >"$W/scale.log" 2>&1 ||
	die "gantry scale failed: $(tail -30 "$W/scale.log")"
scale_online=$(since "$t0")
scale_serving=$(serving "$url" "$SCALE" "$t0")
log "scale: every machine online in $scale_online s; $url serves $SCALE backends after $scale_serving s"

# --- 3. destroy ------------------------------------------------------------------------
log "gantry destroy --env $ENV_NAME"
t0=$(now)
"$G" destroy --env "$ENV_NAME" --auto-approve >"$W/destroy.log" 2>&1 || die "gantry destroy failed: $(tail -30 "$W/destroy.log")"
destroy_s=$(since "$t0")
left=$(docker ps -a --filter "label=gantry.env=$ENV_NAME" --format '{{.Names}}')
[[ -z $left ]] || die "containers left after destroy: $left"
left=$(docker network ls --filter "label=gantry.env=$ENV_NAME" --format '{{.Name}}')
[[ -z $left ]] || die "networks left after destroy: $left"
log "destroy: $destroy_s s, nothing left"

echo "env: up web=$WEB serving in $up_serving s (goal < 20 s); scale +$((SCALE - WEB)) serving in $scale_serving s (goal < 10 s)"
