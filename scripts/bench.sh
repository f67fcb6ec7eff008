#!/usr/bin/env bash
# Side-by-side benchmark: crossarch against containerd's Go runc shim, same image, same private
# containerd, one run. Prints a markdown table (figure | runc-v2 | crossarch | ratio) on stdout;
# progress goes to stderr. It is a report: nothing here asserts a timing.
#
# Usage: sudo scripts/bench.sh
# Env:
#   BENCH_RUNTIMES   runtimes, first is the baseline of the ratio
#                    (default "io.containerd.runc.v2 io.containerd.crossarch.v2")
#   BENCH_RUNS       samples for the latency figures (default 30)
#   BENCH_GROUPS     which measurement groups to run, in order
#                    (default "run exec idle parallel sigterm foreign init inspect")
#                    foreign: arm64 start latency in userns mode (default config, mode "auto")
#                      and in wrap mode, interleaved with native crossarch and native baseline;
#                    init: start cost of the injected init (enabled vs `[init] enabled = false`)
#                      and the init's memory;
#                    inspect: the shim's "inspected and prepared in N µs" debug lines, read
#                      from containerd's log (needs BENCH_SHIM_LOG_LEVEL=debug)
#   BENCH_IDLE       idle containers for the memory figures (default 10)
#   BENCH_SIGTERM_RUNS  samples for the SIGTERM figures (default 5)
#   BENCH_PARALLEL_REPEAT  repetitions of the 20-containers figure (default 3)
#   BENCH_INIT_HOST_RUNS  samples of the init's fork+exec cost on the host (default 200)
#   BENCH_SHIM_LOG_LEVEL  CROSSARCH_LOG_LEVEL for crossarch's shims (default debug: it costs a
#                    few fifo writes per container, and containerd and the Go shim stay at info)
#   CROSSARCH_SHIM_DIR  where the crossarch shim is (default <repo>/target/dist, from scripts/build.sh)
#
# Adding a figure: write `group_<name> RUNTIME...`, declare its rows with `figure`, store
# samples with `sample` (or a value with `result`), and add <name> to BENCH_GROUPS' default.
set -euo pipefail
export LC_ALL=C

# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=testenv.sh
. "$CROSSARCH_REPO/scripts/testenv.sh"

read -r -a RUNTIMES <<<"${BENCH_RUNTIMES:-io.containerd.runc.v2 io.containerd.crossarch.v2}"
N=${BENCH_RUNS:-30}
IDLE=${BENCH_IDLE:-10}
SIGTERM_RUNS=${BENCH_SIGTERM_RUNS:-5}
PARALLEL_REPEAT=${BENCH_PARALLEL_REPEAT:-3}
INIT_HOST_RUNS=${BENCH_INIT_HOST_RUNS:-200}
SHIM_LOG_LEVEL=${BENCH_SHIM_LOG_LEVEL:-debug}
read -r -a GROUPS_TO_RUN <<<"${BENCH_GROUPS:-run exec idle parallel sigterm foreign init inspect}"
CROSSARCH=io.containerd.crossarch.v2
IMAGE=crossarch.test/busybox:amd64
FOREIGN_IMAGE=crossarch.test/busybox:arm64
export CROSSARCH_SHIM_DIR=${CROSSARCH_SHIM_DIR:-$CROSSARCH_REPO/target/dist}

