#!/usr/bin/env bash
# Side-by-side benchmark: crossarch against containerd's Go runc shim and the Rust runc shim of
# containerd's rust-extensions, same image, same private containerd, one run. Prints a markdown
# table (figure | runc-v2 | runc-rs | crossarch | ratio) on stdout; progress goes to stderr. It
# is a report: nothing here asserts a timing.
#
# runc-rs is the crate `containerd-runc-shim` (binary containerd-shim-runc-v2-rs), built once
# per version with `cargo install --locked` from crates.io into BENCH_CACHE and run as the
# runtime io.containerd.runcrs.v2 (a copy named containerd-shim-runcrs-v2 on the daemon's PATH).
# When it cannot be built or does not start a container, its column says why.
#
# Usage (as root): scripts/bench.sh
# Env:
#   BENCH_RUNTIMES   runtimes; the ratio is the last one's value over the first one's
#                    (default "io.containerd.runc.v2 io.containerd.runcrs.v2 io.containerd.crossarch.v2")
#   BENCH_RUNC_RS_VERSION  the containerd-runc-shim crate version for io.containerd.runcrs.v2
#                    (default 0.1.1: 0.1.x speaks Task API v2, which containerd 1.6 needs)
#   BENCH_CACHE      where that build is kept between runs (default <repo>/target/bench-cache)
#   BENCH_RUNS       samples for the latency figures (default 30)
#   BENCH_GROUPS     which measurement groups to run, in order
#                    (default "run exec idle parallel sigterm foreign init inspect shimcost pod
#                    foreignexec size")
#                    foreign: arm64 start latency in userns mode (default config, mode "auto"),
#                      in trace mode and in wrap mode, interleaved with native crossarch and native baseline;
#                    init: start cost of the injected init (enabled vs `[init] enabled = false`)
#                      and the init's memory;
#                    inspect: the shim's "inspected and planned in N µs" (inspection and the
#                      plan) and "inspected and prepared in N µs" (and the spec applied and
#                      written) debug lines, read from containerd's log
#                    shimcost: `ctr run --rm` against bare `runc run` of the same bundle;
#                    pod: RSS and start latency of one shim serving a pod group (BENCH_POD_SIZES);
#                    foreignexec: per-exec cost of a loop of `/bin/true` in an arm64 container,
#                      against the same loop of qemu-aarch64-static on the host, and in trace
#                      mode against userns mode, with a fork-only loop beside it, and
#                      another user's loop (after su) in trace mode;
#                    size: bytes of each shim binary (and of crossarch's init)
#   BENCH_IDLE       idle containers for the memory figures (default 10)
#   BENCH_SIGTERM_RUNS  samples for the SIGTERM figures (default 5)
#   BENCH_PARALLEL_REPEAT  repetitions of the 20-containers figure (default 3)
#   BENCH_INIT_HOST_RUNS  samples of the init's fork+exec cost on the host (default 200)
#   BENCH_POD_SIZES  pod group sizes at which the pod group's shim is measured (default "1 10 50")
#   BENCH_FOREIGN_EXECS  `/bin/true` execs in one foreignexec loop (default 200)
#   BENCH_FOREIGN_EXEC_REPEAT  foreignexec loops per runtime and on the host (default 3)
#   BENCH_SHIM_LOG_LEVEL  CROSSARCH_LOG_LEVEL for crossarch's shims (default info, as on a node,
#                    like containerd and the Go shim). The init and inspect groups read the
#                    shim's debug lines: below debug they run against a second private
#                    containerd whose crossarch shims log at debug
#   CROSSARCH_SHIM_DIR  where the crossarch shim is (default <repo>/target/dist, from scripts/build.sh)
#   CROSSARCH_FIXTURES  prebuilt fixtures to use as they are (default: <repo>/fixtures/out, which
#                    scripts/fixtures.sh brings up to date first)
#
# Adding a figure: write `group_<name> RUNTIME...`, declare its rows with `figure`, store
# samples with `sample` (or a value with `result`), and add <name> to BENCH_GROUPS' default.
set -euo pipefail
export LC_ALL=C

# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=testenv.sh
. "$CROSSARCH_REPO/scripts/testenv.sh"

read -r -a RUNTIMES <<<"${BENCH_RUNTIMES:-io.containerd.runc.v2 io.containerd.runcrs.v2 io.containerd.crossarch.v2}"
N=${BENCH_RUNS:-30}
IDLE=${BENCH_IDLE:-10}
SIGTERM_RUNS=${BENCH_SIGTERM_RUNS:-5}
PARALLEL_REPEAT=${BENCH_PARALLEL_REPEAT:-3}
INIT_HOST_RUNS=${BENCH_INIT_HOST_RUNS:-200}
SHIM_LOG_LEVEL=${BENCH_SHIM_LOG_LEVEL:-info}
DEBUG_GROUPS=" init inspect "
read -r -a POD_SIZES <<<"${BENCH_POD_SIZES:-1 10 50}"
FOREIGN_EXECS=${BENCH_FOREIGN_EXECS:-200}
FOREIGN_EXEC_REPEAT=${BENCH_FOREIGN_EXEC_REPEAT:-3}
read -r -a GROUPS_TO_RUN <<<"${BENCH_GROUPS:-run exec idle parallel sigterm foreign init inspect shimcost pod foreignexec size}"
CROSSARCH=io.containerd.crossarch.v2
RUNC_RS=io.containerd.runcrs.v2
RUNC_RS_VERSION=${BENCH_RUNC_RS_VERSION:-0.1.1}
CACHE=${BENCH_CACHE:-$CROSSARCH_REPO/target/bench-cache}
IMAGE=crossarch.test/busybox:amd64
FOREIGN_IMAGE=crossarch.test/busybox:arm64
export CROSSARCH_SHIM_DIR=${CROSSARCH_SHIM_DIR:-$CROSSARCH_REPO/target/dist}
FIXTURES=${CROSSARCH_FIXTURES:-$CROSSARCH_REPO/fixtures/out}

