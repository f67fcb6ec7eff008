#!/usr/bin/env bash
# Where crossarch's time and memory go. Prints a short markdown report on stdout; progress goes
# to stderr.
#
#   1. perf: one shim serving a pod group is recorded (`perf record -p`, which follows the runc
#      and container processes it forks) during PROFILE_RUNS starts (`ctr run --rm … /bin/true`
#      into the group) and PROFILE_RUNS execs (`ctr task exec … /bin/true` into the pod's first
#      container); the report gives the samples by command and the shim's own top symbols.
#   2. cargo bloat: the shim binary's code by crate.
#   3. an idle shim (one container, `sleep`): its threads by name and its RSS by mapping.
#
# The shim is this checkout's, built as scripts/build.sh builds it (profile `small`, musl) but
# with its symbols kept, into PROFILE_CACHE; perf and cargo bloat both need them, and the
# binary that is installed is stripped. perf (Debian's linux-perf) is installed with apt if it
# is missing, cargo-bloat with `cargo install` into PROFILE_CACHE.
#
# Usage (as root): scripts/profile.sh
# Env:
#   PROFILE_RUNS     starts, and execs, recorded (default 30)
#   PROFILE_ARCH     the image's architecture: amd64 (native) or arm64 (emulated) (default amd64)
#   PROFILE_TOP      rows of each top list (default 15)
#   PROFILE_CACHE    the symbol build and cargo-bloat (default <repo>/target/profile)
#   CARGO_BLOAT_VERSION  (default 0.12.1)
#   CROSSARCH_FIXTURES  prebuilt fixtures to use as they are (default: <repo>/fixtures/out, which
#                    scripts/fixtures.sh brings up to date first)
set -euo pipefail
export LC_ALL=C

# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=testenv.sh
. "$CROSSARCH_REPO/scripts/testenv.sh"

RUNS=${PROFILE_RUNS:-30}
ARCH=${PROFILE_ARCH:-amd64}
TOP=${PROFILE_TOP:-15}
CACHE=${PROFILE_CACHE:-$CROSSARCH_REPO/target/profile}
BLOAT_VERSION=${CARGO_BLOAT_VERSION:-0.12.1}
FIXTURES=${CROSSARCH_FIXTURES:-$CROSSARCH_REPO/fixtures/out}
RUNTIME=io.containerd.crossarch.v2
TRIPLE=x86_64-unknown-linux-musl
SHIM=containerd-shim-crossarch-v2
GROUP=io.containerd.runc.v2.group=profile

need_root "profile.sh"
need_cmd ctr containerd runc python3 cargo rustup
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "PROFILE_RUNS must be a positive integer, not '$RUNS'"
[[ "$TOP" =~ ^[1-9][0-9]*$ ]] || die "PROFILE_TOP must be a positive integer, not '$TOP'"
case "$ARCH" in
  amd64 | arm64) ;;
  *) die "PROFILE_ARCH must be amd64 or arm64, not '$ARCH'" ;;
esac
IMAGE=crossarch.test/busybox:$ARCH

# ---------------------------------------------------------------------------------------------
# Tools and the symbol build

if ! command -v perf >/dev/null 2>&1; then
  log "profile: installing perf (linux-perf) ..."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-perf >/dev/null ||
    die "perf is missing and \`apt-get install linux-perf\` failed; install perf for this kernel"
fi
BLOAT="$CACHE/tools/bin/cargo-bloat"
if [ ! -x "$BLOAT" ]; then
  log "profile: installing cargo-bloat $BLOAT_VERSION into $CACHE/tools ..."
  cargo install --quiet --locked --root "$CACHE/tools" --target-dir "$CACHE/tools-target" \
    cargo-bloat --version "=$BLOAT_VERSION" || die "\`cargo install cargo-bloat --version $BLOAT_VERSION\` failed"
fi
rustup target list --installed 2>/dev/null | grep -x -- "$TRIPLE" >/dev/null || rustup target add "$TRIPLE" >/dev/null

# scripts/build.sh's build, with symbols. Both cargo and cargo bloat read these.
export CARGO_TARGET_DIR="$CACHE/target" CARGO_PROFILE_SMALL_STRIP=false
CROSSARCH_REVISION="$(git -C "$CROSSARCH_REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
export CROSSARCH_REVISION
log "profile: building the shim with symbols into $CARGO_TARGET_DIR (a few minutes the first time) ..."
(cd "$CROSSARCH_REPO" && cargo build --quiet -p crossarch-shim -p crossarch-init --profile small --target "$TRIPLE")
DIST="$CACHE/dist"
mkdir -p "$DIST"
install -m 0755 "$CARGO_TARGET_DIR/$TRIPLE/small/$SHIM" "$CARGO_TARGET_DIR/$TRIPLE/small/crossarch-init" "$DIST/"
export CROSSARCH_SHIM_DIR=$DIST

if [ -z "${CROSSARCH_FIXTURES:-}" ]; then "$CROSSARCH_REPO/scripts/fixtures.sh" >/dev/null; fi
[ -r "$FIXTURES/images/busybox-$ARCH.tar" ] || die "no fixture image busybox-$ARCH.tar in $FIXTURES; run scripts/fixtures.sh"

# ---------------------------------------------------------------------------------------------
# A private containerd; everything it starts goes with it

PERF_PID=
stop_perf() {
  [ -n "$PERF_PID" ] || return 0
  kill -INT "$PERF_PID" 2>/dev/null || true
  wait "$PERF_PID" 2>/dev/null || true
}
testenv_scratch profile stop_perf