need_root "bench.sh"
need_cmd ctr containerd runc python3 xargs
[ "${#RUNTIMES[@]}" -ge 1 ] || die "BENCH_RUNTIMES is empty"
[[ "$N" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '$N'"

# ---------------------------------------------------------------------------------------------
# Result table

FIGURES=()             # figure keys in display order
declare -A LABEL=()    # key -> label
declare -A UNIT=()     # key -> unit printed after numbers ("ms", "MB", "")
declare -A VALUE=()    # "key|runtime" -> number
declare -A CELL=()     # "key|runtime" -> text shown instead of a number (n/a, failed, ...)
declare -A SAMPLES=()  # "key|runtime" -> file of samples, one per line
declare -A RATIO_REF=() # key -> "otherkey|runtime": the ratio's denominator, instead of key|baseline
declare -A RATIO_NOTE=() # key -> text after that ratio, saying what it divides by
declare -A TARGET=()   # key -> "ratio|value LIMIT TEXT": a target, checked in the target column

figure() { # figure KEY UNIT LABEL
  [ -n "${LABEL[$1]:-}" ] || FIGURES+=("$1")
  UNIT[$1]=$2
  LABEL[$1]=$3
}
result() { VALUE["$1|$2"]=$3; }
# ratio_ref KEY REFKEY REFRUNTIME NOTE: the ratio divides by REFKEY's value of REFRUNTIME.
ratio_ref() {
  RATIO_REF[$1]="$2|$3"
  RATIO_NOTE[$1]=$4
}
# target KEY ratio|value LIMIT TEXT: met when the ratio (or the last runtime's value) <= LIMIT.
target() { TARGET[$1]="$2 $3 $4"; }
note() { CELL["$1|$2"]=$3; }
sample() { # sample KEY RUNTIME NUMBER
  local f="$WORK/samples/$1.${2//[^a-zA-Z0-9]/_}"
  SAMPLES["$1|$2"]=$f
  echo "$3" >>"$f"
}

# Nearest-rank percentile of a file of numbers; 50 gives the median (mean of the two middles).
percentile() {
  sort -g "$1" | awk -v p="$2" '{ v[NR] = $1 }
    END {
      if (NR == 0) exit 1
      if (p == 50) { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m; exit }
      i = int(p / 100 * NR); if (i < p / 100 * NR) i++; if (i < 1) i = 1; print v[i]
    }'
}
# A figure computed from another figure's samples: derive KEY FROM PERCENTILE.
derive() {
  local key=$1 from=$2 p=$3 rt f
  for rt in "${RUNTIMES[@]}"; do
    f=${SAMPLES["$from|$rt"]:-}
    if [ -n "$f" ] && [ -s "$f" ]; then result "$key" "$rt" "$(percentile "$f" "$p")"; fi
  done
}

short_name() {
  case "$1" in
    io.containerd.runc.v2) echo runc-v2 ;;
    io.containerd.crossarch.v2) echo crossarch ;;
    *) echo "$1" ;;
  esac
}
# containerd's rule: io.containerd.<name>.<version> runs containerd-shim-<name>-<version>.
shim_binary() {
  local r=${1#io.containerd.}
  echo "containerd-shim-${r%.*}-${r##*.}"
}

fmt() { # fmt NUMBER UNIT
  case "$2" in
    ms) awk -v v="$1" 'BEGIN { printf(v >= 100 ? "%.0f ms" : "%.1f ms", v) }' ;;
    s) awk -v v="$1" 'BEGIN { printf("%.2f s", v) }' ;;
    MB) awk -v v="$1" 'BEGIN { printf("%.1f MB", v) }' ;;
    kB) awk -v v="$1" 'BEGIN { printf("%.0f kB", v) }' ;;
    us) awk -v v="$1" 'BEGIN { printf("%.0f µs", v) }' ;;
    *) awk -v v="$1" 'BEGIN { printf("%g", v) }' ;;
  esac
}

# The ratio cell of KEY: last runtime's value over the baseline's (or over RATIO_REF's).
ratio_of() {
  local key=$1 last=${RUNTIMES[-1]} ref base other
  ref=${RATIO_REF[$key]:-"$key|${RUNTIMES[0]}"}
  [ -z "${CELL["$key|$last"]:-}" ] && [ -z "${CELL[$ref]:-}" ] || return 1
  other=${VALUE["$key|$last"]:-}
  base=${VALUE[$ref]:-}
  [ -n "$base" ] && [ -n "$other" ] || return 1
  awk -v b="$base" -v o="$other" 'BEGIN { if (!(b > 0)) exit 1; printf("%.2f", o / b) }'
}

