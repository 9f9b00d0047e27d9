#!/usr/bin/env bash
# Installs (with apt-get, only what is missing) and starts what gantry's
# tests need on Debian: the PostgreSQL server (the store tests run against
# SQLite and PostgreSQL), git, busybox-static and haproxy (the images of
# examples/shop are built from them: no registry is needed),
# openssh-server, openssh-client and iproute2 (a real sshd in a network
# namespace for the ssh provider), systemd (systemd-analyze checks the
# agent's unit file), python3 (hooks with a `#!/usr/bin/env python3` line
# in the deployment tests); and, with go install, a pinned staticcheck
# (`make vet`). The Docker engine itself is the machine's. Idempotent.
# Prints the PostgreSQL URL for the tests as its last line.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
# as_postgres runs a command as the postgres user.
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

need=()
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
command -v git >/dev/null 2>&1 || need+=(git)
[ -x /bin/busybox ] || need+=(busybox-static)
[ -x /usr/sbin/haproxy ] || need+=(haproxy)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
[ -x /usr/bin/python3 ] || need+=(python3)
command -v curl >/dev/null 2>&1 || need+=(curl)    # the README runner pastes the README's curl lines
if [ ${#need[@]} -gt 0 ]; then
  echo "test-deps: installing ${need[*]}" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >&2
fi

# staticcheck, run by `make vet` after go vet: pinned, built with this Go
# into GOBIN (default $(go env GOPATH)/bin, where the Makefile looks).
staticcheck_version=v0.8.2 # staticcheck 2026.2.2: supports Go 1.26
gobin="$(go env GOBIN)"
[ -n "$gobin" ] || gobin="$(go env GOPATH | cut -d: -f1)/bin"
if ! "$gobin/staticcheck" -version 2>/dev/null | grep -qF "(${staticcheck_version#v})"; then
  echo "test-deps: installing staticcheck $staticcheck_version into $gobin" >&2
  go install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version" >&2
fi

if ! docker version >/dev/null 2>&1; then
  echo "test-deps: the Docker engine is not reachable (docker version failed): the docker provider and examples/shop tests need it" >&2
fi

ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h 2>/dev/null | grep -q "^$ver main"; then
  $SUDO pg_createcluster "$ver" main >&2
fi
if ! pg_lsclusters -h | grep -q "^$ver main .* online"; then
  $SUDO pg_ctlcluster "$ver" main start >&2
fi
ready=""
for _ in $(seq 1 100); do
  if as_postgres psql -qAtc 'select 1' >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.2
done
[ -n "$ready" ] || { echo "test-deps: PostgreSQL did not accept connections within 20s" >&2; exit 1; }
as_postgres psql -qAtc "SELECT 1 FROM pg_roles WHERE rolname='gantry'" | grep -q 1 ||
  as_postgres psql -qc "CREATE ROLE gantry LOGIN SUPERUSER PASSWORD 'gantry'" >&2
as_postgres psql -qAtc "SELECT 1 FROM pg_database WHERE datname='gantry_test'" | grep -q 1 ||
  as_postgres createdb -O gantry gantry_test >&2
echo "postgres://gantry:gantry@127.0.0.1:5432/gantry_test?sslmode=disable"
