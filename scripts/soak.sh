#!/usr/bin/env bash
# Soak test: does a long-lived shim grow with the work it does? crossarch and containerd's Go
# runc shim side by side, in one private containerd, step by step interleaved so drift on the
# machine hits both alike. Two phases per runtime, each in one shim that lives throughout (a
# shim group, `io.containerd.runc.v2.group`, anchored by an idle container):
#
#   containers  SOAK_CONTAINERS sequential `ctr run --rm … true`, alternating native and arm64
#   execs       SOAK_EXECS `ctr task exec … true` (stdin from /dev/null, and every 4th with
#               stdin data), alternating between a native and an arm64 container of the group
#
# The shim's fds, threads and RSS are read before, every SOAK_EVERY steps and after; the
# report is a table of those samples and the least-squares slope of fds and RSS per 100 steps.
# At the end, once every container is gone, nothing may be left: no mount under the daemon's
# dirs, no bundle, no runc state, no cgroup of its namespace, and the host's mount table and
# binfmt_misc (if mounted; only read) as they were before, no temporary file in the daemon's
# TMPDIR and no shim panic in its log. Exits 1 if anything is left or the
# last fd sample of a phase is more than SOAK_FD_TOLERANCE above its first.
#
# runc-v2 cannot run arm64 without the host's binfmt_misc, which this script never touches:
# when its arm64 probe fails, its arm64 steps run native and the report says so.
#
# Usage (as root): scripts/soak.sh
# Env:
#   SOAK_CONTAINERS     sequential containers per runtime (default 500)
#   SOAK_EXECS          execs per runtime (default 2000)
#   SOAK_EVERY          steps between samples (default 100)
#   SOAK_RUNTIMES       runtimes (default "io.containerd.crossarch.v2 io.containerd.runc.v2")
#   SOAK_FD_TOLERANCE   fds a phase may end above where it started (default 3)
#   CROSSARCH_SHIM_DIR  where the crossarch shim is (default <repo>/target/dist, from scripts/build.sh)
# A quick run: SOAK_CONTAINERS=50 SOAK_EXECS=200 SOAK_EVERY=25 scripts/soak.sh
set -euo pipefail
export LC_ALL=C

# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=testenv.sh
. "$CROSSARCH_REPO/scripts/testenv.sh"

CONTAINERS=${SOAK_CONTAINERS:-500}
EXECS=${SOAK_EXECS:-2000}
EVERY=${SOAK_EVERY:-100}
FD_TOLERANCE=${SOAK_FD_TOLERANCE:-3}
read -r -a RUNTIMES <<<"${SOAK_RUNTIMES:-io.containerd.crossarch.v2 io.containerd.runc.v2}"
GROUP_KEY=io.containerd.runc.v2.group
IMAGE=crossarch.test/busybox:amd64
FOREIGN_IMAGE=crossarch.test/busybox:arm64
export CROSSARCH_SHIM_DIR=${CROSSARCH_SHIM_DIR:-$CROSSARCH_REPO/target/dist}

need_root "soak.sh"
need_cmd ctr containerd runc python3 awk
for v in CONTAINERS EXECS EVERY FD_TOLERANCE; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "SOAK_$v must be a non-negative integer, not '${!v}'"
done
[ "$EVERY" -gt 0 ] || die "SOAK_EVERY must be positive"
[ "${#RUNTIMES[@]}" -ge 1 ] || die "SOAK_RUNTIMES is empty"

# The shim serving the group anchored by container $1: the one whose argv has `-id $1` and our
# socket (a group's shim is named after the container that started it).
group_shim() {
  python3 - "$1" "$TESTENV_DIR/containerd.sock" <<'EOF'
import os, sys
anchor, sock = sys.argv[1], sys.argv[2]
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        argv = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace").split("\0")
    except OSError:
        continue
    pairs = dict(zip(argv, argv[1:]))
    if pairs.get("-address") == sock and pairs.get("-id") == anchor and "start" not in argv:
        print(pid)
        break
EOF
}

# "fds threads rss_kB" of process $1.
usage_of() {
  local pid=$1 fds threads rss
  fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  threads=$(awk '/^Threads:/ { print $2 }' "/proc/$pid/status")
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
  echo "$fds $threads $rss"
}

# sample PHASE RUNTIME STEP: appends "step fds threads rss" to the phase's file.
sample() {
  local pid=${SHIM[$2]}
  [ -d "/proc/$pid" ] || die "$(short_name "$2"): its group shim (pid $pid) is gone at $1 step $3; see $TESTENV_DIR/containerd.log"
  echo "$3 $(usage_of "$pid")" >>"$WORK/$1.$(short_name "$2")"
}

