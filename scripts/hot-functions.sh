#!/usr/bin/env bash
# Makes shim/link/hot-functions.txt again: the functions a serving shim runs, which shim/build.rs
# puts first in the shim's .text so that an idle shim maps less code.
#
#   1. The shim is built as scripts/build.sh builds it, with its symbols kept, into
#      HOT_CACHE (the same profile and flags, so the same mangled names).
#   2. Every function of that binary gets a uprobe (bpftrace), counted per process.
#   3. A private containerd runs native and arm64 containers through it: create, start, exec,
#      ps, pause, resume, metrics, kill, delete, `run --rm` with an exit code, a failing exec.
#   4. The functions any shim process ran, the most widely run first, are written out.
#
# Needs root, bpftrace and bpftool (installed with apt if missing), and the fixtures. The kernel
# takes a while to remove thousands of uprobes: bpftrace is killed at the end, and its probes
# (on the symbol build only) go away in the background, minutes later.
#
# Usage: scripts/hot-functions.sh
# Env: HOT_CACHE (default <repo>/target/hot-functions)
set -euo pipefail
export LC_ALL=C

# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=testenv.sh
. "$CROSSARCH_REPO/scripts/testenv.sh"

CACHE=${HOT_CACHE:-$CROSSARCH_REPO/target/hot-functions}
FIXTURES=${CROSSARCH_FIXTURES:-$CROSSARCH_REPO/fixtures/out}
TRIPLE=x86_64-unknown-linux-musl
SHIM=containerd-shim-crossarch-v2
RUNTIME=io.containerd.crossarch.v2
OUT=$CROSSARCH_REPO/shim/link/hot-functions.txt

need_root "hot-functions.sh"
need_cmd ctr containerd runc python3 cargo nm
for tool in bpftrace bpftool; do
  command -v "$tool" >/dev/null 2>&1 ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$tool" >/dev/null ||
    die "$tool is missing and \`apt-get install $tool\` failed"
done
[ -r "$FIXTURES/images/busybox-arm64.tar" ] || die "no fixture images in $FIXTURES; run scripts/fixtures.sh"

step "building the shim with its symbols into $CACHE"
export CARGO_TARGET_DIR=$CACHE/target
(cd "$CROSSARCH_REPO" &&
  cargo build --quiet -p crossarch-init --profile small --target "$TRIPLE" &&
  cargo rustc --quiet -p crossarch-shim --bin "$SHIM" --profile small --target "$TRIPLE" -- -C strip=none)
DIST=$CACHE/dist
mkdir -p "$DIST"
install -m 0755 "$CARGO_TARGET_DIR/$TRIPLE/small/$SHIM" "$CARGO_TARGET_DIR/$TRIPLE/small/crossarch-init" "$DIST/"
BIN=$DIST/$SHIM

# Functions with a size, one probe per address (aliases share one). Some cannot be probed:
# musl's assembly functions (memcpy, memset, __clone) have no size, and the kernel puts no
# uprobe on an instruction with a LOCK prefix, with which a few begin (a waker's clone and drop,
# musl's __vm_lock). They are few and small, and memcpy, memset and the wakers run on every
# path, so they all go first.
objdump -d --no-show-raw-insn "$BIN" |
  awk '/^[0-9a-f]+ <.*>:$/ { name = substr($2, 2, length($2) - 3); getline; if ($2 ~ /^lock/) print name }' \
    >"$CACHE/locked.txt"
nm -S --defined-only "$BIN" | python3 -c '
import sys
locked = set(line.strip() for line in open(sys.argv[2]))
seen = {}
for line in sys.stdin:
    f = line.split()
    if len(f) == 3 and f[1] in "tT" or len(f) == 4 and f[3] in locked:
        print(f[-1])
    elif len(f) == 4 and f[2] in "tT" and int(f[1], 16) > 0:
        seen.setdefault(int(f[0], 16), []).append(f[3])
with open(sys.argv[1], "w") as out:
    for addr in sorted(seen):
        out.write("%x %s\n" % (addr, " ".join(seen[addr])))
' "$CACHE/functions.txt" "$CACHE/locked.txt" >"$CACHE/unprobed.txt"
probes=$(wc -l <"$CACHE/functions.txt")
awk -v b="$BIN" '{ printf "%suprobe:%s:0x%s", (NR > 1 ? ",\n" : ""), b, $1 } END { print "\n{ @[pid, probe] = count(); }" }' \
  "$CACHE/functions.txt" >"$CACHE/probes.bt"

step "attaching $probes uprobes (a few minutes)"
BPFTRACE_MAX_PROBES=$((probes + 100)) BPFTRACE_MAX_BPF_PROGS=$((probes + 100)) \
  BPFTRACE_MAP_KEYS_MAX=400000 setsid bpftrace "$CACHE/probes.bt" >"$CACHE/bpftrace.log" 2>&1 &