print_table() {
  local key rt cell ratio kind limit text v hdr="| figure |" sep="|---|"
  for rt in "${RUNTIMES[@]}"; do
    hdr+=" $(short_name "$rt") |"
    sep+="---|"
  done
  if [ "${#RUNTIMES[@]}" -ge 2 ]; then
    hdr+=" ratio |"
    sep+="---|"
  fi
  hdr+=" target |"
  sep+="---|"
  echo "$hdr"
  echo "$sep"
  for key in "${FIGURES[@]}"; do
    local line="| ${LABEL[$key]} |"
    for rt in "${RUNTIMES[@]}"; do
      if [ -n "${CELL["$key|$rt"]:-}" ]; then
        cell=${CELL["$key|$rt"]}
      elif [ -n "${VALUE["$key|$rt"]:-}" ]; then
        cell=$(fmt "${VALUE["$key|$rt"]}" "${UNIT[$key]}")
      else
        cell="n/a"
      fi
      line+=" $cell |"
    done
    ratio=
    if [ "${#RUNTIMES[@]}" -ge 2 ] && ratio=$(ratio_of "$key"); then
      cell="${ratio}×"
      [ -z "${RATIO_NOTE[$key]:-}" ] || cell+=" ${RATIO_NOTE[$key]}"
      line+=" $cell |"
    elif [ "${#RUNTIMES[@]}" -ge 2 ]; then
      ratio=
      line+=" — |"
    fi
    if [ -n "${TARGET[$key]:-}" ]; then
      read -r kind limit text <<<"${TARGET[$key]}"
      if [ "$kind" = ratio ]; then v=$ratio; else v=${VALUE["$key|${RUNTIMES[-1]}"]:-}; fi
      [ -z "${CELL["$key|${RUNTIMES[-1]}"]:-}" ] || v=
      if [ -z "$v" ]; then
        line+=" $text |"
      elif awk -v v="$v" -v l="$limit" 'BEGIN { exit !(v <= l) }'; then
        line+=" $text: met |"
      else
        line+=" $text: **missed** |"
      fi
    else
      line+=" |"
    fi
    echo "$line"
  done
}

# ---------------------------------------------------------------------------------------------
# Helpers

us_now() { echo "${EPOCHREALTIME/./}"; }
ms_since() { awk -v a="$1" -v b="$(us_now)" 'BEGIN { printf("%.3f", (b - a) / 1000) }'; }

SEQ=0
new_id() { # sets ID to a fresh container id for runtime $1 and purpose $2
  SEQ=$((SEQ + 1))
  ID="b-$(short_name "$1")-$2-$SEQ"
}

remove_container() {
  ctrx task kill -s KILL "$1" >/dev/null 2>&1 || true
  local _
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    ctrx task rm -f "$1" >/dev/null 2>&1 && break
    ctrx task ls -q 2>/dev/null | grep -qx "$1" || break
    sleep 0.1
  done
  ctrx container rm "$1" >/dev/null 2>&1 || true
}

# Shims of this private daemon: argv[0] is the shim binary and `-address` names our socket,
# so no other containerd's shims are ever counted.
shim_pids() { # shim_pids BINARY_NAME
  python3 - "$1" "$TESTENV_DIR/containerd.sock" <<'EOF'
import os, sys
name, sock = sys.argv[1], sys.argv[2]
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
    except OSError:
        continue
    argv = [a.decode(errors="replace") for a in argv]
    if not argv or os.path.basename(argv[0]) != name:
        continue
    if any(a == "-address" and i + 1 < len(argv) and argv[i + 1] == sock for i, a in enumerate(argv)):
        print(pid)
EOF
}

# ---------------------------------------------------------------------------------------------
# Measurement groups. Each takes the runtimes that passed the warm-up.

group_run() {
  figure run_median ms "\`ctr run --rm IMAGE id /bin/true\`, median of $N"
  figure run_p95 ms "\`ctr run --rm IMAGE id /bin/true\`, p95 of $N"
  local i rt t0 id
  for i in $(seq 1 "$N"); do
    # Interleaved, so drift on the machine hits every runtime alike.
    for rt in "$@"; do
      new_id "$rt" run
      id=$ID
      t0=$(us_now)
      if ctrx run --rm --runtime "$rt" "$IMAGE" "$id" /bin/true </dev/null >/dev/null 2>&1; then
        sample run "$rt" "$(ms_since "$t0")"
      else
        note run_median "$rt" failed
        note run_p95 "$rt" failed
        remove_container "$id"
      fi
    done
  done
  derive run_median run 50
  derive run_p95 run 95
}