remove_container() {
  ctrx task kill -s KILL "$1" >/dev/null 2>&1 || true
  local _
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    ctrx task rm -f "$1" >/dev/null 2>&1 && break
    ctrx task ls -q 2>/dev/null | grep -x -- "$1" >/dev/null || break
    sleep 0.1
  done
  ctrx container rm "$1" >/dev/null 2>&1 || true
}

# run_step RUNTIME N ARCH: one `ctr run --rm` in the runtime's group.
run_step() {
  local rt=$1 n=$2 arch=$3 id out
  id="s-$(short_name "$rt")-$arch-$n"
  local -a image=("$IMAGE")
  [ "$arch" = arm64 ] && image=(--platform linux/arm64 "$FOREIGN_IMAGE")
  if ! out=$(ctrx run --rm --runtime "$rt" --annotation "$GROUP_KEY=${GROUP[$rt]}" "${image[@]}" "$id" true </dev/null 2>&1); then
    FAILED[$rt]=$((${FAILED[$rt]:-0} + 1))
    warn "$(short_name "$rt"): container $id failed: $out"
    remove_container "$id"
  fi
}

# exec_step RUNTIME N CONTAINER: one `ctr task exec`; every 4th with stdin data.
exec_step() {
  local rt=$1 n=$2 id=$3 out ok=1
  if [ $((n % 4)) -eq 3 ]; then
    out=$(echo x | ctrx task exec --exec-id "e$n" "$id" cat 2>&1) && [ "$out" = x ] || {
      ok=0
      out="cat of stdin \"x\" printed \"$out\""
    }
  else
    out=$(ctrx task exec --exec-id "e$n" "$id" true </dev/null 2>&1) || ok=0
  fi
  if [ "$ok" -eq 0 ]; then
    FAILED[$rt]=$((${FAILED[$rt]:-0} + 1))
    warn "$(short_name "$rt"): exec e$n into $id failed: $out"
  fi
}

# slope FILE COLUMN: least-squares slope of COLUMN (2 fds, 3 threads, 4 rss) per 100 steps.
slope() {
  awk -v c="$2" '{ x[NR] = $1; y[NR] = $c; sx += $1; sy += $c }
    END {
      if (NR < 2) { print "n/a"; exit }
      mx = sx / NR; my = sy / NR
      for (i = 1; i <= NR; i++) { num += (x[i] - mx) * (y[i] - my); den += (x[i] - mx) ^ 2 }
      if (den == 0) { print "n/a"; exit }
      printf("%+.2f", num / den * 100)
    }' "$1"
}

# The host's mount table, as mount point, fs type and source (ids and options churn).
mount_table() { awk '{ sep = 0; for (i = 7; i <= NF; i++) if ($i == "-") { sep = i; break }
  print $5, $(sep + 1), $(sep + 2) }' /proc/self/mountinfo | sort; }
binfmt_state() {
  if [ -d /proc/sys/fs/binfmt_misc ] && mountpoint -q /proc/sys/fs/binfmt_misc 2>/dev/null; then
    ls /proc/sys/fs/binfmt_misc
  else
    echo "(binfmt_misc not mounted)"
  fi
}

"$CROSSARCH_REPO/scripts/fixtures.sh" >/dev/null

testenv_scratch soak

mount_table >"$WORK/mounts.before"
binfmt_state >"$WORK/binfmt.before"
testenv_start "$WORK/env"
ctrx image import "$CROSSARCH_REPO/fixtures/out/images/busybox-amd64.tar" >/dev/null
ctrx image import --all-platforms "$CROSSARCH_REPO/fixtures/out/images/busybox-arm64.tar" >/dev/null

