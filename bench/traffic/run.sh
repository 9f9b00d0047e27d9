#!/usr/bin/env bash
# bench/traffic/run.sh: traffic control under load (issue "Traffic control").
#
# A `gantry server` child process, examples/shop on this machine's Docker
# engine (`gantry up examples/shop --env traffic`, 2 web machines behind
# the haproxy gantry drives), and bench/loadgen (C=8 keep-alive clients,
# as fast as they go) against the environment's url in every scenario,
# repeating the scenario's work until at least MINREQ (10,000) requests
# were made meanwhile (the floors and the canaries: once):
#
#   floor-backend   loadgen straight at one web machine (no load balancer)
#   floor-lb        loadgen through haproxy, nothing changing
#   rolling-one     gantry deploy shop traffic-web --config OneAtATime of a
#                   new revision (v2.0, v2.1, ...)
#   rolling-half    the same, HalfAtATime (v3.N)
#   inflight        the same, OneAtATime (v4.N), each with a GET
#                   /slow?ms=3000 sent just before: its status, how long
#                   the drains waited
#   scale           gantry scale web=6, then web=2
#   lb-changes      20 load balancer changes (10 backends added, 10 removed):
#                   scale web=4 / web=2, five times
#   canary-bad      a canary (10%, then 50%; analysis every 5 s, at most 5 %
#                   errors) of a v5 that answers 500 to 20 % of GET /:
#                   failures EXPECTED, beside their bound (canary weight ×
#                   the requests of one interval + 1 s)
#   canary-nodata   a canary of a good v6 with no load at all: must not be
#                   promoted (time to fail)
#   blue-green      blue/green deploys of the environment's group (the
#                   environment makes 2 replacement machines), each rolled
#                   back during its keep period, then one kept: swap and
#                   rollback times
#   weights         go run ./bench/traffic/weights: 1,000 weight changes on
#                   a local haproxy under load through gantry's driver
#
# Goals (the issue): 0 failures at >= 10,000 requests per scenario (the bad
# canary aside); weight change < 10 ms p99; blue/green swap < 5 s after the
# replacement fleet is healthy; rollback < 1 s.
#
# Usage: bench/traffic/run.sh      (about 7 minutes)
# Environment: MINREQ (10000), C (8), DEADLINE (seconds per command, 180),
# GANTRY_BIN (a built static gantry; default: build one), KEEP=1 (keep the
# work dir), SKIP="canary-nodata weights ..." (scenarios to skip).
# Needs: go, curl, jq, docker, python3 (and what examples/shop/build.sh needs).
#
# Last line: traffic: N scenarios, R requests, F failed outside the bad canary (goal 0); bad canary F failed (bound B); weight change p99 X ms (goal < 10 ms)
set -euo pipefail

MINREQ=${MINREQ:-10000}
C=${C:-8}
DEADLINE=${DEADLINE:-180}
SKIP=${SKIP:-}
ENV_NAME=traffic
GROUP=$ENV_NAME-web

log() { printf '[traffic %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}
skip() { [[ " $SKIP " == *" $1 "* ]]; }

[[ $MINREQ =~ ^[1-9][0-9]*$ && $C =~ ^[1-9][0-9]*$ ]] || die "MINREQ and C must be positive integers"
for c in go curl jq docker python3; do command -v "$c" >/dev/null || die "$c not found in PATH"; done
docker version >/dev/null 2>&1 || die "cannot reach the Docker engine (docker version failed)"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
W=$(mktemp -d /tmp/gantry-traffic-bench.XXXXXX)
SERVER_PID=
LOAD_PID=
G=

leftovers() { docker ps -aq --filter "label=gantry.env=$ENV_NAME"; }

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	if [[ -n $LOAD_PID ]] && kill -0 "$LOAD_PID" 2>/dev/null; then
		kill -TERM "$LOAD_PID"
		wait "$LOAD_PID" 2>/dev/null
	fi
	if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
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
		log "work dir kept: $W (server.log, loadgen summaries *.json, the commands' output)"
	else
		rm -rf "$W"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ -z $(leftovers) ]] || die "containers labelled gantry.env=$ENV_NAME exist already (another run?); remove them first: docker rm -f \$(docker ps -aq --filter label=gantry.env=$ENV_NAME)"

