#!/usr/bin/env bash
# Builds crossarch and stages it as it is installed: the shim and its static init side by side
# in target/dist/ (the shim finds the init beside itself).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
rustup target list --installed 2>/dev/null | grep -q x86_64-unknown-linux-musl \
  || rustup target add x86_64-unknown-linux-musl >/dev/null
CROSSARCH_REVISION="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  cargo build --release -p crossarch-shim
cargo build -p crossarch-init --profile dist --target x86_64-unknown-linux-musl
mkdir -p "$target/dist"
install -m 0755 "$target/release/containerd-shim-crossarch-v2" "$target/dist/"
install -m 0755 "$target/x86_64-unknown-linux-musl/dist/crossarch-init" "$target/dist/"
echo "build: staged $target/dist/{containerd-shim-crossarch-v2,crossarch-init}"