group_exec() {
  figure exec_median ms "\`ctr task exec\` of /bin/true into a running container, median of $N"
  local i rt t0 id
  declare -A target=()
  for rt in "$@"; do
    new_id "$rt" exec
    id=$ID
    ctrx run -d --runtime "$rt" "$IMAGE" "$id" sleep 3600 </dev/null >/dev/null 2>&1 ||
      { note exec_median "$rt" "failed to start"; continue; }
    target[$rt]=$id
  done
  for i in $(seq 1 "$N"); do
    for rt in "$@"; do
      [ -n "${target[$rt]:-}" ] || continue
      t0=$(us_now)
      if ctrx task exec --exec-id "e$i" "${target[$rt]}" /bin/true </dev/null >/dev/null 2>&1; then
        sample exec "$rt" "$(ms_since "$t0")"
      else
        note exec_median "$rt" failed
      fi
    done
  done
  for rt in "${!target[@]}"; do remove_container "${target[$rt]}"; done
  derive exec_median exec 50
}

group_idle() {
  figure idle_rss MB "RSS per shim, $IDLE idle containers"
  figure idle_pss MB "PSS per shim, $IDLE idle containers"
  figure idle_pss_total MB "PSS of all shims, $IDLE idle containers"
  figure idle_threads "" "threads per shim, $IDLE idle containers"
  figure idle_shims "" "shim processes for $IDLE containers"
  local rt i id ids pids pid rss pss thr n
  for rt in "$@"; do
    ids=()
    for i in $(seq 1 "$IDLE"); do
      new_id "$rt" idle
      id=$ID
      if ctrx run -d --runtime "$rt" "$IMAGE" "$id" sleep 3600 </dev/null >/dev/null 2>&1; then
        ids+=("$id")
      fi
    done
    if [ "${#ids[@]}" -ne "$IDLE" ]; then
      note idle_rss "$rt" "failed (${#ids[@]}/$IDLE started)"
    else
      # Let the shims settle (Go's GC, lazy thread start) before reading memory.
      sleep 2
      mapfile -t pids < <(shim_pids "$(shim_binary "$rt")")
      n=${#pids[@]}
      if [ "$n" -eq 0 ]; then
        note idle_rss "$rt" "no $(shim_binary "$rt") found"
      else
        rss=0 pss=0 thr=0
        for pid in "${pids[@]}"; do
          rss=$((rss + $(awk '/^Rss:/ { print $2 }' "/proc/$pid/smaps_rollup")))
          pss=$((pss + $(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup")))
          thr=$((thr + $(awk '/^Threads:/ { print $2 }' "/proc/$pid/status")))
        done
        result idle_rss "$rt" "$(awk -v v="$rss" -v n="$n" 'BEGIN { print v / n / 1024 }')"
        result idle_pss "$rt" "$(awk -v v="$pss" -v n="$n" 'BEGIN { print v / n / 1024 }')"
        result idle_pss_total "$rt" "$(awk -v v="$pss" 'BEGIN { print v / 1024 }')"
        result idle_threads "$rt" "$(awk -v v="$thr" -v n="$n" 'BEGIN { print v / n }')"
        result idle_shims "$rt" "$n"
      fi
    fi
    for id in "${ids[@]}"; do remove_container "$id"; done
  done
}

group_parallel() {
  figure parallel s "20 containers (\`ctr run --rm … /bin/true\`), 4 at a time, wall time, median of $PARALLEL_REPEAT"
  local rt t0 i prefix id
  for i in $(seq 1 "$PARALLEL_REPEAT"); do
    for rt in "$@"; do
      new_id "$rt" par
      prefix=$ID
      t0=$(us_now)
      # GNU xargs gives each command /dev/null as stdin.
      if seq 1 20 | xargs -P 4 -I{} ctr --address "$TESTENV_DIR/containerd.sock" -n "$TESTENV_NS" \
        run --rm --runtime "$rt" "$IMAGE" "$prefix-{}" /bin/true >/dev/null 2>&1; then
        sample parallel "$rt" "$(awk -v ms="$(ms_since "$t0")" 'BEGIN { print ms / 1000 }')"
      else
        note parallel "$rt" failed
        for id in $(ctrx container ls -q | grep "^$prefix-" || true); do remove_container "$id"; done
      fi
    done
  done
  derive parallel parallel 50
}

# Time from just before `ctr task kill -s TERM` to the exit the shim reports (exited_at of the
# /tasks/exit event), so the ctr client's own start-up (~11 ms) is included, as for the others.
sigterm_once() { # sigterm_once RUNTIME ID ARGS... ; prints ms, "failed" or "timeout"
  local rt=$1 id=$2 t0 i
  shift 2
  ctrx run -d --runtime "$rt" "$IMAGE" "$id" "$@" </dev/null >/dev/null 2>&1 || { echo failed; return; }
  # Wait until the command is really running (the shell's trap is set before it forks sleep).
  for i in $(seq 1 50); do
    [ "$(ctrx task ps "$id" 2>/dev/null | tail -n +2 | wc -l)" -ge "$SIGTERM_READY_PROCS" ] && break
    sleep 0.05
  done
  sleep 0.1
  t0=$(us_now)
  ctrx task kill -s TERM "$id" >/dev/null 2>&1 || true
  for i in $(seq 1 60); do
    ctrx task ls 2>/dev/null | awk -v id="$id" '$1 == id { print $3 }' | grep -q STOPPED && break
    sleep 0.05
  done
  local exited
  exited=$(python3 - "$EVENTS" "$id" <<'EOF'
import json, re, sys
from datetime import datetime, timezone
path, cid = sys.argv[1], sys.argv[2]
for line in open(path, errors="replace"):
    if " /tasks/exit " not in line:
        continue
    body = json.loads(line.split(" /tasks/exit ", 1)[1])
    if body.get("container_id") != cid or body.get("id", cid) != cid:
        continue
    m = re.match(r"(\d+-\d+-\d+T\d+:\d+:\d+)(\.\d+)?Z", body.get("exited_at", ""))
    if m and not m.group(1).startswith("0001"):
        ts = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
        print(int(ts) * 1000000 + int(float(m.group(2) or 0) * 1e6))
    else:  # no exited_at: fall back to when containerd published the event
        m = re.match(r"(\d+-\d+-\d+ \d+:\d+:\d+)(\.\d+)? ", line)
        ts = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
        print(int(ts) * 1000000 + int(float(m.group(2) or 0) * 1e6))
    break
EOF
  )
  remove_container "$id"
  if [ -n "$exited" ]; then
    awk -v a="$t0" -v b="$exited" 'BEGIN { printf("%.3f\n", (b - a) / 1000) }'
  else
    echo timeout
  fi
}

group_sigterm() {
  figure sigterm_trap ms "SIGTERM to exit, \`sh\` with a TERM trap waiting on \`sleep\`, median of $SIGTERM_RUNS"
  figure sigterm_bare ms "SIGTERM to exit, bare \`sleep 3600\` as the command, median of $SIGTERM_RUNS"
  local rt i v
  EVENTS="$WORK/events.log"
  ctrx events >"$EVENTS" 2>&1 &
  local events_pid=$!
  sleep 0.2
  for i in $(seq 1 "$SIGTERM_RUNS"); do
    for rt in "$@"; do
      SIGTERM_READY_PROCS=2
      # shellcheck disable=SC2016
      new_id "$rt" term
      v=$(sigterm_once "$rt" "$ID" sh -c 'trap "exit 143" TERM; sleep 3600 & wait')
      case "$v" in
        failed | timeout) note sigterm_trap "$rt" "$v" ;;
        *) sample sigterm_trap "$rt" "$v" ;;
      esac
      # Without an init, `sleep` is PID 1 and the kernel drops the SIGTERM it has no handler
      # for: it never exits (reported as "no exit in 3 s"). An injected init forwards it.
      # One timeout says it all; the 3 s wait is not repeated.
      [ -z "${CELL["sigterm_bare|$rt"]:-}" ] || continue
      SIGTERM_READY_PROCS=1
      new_id "$rt" bare
      v=$(sigterm_once "$rt" "$ID" sleep 3600)
      case "$v" in
        failed) note sigterm_bare "$rt" failed ;;
        timeout) note sigterm_bare "$rt" "no exit in 3 s" ;;
        *) sample sigterm_bare "$rt" "$v" ;;
      esac
    done
  done
  kill "$events_pid" 2>/dev/null || true
  wait "$events_pid" 2>/dev/null || true
  derive sigterm_trap sigterm_trap 50
  derive sigterm_bare sigterm_bare 50
}

