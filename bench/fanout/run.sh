#!/usr/bin/env bash
# bench/fanout/run.sh — fan-out latency: one command on 50 hosts, gantry vs Ansible.
#
#   gantry : 1 `gantry server` + 50 `gantry agent` processes on loopback
#            (label role=bench, enrolled with one `--uses 50` join token);
#            measured command: gantry run --selector role=bench -o json -- hostname
#   Ansible: 50 /usr/sbin/sshd instances on 127.0.0.1:$SSH_BASE_PORT+1.. (one
#            generated config and host key each, key-only root login);
#            measured command: ansible all -m shell -a hostname -f 50
#
# Both are timed wall-clock as whole commands (CLI process start to exit), by
# this script (bash $EPOCHREALTIME around each run, no extra shell), so
# that each measured run's output can be checked: a gantry run must return 50
# executions all "succeeded", an Ansible run must exit 0 with 50 "CHANGED |
# rc=0" hosts. A failed run is an error, not a figure. One warm-up run each,
# then RUNS measured runs each, interleaved (gantry, ansible, gantry, ...) with
# PAUSE seconds (default 1) of rest before each so that one tool's leftover
# processes (50 sshd sessions winding down) do not land in the other's time.
#
# SSH connection sharing (SSH_MUX): default "on" = Ansible's own default
# (ControlMaster=auto, ControlPersist=60s). gantry's agents keep a persistent
# connection to the server, so the like-for-like comparison is Ansible with
# persistent SSH connections; the warm-up run opens the 50 master connections
# and every measured run reuses them. This is Ansible's best case, so the ratio
# is conservative. SSH_MUX=off (ControlMaster=no, ControlPath=none) makes every
# run do 50 TCP connects + key exchanges + logins, as a user with no live
# control socket would. Ansible also gets pipelining=True (no module file copy:
# its recommended fast setting), no compression (-C costs CPU on loopback),
# and an explicit /usr/bin/python3 (no interpreter discovery). The sshd
# sessions get SHLVL=1 (sshd_config SetEnv) so that root's bash does not source
# ~/.bashrc for each remote command (Debian's bash does so for commands run by
# sshd at SHLVL<2): on a dev box that file can run `pyenv init` etc. and add
# ~0.5-0.9 s per host, which says nothing about Ansible. gantry's executor runs
# /bin/sh with a clean environment, so neither side runs profile scripts.
#
# Agents' data dirs (identity + journal) are under AGENT_DIR (default: the work
# dir in /tmp, i.e. on disk). The journal fsyncs a file and its directory twice
# on each execution's critical path (start record, result), and here all 50
# agents share one disk; AGENT_DIR=/dev/shm/... shows the cost of that.
#
# Environment: RUNS (default 10), PAUSE (default 1 s), AGENT_DIR (see above),
# SSH_MUX (on|off, default on), SSH_BASE_PORT (default 22100: ports
# 22101-22150), GANTRY_BIN (a built gantry; default: build one from this
# checkout), PLAIN=1 (server --tls=false, CLI and agents --insecure: the
# figures before TLS; default: TLS on, the CA pinned by fingerprint),
# KEEP=1 (keep the work dir), EXPORT_JSON (also write the per-run
# times there). Needs root (sshd, root logins). Installs openssh-server,
# ansible and jq with apt-get if missing (hyperfine is not needed: the script
# times the runs itself, to check every measured run's output).
# Takes about 1.5 min with RUNS=10 on 2 cores (Ansible is most of it).
#
# Last line: fanout: gantry p50 X ms, ansible p50 Y ms, ratio Y/Xx (goal: ...)
set -euo pipefail

RUNS=${RUNS:-10}
PAUSE=${PAUSE:-1}
SSH_MUX=${SSH_MUX:-on}
SSH_BASE_PORT=${SSH_BASE_PORT:-22100}
HOSTS=50
CMD_TIMEOUT=120