need_root "bench.sh"
need_cmd ctr containerd runc python3 xargs
[ "${#RUNTIMES[@]}" -ge 1 ] || die "BENCH_RUNTIMES is empty"
[[ "$N" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '$N'"
[ "${#POD_SIZES[@]}" -ge 1 ] || die "BENCH_POD_SIZES is empty"
prev=0
for s in "${POD_SIZES[@]}"; do
  if ! [[ "$s" =~ ^[1-9][0-9]*$ ]] || [ "$s" -le "$prev" ]; then
    die "BENCH_POD_SIZES must be increasing positive integers, not '${POD_SIZES[*]}'"
  fi
  prev=$s
done
[[ "$FOREIGN_EXECS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_FOREIGN_EXECS must be a positive integer, not '$FOREIGN_EXECS'"
[[ "$FOREIGN_EXEC_REPEAT" =~ ^[1-9][0-9]*$ ]] || die "BENCH_FOREIGN_EXEC_REPEAT must be a positive integer, not '$FOREIGN_EXEC_REPEAT'"

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

# containerd's rule: io.containerd.<name>.<version> runs containerd-shim-<name>-<version>.
shim_binary() {
  local r=${1#io.containerd.}
  echo "containerd-shim-${r%.*}-${r##*.}"
}

# The file the daemon runs for RUNTIME (testenv.sh puts CROSSARCH_SHIM_DIR first on its PATH).
shim_path() { PATH="$CROSSARCH_SHIM_DIR:$PATH" command -v "$(shim_binary "$1")"; }

fmt() { # fmt NUMBER UNIT
  case "$2" in
    ms) awk -v v="$1" 'BEGIN { printf(v >= 100 ? "%.0f ms" : "%.1f ms", v) }' ;;
    s) awk -v v="$1" 'BEGIN { printf("%.2f s", v) }' ;;
    MB) awk -v v="$1" 'BEGIN { printf("%.2f MB", v) }' ;;
    kB) awk -v v="$1" 'BEGIN { printf("%.0f kB", v) }' ;;
    us) awk -v v="$1" 'BEGIN { printf("%.0f µs", v) }' ;;
    B) awk -v v="$1" 'BEGIN { printf("%.0f B (%.1f MB)", v, v / 1048576) }' ;;
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
    ctrx task ls -q 2>/dev/null | grep -x -- "$1" >/dev/null || break
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
  target run_median ratio 1.0 "≤ 1.00×"
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
  target exec_median ratio 1.0 "≤ 1.00×"
  figure exec_runc ms "bare \`runc exec\` of /bin/true into the first runtime's container (its runc state), no containerd, in the same loop, median of $N"
  figure exec_shimcost ms "what the shim, containerd and ctr add to runc: the \`ctr task exec\` median − the bare \`runc exec\` median"
  note_same exec_runc
  local i rt t0 id base=${RUNTIMES[0]} bare_ok=1
  declare -A target=()
  for rt in "$@"; do
    new_id "$rt" exec
    id=$ID
    ctrx run -d --runtime "$rt" "$IMAGE" "$id" sleep 3600 </dev/null >/dev/null 2>&1 ||
      { note exec_median "$rt" "failed to start"; continue; }
    target[$rt]=$id
  done
  # Every shim here keeps runc's state where runc-v2 does: /run/containerd/runc/<namespace>.
  local runc_root="/run/containerd/runc/$TESTENV_NS"
  for i in $(seq 1 "$N"); do
    if [ "$bare_ok" -eq 1 ] && [ -n "${target[$base]:-}" ]; then
      t0=$(us_now)
      if runc --root "$runc_root" exec "${target[$base]}" /bin/true </dev/null >/dev/null 2>&1; then
        sample exec_runc "$base" "$(ms_since "$t0")"
      else
        note exec_runc "$base" "failed (runc state not in $runc_root?)"
        bare_ok=0
      fi
    fi
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
  derive exec_runc exec_runc 50
  local floor=${VALUE["exec_runc|$base"]:-}
  for rt in "$@"; do
    if [ -n "$floor" ] && [ -n "${VALUE["exec_median|$rt"]:-}" ]; then
      result exec_shimcost "$rt" "$(awk -v a="${VALUE["exec_median|$rt"]}" -v b="$floor" 'BEGIN { print a - b }')"
    fi
  done
}

