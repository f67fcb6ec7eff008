#!/usr/bin/env bash
# Builds crossarch and stages it as it is installed: the shim and its init side by side in
# target/dist/ (the shim finds the init beside itself). Both are static (musl) and built for
# size: a shim runs per pod and mostly sits idle, so its resident memory is mostly its code.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
triple=x86_64-unknown-linux-musl
rustup target list --installed 2>/dev/null | grep -q "$triple" || rustup target add "$triple" >/dev/null
CROSSARCH_REVISION="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  cargo build -p crossarch-shim -p crossarch-init --profile small --target "$triple"
mkdir -p "$target/dist"
install -m 0755 "$target/$triple/small/containerd-shim-crossarch-v2" "$target/$triple/small/crossarch-init" \
  "$target/dist/"
echo "build: staged $target/dist/{containerd-shim-crossarch-v2,crossarch-init}"