declare -A SHIM=() GROUP=() FAILED=() FOREIGN=() EXEC_ARM=()
for rt in "${RUNTIMES[@]}"; do
  s=$(short_name "$rt")
  GROUP[$rt]="soak-$s"
  # The anchor keeps the group's shim alive through both phases.
  ctrx run -d --runtime "$rt" --annotation "$GROUP_KEY=${GROUP[$rt]}" "$IMAGE" "anchor-$s" sleep 100000 </dev/null >/dev/null ||
    die "$s: cannot start the anchor container; see $TESTENV_DIR/containerd.log"
  SHIM[$rt]=$(group_shim "anchor-$s")
  [ -n "${SHIM[$rt]}" ] || die "$s: no shim found for the group of anchor-$s"
  # Can this runtime run arm64 here? runc-v2 only through the host's binfmt_misc.
  if ctrx run --rm --runtime "$rt" --annotation "$GROUP_KEY=${GROUP[$rt]}" --platform linux/arm64 \
    "$FOREIGN_IMAGE" "probe-$s" true </dev/null >/dev/null 2>&1; then
    FOREIGN[$rt]=arm64
  else
    FOREIGN[$rt]=amd64
    remove_container "probe-$s"
    warn "$s: cannot run arm64 on this host (no binfmt_misc entry for it); its arm64 steps run native"
  fi
  ctrx run -d --runtime "$rt" --annotation "$GROUP_KEY=${GROUP[$rt]}" "$IMAGE" "x-$s" sleep 100000 </dev/null >/dev/null ||
    die "$s: cannot start the exec target x-$s"
  EXEC_ARM[$rt]="x-$s"
  if [ "${FOREIGN[$rt]}" = arm64 ]; then
    ctrx run -d --runtime "$rt" --annotation "$GROUP_KEY=${GROUP[$rt]}" --platform linux/arm64 \
      "$FOREIGN_IMAGE" "xa-$s" sleep 100000 </dev/null >/dev/null || die "$s: cannot start the arm64 exec target xa-$s"
    EXEC_ARM[$rt]="xa-$s"
  fi
  # Warm-up, so the first sample is the shim's working size, not its size at birth.
  for i in 1 2 3 4 5; do
    exec_step "$rt" "$((1000000 + i))" "x-$s"
    exec_step "$rt" "$((1000010 + i))" "${EXEC_ARM[$rt]}"
  done
done
sleep 1

started=$(date -u +%FT%TZ)
t0=$SECONDS
step "soak: $CONTAINERS containers, then $EXECS execs, per runtime"
for rt in "${RUNTIMES[@]}"; do sample containers "$rt" 0; done
for n in $(seq 1 "$CONTAINERS"); do
  for rt in "${RUNTIMES[@]}"; do
    if [ $((n % 2)) -eq 0 ]; then run_step "$rt" "$n" "${FOREIGN[$rt]}"; else run_step "$rt" "$n" amd64; fi
    if [ $((n % EVERY)) -eq 0 ]; then sample containers "$rt" "$n"; fi
  done
  if [ $((n % EVERY)) -eq 0 ]; then log "containers: $n/$CONTAINERS ($((SECONDS - t0)) s)"; fi
done
# Each phase ends with a sample taken once the shims had a moment: exited copy threads and
# idle pool threads go.
sleep 2
for rt in "${RUNTIMES[@]}"; do sample containers "$rt" "$CONTAINERS.end"; done
t1=$SECONDS
for rt in "${RUNTIMES[@]}"; do sample execs "$rt" 0; done
for n in $(seq 1 "$EXECS"); do
  for rt in "${RUNTIMES[@]}"; do
    s=$(short_name "$rt")
    if [ $((n % 2)) -eq 0 ]; then exec_step "$rt" "$n" "${EXEC_ARM[$rt]}"; else exec_step "$rt" "$n" "x-$s"; fi
    if [ $((n % EVERY)) -eq 0 ]; then sample execs "$rt" "$n"; fi
  done
  if [ $((n % EVERY)) -eq 0 ]; then log "execs: $n/$EXECS ($((SECONDS - t1)) s)"; fi
done
t2=$SECONDS
sleep 2
for rt in "${RUNTIMES[@]}"; do sample execs "$rt" "$EXECS.end"; done

# ---------------------------------------------------------------------------------------------
# Report

problems=()
echo
echo "crossarch soak, $started: $(nproc) CPUs, kernel $(uname -r), containerd $(containerd --version | awk '{print $3}'), $(runc --version | sed -n 1p)"
echo "containers phase $((t1 - t0)) s, execs phase $((t2 - t1)) s (both runtimes interleaved); load average now $(cut -d' ' -f1-3 /proc/loadavg)"
for rt in "${RUNTIMES[@]}"; do
  s=$(short_name "$rt")
  echo "- $s: shim pid ${SHIM[$rt]}, arm64 steps run ${FOREIGN[$rt]}, failed steps ${FAILED[$rt]:-0}"
  # The reference shim's failures are findings about it, not about crossarch.
  if [ "${FAILED[$rt]:-0}" -gt 0 ]; then
    if [ "$rt" = io.containerd.crossarch.v2 ]; then
      problems+=("$s: ${FAILED[$rt]} steps failed")
    else
      echo "  (the reference's failures above are reported, not counted: see its WARNING lines)"
    fi
  fi
