# shellcheck shell=bash
# A private containerd for tests, demos and benchmarks. Source this file, then:
#
#   testenv_start DIR [--cri]   start `containerd --config DIR/config.toml` with its own root,
#                               state, sockets and log (DIR/containerd.log), and wait for it
#   ctrx ARGS...                `ctr --address DIR/containerd.sock ARGS...` for the last started
#                               DIR (or $TESTENV_DIR), in namespace $TESTENV_NS unless
#                               $CONTAINERD_NAMESPACE is set
#   testenv_stop DIR            kill and remove every task and container of that daemon, stop
#                               it, unmount what is left under DIR, remove the cgroups its
#                               containers left behind and delete DIR
#   testenv_scratch NAME [FN]   WORK=/tmp/crossarch-NAME.XXXXXX, with FN, testenv_stop WORK/env
#                               and its removal trapped on exit
#
# The daemon finds shims through PATH, with $CROSSARCH_SHIM_DIR (default <repo>/target/dist, from scripts/build.sh)
# first. Each DIR gets its own default namespace (TESTENV_NS, "crossarch-<hash of DIR>") so
# runc state (/run/containerd/runc/<ns>) and cgroups (/<ns>/<id>) never collide with another
# daemon's. Only processes this daemon started are ever signalled. Needs root.

# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

TESTENV_MARKER=.crossarch-testenv

_testenv_abs() { (cd "$1" && pwd -P); }

_testenv_ns_of() { echo "crossarch-$(printf '%s' "$1" | sha256sum | cut -c1-8)"; }

ctrx() {
  local dir=${TESTENV_DIR:?ctrx: no test environment; call testenv_start DIR first}
  CONTAINERD_NAMESPACE="${CONTAINERD_NAMESPACE:-${TESTENV_NS:-$(_testenv_ns_of "$dir")}}" \
    ctr --address "$dir/containerd.sock" "$@"
}

# The pid of the containerd serving DIR, if it is alive and really is ours.
_testenv_pid() {
  local dir=$1 pid
  [ -f "$dir/containerd.pid" ] || return 1
  pid=$(cat "$dir/containerd.pid")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -F -- "--config $dir/config.toml" >/dev/null || return 1
  echo "$pid"
}

testenv_start() {
  local dir=${1:?usage: testenv_start DIR [--cri]} cri=0 shim_dir pid
  [ "${2:-}" = --cri ] || [ "${TESTENV_CRI:-0}" = 1 ] && cri=1
  [ "$(id -u)" -eq 0 ] || die "testenv_start needs root"
  need_cmd containerd ctr runc
  mkdir -p "$dir"
  dir=$(_testenv_abs "$dir")
  if _testenv_pid "$dir" >/dev/null; then
    die "a containerd for $dir is already running (pid $(cat "$dir/containerd.pid")); testenv_stop it first"
  fi
  # Unix socket paths are limited to 108 bytes.
  [ "${#dir}" -le 80 ] || die "test environment path too long for unix sockets: $dir"
  touch "$dir/$TESTENV_MARKER"
  mkdir -p "$dir/root" "$dir/state" "$dir/opt" "$dir/tmp"

  shim_dir=${CROSSARCH_SHIM_DIR:-$CROSSARCH_REPO/target/dist}
  TESTENV_DIR=$dir
  TESTENV_NS=${TESTENV_NS_OVERRIDE:-$(_testenv_ns_of "$dir")}
  echo "$TESTENV_NS" >>"$dir/namespaces"

  local disabled='"io.containerd.grpc.v1.cri"'
  [ "$cri" -eq 1 ] && disabled=''
  cat >"$dir/config.toml" <<EOF
# Written by scripts/testenv.sh. A private containerd: nothing here is shared with the node's.
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = [$disabled]

[grpc]
  address = "$dir/containerd.sock"
  tcp_address = ""

[ttrpc]
  address = "$dir/containerd.sock.ttrpc"

[debug]
  address = ""
  level = "${TESTENV_LOG_LEVEL:-info}"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"

[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
EOF
  if [ "$cri" -eq 1 ]; then
    cat >>"$dir/config.toml" <<EOF
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crossarch]
    runtime_type = "io.containerd.crossarch.v2"
EOF
  fi

  # setsid: a Ctrl-C at the terminal must not stop the daemon before testenv_stop can use it
  # to remove the containers. With job control off, the background child is no group leader,
  # so setsid execs in place and $! is containerd itself.
  local had_monitor=0
  case $- in *m*) had_monitor=1 && set +m ;; esac
  # TMPDIR: the daemon and its shims keep their temporary files where a run can check them.
  TMPDIR="$dir/tmp" PATH="$shim_dir:$PATH:/usr/sbin:/sbin" setsid containerd --config "$dir/config.toml" \
    </dev/null >>"$dir/containerd.log" 2>&1 &
  pid=$!
  [ "$had_monitor" -eq 1 ] && set -m
  echo "$pid" >"$dir/containerd.pid"

  for _ in $(seq 1 100); do
    if ctr --address "$dir/containerd.sock" version >/dev/null 2>&1; then
      _testenv_pid "$dir" >/dev/null || die "containerd for $dir answered, but pid $pid is not it"
      log "testenv: containerd pid $pid on $dir/containerd.sock (namespace $TESTENV_NS, shims from $shim_dir)"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$dir/containerd.log" >&2 || true
      die "containerd for $dir exited during startup (log: $dir/containerd.log)"
    fi
    sleep 0.1
  done
  tail -n 20 "$dir/containerd.log" >&2 || true
  die "containerd for $dir did not answer within 10 s (log: $dir/containerd.log)"
}

