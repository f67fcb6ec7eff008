#!/usr/bin/env bash
# The second test lane: the integration suite under Debian sid's containerd (2.x), runc
# (1.3 or later) and qemu-user (static binaries without the -static suffix), while the host
# keeps Debian 12's containerd 1.6 and runc 1.1.
#
# The lane's root is a debootstrapped sid, cached in $CROSSARCH_LANE_CACHE (default
# /var/cache/crossarch/lanes) under a hash of what builds it (suite, mirror, packages), and
# built again when missing. The tests run in a mount namespace of their own whose root is
# that tree (pivot_root, not chroot: the kernel refuses user namespaces to a chrooted
# process, and foreign containers then fail with runc's bare "EOF"), seen through an overlay
# so the cached tree stays as built. The checkout, the build dir, the fixtures, /tmp,
# /proc, /sys and /dev are the host's at the same paths; /run is a fresh tmpfs. Every
# mount made for the lane goes away with its namespace.
#
#   scripts/lane-sid.sh                  build/reuse the root, build, run the lane's tests
#   scripts/lane-sid.sh task_api cri     only these test files of integration/tests
#   scripts/lane-sid.sh --shell          a shell in the lane (for debugging)
#
# Environment: CROSSARCH_LANE_CACHE, CROSSARCH_LANE_TESTS (space-separated test names; the
# default is every test of integration/tests), CROSSARCH_LANE_TEST_ARGS (given to each test
# binary, e.g. a name filter or --test-threads=1), CROSSARCH_LANE_MIRROR, CARGO_TARGET_DIR,
# CROSSARCH_FIXTURES, CI. Must run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/common.sh
. scripts/lib/common.sh

SUITE=sid
MIRROR="${CROSSARCH_LANE_MIRROR:-http://deb.debian.org/debian}"
# What the integration harness runs (containerd, ctr, runc, ip, python3, cc -static, ...) and
# the CNI plugins of the CRI tests. busybox-static: the rootfs fallback without fixtures.
# docker-registry: the registry the CRI tests pull a multi-arch image from.
PKGS=(containerd runc qemu-user containernetworking-plugins iproute2 python3 procps
  busybox-static gcc libc6-dev docker-registry)
CACHE="${CROSSARCH_LANE_CACHE:-/var/cache/crossarch/lanes}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CROSSARCH_FIXTURES="${CROSSARCH_FIXTURES:-$PWD/fixtures/out}"

# Builds the lane's root in $1 (which must not exist). Its text is part of the cache key.
build_root() {
  local dest="$1" tmp
  tmp="$dest.partial.$$"
  rm -rf "$tmp"
  # sid's archive here may be a snapshot whose Release is past its Valid-Until.
  if ! debootstrap --variant=minbase --include="$(
    IFS=,
    echo "${PKGS[*]}"
  )" "$SUITE" "$tmp" "$MIRROR" >"$tmp.log" 2>&1; then
    tail -n 30 "$tmp.log" >&2
    rm -rf "$tmp"
    die "lane-sid: debootstrap of $SUITE from $MIRROR failed (log: $tmp.log); check that the \
mirror is reachable and has the packages ${PKGS[*]}"
  fi
  printf 'Acquire::Check-Valid-Until "false";\n' >"$tmp/etc/apt/apt.conf.d/99crossarch-snapshot"
  # The packaged service is never started in the lane; tests run their own daemons.
  rm -f "$tmp/etc/containerd/config.toml"
  mv "$tmp.log" "$tmp/crossarch-lane-debootstrap.log"
  mv "$tmp" "$dest"
}

lane_key() {
  { declare -f build_root; echo "$SUITE $MIRROR ${PKGS[*]}"; } | sha256sum | cut -c1-16
}

ROOT="$CACHE/$SUITE-$(lane_key)"

ensure_root() {
  need_cmd debootstrap flock
  mkdir -p "$CACHE"
  # Two runs at once build the root once: the second waits, then uses it.
  exec 9>"$CACHE/.lock"
  flock 9
  if [ -x "$ROOT/usr/bin/containerd" ]; then
    log "lane-sid: using the cached root $ROOT"
    exec 9>&-
    return
  fi
  step "lane-sid: debootstrapping $SUITE into $ROOT (takes minutes; cached for later runs)"
  local t0=$SECONDS
  build_root "$ROOT"
  log "lane-sid: root built in $((SECONDS - t0)) s"
  # Older roots of this lane (another package list) are no longer used.
  local old
  for old in "$CACHE/$SUITE"-*; do
    [ "$old" = "$ROOT" ] || [ ! -d "$old" ] || rm -rf "$old"
  done
  exec 9>&-
}