log() { printf '[fanout %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"
[[ $SSH_MUX == on || $SSH_MUX == off ]] || die "SSH_MUX must be on or off, got '$SSH_MUX'"
[[ $(id -u) == 0 ]] || die "run as root (sshd instances and root logins)"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
W=$(mktemp -d /tmp/gantry-fanout.XXXXXX)
chmod 700 "$W"
PIDS=()        # every long-running process we started
SSHD_PIDS=()
AGENTS=""

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	# SSH control masters (SSH_MUX=on) were forked by ssh under our control dir.
	if [[ -d $W/cp ]]; then
		for s in "$W"/cp/*; do
			[[ -S $s ]] && ssh -o ControlPath="$s" -O exit dummy >/dev/null 2>&1
		done
		# Masters that did not answer: find them by our unique control dir, kill by pid.
		local p c
		for p in /proc/[0-9]*; do
			c=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline")
			if [[ $c == ssh* && $c == *"ControlPath=$W/cp/"* ]]; then
				kill "${p#/proc/}" 2>/dev/null
			fi
		done
	fi
	for p in "${PIDS[@]}" "${SSHD_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for _ in $(seq 1 50); do # up to 5 s
		local alive=0
		for p in "${PIDS[@]}" "${SSHD_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		((alive)) || break
		sleep 0.1
	done
	for p in "${PIDS[@]}" "${SSHD_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
	if [[ ${KEEP:-0} == 1 || $rc != 0 ]]; then
		log "work dir kept: $W ${AGENT_DIR:+(agents: ${AGENTS:-})}"
	else
		rm -rf "$W"
		[[ -z ${AGENT_DIR:-} || -z ${AGENTS:-} ]] || rm -rf "$AGENTS"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- dependencies -----------------------------------------------------------
missing=()
[[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
command -v ansible >/dev/null || missing+=(ansible)
command -v jq >/dev/null || missing+=(jq)
if ((${#missing[@]})); then
	log "installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
PY=/usr/bin/python3
[[ -x $PY ]] || die "$PY not found (Ansible's interpreter on the 'hosts')"

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- gantry -----------------------------------------------------------------
if [[ -n ${GANTRY_BIN:-} ]]; then
	G=$GANTRY_BIN
	[[ -x $G ]] || die "GANTRY_BIN=$G is not executable"
else
	G=$W/gantry
	log "building gantry at $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?') ($(git -C "$REPO" status --porcelain -- cmd internal api 2>/dev/null | wc -l) files modified under cmd/ internal/ api/)"
	(cd "$REPO" && CGO_ENABLED=0 go build -o "$G" ./cmd/gantry) || die "go build failed"
fi
HTTP_PORT=$(free_port)
NATS_PORT=$(free_port)
[[ $HTTP_PORT != "$NATS_PORT" ]] || NATS_PORT=$(free_port)
GFLAGS=()  # global flags of every gantry client command
TLSFLAGS=()
if [[ ${PLAIN:-} == 1 ]]; then
	export GANTRY_SERVER=http://127.0.0.1:$HTTP_PORT
	GFLAGS=(--insecure)
	TLSFLAGS=(--tls=false)
else
	export GANTRY_SERVER=https://127.0.0.1:$HTTP_PORT
fi
export GANTRY_TOKEN=fanout-bench-admin-token-0123456789
export GANTRY_CONFIG=$W/cli.json
AGENTS=${AGENT_DIR:-$W/agents}
if [[ -n ${AGENT_DIR:-} ]]; then
	AGENTS=$(mktemp -d "${AGENT_DIR%/}/gantry-fanout-agents.XXXXXX")
fi
mkdir -p "$W/server" "$AGENTS"
log "starting gantry server on $GANTRY_SERVER"
GANTRY_ADMIN_TOKEN=$GANTRY_TOKEN "$G" server --data-dir "$W/server" --listen "127.0.0.1:$HTTP_PORT" \
	--nats-listen "127.0.0.1:$NATS_PORT" --heartbeat 5s "${TLSFLAGS[@]}" >"$W/server.log" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
for i in $(seq 1 150); do # 15 s
	if [[ ${PLAIN:-} != 1 ]]; then
		# The server prints its CA fingerprint beside its URL; pin it.
		GANTRY_CA_FINGERPRINT=$(grep -o 'CA fingerprint sha256:[0-9a-f]*' "$W/server.log" | cut -d' ' -f3 || true)
		export GANTRY_CA_FINGERPRINT
		[[ -n $GANTRY_CA_FINGERPRINT ]] && curl -fsS --cacert "$W/server/ca.crt" "$GANTRY_SERVER/readyz" >/dev/null 2>&1 && break
	else
		curl -fsS "$GANTRY_SERVER/readyz" >/dev/null 2>&1 && break
	fi
	kill -0 "$SERVER_PID" 2>/dev/null || die "server exited: $(tail -20 "$W/server.log")"
	((i < 150)) || die "server not ready after 15 s: $(tail -20 "$W/server.log")"
	sleep 0.1
done
log "server CA ${GANTRY_CA_FINGERPRINT:-none (PLAIN=1)}"
JOIN=$("$G" "${GFLAGS[@]}" token create --uses $HOSTS --labels role=bench -o json | jq -r .token)
[[ $JOIN == gjt_* ]] || die "token create returned '$JOIN'"
log "starting $HOSTS gantry agents"
for i in $(seq -w 1 $HOSTS); do
	GANTRY_JOIN_TOKEN=$JOIN "$G" "${GFLAGS[@]}" agent --server "$GANTRY_SERVER" --name "bench-$i" \
		--data-dir "$AGENTS/$i" >"$W/server/agent-$i.log" 2>&1 &
	PIDS+=("$!")
done
online=0
for i in $(seq 1 120); do # 60 s
	online=$("$G" "${GFLAGS[@]}" hosts ls --selector role=bench -o json | jq '[.[] | select(.status == "online")] | length')
	((online == HOSTS)) && break
	((i < 120)) || die "only $online/$HOSTS agents online after 60 s (logs in $W/server/agent-*.log)"
	sleep 0.5
done
log "gantry: $online/$HOSTS agents online"

# --- sshd × 50 + Ansible inventory -----------------------------------------
mkdir -p "$W/ssh" /run/sshd
chmod 0755 /run/sshd
ssh-keygen -q -t ed25519 -N '' -C fanout-bench -f "$W/ssh/client_key"
cp "$W/ssh/client_key.pub" "$W/ssh/authorized_keys"
for n in $(seq 1 $HOSTS); do
	port=$((SSH_BASE_PORT + n))
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		die "port $port is in use (set SSH_BASE_PORT)"
	fi
done
INV=$W/inventory.ini
{
	echo "[bench]"
	for n in $(seq 1 $HOSTS); do
		printf 'ssh-%02d ansible_host=127.0.0.1 ansible_port=%d\n' "$n" $((SSH_BASE_PORT + n))
	done
	echo
	echo "[bench:vars]"
	echo "ansible_user=root"
	echo "ansible_ssh_private_key_file=$W/ssh/client_key"
	echo "ansible_python_interpreter=$PY"
} >"$INV"
log "starting $HOSTS sshd on 127.0.0.1:$((SSH_BASE_PORT + 1))-$((SSH_BASE_PORT + HOSTS))"
for n in $(seq 1 $HOSTS); do
	d=$W/ssh/sshd-$n
	mkdir -p "$d"
	ssh-keygen -q -t ed25519 -N '' -C "fanout-host-$n" -f "$d/host_ed25519_key"
	cat >"$d/sshd_config" <<-EOF
		Port $((SSH_BASE_PORT + n))
		ListenAddress 127.0.0.1
		HostKey $d/host_ed25519_key
		PidFile $d/sshd.pid
		AuthorizedKeysFile $W/ssh/authorized_keys
		StrictModes no
		UsePAM no
		PermitRootLogin prohibit-password
		PubkeyAuthentication yes
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		UseDNS no
		PrintMotd no
		PrintLastLog no
		MaxStartups 200:30:400
		MaxSessions 100
		Subsystem sftp /usr/lib/openssh/sftp-server
		LogLevel ERROR
		SetEnv SHLVL=1
	EOF
	/usr/sbin/sshd -t -f "$d/sshd_config" || die "sshd -t rejected $d/sshd_config"
	/usr/sbin/sshd -D -f "$d/sshd_config" -E "$d/sshd.log" &
	SSHD_PIDS+=("$!")
done
for n in $(seq 1 $HOSTS); do
	port=$((SSH_BASE_PORT + n))
	for i in $(seq 1 100); do # 10 s
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		((i < 100)) || die "sshd on port $port not listening after 10 s: $(cat "$W/ssh/sshd-$n/sshd.log")"
		sleep 0.1
	done
done

mkdir -p "$W/ansible/tmp" "$W/cp"
export ANSIBLE_HOME=$W/ansible
export ANSIBLE_LOCAL_TEMP=$W/ansible/tmp
export ANSIBLE_INVENTORY=$INV
export ANSIBLE_HOST_KEY_CHECKING=False
export ANSIBLE_PIPELINING=True
export ANSIBLE_FORKS=$HOSTS
export ANSIBLE_PYTHON_INTERPRETER=$PY
export ANSIBLE_NOCOLOR=1
export ANSIBLE_DEPRECATION_WARNINGS=False
export ANSIBLE_SSH_RETRIES=0
common_ssh="-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR -o ConnectTimeout=30"
if [[ $SSH_MUX == on ]]; then
	export ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=60s -o ControlPath=$W/cp/%C $common_ssh"
else
	export ANSIBLE_SSH_ARGS="-o ControlMaster=no -o ControlPath=none $common_ssh"
fi
log "ansible: SSH_MUX=$SSH_MUX, ANSIBLE_SSH_ARGS=$ANSIBLE_SSH_ARGS"

# --- measurement -----------------------------------------------------------
mkdir -p "$W/out"
GANTRY_MS=()
ANSIBLE_MS=()

# run_one TOOL LABEL: runs the tool's command once, checks it, echoes ms.
run_one() {
	local tool=$1 label=$2 out=$W/out/$1.$2 rc t0 t1
	t0=$EPOCHREALTIME
	if [[ $tool == gantry ]]; then
		timeout $CMD_TIMEOUT "$G" "${GFLAGS[@]}" run --selector role=bench -o json -- hostname >"$out.stdout" 2>"$out.stderr" && rc=0 || rc=$?
	else
		timeout $CMD_TIMEOUT ansible all -m shell -a hostname -f $HOSTS >"$out.stdout" 2>"$out.stderr" && rc=0 || rc=$?
	fi
	t1=$EPOCHREALTIME
	((rc == 0)) || die "$tool run $label: exit $rc: $(head -c 2000 "$out.stderr") $(head -c 2000 "$out.stdout")"
	local ok
	if [[ $tool == gantry ]]; then
		ok=$(jq '[.executions[] | select(.state == "succeeded")] | length' "$out.stdout" 2>/dev/null || echo 0)
		local total
		total=$(jq '.executions | length' "$out.stdout" 2>/dev/null || echo 0)
		((ok == HOSTS && total == HOSTS)) || die "gantry run $label: $ok/$total succeeded, want $HOSTS/$HOSTS (output in $out.stdout)"
	else
		ok=$(grep -c ' | CHANGED | rc=0 >>' "$out.stdout" || true)
		((ok == HOSTS)) || die "ansible run $label: $ok hosts ok, want $HOSTS: $(grep -v ' | CHANGED | rc=0 >>' "$out.stdout" | head -20)"
	fi
	echo "$t0 $t1" >"$out.times"
	# microseconds -> milliseconds with 1 decimal
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }'
}

log "load average before measuring: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs; other work on the machine skews both tools)"
log "warm-up: gantry"
ms=$(run_one gantry warmup)
log "  gantry warm-up ${ms} ms"
log "warm-up: ansible"
ms=$(run_one ansible warmup)
log "  ansible warm-up ${ms} ms"
for r in $(seq 1 "$RUNS"); do
	sleep "$PAUSE" # let the previous command's processes wind down (not timed)
	g=$(run_one gantry "$r")
	sleep "$PAUSE"
	a=$(run_one ansible "$r")
	GANTRY_MS+=("$g")
	ANSIBLE_MS+=("$a")
	log "run $r/$RUNS: gantry ${g} ms, ansible ${a} ms"
done

# stats NAME v...: prints "min p50 mean max" in ms
stats() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1; s += $1 } END {
		p50 = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%.1f %.1f %.1f %.1f", v[1], p50, s / NR, v[NR] }'
}
read -r gmin gp50 gmean gmax <<<"$(stats "${GANTRY_MS[@]}")"
read -r amin ap50 amean amax <<<"$(stats "${ANSIBLE_MS[@]}")"
ratio=$(awk -v a="$ap50" -v g="$gp50" 'BEGIN { printf "%.1f", a / g }')

res=$W/results.json
jq -n --argjson runs "$RUNS" --arg mux "$SSH_MUX" \
	--argjson g "[$(IFS=,; echo "${GANTRY_MS[*]}")]" --argjson a "[$(IFS=,; echo "${ANSIBLE_MS[*]}")]" \
	'{hosts: 50, runs: $runs, ssh_mux: $mux, unit: "ms", gantry: $g, ansible: $a}' >"$res"
[[ -z ${EXPORT_JSON:-} ]] || cp "$res" "$EXPORT_JSON"

# Where a gantry run's time goes, from the job's own timestamps (one clock).
phases() {
	"$PY" - "$W/out" "$RUNS" <<-'PYEOF'
		import json, sys, statistics
		from datetime import datetime
		def ts(s):
		    if not s: return None
		    s = s.rstrip("Z")
		    if "." in s:
		        a, f = s.split("."); s = a + "." + f[:6]
		    return datetime.fromisoformat(s + "+00:00").timestamp()
		out, runs = sys.argv[1], int(sys.argv[2])
		rows = []
		for r in range(1, runs + 1):
		    t0, t1 = map(float, open(f"{out}/gantry.{r}.times").read().split())
		    j = json.load(open(f"{out}/gantry.{r}.stdout"))
		    st = [ts(x.get("started_at")) for x in j["executions"]]
		    fi = [ts(x.get("finished_at")) for x in j["executions"]]
		    rows.append([ts(j["created_at"]) - t0, min(st) - t0, max(st) - t0, max(fi) - t0, ts(j.get("finished_at")) - t0, t1 - t0])
		med = [statistics.median(c) * 1000 for c in zip(*rows)]
		print("gantry phases (median ms from CLI start): job created %.0f, first agent start %.0f, last agent start %.0f, "
		      "last agent result %.0f, job finished %.0f, CLI exit %.0f" % tuple(med))
	PYEOF
}
phases || log "could not compute the phases"

log "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "gantry  ($HOSTS agents, $RUNS runs): min $gmin  p50 $gp50  mean $gmean  max $gmax ms"
echo "ansible ($HOSTS sshd, -f $HOSTS, SSH_MUX=$SSH_MUX, $RUNS runs): min $amin  p50 $ap50  mean $amean  max $amax ms"
echo "fanout: gantry p50 $gp50 ms, ansible p50 $ap50 ms, ratio ${ratio}x (goal: gantry >= 20x faster, p50 < 100 ms)"
