#!/usr/bin/env bash
# examples/shop/build.sh: builds what the shop example needs.
#
#   1. the app: CGO_ENABLED=0 go build -o examples/shop/app/bundle/shop
#      ./examples/shop/app (the bundle's binary; gitignored);
#   2. two local images, with the docker CLI and without any pull (FROM
#      scratch, from files of this machine):
#      gantry-shop-base:dev  Debian's busybox-static as /bin/busybox, /bin/sh
#                            and applet links, /etc/passwd and /etc/group
#                            with root, /tmp, /run, /var/log, /etc/shop;
#      gantry-shop-lb:dev    the same plus Debian's haproxy
#                            (/usr/sbin/haproxy with every library ldd
#                            lists and the dynamic loader), /etc/haproxy:
#                            the agent's haproxy driver runs it (the lb
#                            group's load_balancer block), no script.
#
# The images need no gantry binary: the docker provider copies the agent in.
# Idempotent: the root filesystems are reproducible tarballs (fixed owner,
# times and order), so a second run hits the build cache and leaves the
# images as they were. (Each Dockerfile starts with a label of its own: the
# build cache matches a first step against every image without a parent,
# so a step another image on this engine also has could send it down that
# image's chain and miss.) Safe to run concurrently (the binary is renamed into
# place). Works from any directory.
#
# Usage: examples/shop/build.sh [-t]
#   -t (or SHOP_SKIP_IMAGES=1)  build the app binary only, no images
#   SHOP_BUILD_VERBOSE=1          show docker build's output
# Needs: go; for the images a reachable Docker engine, and the Debian
# packages busybox-static and haproxy (apt-get install busybox-static haproxy).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
BASE_IMAGE=gantry-shop-base:dev
LB_IMAGE=gantry-shop-lb:dev
APPLETS="sh wget nc httpd sleep kill cat echo mkdir rm cp mv grep sed awk env id hostname ps setsid
nohup seq tr wc sort cut printf head tail date true false test [ [[ chmod touch ln ls cmp dirname
basename pidof pgrep pkill xargs find uname timeout netstat ip"

log() { printf '[shop build] %s\n' "$*" >&2; }
die() {
	printf '[shop build] ERROR: %s\n' "$*" >&2
	exit 1
}

images=1
case "${1:-}" in
"") ;;
-t) images=0 ;;
-h | --help)
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit 0
	;;
*) die "unknown argument '$1' (usage: $0 [-t])" ;;
esac
[[ ${SHOP_SKIP_IMAGES:-} == 1 ]] && images=0

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gantry-shop-build.XXXXXX")
trap 'rm -rf "$tmp"; rm -f "$here/app/.shop.tmp.$$"' EXIT

# --- the app ------------------------------------------------------------------
command -v go >/dev/null || die "go not found in PATH"
(cd "$root" && CGO_ENABLED=0 go build -o "$here/app/.shop.tmp.$$" ./examples/shop/app) ||
	die "go build ./examples/shop/app failed"
mv -f "$here/app/.shop.tmp.$$" "$here/app/bundle/shop"
log "app: examples/shop/app/bundle/shop"
((images)) || exit 0

# --- prerequisites of the images ------------------------------------------------
command -v docker >/dev/null || die "docker CLI not found in PATH (apt-get install docker.io), or run $0 -t for the app only"
if ! err=$(docker version --format '{{.Server.Version}}' 2>&1 >/dev/null); then
	die "cannot reach the Docker engine (docker version: $err); is dockerd running, and may you use its socket?"
fi
[[ -x /bin/busybox ]] || die "/bin/busybox not found: apt-get install busybox-static"
if ldd /bin/busybox >/dev/null 2>&1; then
	die "/bin/busybox is dynamically linked (Debian's package busybox): apt-get install busybox-static"
fi
have=$(/bin/busybox --list) # (not piped into grep -q: with pipefail, its SIGPIPE would fail the test)
grep -qx sh <<<"$have" || die "/bin/busybox has no sh applet"
[[ -x /usr/sbin/haproxy ]] || die "/usr/sbin/haproxy not found: apt-get install haproxy"
command -v ldd >/dev/null || die "ldd not found (Debian package libc-bin)"