done
for phase in containers execs; do
  echo
  header="| $phase step |"
  sep="|---|"
  for rt in "${RUNTIMES[@]}"; do
    header+=" $(short_name "$rt") fds | threads | RSS kB |"
    sep+="---|---|---|"
  done
  echo "$header"
  echo "$sep"
  # Steps are the same in every runtime's file: join them line by line.
  mapfile -t steps < <(awk '{ print $1 }' "$WORK/$phase.$(short_name "${RUNTIMES[0]}")")
  for i in "${!steps[@]}"; do
    line="| ${steps[$i]/.end/ (settled)} |"
    for rt in "${RUNTIMES[@]}"; do
      read -r _ fds threads rss < <(sed -n "$((i + 1))p" "$WORK/$phase.$(short_name "$rt")")
      line+=" $fds | $threads | $rss |"
    done
    echo "$line"
  done
  line="| slope per 100 steps |"
  for rt in "${RUNTIMES[@]}"; do
    f="$WORK/$phase.$(short_name "$rt")"
    # The settled sample is taken at the last step: give it that step for the slope.
    sed 's/\.end / /' "$f" >"$f.num"
    line+=" $(slope "$f.num" 2) | $(slope "$f.num" 3) | $(slope "$f.num" 4) |"
    first=$(awk 'NR == 1 { print $2 }' "$f")
    last=$(awk 'END { print $2 }' "$f")
    if [ "$last" -gt $((first + FD_TOLERANCE)) ]; then
      problems+=("$(short_name "$rt"): $phase phase took its shim from $first to $last fds")
    fi
  done
  echo "$line"
done

# Nothing may be left once every container is gone.
for rt in "${RUNTIMES[@]}"; do
  s=$(short_name "$rt")
  for id in "x-$s" "xa-$s" "anchor-$s"; do remove_container "$id"; done
done
for rt in "${RUNTIMES[@]}"; do
  for _ in $(seq 1 100); do
    [ -d "/proc/${SHIM[$rt]}" ] || break
    sleep 0.1
  done
  [ ! -d "/proc/${SHIM[$rt]}" ] || problems+=("$(short_name "$rt"): its group shim ${SHIM[$rt]} outlived its last container")
done
left=$(awk -v d="$TESTENV_DIR/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo)
[ -z "$left" ] || problems+=("mounts left under $TESTENV_DIR: $(echo "$left" | tr '\n' ' ')")
bundles="$TESTENV_DIR/state/io.containerd.runtime.v2.task/$TESTENV_NS"
if [ -d "$bundles" ] && [ -n "$(ls -A "$bundles")" ]; then
  problems+=("bundles left in $bundles: $(ls -A "$bundles" | tr '\n' ' ')")
fi
for d in "/run/containerd/runc/$TESTENV_NS" "$TESTENV_DIR/state/runc/$TESTENV_NS"; do
  if [ -d "$d" ] && [ -n "$(ls -A "$d")" ]; then
    problems+=("runc state left in $d: $(ls -A "$d" | tr '\n' ' ')")
  fi
done
for root in $(_testenv_cgroup_roots); do
  if [ -d "$root/$TESTENV_NS" ] && [ -n "$(find "$root/$TESTENV_NS" -mindepth 1 -type d)" ]; then
    problems+=("cgroups left under $root/$TESTENV_NS: $(find "$root/$TESTENV_NS" -mindepth 1 -type d | tr '\n' ' ')")
  fi
done
# The daemon and its shims get TMPDIR=$TESTENV_DIR/tmp (testenv.sh): temporary files stay there.
if [ -n "$(ls -A "$TESTENV_DIR/tmp" 2>/dev/null)" ]; then
  problems+=("temporary files left in $TESTENV_DIR/tmp: $(ls -A "$TESTENV_DIR/tmp" | tr '\n' ' ')")
fi
# A shim logs its panics (logger.rs); none may have happened.
panics=$(grep -c 'shim panicked:' "$TESTENV_DIR/containerd.log" || true)
[ "$panics" -eq 0 ] || problems+=("$panics shim panics in $TESTENV_DIR/containerd.log")
if ! diff <(binfmt_state) "$WORK/binfmt.before" >/dev/null; then
  problems+=("the host's binfmt_misc changed: $(diff "$WORK/binfmt.before" <(binfmt_state) | tr '\n' ' ')")
fi
# The daemon's own dirs are all under $WORK; the rest of the table must be as it was.
mount_table | grep -vF "$WORK/" >"$WORK/mounts.after" || true
if ! diff -u "$WORK/mounts.before" "$WORK/mounts.after" >"$WORK/mounts.diff"; then
  problems+=("the host's mount table changed (another test run on this machine can do that too): $(grep '^[-+][^-+]' "$WORK/mounts.diff" | tr '\n' ';')")
fi

echo
if [ "${#problems[@]}" -eq 0 ]; then
  echo "nothing left: no mount, bundle, runc state, cgroup or temporary file of the run; no shim panic; host mount table and binfmt_misc unchanged"
else
  printf 'PROBLEM: %s\n' "${problems[@]}"
  exit 1
fi