group_foreign() {
  figure foreign_median ms "\`ctr run --rm --platform linux/arm64 ARM64-IMAGE id /bin/true\`, median of $N"
  local i rt t0 id
  declare -A broken=()
  for i in $(seq 1 "$N"); do
    for rt in "$@"; do
      [ -z "${broken[$rt]:-}" ] || continue
      new_id "$rt" foreign
      id=$ID
      t0=$(us_now)
      if ctrx run --rm --runtime "$rt" --platform linux/arm64 "$FOREIGN_IMAGE" "$id" /bin/true </dev/null >/dev/null 2>&1; then
        sample foreign "$rt" "$(ms_since "$t0")"
      else
        # Plain runc cannot run an arm64 binary; one failure is enough to say so.
        broken[$rt]=1
        note foreign_median "$rt" "cannot run"
        remove_container "$id"
      fi
    done
  done
  derive foreign_median foreign 50
}

# ---------------------------------------------------------------------------------------------
# Main

"$CROSSARCH_REPO/scripts/fixtures.sh" >/dev/null

WORK=$(mktemp -d /tmp/crossarch-bench.XXXXXX)
mkdir -p "$WORK/samples"
cleanup() {
  local rc=$?
  testenv_stop "$WORK/env" || true
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

testenv_start "$WORK/env"
ctrx image import "$CROSSARCH_REPO/fixtures/out/images/busybox-amd64.tar" >/dev/null
ctrx image import --all-platforms "$CROSSARCH_REPO/fixtures/out/images/busybox-arm64.tar" >/dev/null

# Warm-up: unpack the image once, and find out which runtimes work at all.
usable=()
declare -A WHY=()
for rt in "${RUNTIMES[@]}"; do
  shim=$(shim_binary "$rt")
  if ! PATH="$CROSSARCH_SHIM_DIR:$PATH" command -v "$shim" >/dev/null 2>&1; then
    WHY[$rt]="n/a (no $shim)"
    warn "$rt: $shim not found in $CROSSARCH_SHIM_DIR or PATH; its column will be empty"
    continue
  fi
  new_id "$rt" warmup
  id=$ID
  if out=$(ctrx run --rm --runtime "$rt" "$IMAGE" "$id" /bin/true </dev/null 2>&1); then
    usable+=("$rt")
  else
    WHY[$rt]="n/a (warm-up failed)"
    warn "$rt: warm-up container failed: $out"
    remove_container "$id"
  fi
done

started=$(date -u +%FT%TZ)
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
for g in "${GROUPS_TO_RUN[@]}"; do
  declare -F "group_$g" >/dev/null || die "unknown group '$g' in BENCH_GROUPS"
  log "bench: $g ..."
  if [ "${#usable[@]}" -gt 0 ]; then
    "group_$g" "${usable[@]}"
  else
    "group_$g"
  fi
done
for rt in "${!WHY[@]}"; do
  for key in "${FIGURES[@]}"; do note "$key" "$rt" "${WHY[$rt]}"; done
done

echo
echo "crossarch bench, $started: $(nproc) CPUs, load average at start $load_at_start, kernel $(uname -r), containerd $(containerd --version | awk '{print $3}'), $(runc --version | head -1)"
echo "image $IMAGE; times are wall clock including the ctr client"
for rt in "${RUNTIMES[@]}"; do
  shim=$(PATH="$CROSSARCH_SHIM_DIR:$PATH" command -v "$(shim_binary "$rt")" || echo "(missing) $(shim_binary "$rt")")
  echo "- $(short_name "$rt"): $rt -> $shim"
done
echo
print_table