# testenv_scratch NAME [FUNCTION]: a scratch directory WORK=/tmp/crossarch-NAME.XXXXXX for a
# script's test environment (start it in WORK/env). Whenever the script exits, Ctrl-C and
# SIGTERM included, FUNCTION runs first (for what the script started outside the daemon), then
# testenv_stop WORK/env, and WORK is removed.
testenv_scratch() {
  # shellcheck disable=SC2034 # WORK is the sourcing script's.
  WORK=$(mktemp -d "/tmp/crossarch-$1.XXXXXX")
  _TESTENV_SCRATCH_HOOK=${2:-}
  trap _testenv_scratch_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

_testenv_scratch_cleanup() {
  local rc=$?
  if [ -n "$_TESTENV_SCRATCH_HOOK" ]; then "$_TESTENV_SCRATCH_HOOK" || true; fi
  testenv_stop "$WORK/env" || true
  rm -rf "$WORK"
  exit "$rc"
}

# Processes whose command line carries `-address SOCK`: the shims this daemon started.
_testenv_shim_pids() {
  local sock=$1 p
  for p in /proc/[0-9]*; do
    [ -r "$p/cmdline" ] || continue
    if tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -xF -- "$sock" >/dev/null; then
      tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -x -- '-address' >/dev/null && echo "${p#/proc/}"
    fi
  done
}

# Paths of the unix sockets the processes PIDS listen on.
_testenv_listening_sockets() {
  python3 - "$@" <<'EOF'
import os, sys
inodes = set()
for pid in sys.argv[1:]:
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        pass
# Num RefCount Protocol Flags Type St Inode Path; flag 0x10000 is __SO_ACCEPTCON (listening).
for line in list(open("/proc/net/unix"))[1:]:
    f = line.split()
    if len(f) >= 8 and f[6] in inodes and int(f[3], 16) & 0x10000 and f[7].startswith("/"):
        print(f[7])
EOF
}

# Mounted cgroup hierarchies: v1 controllers, the v1 "unified" cgroup2 of a hybrid setup, or
# the one cgroup2 root of a pure v2 host.
_testenv_cgroup_roots() {
  awk '$9 == "cgroup" || $9 == "cgroup2" { print $5 }' /proc/self/mountinfo |
    grep '^/sys/fs/cgroup' | sort -u
}

testenv_stop() {
  local dir=${1:?usage: testenv_stop DIR} pid ns id sock
  [ -d "$dir" ] || return 0
  dir=$(_testenv_abs "$dir")
  if [ ! -f "$dir/$TESTENV_MARKER" ]; then
    warn "testenv_stop: $dir is not a test environment (no $TESTENV_MARKER); leaving it alone"
    return 1
  fi
  sock="$dir/containerd.sock"
  # owned: "<namespace>/<id>" of every container this daemon may have left something of.
  local -a namespaces=() owned=()
  [ -f "$dir/namespaces" ] && mapfile -t namespaces <"$dir/namespaces"
  local b
  for b in "$dir"/state/io.containerd.runtime.v2.task/*/*; do
    [ -d "$b" ] || continue
    owned+=("$(basename "$(dirname "$b")")/$(basename "$b")")
  done

  if pid=$(_testenv_pid "$dir"); then
    local -a c=(timeout 10 ctr --address "$sock")
    mapfile -t -O "${#namespaces[@]}" namespaces < <("${c[@]}" namespaces ls -q 2>/dev/null)
    for ns in $(printf '%s\n' "${namespaces[@]}" | sort -u); do
      for id in $("${c[@]}" -n "$ns" containers ls -q 2>/dev/null); do
        owned+=("$ns/$id")
      done
      for id in $("${c[@]}" -n "$ns" task ls -q 2>/dev/null); do
        "${c[@]}" -n "$ns" task kill -a -s KILL "$id" >/dev/null 2>&1 || true
      done
      for id in $("${c[@]}" -n "$ns" task ls -q 2>/dev/null); do
        # A task just killed may take a moment to report STOPPED; -f covers the rest.
        for _ in 1 2 3 4 5 6 7 8 9 10; do
          "${c[@]}" -n "$ns" task rm -f "$id" >/dev/null 2>&1 && break
          sleep 0.2
        done
      done
      for id in $("${c[@]}" -n "$ns" containers ls -q 2>/dev/null); do
        "${c[@]}" -n "$ns" containers rm "$id" >/dev/null 2>&1 ||
          warn "testenv_stop: could not remove container $ns/$id"
      done
    done
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      warn "testenv_stop: containerd $pid ignored SIGTERM for 5 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi

  # Shims outlive their daemon. Any still serving this socket were started by it, and the
  # -namespace/-id they carry name containers of ours.
  local -a shims
  mapfile -t shims < <(_testenv_shim_pids "$sock")
  if [ "${#shims[@]}" -gt 0 ]; then
    local spid
    for spid in "${shims[@]}"; do
      mapfile -t -O "${#owned[@]}" owned < <(tr '\0' '\n' <"/proc/$spid/cmdline" 2>/dev/null |
        awk '/^-namespace$/ { getline ns } /^-id$/ { getline id } END { if (ns != "" && id != "") print ns "/" id }')
    done
    # A killed shim cannot remove the socket it listens on (/run/containerd/s/...); note its
    # path from its fds and /proc/net/unix first.
    local -a listening
    mapfile -t listening < <(_testenv_listening_sockets "${shims[@]}")
    warn "testenv_stop: killing leftover shims of $sock: ${shims[*]}"
    kill -KILL "${shims[@]}" 2>/dev/null || true
    local s
    for s in "${listening[@]}"; do
      if [ -S "$s" ]; then rm -f "$s"; fi
    done
  fi

  # Whatever is still mounted under DIR (rootfs of a shim that died, snapshots), deepest first.
  local m
  while IFS= read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || warn "testenv_stop: cannot unmount $m"
  done < <(awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)

  # ctr's default cgroupsPath is /<namespace>/<id>, in every hierarchy. Processes still in the
  # cgroup of one of our containers lost their shim: kill them, as runc would have.
  local pair root cg procs
  for pair in $(printf '%s\n' "${owned[@]}" | sort -u); do
    ns=${pair%%/*}
    id=${pair#*/}
    namespaces+=("$ns")
    # runc keeps per-container state under the shim's runc root; a killed shim leaves it.
    # `delete -f` kills what is left and removes its cgroups.
    if [ -d "/run/containerd/runc/$ns/$id" ]; then
      runc --root "/run/containerd/runc/$ns" delete -f "$id" >/dev/null 2>&1 || true
      rmdir "/run/containerd/runc/$ns" 2>/dev/null || true
    fi
    for root in $(_testenv_cgroup_roots); do
      cg="$root/$ns/$id"
      [ -d "$cg" ] || continue
      procs=$(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | tr '\n' ' ')
      if [ -n "${procs// /}" ]; then
        warn "testenv_stop: killing processes left in $cg: $procs"
        # shellcheck disable=SC2086
        kill -KILL $procs 2>/dev/null || true
        sleep 0.2
      fi
      find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ -d "$cg" ] && warn "testenv_stop: cannot remove cgroup $cg"
    done
  done
  # Then the namespace level, and cgroups of containers removed earlier: only empty ones go,
  # so a live cgroup of another daemon using the same namespace name is never touched.
  for ns in $(printf '%s\n' "${namespaces[@]}" | sort -u); do
    for root in $(_testenv_cgroup_roots); do
      [ -d "$root/$ns" ] || continue
      find "$root/$ns" -depth -mindepth 1 -type d -exec rmdir {} + 2>/dev/null || true
      rmdir "$root/$ns" 2>/dev/null || true
    done
    # runc creates its per-namespace root on first use and never removes it.
    rmdir "/run/containerd/runc/$ns" 2>/dev/null || true
  done

  rm -rf --one-file-system "$dir" || warn "testenv_stop: could not remove all of $dir"
  [ "${TESTENV_DIR:-}" = "$dir" ] && unset TESTENV_DIR TESTENV_NS
  return 0
}