group_idle() {
  figure idle_rss MB "RSS per shim, $IDLE idle containers"
  figure idle_rss_split "" "RSS per shim, anonymous + file-backed"
  figure idle_pss MB "PSS per shim, $IDLE idle containers"
  target idle_rss ratio 0.3334 "≤ 1/3"
  target idle_pss ratio 0.5 "≤ 1/2"
  figure idle_pss_total MB "PSS of all shims, $IDLE idle containers"
  figure idle_threads "" "threads per shim, $IDLE idle containers"
  figure idle_shims "" "shim processes for $IDLE containers"
  local rt i id ids pids pid rss pss thr n anon file
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
        rss=0 pss=0 thr=0 anon=0 file=0
        for pid in "${pids[@]}"; do
          anon=$((anon + $(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status")))
          file=$((file + $(awk '/^RssFile:|^RssShmem:/ { s += $2 } END { print s }' "/proc/$pid/status")))
          rss=$((rss + $(awk '/^Rss:/ { print $2 }' "/proc/$pid/smaps_rollup")))
          pss=$((pss + $(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup")))
          thr=$((thr + $(awk '/^Threads:/ { print $2 }' "/proc/$pid/status")))
        done
        result idle_rss "$rt" "$(awk -v v="$rss" -v n="$n" 'BEGIN { print v / n / 1024 }')"
        note idle_rss_split "$rt" "$(awk -v a="$anon" -v f="$file" -v n="$n" 'BEGIN { printf("%.2f + %.2f MB", a / n / 1024, f / n / 1024) }')"
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
    ctrx task ls 2>/dev/null | awk -v id="$id" '$1 == id { print $3 }' | grep STOPPED >/dev/null && break
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

# One `ctr run --rm ... /bin/true`, timed and sampled under KEY; fails when the container does.
# run_once KEY RUNTIME PURPOSE [CTR-RUN-FLAGS...] IMAGE
run_once() {
  local key=$1 rt=$2 purpose=$3 t0
  shift 3
  new_id "$rt" "$purpose"
  t0=$(us_now)
  if ctrx run --rm --runtime "$rt" "$@" "$ID" /bin/true </dev/null >/dev/null 2>&1; then
    sample "$key" "$rt" "$(ms_since "$t0")"
  else
    remove_container "$ID"
    return 1
  fi
}

# The crossarch runtime among the arguments, or nothing.
crossarch_of() {
  local rt
  for rt in "$@"; do
    if [ "$rt" = "$CROSSARCH" ]; then echo "$rt"; fi
  done
}

# Notes TEXT in the cell of KEY of every runtime but crossarch.
note_others() { # note_others KEY TEXT
  local rt
  for rt in "${RUNTIMES[@]}"; do
    if [ "$rt" != "$CROSSARCH" ]; then note "$1" "$rt" "$2"; fi
  done
}

# How many of crossarch's containers of PURPOSE the shim logged MESSAGE for (containerd's log).
logged_count() { # logged_count PURPOSE MESSAGE
  grep -F "$2" "$TESTENV_DIR/containerd.log" 2>/dev/null |
    grep -c "msg=\"container b-$(short_name "$CROSSARCH")-$1-[0-9]*: " || true
}

# Foreign start latency in both emulation modes, interleaved with native starts of every
# runtime, so the three are comparable within one loop whatever the machine's drift.
group_foreign() {
  local xa rt i n ok k base=${RUNTIMES[0]}
  xa=$(crossarch_of "$@")
  figure foreign_native ms "native, in the same loop as the arm64 rows: \`ctr run --rm IMAGE id /bin/true\`, median of $N"
  figure foreign_userns ms "arm64: \`ctr run --rm --platform linux/arm64 ARM64-IMAGE id /bin/true\`, userns mode (default config, \`auto\`), median of $N"
  figure foreign_userns_p95 ms "arm64, userns mode, p95 of $N"
  figure foreign_wrap ms "arm64, wrap mode (\`--runtime-config-path\`: \`[emulation] mode = \"wrap\"\`), median of $N"
  figure foreign_wrap_p95 ms "arm64, wrap mode, p95 of $N"
  figure foreign_trace ms "arm64, trace mode (\`[emulation] mode = \"trace\"\`: the init answers every exec of the tree), median of $N"
  figure foreign_trace_p95 ms "arm64, trace mode, p95 of $N"
  for k in foreign_userns foreign_userns_p95 foreign_wrap foreign_wrap_p95 foreign_trace foreign_trace_p95; do
    ratio_ref "$k" foreign_native "$base" "of $(short_name "$base") native"
  done
  # The others run arm64 only through the host's binfmt_misc, which crossarch never needs.
  for rt in "$@"; do
    [ "$rt" != "$xa" ] || continue
    if run_once foreign_probe "$rt" fprobe --platform linux/arm64 "$FOREIGN_IMAGE"; then
      ok="runs (host binfmt_misc)"
    else
      ok="cannot run"
    fi
    for k in foreign_userns foreign_userns_p95 foreign_wrap foreign_wrap_p95 foreign_trace foreign_trace_p95; do note "$k" "$rt" "$ok"; done
  done
  declare -A broken=()
  for i in $(seq 1 "$N"); do
    for rt in "$@"; do
      [ -z "${broken[native|$rt]:-}" ] || continue
      if ! run_once foreign_native "$rt" fnative "$IMAGE"; then
        broken[native|$rt]=1
        note foreign_native "$rt" failed
      fi
    done
    [ -n "$xa" ] || continue
    if [ -z "${broken[userns]:-}" ] &&
      ! run_once foreign_userns "$xa" fuserns --platform linux/arm64 "$FOREIGN_IMAGE"; then
      broken[userns]=1
      note foreign_userns "$xa" failed
      note foreign_userns_p95 "$xa" failed
    fi
    if [ -z "${broken[wrap]:-}" ] &&
      ! run_once foreign_wrap "$xa" fwrap --platform linux/arm64 --runtime-config-path "$WORK/wrap.toml" "$FOREIGN_IMAGE"; then
      broken[wrap]=1
      note foreign_wrap "$xa" failed
      note foreign_wrap_p95 "$xa" failed
    fi
    if [ -z "${broken[trace]:-}" ] &&
      ! run_once foreign_trace "$xa" ftrace --platform linux/arm64 --runtime-config-path "$WORK/trace.toml" "$FOREIGN_IMAGE"; then
      broken[trace]=1
      note foreign_trace "$xa" failed
      note foreign_trace_p95 "$xa" failed
    fi
  done
  derive foreign_native foreign_native 50
  derive foreign_userns foreign_userns 50
  derive foreign_userns_p95 foreign_userns 95
  derive foreign_wrap foreign_wrap 50
  derive foreign_wrap_p95 foreign_wrap 95
  derive foreign_trace foreign_trace 50
  derive foreign_trace_p95 foreign_trace 95
  [ -n "$xa" ] || return 0
  # Say which route the shim really took (its info lines), so a silent fallback shows.
  n=$(logged_count fuserns "every process is emulated through a private binfmt_misc in a new user namespace")
  LABEL[foreign_userns]+=" [shim logged userns for $n]"
  n=$(logged_count fwrap "itself is emulated (wrap mode")
  LABEL[foreign_wrap]+=" [shim logged wrap for $n]"
  n=$(logged_count ftrace "which traces their execs (trace mode")
  LABEL[foreign_trace]+=" [shim logged trace for $n]"
}

# The injected init: what it adds to a native start (crossarch with it against crossarch
# without, both through --runtime-config-path so that only `enabled` differs), what its
# fork+exec costs on the host where nothing else varies, and its memory as PID 1.
group_init() {
  local xa i on off pid argv id f k
  xa=$(crossarch_of "$@")
  figure init_on ms "native, crossarch with its init (\`[init] enabled = true\`), median of $N"
  figure init_off ms "native, crossarch without it (\`[init] enabled = false\`), median of $N"
  figure init_cost ms "start-time cost of the init: median with − median without"
  figure init_cost_paired ms "start-time cost of the init: median of the $N paired differences (with − without, run back to back)"
  figure init_cost_iqr "" "start-time cost of the init: interquartile range of those paired differences"
  figure init_cost_shim ms "start-time cost of the init in the shim's debug log: \"inspected\" to \"exited\" of \`/bin/true\`, median with − median without"
  figure init_host us "the init's own cost on the host: \`crossarch-init -- /bin/true\` − \`/bin/true\`, median of $INIT_HOST_RUNS pairs"
  figure init_rss kB "RSS of the init (VmRSS of \`/dev/.crossarch/init\`, PID 1 of an idle container)"
  figure init_pss kB "PSS of the init (same process)"
  target init_cost value 1 "< 1 ms"
  target init_cost_paired value 1 "< 1 ms"
  target init_cost_shim value 1 "< 1 ms"
  for k in init_on init_off init_cost init_cost_paired init_cost_iqr init_cost_shim init_host init_rss init_pss; do note_others "$k" "no init"; done
  [ -n "$xa" ] || return 0
  for i in $(seq 1 "$N"); do
    # Alternate the order, so that neither side always runs right after the other.
    on=0 off=0
    if [ $((i % 2)) -eq 1 ]; then
      run_once init_on "$xa" initon --runtime-config-path "$WORK/init.toml" "$IMAGE" && on=1
      run_once init_off "$xa" noinit --runtime-config-path "$WORK/noinit.toml" "$IMAGE" && off=1
    else
      run_once init_off "$xa" noinit --runtime-config-path "$WORK/noinit.toml" "$IMAGE" && off=1
      run_once init_on "$xa" initon --runtime-config-path "$WORK/init.toml" "$IMAGE" && on=1
    fi
    if [ "$on" -eq 0 ] || [ "$off" -eq 0 ]; then
      note init_cost "$xa" failed
      note init_cost_paired "$xa" failed
      break
    fi
    sample init_diff "$xa" "$(awk -v a="$(tail -n1 "${SAMPLES["init_on|$xa"]}")" \
      -v b="$(tail -n1 "${SAMPLES["init_off|$xa"]}")" 'BEGIN { printf("%.3f", a - b) }')"
  done
  derive init_on init_on 50
  derive init_off init_off 50
  if [ -n "${VALUE["init_on|$xa"]:-}" ] && [ -n "${VALUE["init_off|$xa"]:-}" ] &&
    [ -z "${CELL["init_cost|$xa"]:-}" ]; then
    result init_cost "$xa" "$(awk -v a="${VALUE["init_on|$xa"]}" -v b="${VALUE["init_off|$xa"]}" 'BEGIN { print a - b }')"
    f=${SAMPLES["init_diff|$xa"]}
    result init_cost_paired "$xa" "$(percentile "$f" 50)"
    note init_cost_iqr "$xa" "$(fmt "$(percentile "$f" 25)" ms) … $(fmt "$(percentile "$f" 75)" ms)"
  fi

  # The same, from the shim's own log lines (no ctr client, no containerd in between): the
  # time from "inspected and prepared" to "created" (runc create, with the init's bind mount)
  # plus "created" to "exited" (start, the init's fork+exec, the payload, the exit).
  local shim_cost
  shim_cost=$(python3 - "$TESTENV_DIR/containerd.log" "b-$(short_name "$xa")" <<'PY'
import re, statistics, sys
from datetime import datetime
path, prefix = sys.argv[1], sys.argv[2]
pat = re.compile(r'time="(\d+-\d+-\d+T\d+:\d+:\d+)(\.\d+)?Z" level=\w+ msg="container ('
                 + re.escape(prefix) + r'-(initon|noinit)-\d+):? (inspected and prepared|created|exited)')
seen = {}
for line in open(path, errors="replace"):
    m = pat.match(line)
    if m:
        t = datetime.fromisoformat(m.group(1)).timestamp() + float(m.group(2) or 0)
        seen.setdefault((m.group(4), m.group(3)), {})[m.group(5).split()[0]] = t * 1000
spans = {"initon": [], "noinit": []}
for (kind, _), e in seen.items():
    if {"inspected", "created", "exited"} <= e.keys():
        spans[kind].append(e["exited"] - e["inspected"])
if spans["initon"] and spans["noinit"]:
    print(statistics.median(spans["initon"]) - statistics.median(spans["noinit"]))
PY
  ) || true
  if [ -n "$shim_cost" ]; then
    result init_cost_shim "$xa" "$shim_cost"
  else
    note init_cost_shim "$xa" "n/a (no shim debug lines)"
  fi

  # On the host: the init forks and execs /bin/true, waits for it and passes its status on.
  if [ -x "$CROSSARCH_SHIM_DIR/crossarch-init" ]; then
    result init_host "$xa" "$(python3 - "$CROSSARCH_SHIM_DIR/crossarch-init" "$INIT_HOST_RUNS" <<'PY'
import statistics, subprocess, sys, time
init, n = sys.argv[1], int(sys.argv[2])
with_init, bare = [init, "--", "/bin/true"], ["/bin/true"]
def timed(argv):
    t0 = time.perf_counter_ns()
    subprocess.run(argv, check=True)
    return time.perf_counter_ns() - t0
diffs = []
for i in range(n):
    if i % 2:
        b = timed(bare); w = timed(with_init)
    else:
        w = timed(with_init); b = timed(bare)
    diffs.append((w - b) / 1000)
print(statistics.median(diffs))
PY
    )"
  else
    note init_host "$xa" "n/a (no crossarch-init in $CROSSARCH_SHIM_DIR)"
  fi

  # Memory: PID 1 of an idle container, seen from the host.
  new_id "$xa" initmem
  id=$ID
  if ctrx run -d --runtime "$xa" "$IMAGE" "$id" sleep 3600 </dev/null >/dev/null 2>&1; then
    sleep 0.5
    pid=$(ctrx task ls 2>/dev/null | awk -v id="$id" '$1 == id { print $2 }')
    argv=$(tr '\0' ' ' <"/proc/${pid:-0}/cmdline" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "${argv%% *}" = /dev/.crossarch/init ]; then
      result init_rss "$xa" "$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")"
      result init_pss "$xa" "$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup")"
    else
      note init_rss "$xa" "no init as PID 1 (${argv:-no process})"
      note init_pss "$xa" "n/a"
    fi
  else
    note init_rss "$xa" failed
    note init_pss "$xa" failed
  fi
  remove_container "$id"
}

# The shim's own timing of inspection + spec preparation at Create, its debug line
# `container ID: inspected and prepared in N µs`, for N `run --rm` of each kind, read back from
# containerd's log and sorted by the kind in the container id. Without that line (an older
# shim): n/a.
group_inspect() {
  local xa k f n line what i args
  xa=$(crossarch_of "$@")
  figure plan_native us "inspection + plan at Create (shim's debug line), native \`/bin/true\`, median"
  figure plan_userns us "inspection + plan at Create, arm64 \`/bin/true\`, userns mode, median"
  figure plan_wrap us "inspection + plan at Create, arm64 \`/bin/true\`, wrap mode, median"
  figure prepared_native us "inspection + spec preparation at Create (plan applied, spec and record written), native, median"
  figure prepared_userns us "inspection + spec preparation at Create, arm64 userns mode, median"
  figure prepared_wrap us "inspection + spec preparation at Create, arm64 wrap mode, median"
  for k in plan_native plan_userns plan_wrap prepared_native prepared_userns prepared_wrap; do
    note_others "$k" "—"
  done
  [ -n "$xa" ] || return 0
  for i in $(seq 1 "$N"); do
    for k in native userns wrap; do
      case $k in
        native) args=("$IMAGE") ;;
        userns) args=(--platform linux/arm64 "$FOREIGN_IMAGE") ;;
        wrap) args=(--platform linux/arm64 --runtime-config-path "$WORK/wrap.toml" "$FOREIGN_IMAGE") ;;
      esac
      new_id "$xa" "i$k"
      ctrx run --rm --runtime "$xa" "${args[@]}" "$ID" /bin/true </dev/null >/dev/null 2>&1 ||
        remove_container "$ID"
    done
  done
  for line in planned prepared; do
    sed -n "s/.*msg=\"container b-$(short_name "$xa")-\([a-z]*\)-[0-9]*: inspected and $line in \([0-9]*\) µs.*/\1 \2/p" \
      "$TESTENV_DIR/containerd.log" >"$WORK/inspect.txt" 2>/dev/null || true
    for k in native userns wrap; do
      what=prepared_$k
      [ "$line" = planned ] && what=plan_$k
      f="$WORK/samples/$what"
      awk -v p="i$k" '$1 == p { print $2 }' "$WORK/inspect.txt" >"$f"
      n=$(wc -l <"$f")
      if [ "$n" -gt 0 ]; then
        result "$what" "$xa" "$(percentile "$f" 50)"
        LABEL[$what]+=" of $n"
      else
        note "$what" "$xa" "n/a (no \"inspected and $line\" line)"
      fi
    done
  done
}

# The bundle of a running container of this daemon: containerd's config.json and the rootfs
# its shim mounted.
bundle_of() { echo "$TESTENV_DIR/state/io.containerd.runtime.v2.task/$TESTENV_NS/$1"; }

# Runtime-independent floors (bare runc, qemu on the host) are measured once: their value is
# in the first column, the others say "same".
note_same() { # note_same KEY
  local rt
  for rt in "${RUNTIMES[@]:1}"; do note "$1" "$rt" same; done
}

# What a shim, containerd and the ctr client add to runc: `ctr run --rm` of each runtime against
# `runc run` (which deletes the container when it exits) of the same bundle with no containerd
# at all, interleaved in one loop. The
# bundle is that of a container of the first runtime (containerd's config.json, the image's
# rootfs mounted by its shim), its process made /bin/true; runc keeps its state under WORK.
group_shimcost() {
  local base=${RUNTIMES[0]} src i rt t0 bundle out bare_ok=1
  figure shimcost_runc ms "bare \`runc run\` of the same bundle (containerd's config.json and image rootfs, /bin/true), no containerd, median of $N"
  figure shimcost_ctr ms "\`ctr run --rm IMAGE id /bin/true\`, in the same loop, median of $N"
  figure shimcost ms "what the shim, containerd and ctr add to runc: the \`ctr run --rm\` median − the bare \`runc run\` median"
  note_same shimcost_runc
  new_id "$1" scsrc
  src=$ID
  if ! ctrx run -d --runtime "$1" "$IMAGE" "$src" sleep 3600 </dev/null >/dev/null 2>&1; then
    note shimcost_runc "$base" "failed (no source bundle)"
    bare_ok=0
  else
    bundle=$(bundle_of "$src")
    mkdir -p "$WORK/bare-bundle" "$WORK/bare-runc"
    # cgroupsPath under the daemon's namespace, where testenv_stop looks for leftovers.
    python3 - "$bundle/config.json" "$bundle/rootfs" "/$TESTENV_NS/b-bare-runc" \
      >"$WORK/bare-bundle/config.json" <<'PY' || bare_ok=0
import json, sys
spec = json.load(open(sys.argv[1]))
spec["root"]["path"] = sys.argv[2]
spec["process"]["args"] = ["/bin/true"]
spec["process"]["terminal"] = False
spec.setdefault("linux", {})["cgroupsPath"] = sys.argv[3]
json.dump(spec, sys.stdout)
PY
    [ "$bare_ok" -eq 1 ] || note shimcost_runc "$base" "failed (cannot read $bundle/config.json)"
  fi
  for i in $(seq 1 "$N"); do
    if [ "$bare_ok" -eq 1 ]; then
      new_id runc bare
      t0=$(us_now)
      if out=$(runc --root "$WORK/bare-runc" run --bundle "$WORK/bare-bundle" "$ID" </dev/null 2>&1); then
        sample shimcost_runc "$base" "$(ms_since "$t0")"
      else
        note shimcost_runc "$base" failed
        warn "bare runc run of $ID failed: $out"
        runc --root "$WORK/bare-runc" delete -f "$ID" >/dev/null 2>&1 || true
        bare_ok=0
      fi
    fi
    for rt in "$@"; do
      run_once shimcost_ctr "$rt" scost "$IMAGE" || note shimcost_ctr "$rt" failed
    done
  done
  [ -z "${src:-}" ] || remove_container "$src"
  derive shimcost_runc shimcost_runc 50
  derive shimcost_ctr shimcost_ctr 50
  local floor=${VALUE["shimcost_runc|$base"]:-}
  for rt in "$@"; do
    if [ -n "$floor" ] && [ -n "${VALUE["shimcost_ctr|$rt"]:-}" ] && [ -z "${CELL["shimcost_ctr|$rt"]:-}" ]; then
      result shimcost "$rt" "$(awk -v a="${VALUE["shimcost_ctr|$rt"]}" -v b="$floor" 'BEGIN { print a - b }')"
    fi
  done
}

# A runtime's shims' RSS in kB, and how many there are: "KB COUNT".
shims_rss() { # shims_rss RUNTIME
  local pids pid kb=0
  mapfile -t pids < <(shim_pids "$(shim_binary "$1")")
  for pid in "${pids[@]}"; do
    kb=$((kb + $(awk '/^Rss:/ { print $2 }' "/proc/$pid/smaps_rollup")))
  done
  echo "$kb ${#pids[@]}"
}

# One shim serving a pod group: containers started one after the other with the group
# annotation that the Go shim, the Rust runc shim and crossarch all honour, the shim's RSS read
# at each size of POD_SIZES, and the `ctr run -d` latency of the members that made that size.
group_pod() {
  local rt s prev k id grp t0 kb count first_kb first_s max=${POD_SIZES[-1]} ids
  prev=0
  for s in "${POD_SIZES[@]}"; do
    if [ "$prev" -eq 0 ]; then
      figure "pod_rss_$s" MB "pod group (\`--annotation io.containerd.runc.v2.group=…\`, idle \`sleep\` members) of $s: RSS of its one shim"
    else
      figure "pod_rss_$s" MB "pod group of $s: RSS of its one shim"
    fi
    if [ "$prev" -eq 0 ] && [ "$s" -eq 1 ]; then
      figure "pod_start_$s" ms "pod group: \`ctr run -d\` of the first member (the shim's own start included)"
    elif [ "$prev" -eq 0 ]; then
      figure "pod_start_$s" ms "pod group: \`ctr run -d\` of members 1–$s, median (the first starts the shim)"
    else
      figure "pod_start_$s" ms "pod group: \`ctr run -d\` of members $((prev + 1))–$s into the running shim, median"
    fi
    prev=$s
  done
  figure pod_rss_growth kB "pod group: RSS growth per member, ${POD_SIZES[0]} to $max members"
  figure pod_shims "" "pod group of $max: shim processes serving it"
  for rt in "$@"; do
    new_id "$rt" pod
    grp=$ID
    ids=()
    prev=0 first_kb='' first_s=''
    for s in "${POD_SIZES[@]}"; do
      for k in $(seq $((prev + 1)) "$s"); do
        new_id "$rt" pod
        id=$ID
        t0=$(us_now)
        if ! ctrx run -d --runtime "$rt" --annotation "io.containerd.runc.v2.group=$grp" "$IMAGE" "$id" sleep 3600 \
          </dev/null >/dev/null 2>&1; then
          note "pod_start_$s" "$rt" "failed at member $k"
          remove_container "$id"
          break 2
        fi
        sample "pod_start_$s" "$rt" "$(ms_since "$t0")"
        ids+=("$id")
      done
      # Let the shim settle (lazy threads, Go's GC) before reading its memory.
      sleep 1
      read -r kb count < <(shims_rss "$rt")
      if [ "$count" -eq 1 ]; then
        result "pod_rss_$s" "$rt" "$(awk -v v="$kb" 'BEGIN { print v / 1024 }')"
        if [ -z "$first_kb" ]; then first_kb=$kb first_s=$s; fi
      else
        note "pod_rss_$s" "$rt" "$count shims, not one"
      fi
      result pod_shims "$rt" "$count"
      prev=$s
    done
    if [ -n "$first_kb" ] && [ -n "${VALUE["pod_rss_$max|$rt"]:-}" ] && [ "$max" -gt "$first_s" ]; then
      result pod_rss_growth "$rt" "$(awk -v a="$first_kb" -v b="$kb" -v n=$((max - first_s)) 'BEGIN { print (b - a) / n }')"
    fi
    [ "$prev" -eq "$max" ] || note pod_shims "$rt" "n/a (stopped at $prev)"
    for id in "${ids[@]}"; do remove_container "$id"; done
  done
  for s in "${POD_SIZES[@]}"; do derive "pod_start_$s" "pod_start_$s" 50; done
}

# The cost of one emulated exec: a loop of FOREIGN_EXECS `/bin/true` in the `sh` of an arm64
# container, timed inside from /proc/uptime (10 ms ticks), against the same loop of
# qemu-aarch64-static running that rootfs's `true` on the host, where no container, shim or
# binfmt_misc is involved. Runtimes other than crossarch run arm64 only through the host's
# binfmt_misc; without it their cell says so.
group_foreignexec() {
  local base=${RUNTIMES[0]} rt r id qemu rootfs='' t0 out a b ok
  declare -A target=()
  figure fexec_container ms "arm64 container: one \`/bin/true\` of a $FOREIGN_EXECS× loop in its \`sh\` (one \`ctr task exec\`, timed inside), median of $FOREIGN_EXEC_REPEAT loops"
  figure fexec_host ms "host: one \`qemu-aarch64-static -L ROOTFS ROOTFS/bin/true\` (same rootfs) of a $FOREIGN_EXECS× loop in bash, median of $FOREIGN_EXEC_REPEAT loops"
  figure fexec_native_sh ms "arm64 container, the same loop in a native static \`sh\` mounted into it (no emulated shell forks: each \`/bin/true\` goes through the container's binfmt_misc to qemu), median of $FOREIGN_EXEC_REPEAT loops"
  figure fexec_host_sh ms "host: the same loop in that rootfs's emulated \`sh\`, chrooted, through a private binfmt_misc in a user namespace of the bench's own (qemu alone, the shell's emulated forks included), median of $FOREIGN_EXEC_REPEAT loops"
  figure fexec_trace ms "arm64 container in trace mode: the same \`/bin/true\` loop in its \`sh\`, median of $FOREIGN_EXEC_REPEAT loops"
  figure fexec_trace_user ms "arm64 container in trace mode: the same loop after \`su -s /bin/sh nobody\` (another user's execs, each read by a thread of the init that takes that user's ids), median of $FOREIGN_EXEC_REPEAT loops"
  figure fork_userns ms "arm64 container, userns mode: one \`( : )\` (a subshell fork, no exec) of a $FOREIGN_EXECS× loop in its \`sh\`, median of $FOREIGN_EXEC_REPEAT loops"
  figure fork_trace ms "arm64 container, trace mode: the same fork-only loop, median of $FOREIGN_EXEC_REPEAT loops"
  ratio_ref fexec_container fexec_host_sh "$base" "of qemu alone with the same emulated sh"
  ratio_ref fexec_native_sh fexec_host "$base" "of host qemu"
  target fexec_container ratio 1.05 "≤ 1.05×"
  note_same fexec_host
  note_same fexec_host_sh
  for k in fexec_trace fexec_trace_user fork_userns fork_trace; do note_others "$k" "cannot run arm64 (no host binfmt_misc)"; done
  if ! qemu=$(command -v qemu-aarch64-static); then
    note fexec_host "$base" "no qemu-aarch64-static"
    qemu=
  fi
  for rt in "$@"; do
    new_id "$rt" fexec
    id=$ID
    if ctrx run -d --runtime "$rt" --platform linux/arm64 \
      --mount "type=bind,src=$FIXTURES/rootfs/amd64/bin/busybox,dst=/native/sh,options=rbind:ro" \
      "$FOREIGN_IMAGE" "$id" sleep 3600 </dev/null >/dev/null 2>&1 &&
      ctrx task exec --exec-id probe "$id" /bin/true </dev/null >/dev/null 2>&1; then
      target[$rt]=$id
      [ -n "$rootfs" ] || rootfs=$(bundle_of "$id")/rootfs
    else
      for k in fexec_container fexec_native_sh; do
        if [ "$rt" = "$CROSSARCH" ]; then note "$k" "$rt" failed; else note "$k" "$rt" "cannot run arm64 (no host binfmt_misc)"; fi
      done
      remove_container "$id"
    fi
  done
  local traced=''
  if [ -n "${target[$CROSSARCH]:-}" ]; then
    new_id "$CROSSARCH" ftexec
    if ctrx run -d --runtime "$CROSSARCH" --platform linux/arm64 --runtime-config-path "$WORK/trace.toml" \
      "$FOREIGN_IMAGE" "$ID" sleep 3600 </dev/null >/dev/null 2>&1; then
      traced=$ID
    else
      note fexec_trace "$CROSSARCH" failed
      remove_container "$ID"
    fi
  fi
  [ -n "$rootfs" ] && [ -x "$rootfs/bin/true" ] || rootfs=$FIXTURES/rootfs/arm64
  # shellcheck disable=SC2016 # expanded by the container's sh
  local loop='read a _ </proc/uptime; i=0; while [ $i -lt '"$FOREIGN_EXECS"' ]; do /bin/true || exit 1; i=$((i + 1)); done; read b _ </proc/uptime; echo "$a $b"'
  # shellcheck disable=SC2016 # expanded by the container's sh
  local forks='read a _ </proc/uptime; i=0; while [ $i -lt '"$FOREIGN_EXECS"' ]; do ( : ) || exit 1; i=$((i + 1)); done; read b _ </proc/uptime; echo "$a $b"'
  for r in $(seq 1 "$FOREIGN_EXEC_REPEAT"); do
    if [ -n "$qemu" ]; then
      t0=$(us_now)
      ok=1
      for _ in $(seq 1 "$FOREIGN_EXECS"); do "$qemu" -L "$rootfs" "$rootfs/bin/true" || { ok=0 && break; }; done
      if [ "$ok" -eq 1 ]; then
        sample fexec_host "$base" "$(awk -v ms="$(ms_since "$t0")" -v n="$FOREIGN_EXECS" 'BEGIN { print ms / n }')"
      else
        note fexec_host "$base" "failed ($qemu -L $rootfs $rootfs/bin/true)"
        qemu=
      fi
    fi
    if [ -n "$qemu" ]; then
      if out=$(private_binfmt_loop "$qemu" "$rootfs" "$loop" 2>&1) && read -r a b <<<"$out" && [ -n "$b" ]; then
        sample fexec_host_sh "$base" "$(awk -v a="$a" -v b="$b" -v n="$FOREIGN_EXECS" 'BEGIN { print (b - a) * 1000 / n }')"
      else
        note fexec_host_sh "$base" "cannot run (${out//$'\n'/ })"
      fi
    fi
    for rt in "$@"; do
      [ -n "${target[$rt]:-}" ] || continue
      if out=$(ctrx task exec --exec-id "loop$r" "${target[$rt]}" sh -c "$loop" </dev/null 2>/dev/null) &&
        read -r a b <<<"$out" && [ -n "$b" ]; then
        sample fexec_container "$rt" "$(awk -v a="$a" -v b="$b" -v n="$FOREIGN_EXECS" 'BEGIN { print (b - a) * 1000 / n }')"
      else
        note fexec_container "$rt" failed
      fi
      if out=$(ctrx task exec --exec-id "native$r" "${target[$rt]}" /native/sh -c "$loop" </dev/null 2>/dev/null) &&
        read -r a b <<<"$out" && [ -n "$b" ]; then
        sample fexec_native_sh "$rt" "$(awk -v a="$a" -v b="$b" -v n="$FOREIGN_EXECS" 'BEGIN { print (b - a) * 1000 / n }')"
      else
        note fexec_native_sh "$rt" failed
      fi
    done
    if [ -n "$traced" ]; then
      per_exec_of fexec_trace "$traced" "trace$r" "$loop"
      per_exec_of fexec_trace_user "$traced" "tuser$r" "su -s /bin/sh nobody -c '$loop'"
      per_exec_of fork_trace "$traced" "tfork$r" "$forks"
      per_exec_of fork_userns "${target[$CROSSARCH]}" "ufork$r" "$forks"
    fi
  done
  for rt in "${!target[@]}"; do remove_container "${target[$rt]}"; done
  [ -z "$traced" ] || remove_container "$traced"
  derive fexec_trace fexec_trace 50
  derive fexec_trace_user fexec_trace_user 50
  derive fork_userns fork_userns 50
  derive fork_trace fork_trace 50
  ratio_ref fexec_trace fexec_container "$CROSSARCH" "of userns mode"
  ratio_ref fork_trace fork_userns "$CROSSARCH" "of userns mode"
  ratio_ref fexec_trace_user fexec_trace "$CROSSARCH" "of root's execs in trace mode"
  target fexec_trace ratio 1.2 "≤ 1.2×"
  target fork_trace ratio 1.05 "≤ 1.05× (no measurable cost)"
  derive fexec_host fexec_host 50
  derive fexec_container fexec_container 50
  derive fexec_native_sh fexec_native_sh 50
  derive fexec_host_sh fexec_host_sh 50
}

# Samples FIGURE with the per-iteration ms of LOOP (which echoes two uptimes) run by
# `ctr task exec` in crossarch's container ID, or notes that it failed.
per_exec_of() { # per_exec_of FIGURE ID EXEC_ID LOOP
  local out a b
  if out=$(ctrx task exec --exec-id "$3" "$2" sh -c "$4" </dev/null 2>/dev/null) &&
    read -r a b <<<"$out" && [ -n "$b" ]; then
    sample "$1" "$CROSSARCH" "$(awk -v a="$a" -v b="$b" -v n="$FOREIGN_EXECS" 'BEGIN { print (b - a) * 1000 / n }')"
  else
    note "$1" "$CROSSARCH" failed
  fi
}

# Runs LOOP in ROOTFS's own `sh`, chrooted, with QEMU registered for aarch64 in a private
# binfmt_misc as crossarch registers it (flags PF), in a user and mount namespace of the bench's
# own: what qemu alone costs an emulated shell that forks and execs, with no container, shim or
# init. Mounted on a fresh directory, never on /proc/sys/fs/binfmt_misc, so the host's
# binfmt_misc is neither mounted nor written. Prints LOOP's output.
private_binfmt_loop() { # private_binfmt_loop QEMU ROOTFS LOOP
  local magic='\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
  local mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
  local dir rc=0
  dir=$(mktemp -d "$WORK/binfmt.XXXXXX")
  # shellcheck disable=SC2016 # expanded by the inner sh
  unshare --user --map-root-user --mount --propagation private sh -c '
    set -e
    mount -t binfmt_misc crossarch-bench "$1"
    printf "%s" ":crossarch-bench-aarch64:M::$2:$3:$4:PF" >"$1/register"
    mount --rbind /proc "$5/proc"
    exec chroot "$5" /bin/sh -c "$6"' _ "$dir" "$magic" "$mask" "$1" "$2" "$3" || rc=$?
  rmdir "$dir"
  return "$rc"
}

# Bytes on disk of each runtime's shim, the file the daemon runs, and of crossarch's init.
group_size() {
  local rt f
  figure size_shim B "shim binary on disk (the file the daemon runs)"
  figure size_init B "crossarch's injected init beside it"
  note_others size_init "no init"
  for rt in "$@"; do
    if ! f=$(shim_path "$rt"); then
      note size_shim "$rt" "no $(shim_binary "$rt")"
      continue
    fi
    result size_shim "$rt" "$(stat -L -c %s "$f")"
    [ "$rt" = "$CROSSARCH" ] || continue
    # The shim runs the init it finds beside itself.
    f="$(dirname "$f")/crossarch-init"
    if [ -f "$f" ]; then result size_init "$rt" "$(stat -L -c %s "$f")"; else note size_init "$rt" "no $f"; fi
  done
}

# ---------------------------------------------------------------------------------------------
# The Rust runc shim

# Builds containerd-runc-shim RUNC_RS_VERSION from crates.io into the cache once, and puts it on
# PATH (which the daemon inherits) as containerd-shim-runcrs-v2. On failure WHY[$RUNC_RS] says
# why and its column is skipped. Versions: 0.1.x is built on containerd-shim 0.3, whose `start`
# answers with a bare address (Task API v2); 0.2.0 is built on containerd-shim 0.12, which
# announces Task API v3, and containerd 1.6 and 1.7 refuse that shim at start.
prepare_runc_rs() {
  local dir="$CACHE/containerd-runc-shim-$RUNC_RS_VERSION" bin
  bin="$dir/bin/containerd-shim-runc-v2-rs"
  if [ ! -x "$bin" ]; then
    if ! command -v cargo >/dev/null 2>&1; then
      WHY[$RUNC_RS]="n/a (no cargo to build containerd-runc-shim)"
      warn "$RUNC_RS: no cargo on PATH to build containerd-runc-shim $RUNC_RS_VERSION (install rustup); its column will be empty"
      return 0
    fi
    mkdir -p "$dir"
    log "bench: building containerd-runc-shim $RUNC_RS_VERSION from crates.io into $dir (once; about 2 minutes on 2 CPUs) ..."
    # The build directory is shared by versions, so trying another one rebuilds little.
    if ! cargo install --locked --root "$dir" --target-dir "$CACHE/cargo-target" \
      containerd-runc-shim --version "=$RUNC_RS_VERSION" >"$dir/install.log" 2>&1; then
      WHY[$RUNC_RS]="n/a (containerd-runc-shim $RUNC_RS_VERSION did not build, see $dir/install.log)"
      warn "$RUNC_RS: \`cargo install containerd-runc-shim --version $RUNC_RS_VERSION\` failed; its column will be empty. Last lines of $dir/install.log:"
      tail -n 5 "$dir/install.log" >&2
      return 0
    fi
  fi
  # A copy, not a symlink: the shim re-executes itself through /proc/self/exe, which names a
  # symlink's target, and shim_pids finds a runtime's shims by that name.
  mkdir -p "$dir/path"
  cmp -s "$bin" "$dir/path/$(shim_binary "$RUNC_RS")" || cp "$bin" "$dir/path/$(shim_binary "$RUNC_RS")"
  PATH="$dir/path:$PATH"
  RUNC_RS_FROM="containerd-runc-shim $RUNC_RS_VERSION from crates.io"
}

# ---------------------------------------------------------------------------------------------
# Main

if [ -z "${CROSSARCH_FIXTURES:-}" ]; then "$CROSSARCH_REPO/scripts/fixtures.sh" >/dev/null; fi
[ -r "$FIXTURES/images/busybox-amd64.tar" ] || die "no fixture images in $FIXTURES; run scripts/fixtures.sh"

# The shimcost group's bare runc containers, before testenv_stop removes their cgroups.
remove_bare_runc() {
  local id
  [ -d "$WORK/bare-runc" ] || return 0
  for id in $(runc --root "$WORK/bare-runc" list -q 2>/dev/null); do
    runc --root "$WORK/bare-runc" delete -f "$id" >/dev/null 2>&1 || warn "cannot delete bare runc container $id"
  done
}
# Before the main daemon's testenv_stop: the bare runc containers and the debug-level daemon.
cleanup() {
  remove_bare_runc
  [ ! -d "$WORK/env-debug" ] || testenv_stop "$WORK/env-debug"
}
testenv_scratch bench cleanup
mkdir -p "$WORK/samples"

declare -A WHY=() # runtime -> why its column is empty
RUNC_RS_FROM=
for rt in "${RUNTIMES[@]}"; do
  if [ "$rt" = "$RUNC_RS" ]; then prepare_runc_rs; fi
done

# Per-container crossarch configs, passed with `ctr run --runtime-config-path`.
printf '[emulation]\nmode = "wrap"\n' >"$WORK/wrap.toml"
printf '[emulation]\nmode = "trace"\n' >"$WORK/trace.toml"
printf '[init]\nenabled = true\n' >"$WORK/init.toml"
printf '[init]\nenabled = false\n' >"$WORK/noinit.toml"

# start_daemon DIR LEVEL: a private containerd whose crossarch shims log at LEVEL (they inherit
# its environment; containerd and the Go shim stay at info), with the images imported.
start_daemon() {
  export CROSSARCH_LOG_LEVEL=$2
  testenv_start "$1"
  unset CROSSARCH_LOG_LEVEL
  ctrx image import "$FIXTURES/images/busybox-amd64.tar" >/dev/null
  ctrx image import --all-platforms "$FIXTURES/images/busybox-arm64.tar" >/dev/null
}
start_daemon "$WORK/env" "$SHIM_LOG_LEVEL"
MAIN_DIR=$TESTENV_DIR MAIN_NS=$TESTENV_NS
DEBUG_DIR='' DEBUG_NS=''
# use_daemon GROUP: the daemon GROUP runs against, started at the first group that needs it.
use_daemon() {
  if [[ "$DEBUG_GROUPS" != *" $1 "* ]] || [ "$SHIM_LOG_LEVEL" = debug ]; then
    TESTENV_DIR=$MAIN_DIR TESTENV_NS=$MAIN_NS
    return
  fi
  if [ -z "$DEBUG_DIR" ]; then
    start_daemon "$WORK/env-debug" debug
    DEBUG_DIR=$TESTENV_DIR DEBUG_NS=$TESTENV_NS
    local rt
    for rt in "${usable[@]}"; do
      new_id "$rt" warmup
      ctrx run --rm --runtime "$rt" "$IMAGE" "$ID" /bin/true </dev/null >/dev/null 2>&1 || true
    done
  fi
  TESTENV_DIR=$DEBUG_DIR TESTENV_NS=$DEBUG_NS
}

# Warm-up: unpack the image once, and find out which runtimes work at all.
usable=()
for rt in "${RUNTIMES[@]}"; do
  [ -z "${WHY[$rt]:-}" ] || continue
  shim=$(shim_binary "$rt")
  if ! shim_path "$rt" >/dev/null 2>&1; then
    WHY[$rt]="n/a (no $shim)"
    warn "$rt: $shim not found in $CROSSARCH_SHIM_DIR or PATH; its column will be empty"
    continue
  fi
  new_id "$rt" warmup
  id=$ID
  if out=$(ctrx run --rm --runtime "$rt" "$IMAGE" "$id" /bin/true </dev/null 2>&1 | tr -d '\0'); then
    usable+=("$rt")
  else
    # A shim speaking a newer bootstrap protocol answers `start` with JSON naming its Task API
    # version, which containerd 1.6 and 1.7 take for an address.
    v=$(grep -o '"version":[0-9]*' <<<"$out" | sed -n 1p | cut -d: -f2)
    if [ -n "$v" ]; then
      WHY[$rt]="n/a (its shim speaks Task API v$v; containerd $(containerd --version | awk '{print $3}') needs v2)"
    else
      WHY[$rt]="n/a (warm-up failed)"
    fi
    warn "$rt: warm-up container failed: $out"
    remove_container "$id"
  fi
done

started=$(date -u +%FT%TZ)
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
for g in "${GROUPS_TO_RUN[@]}"; do
  declare -F "group_$g" >/dev/null || die "unknown group '$g' in BENCH_GROUPS"
  log "bench: $g ..."
  use_daemon "$g"
  if [ "${#usable[@]}" -gt 0 ]; then
    "group_$g" "${usable[@]}"
  else
    "group_$g"
  fi
done
TESTENV_DIR=$MAIN_DIR TESTENV_NS=$MAIN_NS
for rt in "${!WHY[@]}"; do
  for key in "${FIGURES[@]}"; do note "$key" "$rt" "${WHY[$rt]}"; done
done

echo
echo "crossarch bench, $started: $(nproc) CPUs, load average at start $load_at_start, kernel $(uname -r), containerd $(containerd --version | awk '{print $3}'), $(runc --version | sed -n 1p)"
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg); image $IMAGE (arm64: $FOREIGN_IMAGE); times are wall clock including the ctr client"
echo "crossarch shims log at $SHIM_LOG_LEVEL (CROSSARCH_LOG_LEVEL)$([ "$SHIM_LOG_LEVEL" = debug ] || echo ", at debug for the init and inspect rows (a second private containerd), which read their debug lines"); the crossarch config is the default unless a row names one (\`--runtime-config-path\`)"
for rt in "${RUNTIMES[@]}"; do
  shim=$(shim_path "$rt" || echo "(missing) $(shim_binary "$rt")")
  if [ "$rt" = "$RUNC_RS" ] && [ -n "$RUNC_RS_FROM" ]; then shim+=" ($RUNC_RS_FROM)"; fi
  echo "- $(short_name "$rt"): $rt -> $shim"
done
echo
print_table