testenv_start "$WORK/env"
ctrx image import --all-platforms "$FIXTURES/images/busybox-$ARCH.tar" >/dev/null
platform=(--platform "$(arch_platform "$ARCH")")

# The shim serving container ID: the one of this daemon whose command line names it.
shim_of() {
  local pid
  for pid in $(_testenv_shim_pids "$TESTENV_DIR/containerd.sock"); do
    if tr '\0' '\n' <"/proc/$pid/cmdline" | grep -A1 -x -- -id | tail -n1 | grep -x -- "$1" >/dev/null; then
      echo "$pid"
      return 0
    fi
  done
  return 1
}

# ---------------------------------------------------------------------------------------------
# 1. perf

ctrx run -d --runtime "$RUNTIME" "${platform[@]}" --annotation "$GROUP" "$IMAGE" pod sleep 3600 </dev/null >/dev/null ||
  die "the pod's first container did not start; see $TESTENV_DIR/containerd.log"
shim=$(shim_of pod) || die "no shim found for container pod"
log "profile: recording shim $shim during $RUNS starts and $RUNS execs ..."
# cpu-clock: a software event, so this works in VMs without a PMU too.
perf record -q -e cpu-clock -F 4000 -p "$shim" -o "$WORK/perf.data" 2>"$WORK/perf.log" &
PERF_PID=$!
sleep 0.5
kill -0 "$PERF_PID" 2>/dev/null || die "perf record did not start: $(cat "$WORK/perf.log")"
t0=$EPOCHREALTIME
for i in $(seq 1 "$RUNS"); do
  ctrx run --rm --runtime "$RUNTIME" "${platform[@]}" --annotation "$GROUP" "$IMAGE" "run$i" /bin/true \
    </dev/null >/dev/null || die "start $i failed; see $TESTENV_DIR/containerd.log"
done
t1=$EPOCHREALTIME
for i in $(seq 1 "$RUNS"); do
  ctrx task exec --exec-id "e$i" pod /bin/true </dev/null >/dev/null || die "exec $i failed"
done
t2=$EPOCHREALTIME
kill -INT "$PERF_PID"
wait "$PERF_PID" || true
PERF_PID=

report() { perf report -i "$WORK/perf.data" --stdio --no-children --percent-limit 0.5 "$@" 2>/dev/null; }
# (A later --percent-limit wins.)
# perf's table rows ("  12.34%  comm  dso  symbol"), at most TOP of them.
rows() { grep -E '^ +[0-9.]+%' | sed -n "1,${TOP}s/^ *//p"; }

echo "## crossarch profile, $(date -u +%FT%TZ)"
echo
echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), kernel $(uname -r), $(runc --version | sed -n 1p), shim $CROSSARCH_REVISION (profile small, symbols kept), $ARCH image"
echo
echo "### perf: shim $shim and what it forks, $RUNS starts + $RUNS execs"
echo
awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$RUNS" \
  'BEGIN { printf("wall time: starts %.0f ms each, execs %.0f ms each (ctr client included)\n\n", (b - a) * 1000 / n, (c - b) * 1000 / n) }'
echo "samples by command (the shim's threads, runc, the container's processes):"
echo '```'
report --sort comm | rows
echo '```'
echo
samples() { perf script -i "$WORK/perf.data" -F tid "$@" 2>/dev/null | wc -l; }
echo "the shim's own threads ($(samples --pid "$shim") of $(samples) samples), by binary and top symbols (kernel symbols are its system calls):"
echo '```'
report --pid "$shim" --percentage relative --sort dso | rows
echo
report --pid "$shim" --percentage relative --sort dso,sym | rows
echo '```'
echo
echo "top symbols outside the kernel, every command:"
echo '```'
report --sort comm,dso,sym --percent-limit 0.1 | grep -v '\[kernel' | rows
echo '```'

# ---------------------------------------------------------------------------------------------
# 2. cargo bloat

echo
echo "### cargo bloat: $SHIM by crate"
echo
echo '```'
(cd "$CROSSARCH_REPO" && "$BLOAT" bloat --profile small --target "$TRIPLE" -p crossarch-shim --bin "$SHIM" \
  --crates -n "$TOP" 2>/dev/null) || echo "cargo bloat failed"
echo '```'

# ---------------------------------------------------------------------------------------------
# 3. an idle shim

ctrx run -d --runtime "$RUNTIME" "${platform[@]}" "$IMAGE" idle sleep 3600 </dev/null >/dev/null ||
  die "the idle container did not start"
idle=$(shim_of idle) || die "no shim found for container idle"
# Let it settle, as bench.sh does before reading memory.
sleep 2
echo
echo "### idle shim $idle (one \`sleep\` container)"
echo
echo "$(awk '/^Threads:/ { print $2 }' "/proc/$idle/status") threads, by name:"
echo '```'
cat "/proc/$idle"/task/*/comm | sort | uniq -c | sort -rn
echo '```'
echo
echo "RSS $(awk '/^VmRSS:/ { print $2, $3 }' "/proc/$idle/status"), by mapping:"
echo '```'
python3 - "/proc/$idle/smaps" "$TOP" <<'PY'
import collections, sys
rss = collections.Counter()
name = None
for line in open(sys.argv[1]):
    head = line.split()
    if "-" in head[0] and not head[0].endswith(":"):
        name = head[5] if len(head) > 5 else "[anon]"
        perms = head[1]
        if not name.startswith("["):
            name = f"{name} ({'code' if 'x' in perms else 'data'})"
    elif head[0] == "Rss:":
        rss[name] += int(head[1])
for name, kb in rss.most_common(int(sys.argv[2])):
    if kb:
        print(f"{kb:>8} kB  {name}")
PY
echo '```'