BPF=$!
stop_bpftrace() { kill -KILL "$BPF" 2>/dev/null || true; }
testenv_scratch hot-functions stop_bpftrace
# Two fds per attached probe.
deadline=$((SECONDS + 900))
until [ "$(find "/proc/$BPF/fd" -mindepth 1 2>/dev/null | wc -l)" -ge $((2 * probes)) ]; do
  kill -0 "$BPF" 2>/dev/null || die "bpftrace exited: $(tail -3 "$CACHE/bpftrace.log")"
  [ $SECONDS -lt $deadline ] || die "bpftrace did not attach its probes within 15 minutes"
  sleep 5
done

wait_until_stopped() {
  local _
  for _ in $(seq 100); do
    ctrx task ls | grep "^$1 .*STOPPED" >/dev/null && return 0
    sleep 0.1
  done
}

step "running containers through the symbol build"
export CROSSARCH_SHIM_DIR=$DIST
testenv_start "$WORK/env"
ctrx image import "$FIXTURES/images/busybox-amd64.tar" >/dev/null
ctrx image import --all-platforms "$FIXTURES/images/busybox-arm64.tar" >/dev/null
for arch in amd64 arm64; do
  image=crossarch.test/busybox:$arch
  ctrx run -d --runtime "$RUNTIME" --platform "linux/$arch" "$image" "d-$arch" sleep 1000
  for i in 1 2 3; do ctrx task exec --exec-id "e$i" "d-$arch" sh -c 'uname -m; ls / | wc -l' >/dev/null; done
  ctrx task exec --exec-id bad "d-$arch" /nonexistent >/dev/null 2>&1 || true
  ctrx task ps "d-$arch" >/dev/null
  ctrx task metrics "d-$arch" >/dev/null
  ctrx task pause "d-$arch"
  ctrx task resume "d-$arch"
  ctrx task kill "d-$arch"
  wait_until_stopped "d-$arch"
  ctrx task delete "d-$arch" >/dev/null
  ctrx container rm "d-$arch"
  ctrx run --rm --runtime "$RUNTIME" --platform "linux/$arch" "$image" "r-$arch" sh -c 'exit 3' || true
done
testenv_stop "$WORK/env"

step "reading the counts"
map=$(bpftool -j map list | python3 -c '
import json, sys
maps = [m for m in json.load(sys.stdin) if m.get("type") == "percpu_hash" and m.get("max_entries") == 400000]
print(max(m["id"] for m in maps) if maps else "")
')
[ -n "$map" ] || die "bpftrace's map is not there"
bpftool -j map dump id "$map" >"$CACHE/counts.json"
stop_bpftrace
python3 - "$CACHE/functions.txt" "$CACHE/counts.json" "$OUT" "$CACHE/unprobed.txt" <<'EOF'
import collections, json, re, sys
functions = [line.split() for line in open(sys.argv[1])]
unprobed = [line.strip() for line in open(sys.argv[4])]
processes = collections.defaultdict(set)
for entry in json.load(open(sys.argv[2])):
    key = bytes(int(b, 16) for b in entry["key"])
    pid, probe = int.from_bytes(key[:8], "little"), int.from_bytes(key[8:], "little")
    processes[probe].add(pid)
hot = sorted(processes, key=lambda p: (-len(processes[p]), p))
with open(sys.argv[3], "w") as out:
    out.write(
        "# The functions a serving shim runs, first in its .text (shim/build.rs), as mangled names\n"
        "# without their hash (shim/link/ordered-lld matches them to the build's symbols).\n"
        "# Made by scripts/hot-functions.sh: every function of a symbol build probed with uprobes\n"
        "# while a private containerd runs native and arm64 containers through the shim (create,\n"
        "# start, exec, ps, pause, resume, metrics, kill, delete, `run --rm`, a failing exec).\n"
        "# First the functions that cannot be probed (musl's assembly: memcpy, memset, ...; those\n"
        "# that begin with a locked instruction: a waker's clone and drop), then those run by the\n"
        "# most shim processes.\n"
    )
    written = set()
    for name in unprobed:
        name = re.sub(r"17h[0-9a-f]{16}E$", "E", name)
        if name not in written:
            written.add(name)
            out.write(name + "\n")
    for probe in hot:
        for name in functions[probe][1:]:
            name = re.sub(r"17h[0-9a-f]{16}E$", "E", name)
            if name not in written:
                written.add(name)
                out.write(name + "\n")
print("%d of %d functions ran" % (len(hot), len(functions)), file=sys.stderr)
EOF
log "wrote $OUT"