# Runs in the lane's own mount namespace: builds the view of the root, pivots into it, runs
# "$@". Called by this script through unshare.
enter() {
  local new="$CACHE/mnt"
  mount --make-rprivate /
  mkdir -p "$new"
  mount -t tmpfs -o mode=0755 crossarch-lane "$new"
  mkdir -p "$new/upper" "$new/work" "$new/root"
  mount -t overlay -o "lowerdir=$ROOT,upperdir=$new/upper,workdir=$new/work" crossarch-lane \
    "$new/root"
  local r="$new/root" p
  for p in /proc /sys /dev /tmp; do
    mount --rbind "$p" "$r$p"
  done
  mount -t tmpfs -o mode=0755 crossarch-lane-run "$r/run"
  # The checkout, the build dir and the fixtures, at the paths the test binaries know.
  for p in "$PWD" "$CARGO_TARGET_DIR" "$CROSSARCH_FIXTURES"; do
    [ -d "$p" ] || continue
    mkdir -p "$r$p"
    mount --rbind "$p" "$r$p"
  done
  cd "$r"
  mkdir -p .oldroot
  pivot_root . .oldroot
  cd /
  umount -l /.oldroot
  rmdir /.oldroot
  cd "$OLDPWD_LANE"
  export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  "$@"
}

# Prints what the lane got: sid moves on, and a failure must say against which versions.
versions() {
  local qemu
  qemu=$(command -v qemu-aarch64 || true)
  log "lane-sid: containerd $(containerd --version | awk '{print $3}'), $(runc --version | sed -n 1p), \
qemu-user ${qemu:+$("$qemu" --version | awk 'NR == 1 { print $3 }')} ($qemu$([ -n "$qemu" ] && file_static "$qemu"))"
}

file_static() {
  # A dynamically linked qemu would not do for the shim: it needs an interpreter in the
  # container.
  if grep -q "/ld-linux" "$1" 2>/dev/null; then echo ", dynamic"; else echo ", static"; fi
}

# The integration test binaries, and the shim's install-config test (which loads its edit of
# the installed containerd's default config), built on the host (glibc binaries run on sid's
# newer glibc), one "name path" a line. Built as the whole workspace's tests, as the host
# lane builds them: with one package alone cargo unifies features differently and builds
# every dependency again.
test_binaries() {
  cargo test --workspace --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, os, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable") \
            or m["target"]["kind"] != ["test"]:
        continue
    package = os.path.basename(os.path.dirname(m["manifest_path"]))
    name = m["target"]["name"]
    if package == "integration" or (package == "shim" and name == "install_config"):
        print(name, m["executable"])
'
}

run_tests() {
  versions
  local runc
  runc=$(runc --version | awk 'NR == 1 { print $3 }')
  # The lane is there for a runc that execs into foreign containers of pods (1.3 and later).
  if ! printf '1.3\n%s\n' "$runc" | sort -V -C; then
    die "lane-sid: sid's runc is $runc, older than 1.3: this lane would not test what it is \
for; check the mirror ($MIRROR) and the package list"
  fi
  local failed=() name bin t0 list="$1"
  shift
  while read -r name bin; do
    t0=$SECONDS
    step "lane-sid: $name"
    # shellcheck disable=SC2086  # CROSSARCH_LANE_TEST_ARGS is a list of arguments.
    if (cd integration && "$bin" "$@" ${CROSSARCH_LANE_TEST_ARGS:-}); then
      log "lane-sid: $name passed in $((SECONDS - t0)) s"
    else
      log "lane-sid: $name FAILED after $((SECONDS - t0)) s"
      failed+=("$name")
    fi
  done <"$list"
  versions
  if [ "${#failed[@]}" -gt 0 ]; then
    die "lane-sid: failed under sid's containerd/runc: ${failed[*]}; rerun one with \
scripts/lane-sid.sh NAME"
  fi
  log "lane-sid: all passed"
}

case "${1:-}" in
  --enter)
    shift
    enter "$@"
    exit
    ;;
  --run-tests)
    shift
    run_tests "$@"
    exit
    ;;
esac

need_root lane-sid
need_cmd unshare pivot_root python3 cargo
ensure_root
scripts/build.sh >/dev/null
export CROSSARCH_SHIM_DIR="${CROSSARCH_SHIM_DIR:-$CARGO_TARGET_DIR/dist}"
export OLDPWD_LANE="$PWD" ROOT

if [ "${1:-}" = --shell ]; then
  exec unshare -m --propagation private "$0" --enter bash -i
fi

wanted="${*:-${CROSSARCH_LANE_TESTS:-}}"
list="$(mktemp /tmp/crossarch-lane-tests.XXXXXX)"
trap 'rm -f "$list"' EXIT
step "lane-sid: building the integration tests"
cargo test --workspace --no-run >/dev/null
test_binaries | sort | while read -r name bin; do
  if [ -z "$wanted" ] || [[ " $wanted " == *" $name "* ]]; then
    echo "$name $bin"
  fi
done >"$list"
[ -s "$list" ] || die "lane-sid: no integration test named '$wanted' (see integration/tests)"
t0=$SECONDS
status=0
unshare -m --propagation private "$0" --enter "$PWD/scripts/lane-sid.sh" --run-tests "$list" ||
  status=$?
log "lane-sid: tests took $((SECONDS - t0)) s"
exit "$status"
