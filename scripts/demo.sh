#!/usr/bin/env bash
# Install everything, build crossarch, and run it for real against a private containerd:
# a native container, foreign ones (arm64 first), a foreign #! script and an exec into a
# running container. Everything it starts is removed on exit, even on failure or Ctrl-C.
#
# Usage (as root): scripts/demo.sh
# Env:
#   CROSSARCH_DEMO_RUNTIME       runtime to demo (default io.containerd.crossarch.v2); set it to
#                                io.containerd.runc.v2 to check the demo itself without the shim
#   CROSSARCH_DEMO_SKIP_INSTALL  1: do not run install-deps.sh
#   CROSSARCH_DEMO_BUILD         1: build even when the runtime is not crossarch; 0: never build
#   CROSSARCH_DEMO_STRICT        1: exit non-zero when a foreign container fails too
#   CROSSARCH_SHIM_DIR           where containerd finds the shim (default <repo>/target/dist, from scripts/build.sh)
#   CROSSARCH_DEMO_DIR           private containerd directory (default: a fresh /tmp dir)
set -euo pipefail

# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=testenv.sh
. "$CROSSARCH_REPO/scripts/testenv.sh"

RUNTIME=${CROSSARCH_DEMO_RUNTIME:-io.containerd.crossarch.v2}
export CROSSARCH_SHIM_DIR=${CROSSARCH_SHIM_DIR:-$CROSSARCH_REPO/target/dist}
need_root "demo.sh"

# --- 1. dependencies --------------------------------------------------------------------------
if [ "${CROSSARCH_DEMO_SKIP_INSTALL:-0}" != 1 ]; then
  step "installing dependencies (scripts/install-deps.sh)"
  "$CROSSARCH_REPO/scripts/install-deps.sh"
fi

# --- 2. build ---------------------------------------------------------------------------------
build=${CROSSARCH_DEMO_BUILD:-}
if [ -z "$build" ]; then
  [ "$RUNTIME" = io.containerd.crossarch.v2 ] && build=1 || build=0
fi
if [ "$build" = 1 ]; then
  need_cmd cargo
  step "building the shim and its init: scripts/build.sh"
  "$CROSSARCH_REPO/scripts/build.sh" || die "building crossarch failed; see the compiler output above"
  shim="$CROSSARCH_SHIM_DIR/containerd-shim-crossarch-v2"
  [ -x "$shim" ] || die "the build succeeded but $shim does not exist"
  log "shim: $shim ($(du -h "$shim" | cut -f1)); init: $(ls "$CROSSARCH_SHIM_DIR"/crossarch-init 2>/dev/null || echo '?')"
else
  log "(not building: runtime is $RUNTIME)"
fi

# --- 3. fixtures ------------------------------------------------------------------------------
step "building test images (scripts/fixtures.sh)"
"$CROSSARCH_REPO/scripts/fixtures.sh" >/dev/null

# --- 4. private containerd --------------------------------------------------------------------
DEMO_DIR=${CROSSARCH_DEMO_DIR:-$(mktemp -d /tmp/crossarch-demo.XXXXXX)}
KEPT_LOG="$DEMO_DIR.containerd.log"
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ] || { [ "${failed_foreign:-0}" = 1 ] && [ "$RUNTIME" = io.containerd.crossarch.v2 ]; }; then
    cp "$DEMO_DIR/containerd.log" "$KEPT_LOG" 2>/dev/null && log "containerd's log kept in $KEPT_LOG"
  fi
  step "cleaning up (testenv_stop $DEMO_DIR)"
  testenv_stop "$DEMO_DIR" || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "starting a private containerd in $DEMO_DIR"