now() { printf '%s' "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- binaries, the example, a server ---------------------------------------------
if [[ -n ${GANTRY_BIN:-} ]]; then
	G=$GANTRY_BIN
	[[ -x $G ]] || die "GANTRY_BIN=$G is not executable"
else
	G=$W/gantry
	log "building gantry at $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$G" ./cmd/gantry || die "go build ./cmd/gantry failed"
fi
LG=$W/loadgen
CGO_ENABLED=0 go build -o "$LG" ./bench/loadgen || die "go build ./bench/loadgen failed"
log "examples/shop/build.sh"
examples/shop/build.sh >"$W/build.log" 2>&1 || die "examples/shop/build.sh failed: $(tail -20 "$W/build.log")"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP_PORT=$(free_port)
NATS_PORT=$(free_port)
[[ $HTTP_PORT != "$NATS_PORT" ]] || NATS_PORT=$(free_port)
export GANTRY_SERVER=https://127.0.0.1:$HTTP_PORT
export GANTRY_TOKEN=traffic-bench-admin-token-0123456789
export GANTRY_CONFIG=$W/cli.json
log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
log "starting gantry server on $GANTRY_SERVER"
mkdir -p "$W/server"
GANTRY_ADMIN_TOKEN=$GANTRY_TOKEN "$G" server --data-dir "$W/server" --listen "127.0.0.1:$HTTP_PORT" \
	--nats-listen "127.0.0.1:$NATS_PORT" >"$W/server.log" 2>&1 &
SERVER_PID=$!
for i in $(seq 1 150); do # 15 s
	GANTRY_CA_FINGERPRINT=$(grep -o 'CA fingerprint sha256:[0-9a-f]*' "$W/server.log" | cut -d' ' -f3 || true)
	export GANTRY_CA_FINGERPRINT
	[[ -n $GANTRY_CA_FINGERPRINT ]] && curl -fsS --cacert "$W/server/ca.crt" "$GANTRY_SERVER/readyz" >/dev/null 2>&1 && break
	kill -0 "$SERVER_PID" 2>/dev/null || die "server exited: $(tail -20 "$W/server.log")"
	((i < 150)) || die "server not ready after 15 s: $(tail -20 "$W/server.log")"
	sleep 0.1
done

# bundle VERSION [ERROR_RATE]: a copy of the shop bundle with that VERSION
# (and a FAULTS file); prints its directory.
bundle() {
	local d=$W/bundle-$1
	rm -rf "$d"
	cp -r examples/shop/app/bundle "$d"
	echo "$1" >"$d/VERSION"
	[[ -z ${2:-} ]] || echo "error_rate=$2" >"$d/FAULTS"
	printf '%s' "$d"
}
push() { "$G" push shop "$(bundle "$@")" -o json >"$W/push-$1.json" || die "push $1 failed"; jq -r .id "$W/push-$1.json"; }

"$G" app create shop >/dev/null
push v1 >/dev/null

log "gantry up examples/shop --env $ENV_NAME --var web_count=2"
t0=$(now)
"$G" up examples/shop --env "$ENV_NAME" --var web_count=2 --timeout "${DEADLINE}s" >"$W/up.log" 2>&1 ||
	die "gantry up failed: $(tail -30 "$W/up.log")"
URL=$("$G" env outputs "$ENV_NAME" -o json | jq -r .url)
[[ $URL == http://* ]] || die "output url is '$URL'"
WEB0=$("$G" env outputs "$ENV_NAME" -o json | jq -r '.web[0]')
for i in $(seq 1 $((DEADLINE * 10))); do
	curl -fsS -m 1 -o /dev/null "$URL" 2>/dev/null && break
	((i < DEADLINE * 10)) || die "$URL does not answer after $DEADLINE s"
	sleep 0.1
done
log "up in $(since "$t0") s: $URL"

# --- the load generator ---------------------------------------------------------
# load_start NAME [URL]: loadgen in the background, summary in $W/NAME.json.
load_start() {
	"$LG" -url "${2:-$URL}" -c "$C" -out "$W/$1.json" -backend-header X-Backend >"$W/$1.loadgen.log" 2>&1 &
	LOAD_PID=$!
	LOAD_NAME=$1
	LOAD_T0=$(now)
	for i in $(seq 1 150); do
		[[ -s $W/$1.json ]] && break
		kill -0 "$LOAD_PID" 2>/dev/null || die "loadgen exited: $(cat "$W/$1.loadgen.log")"
		((i < 150)) || die "loadgen wrote no summary after 15 s"
		sleep 0.1
	done
}

# load_stop: waits until loadgen has made MINREQ requests, stops it and
# prints the scenario's line.
load_stop() {
	local end=$(($(date +%s) + DEADLINE)) n
	while :; do
		n=$(jq -r .requests "$W/$LOAD_NAME.json" 2>/dev/null || echo 0)
		((n >= MINREQ)) && break
		(($(date +%s) < end)) || die "$LOAD_NAME: only $n requests after $DEADLINE s"
		sleep 0.2
	done
	kill -TERM "$LOAD_PID"
	wait "$LOAD_PID" || die "loadgen failed: $(cat "$W/$LOAD_NAME.loadgen.log")"
	LOAD_PID=
	jq -r --arg name "$LOAD_NAME" --arg work "${WORK:-}" '"\($name): \(.requests) requests in \(.duration_s * 10 | round / 10) s (\(.per_second | round)/s), failed \(.failed) (\(.failed_pct * 1000 | round / 1000)%), p50 \(.latency_ms.p50 * 10 | round / 10) ms, p99 \(.latency_ms.p99 * 10 | round / 10) ms, max \(.latency_ms.max | round) ms; statuses \(.status | tostring), errors \(.errors | tostring)\(if $work != "" then "; " + $work else "" end)"' "$W/$LOAD_NAME.json"
	TOTAL_REQ=$((TOTAL_REQ + $(jq .requests "$W/$LOAD_NAME.json")))
	WORK=
}
TOTAL_REQ=0
FAILED_OK=0 # failures in the scenarios that must have none
SCENARIOS=0
failed_of() { jq .failed "$W/$1.json"; }
must_be_clean() {
	SCENARIOS=$((SCENARIOS + 1))
	FAILED_OK=$((FAILED_OK + $(failed_of "$1")))
}
deploy() { # deploy NAME ARGS...: gantry deploy --wait -o json into $W/NAME.deploy.json
	local name=$1
	shift
	timeout "$DEADLINE" "$G" deploy shop "$GROUP" "$@" --wait -o json >"$W/$name.deploy.json" 2>"$W/$name.deploy.log"
}

# --- floors ------------------------------------------------------------------------------
if ! skip floor; then
	load_start floor-backend "http://$WEB0:8080/"
	WORK="straight at $WEB0:8080 (no load balancer)"
	load_stop
	load_start floor-lb
	WORK="through haproxy, nothing changing"
	load_stop
	must_be_clean floor-lb
fi

# rounds FN: runs FN ROUND (0, 1, ...) under the running loadgen until it
# has made MINREQ requests (at least once), so that the requests counted are
# made while the scenario's work goes on; ROUND_TIMES lists each round's s.
reqs() { jq -r .requests "$W/$LOAD_NAME.json" 2>/dev/null || echo 0; }
rounds() {
	local r=0 t
	ROUND_TIMES=
	while :; do
		t=$(now)
		"$1" "$r"
		ROUND_TIMES="$ROUND_TIMES $(since "$t")"
		r=$((r + 1))
		(($(reqs) < MINREQ)) || break
	done
	ROUNDS=$r
}

# --- rolling deployments --------------------------------------------------------------------
rolling_round() { # ROUND: a new revision, deployed with $CONFIG
	push "$VERSION.$1" >/dev/null
	local t
	t=$(now)
	deploy "$NAME" --config "$CONFIG" || die "$NAME: deploy $VERSION.$1 failed: $(tail -20 "$W/$NAME.deploy.log")"
	DEPLOY_TIMES="$DEPLOY_TIMES $(since "$t")"
}
for sc in "rolling-one v2 OneAtATime" "rolling-half v3 HalfAtATime"; do
	read -r NAME VERSION CONFIG <<<"$sc"
	skip "$NAME" && continue
	load_start "$NAME"
	DEPLOY_TIMES=
	rounds rolling_round
	WORK="$ROUNDS deployments $CONFIG, each (s):$DEPLOY_TIMES"
	load_stop
	must_be_clean "$NAME"
done

# --- a request in flight for 3 s -----------------------------------------------------------
inflight_round() { # ROUND: a GET /slow?ms=3000, then a deployment at once
	push "v4.$1" >/dev/null
	curl -s -o /dev/null -w '%{http_code} %{time_total}' -m 30 "${URL%/}/slow?ms=3000" >"$W/slow.txt" 2>&1 &
	local slow=$!
	deploy inflight --config OneAtATime || die "inflight: deploy failed: $(tail -20 "$W/inflight.deploy.log")"
	wait "$slow" || true
	SLOWS="$SLOWS $(cut -d' ' -f1 "$W/slow.txt")"
	DRAINS="$DRAINS $(jq -r '[.traffic.changes[]? | select(.action == "drain") | .elapsed_ms] | max // 0' "$W/inflight.deploy.json")"
}
if ! skip inflight; then
	load_start inflight
	SLOWS= DRAINS=
	rounds inflight_round
	WORK="$ROUNDS deployments with a 3 s request in flight (s):$ROUND_TIMES; slow requests' statuses:$SLOWS; longest drain per deployment (ms):$DRAINS"
	load_stop
	must_be_clean inflight
fi

# --- scale 2 → 6 → 2 -----------------------------------------------------------------------
scale_round() {
	local t
	t=$(now)
	"$G" scale --env "$ENV_NAME" web=6 --timeout "${DEADLINE}s" >"$W/scale6.log" 2>&1 || die "scale web=6 failed: $(tail -20 "$W/scale6.log")"
	SCALE_TIMES="$SCALE_TIMES $(since "$t")"
	t=$(now)
	"$G" scale --env "$ENV_NAME" web=2 --timeout "${DEADLINE}s" >"$W/scale2.log" 2>&1 || die "scale web=2 failed: $(tail -20 "$W/scale2.log")"
	SCALE_TIMES="$SCALE_TIMES/$(since "$t")"
}
if ! skip scale; then
	load_start scale
	SCALE_TIMES=
	rounds scale_round
	WORK="$ROUNDS rounds of scale 2→6/6→2 (s):$SCALE_TIMES"
	load_stop
	must_be_clean scale
fi

# --- 20 load balancer changes ----------------------------------------------------------------
if ! skip lb-changes; then
	load_start lb-changes
	t0=$(now)
	for i in $(seq 1 5); do
		for n in 4 2; do
			"$G" scale --env "$ENV_NAME" "web=$n" --timeout "${DEADLINE}s" >"$W/lbchange.log" 2>&1 ||
				die "lb-changes: scale web=$n (round $i) failed: $(tail -20 "$W/lbchange.log")"
		done
	done
	WORK="20 changes (10 backends added, 10 removed: scale web=4/web=2 ×5) in $(since "$t0") s"
	load_stop
	must_be_clean lb-changes
fi

# --- canaries ----------------------------------------------------------------------------------
BAD_FAILED=-
BAD_BOUND=-
WEIGHT_P99=-
# (the help is read into a variable first: grep -q's early exit would fail
# the pipe under pipefail)
DEPLOY_HELP=$("$G" deploy --help 2>&1 || true)
if ! grep -q -- '--canary-steps' <<<"$DEPLOY_HELP"; then
	echo "canary: not offered by this gantry (deploy --help has no --canary-steps); canary-bad and canary-nodata skipped"
	SKIP="$SKIP canary-bad canary-nodata"
fi
if ! skip canary-bad; then
	push v5 0.2 >/dev/null
	load_start canary-bad
	t0=$(now)
	if deploy canary-bad --strategy canary --canary-steps 10:30s,50:30s --analysis-interval 5s \
		--max-error-rate 0.05 --on-no-data wait; then
		log "canary-bad: the bad canary was PROMOTED (it must not be)"
		BAD_PROMOTED=1
	fi
	took=$(since "$t0")
	verdict=$(jq -r '[.traffic.analyses[]? | "\(.verdict) (\(.canary_errors)/\(.canary_requests))"] | join(", ")' "$W/canary-bad.deploy.json" 2>/dev/null || echo "?")
	WORK="canary ended in $took s ($(jq -r .state "$W/canary-bad.deploy.json" 2>/dev/null || echo ?)); analyses: ${verdict:-none}"
	load_stop
	SCENARIOS=$((SCENARIOS + 1))
	BAD_FAILED=$(failed_of canary-bad)
	# Bound: 10 % of the most requests in any 6 s (one 5 s interval + 1 s).
	BAD_BOUND=$(jq '[.timeline as $t | range(0; $t | length) | [$t[.:.+6][].requests] | add] | max * 10 / 100 | floor' "$W/canary-bad.json")
	log "canary-bad: $BAD_FAILED failed requests, bound $BAD_BOUND (canary weight 10% × requests in one 5 s analysis interval + 1 s)"
fi
if ! skip canary-nodata; then
	push v6 >/dev/null
	t0=$(now)
	if deploy canary-nodata --strategy canary --canary-steps 10:6s --analysis-interval 2s --on-no-data wait; then
		die "canary-nodata: a canary without any traffic was promoted"
	fi
	echo "canary-nodata: not promoted after $(since "$t0") s ($(jq -r '.state + ": " + (.error // "")' "$W/canary-nodata.deploy.json" 2>/dev/null || tail -1 "$W/canary-nodata.deploy.log"))"
fi
# Weight changes gantry made during the canaries, as their changes report them.
WEIGHTS_GANTRY=none
if compgen -G "$W/canary-*.deploy.json" >/dev/null; then
	WEIGHTS_GANTRY=$(jq -s -r '[.[].traffic.changes[]? | select(.action == "weight") | .elapsed_ms] | sort | if length == 0 then "none" else "\(length) changes, max \(.[-1]) ms" end' "$W"/canary-*.deploy.json 2>/dev/null || echo none)
fi
echo "canary weight changes through gantry (as the deployments report them): $WEIGHTS_GANTRY"

# --- blue/green of the environment's group ----------------------------------------------------
# Rounds under one loadgen until MINREQ requests: a new revision deployed
# blue/green all at once with the originals kept (the environment makes 2
# replacement machines), then `gantry rollback` during the keep period
# (the replacement machines are removed again); the last round keeps
# nothing (--keep-original 0s) and succeeds. Per round: the swap (from the
# last replacement machine UP to all the traffic moved, as the deployment
# recorded it; goal < 5 s), the rollback as recorded (goal < 1 s) and as the
# CLI saw it (process start included).
BG_SWAPS=
BG_BACKS=
# SWAP_MS: ms from the last replacement UP (ready) to the last change that
# gave the replacements all the traffic.
SWAP_MS='def ts: (sub("\\.[0-9]+"; "") | fromdate) + ((capture("\\.(?<f>[0-9]+)") | .f) // "0" | "0." + . | tonumber);
.traffic.changes as $c | ((([$c[] | select((.detail // "") | test("all the traffic to the replacement")) | .at | ts] | max)
  - ([$c[] | select(.action == "ready") | .at | ts] | max)) * 1000 | round)'
bg_round() { # ROUND
	local id t phase
	push "v8.$1" >/dev/null
	id=$(timeout "$DEADLINE" "$G" deploy shop "$GROUP" --strategy blue-green --keep-original 5m -o json | jq -r .id) || die "blue-green: deploy v8.$1 failed"
	t=$(now)
	while :; do
		phase=$("$G" deployments show "$id" -o json | jq -r '.traffic.phase + " " + .state')
		[[ $phase == "kept running" ]] && break
		[[ $phase == *running ]] || die "blue-green: deployment $id ended before its keep period: $phase"
		(($(date +%s) - ${t%.*} < DEADLINE)) || die "blue-green: $id not kept after $DEADLINE s ($phase)"
		sleep 0.2
	done
	"$G" deployments show "$id" -o json >"$W/bg-$1.json"
	BG_SWAPS="$BG_SWAPS $(jq -r "$SWAP_MS" "$W/bg-$1.json")ms"
	t=$(now)
	timeout "$DEADLINE" "$G" rollback shop "$GROUP" >"$W/bg-rollback-$1.log" 2>&1 || die "blue-green: rollback of $id failed: $(tail -3 "$W/bg-rollback-$1.log")"
	BG_CLI="$(since "$t")"
	timeout "$DEADLINE" "$G" deployments show "$id" --wait -o json >"$W/bg-$1.json" 2>/dev/null || true
	BG_BACKS="$BG_BACKS $(jq -r '.error | (capture("in (?<d>[0-9.]+m?s)") | .d) // "?"' "$W/bg-$1.json")/${BG_CLI}s"
	[[ $(jq -r .state "$W/bg-$1.json") == failed ]] || die "blue-green: $id after its rollback: $(jq -r .state "$W/bg-$1.json")"
}
if ! skip blue-green; then
	load_start blue-green
	t0=$(now)
	rounds bg_round
	push v9 >/dev/null
	t1=$(now)
	deploy blue-green --strategy blue-green --keep-original 0s || die "blue-green: deploy v9 failed: $(tail -20 "$W/blue-green.deploy.log")"
	WORK="$ROUNDS rounds of deploy + rollback (swap after the replacements are UP:$BG_SWAPS; rollback recorded/CLI:$BG_BACKS), then one kept in $(since "$t1") s; web machines now $("$G" env show "$ENV_NAME" -o json | jq -r '[.machines[] | select(.group == "web") | .name] | join(",")')"
	load_stop
	must_be_clean blue-green
fi

# --- weight changes on a local haproxy ---------------------------------------------------------------
if ! skip weights; then
	go run ./bench/traffic/weights -n 1000 -loadgen "$LG" -c "$C" >"$W/weights.txt" 2>"$W/weights.log" || die "weights failed: $(tail -5 "$W/weights.log")"
	cat "$W/weights.txt"
	WEIGHT_P99=$(sed -n 's/.*set p99 \([0-9.]*\) ms.*/\1/p' "$W/weights.txt")
fi

log "gantry destroy --env $ENV_NAME"
"$G" destroy --env "$ENV_NAME" --auto-approve >"$W/destroy.log" 2>&1 || die "gantry destroy failed: $(tail -30 "$W/destroy.log")"
[[ -z ${BAD_PROMOTED:-} ]] || die "the bad canary was promoted"

echo "traffic: $SCENARIOS scenarios, $TOTAL_REQ requests, $FAILED_OK failed outside the bad canary (goal 0); bad canary $BAD_FAILED failed (bound $BAD_BOUND); weight change p99 $WEIGHT_P99 ms (goal < 10 ms)"