# --- root filesystems -------------------------------------------------------------
# tarball DIR OUT: a reproducible tar of DIR's content (root-owned, fixed
# times, sorted), so that identical content gives an identical build cache key.
tarball() {
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$1" -cf "$2" .
}

base=$tmp/base/rootfs
mkdir -p "$base"/{bin,usr/bin,tmp,run,var/log,var/run,etc/shop,root}
chmod 1777 "$base/tmp"
chmod 700 "$base/root"
cp /bin/busybox "$base/bin/busybox"
for a in $APPLETS; do
	grep -qxF -- "$a" <<<"$have" || continue # not in this busybox build
	[[ $a == sh ]] || ln -s busybox "$base/bin/$a"
done
ln -s busybox "$base/bin/sh"
ln -s /bin/busybox "$base/usr/bin/env"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$base/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$base/etc/group"
: >"$base/etc/shop/.keep"
tarball "$base" "$tmp/base/rootfs.tar"

lb=$tmp/lb/extra
mkdir -p "$lb/usr/sbin" "$lb/etc/haproxy" "$lb/var/lib/haproxy"
cp /usr/sbin/haproxy "$lb/usr/sbin/haproxy"
# Every library ldd lists ("name => /path (addr)" and the loader "/path
# (addr)"), copied (links resolved) to the path the loader looks for.
libs=$(ldd /usr/sbin/haproxy | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[[ -n $libs ]] || die "ldd /usr/sbin/haproxy listed no libraries"
for l in $libs; do
	mkdir -p "$lb$(dirname "$l")"
	cp -L "$l" "$lb$l"
done
interp=$(readelf -l /usr/sbin/haproxy 2>/dev/null | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p' || true)
if [[ -n $interp && ! -e $lb$interp ]]; then
	mkdir -p "$lb$(dirname "$interp")"
	cp -L "$interp" "$lb$interp"
fi
tarball "$lb" "$tmp/lb/extra.tar"

# --- images ---------------------------------------------------------------------------
# build TAG DIR: docker build of DIR's Dockerfile; the output is shown only
# on failure.
build() {
	local out
	if ! out=$(docker build --label org.gantry.example=shop -t "$1" "$2" 2>&1); then
		printf '%s\n' "$out" >&2
		die "docker build $1 failed"
	fi
	[[ ${SHOP_BUILD_VERBOSE:-} != 1 ]] || printf '%s\n' "$out" >&2
	log "image: $1 ($(docker image inspect --format '{{.Id}}' "$1" | cut -c8-19))"
}

cat >"$tmp/base/Dockerfile" <<'EOF'
FROM scratch
LABEL org.gantry.example.image=gantry-shop-base
ENV PATH=/bin:/usr/bin
ADD rootfs.tar /
CMD ["/bin/sh"]
EOF
rm -rf "$base"
build "$BASE_IMAGE" "$tmp/base"

mv "$tmp/base/rootfs.tar" "$tmp/lb/rootfs.tar"
cat >"$tmp/lb/Dockerfile" <<'EOF'
FROM scratch
LABEL org.gantry.example.image=gantry-shop-lb
ENV PATH=/bin:/usr/bin:/usr/sbin
ADD rootfs.tar /
ADD extra.tar /
CMD ["/bin/sh"]
EOF
rm -rf "$lb"
build "$LB_IMAGE" "$tmp/lb"

# Smoke checks: the images run what the example's scripts need.
docker run --rm --network none "$BASE_IMAGE" /bin/sh -c 'wget --help >/dev/null 2>&1; httpd --help >/dev/null 2>&1; sleep 0.01' ||
	die "$BASE_IMAGE: /bin/sh or busybox applets do not run"
docker run --rm --network none "$LB_IMAGE" /usr/sbin/haproxy -v >/dev/null ||
	die "$LB_IMAGE: haproxy does not run (a library missing?)"
log "done"