testenv_start "$DEMO_DIR"
for f in "$CROSSARCH_REPO"/fixtures/out/images/*.tar; do
  ctrx image import --all-platforms "$f" >/dev/null || die "could not import $f"
done
log "images: $(ctrx image ls -q | tr '\n' ' ')"

declare -a results=()
failed_required=0
failed_foreign=0

# demo_run LABEL EXPECTED REQUIRED(1/0) ctr-run-args...
demo_run() {
  local label=$1 expected=$2 required=$3 out rc=0
  shift 3
  printf '\n$ ctr run' >&2
  printf ' %q' "$@" >&2
  printf '\n' >&2
  out=$(ctrx run "$@" </dev/null 2>&1) || rc=$?
  printf '%s\n' "$out" | sed 's/^/  | /' >&2
  # $expected is a glob pattern: the last line must match it.
  # shellcheck disable=SC2053
  if [ "$rc" -eq 0 ] && [[ "$(printf '%s' "$out" | tail -n 1)" == $expected ]]; then
    results+=("WORKS   $label")
  else
    results+=("FAILED  $label (expected '$expected', exit $rc)")
    if [ "$required" = 1 ]; then failed_required=1; else failed_foreign=1; fi
  fi
}

# --- 5. native --------------------------------------------------------------------------------
step "native container (linux/amd64) with $RUNTIME"
demo_run "native amd64: uname -m" x86_64 1 \
  --rm --runtime "$RUNTIME" crossarch.test/busybox:amd64 demo-native uname -m

# --- 6. foreign -------------------------------------------------------------------------------
step "foreign containers with $RUNTIME (need crossarch's qemu routing)"
demo_run "foreign arm64: uname -m" aarch64 0 \
  --rm --runtime "$RUNTIME" --platform linux/arm64 crossarch.test/busybox:arm64 demo-foreign uname -m
# Children of an emulated process must be emulated too: a shell pipeline and a nested shell.
# shellcheck disable=SC2016
demo_run "foreign arm64: child processes (sh -c, pipe, nested sh)" "nested aarch64" 0 \
  --rm --runtime "$RUNTIME" --platform linux/arm64 crossarch.test/busybox:arm64 demo-foreign-sh \
  sh -c 'ls / | wc -l >/dev/null; sh -c "echo nested \$(uname -m)"'
# The script is PID 1 without an init, a later pid behind crossarch's injected init.
demo_run "foreign arm64: #!/bin/sh script as Cmd" "crossarch-hello: aarch64 pid [0-9]* args: " 0 \
  --rm --runtime "$RUNTIME" --platform linux/arm64 crossarch.test/script:arm64 demo-foreign-script
for a in armhf s390x riscv64 ppc64el; do
  demo_run "foreign $a: uname -m" "$(arch_uname "$a")" 0 \
    --rm --runtime "$RUNTIME" --platform "$(arch_platform "$a")" "crossarch.test/busybox:$a" "demo-$a" uname -m
done

# --- 7. exec ----------------------------------------------------------------------------------
step "exec into a running container"
exec_ok=1
printf '\n$ ctr run -d --runtime %s crossarch.test/busybox:amd64 demo-exec sleep 600\n' "$RUNTIME" >&2
ctrx run -d --runtime "$RUNTIME" crossarch.test/busybox:amd64 demo-exec sleep 600 </dev/null >/dev/null 2>&1 || exec_ok=0
if [ "$exec_ok" = 1 ]; then
  # shellcheck disable=SC2016
  printf '$ ctr task exec --exec-id e1 demo-exec sh -c '"'"'echo exec: $(uname -m) $(cat /proc/1/comm)'"'"'\n' >&2
  # shellcheck disable=SC2016
  out=$(ctrx task exec --exec-id e1 demo-exec sh -c 'echo exec: $(uname -m) $(cat /proc/1/comm)' </dev/null 2>&1) || exec_ok=0
  printf '%s\n' "$out" | sed 's/^/  | /' >&2
  case "$out" in "exec: x86_64 "*) ;; *) exec_ok=0 ;; esac
  ctrx task kill -s KILL demo-exec >/dev/null 2>&1 || true
fi
if [ "$exec_ok" = 1 ]; then
  results+=("WORKS   exec into a running amd64 container")
else
  results+=("FAILED  exec into a running amd64 container")
  failed_required=1
fi

# --- 8. summary -------------------------------------------------------------------------------
step "summary for runtime $RUNTIME"
printf '  %s\n' "${results[@]}" >&2
if [ "$failed_foreign" = 1 ]; then
  if [ "$RUNTIME" = io.containerd.crossarch.v2 ]; then
    log "  -> foreign containers did NOT work with crossarch; see the output above and $KEPT_LOG"
  else
    log "  -> foreign containers cannot work with $RUNTIME (no qemu routing); that is expected"
  fi
fi
if [ "$failed_required" = 1 ]; then
  die "the native container or the exec failed with $RUNTIME"
fi
if [ "$failed_foreign" = 1 ] && [ "${CROSSARCH_DEMO_STRICT:-0}" = 1 ]; then
  die "foreign containers failed (CROSSARCH_DEMO_STRICT=1)"
fi
log "demo: done"
