#!/usr/bin/env bash
# Runs every test of crossarch on this machine: lints, unit tests, the fuzz corpus replay, and
# the integration suite against a private containerd with real runc (and qemu-user for foreign
# architectures), then the Debian package installed, used and purged (scripts/test-deb.sh).
# Installs what it needs first. Must run as root.
#
#   scripts/test.sh                 everything
#   CROSSARCH_SKIP_INSTALL=1 ...    do not run install-deps.sh
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

echo "== tests"
export CROSSARCH_SHIM_DIR="$CARGO_TARGET_DIR/dist"
cargo test --workspace --no-fail-fast

echo "== package"
scripts/test-deb.sh
