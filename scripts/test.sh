#!/usr/bin/env bash
# Runs every test of crossarch on this machine: lints, unit tests, the fuzz corpus replay, and
# the integration suite in two lanes: against a private containerd with the host's runc (and
# qemu-user-static for foreign architectures), then again under Debian sid's containerd 2.x,
# runc 1.3+ and qemu-user (scripts/lane-sid.sh, whose root is cached between runs); then
# the Debian package installed, used and purged (scripts/test-deb.sh). Installs what it
# needs first. Must run as root.
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

echo "== tests (lane: host, $(containerd --version | awk '{print $3}'), $(runc --version | head -1))"
export CROSSARCH_SHIM_DIR="$CARGO_TARGET_DIR/dist"
status=0
cargo test --workspace --no-fail-fast || status=$?

if [[ " ${CROSSARCH_SKIP_LANES:-} " != *" sid "* ]]; then
  echo "== tests (lane: sid)"
  scripts/lane-sid.sh || status=$?
fi
[ "$status" = 0 ] || { echo "test.sh: tests failed (see above)" >&2; exit "$status"; }

echo "== package"
scripts/test-deb.sh
