#!/usr/bin/env bash
# bench/deploy: deployment speed (issue "Deployments").
#
#   1. a 5 MiB bundle with trivial hooks to 50 agents that run the whole
#      lifecycle (download, verify, unpack, install, 5 hook scripts through
#      /bin/sh), AllAtOnce, then HalfAtATime: total time and gantry's
#      overhead per host per batch (total minus the hooks' critical path);
#      goal < 20 ms;
#   2. the same bundle to 1,000 emulated agents (download and verify only),
#      AllAtOnce: total time; goal < 10 s.
#
# The agents run inside the bench process (agent.Run, the same code as
# `gantry agent`), the server is a real `gantry server` child process, and
# each deployment is timed end to end through `gantry deploy --wait`.
# Usage: bench/deploy/run.sh   (RUNS=3 by default; about 2 minutes)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go build -o "$out.bench" ./bench/fleet
trap 'rm -f "$out" "$out.bench"' EXIT
for args in "-agents 50 -exec -deploy AllAtOnce" "-agents 50 -exec -deploy HalfAtATime" "-agents 1000 -deploy AllAtOnce"; do
  echo "== bench/fleet $args -runs $RUNS" >&2
  # shellcheck disable=SC2086
  "$out.bench" $args -runs "$RUNS" -bundle-mb 5 | tee -a "$out" >&2
done
grep '^deploy:' "$out" | sed 's/ (goals:.*//' | tr '\n' ';' | sed 's/;$//; s/;/ | /g; s/^/deploy bench: /'
echo
