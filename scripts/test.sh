#!/usr/bin/env bash
# Runs every test of crossarch on this machine: lints, unit tests, the fuzz corpus replay, and
# the integration suite in two lanes: against a private containerd with the host's runc (and
# qemu-user-static for foreign architectures), then again under Debian sid's containerd 2.x,
# runc 1.3+ and qemu-user (scripts/lane-sid.sh, whose root is cached between runs); the unit
# tests of route/ and init/ built for aarch64 and run under qemu-aarch64-static, as on an
# arm64 node; then the Debian package installed, used and purged (scripts/test-deb.sh), and
# the arm64 package checked and its shim run under qemu (scripts/test-deb-arm64.sh), and
# the aarch64 init's trace mode run on a real arm64 kernel in a VM
# (scripts/test-trace-arm64-vm.sh).
# Installs what it needs first. Must run as root.
#
#   scripts/test.sh                 everything
#   CROSSARCH_SKIP_INSTALL=1 ...    do not run install-deps.sh
#   CROSSARCH_SKIP_LANES=sid ...    leave out the sid lane
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (containers need it)" >&2; exit 2; }
[ -n "${CROSSARCH_SKIP_INSTALL:-}" ] || scripts/install-deps.sh
scripts/fixtures.sh

echo "== lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== build"
scripts/build.sh

echo "== tests (lane: host, $(containerd --version | awk '{print $3}'), $(runc --version | sed -n 1p))"
export CROSSARCH_SHIM_DIR="$CARGO_TARGET_DIR/dist"
status=0
cargo test --workspace --no-fail-fast || status=$?
echo "== init's process tests again, every one in trace mode (--trace /usr/bin)"
CROSSARCH_INIT_TEST_TRACE=/usr/bin cargo test -p crossarch-init --test process || status=$?

if [[ " ${CROSSARCH_SKIP_LANES:-} " != *" sid "* ]]; then
  echo "== tests (lane: sid)"
  scripts/lane-sid.sh || status=$?
fi
[ "$status" = 0 ] || { echo "test.sh: tests failed (see above)" >&2; exit "$status"; }

echo "== aarch64: route and init under qemu-aarch64-static"
# cargo's runner starts the test binaries through qemu (directly: no binfmt_misc), and the
# init's process tests start the aarch64 init through it too (CROSSARCH_TEST_EMULATOR).
# One test at a time: a test that forks while another test thread runs can leave the child
# blocked on a lock that qemu-user held at the fork, for ever (seen once in a busy run).
aarch64="aarch64-unknown-linux-musl"
cargo clippy -p crossarch-route -p crossarch-init --all-targets --target "$aarch64" -- -D warnings
log=$(mktemp)
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=qemu-aarch64-static \
  CROSSARCH_TEST_EMULATOR=qemu-aarch64-static \
  cargo test -p crossarch-route -p crossarch-init --target "$aarch64" --no-fail-fast -- --test-threads=1 2>&1 |
  tee "$log"
# The test that only an aarch64 build has: the host decisions were made as an arm64 node's.
grep -q '^test plan::tests::aarch64_build_decides_as_an_arm64_host \.\.\. ok$' "$log" ||
  { echo "test.sh: the aarch64 host decisions did not run" >&2 && exit 1; }
rm -f "$log"
# A multi-threaded arm64 guest in trace mode: the aarch64 route tests (cargo's harness runs
# them on a pool of threads) under the host's init, which emulates them through the tracer.
route_tests=$(cargo test -p crossarch-route --lib --target "$aarch64" --no-run 2>&1 |
  awk '/Executable/ { gsub(/[()]/, "", $NF); path = $NF } END { print path }')
[ -x "$route_tests" ] || { echo "test.sh: no aarch64 route test binary ($route_tests)" >&2; exit 1; }
"$CARGO_TARGET_DIR/debug/crossarch-init" --trace /usr/bin -- "$route_tests" --test-threads 4 2>&1 |
  tee "$log"
grep -q '^test result: ok\.' "$log" ||
  { echo "test.sh: the aarch64 route tests failed in trace mode" >&2 && exit 1; }
rm -f "$log"

echo "== package"
scripts/test-deb.sh
scripts/test-deb-arm64.sh

echo "== trace mode on an aarch64 kernel (an arm64 VM under qemu-system-aarch64)"
scripts/test-trace-arm64-vm.sh
