#!/usr/bin/env bash
# Builds crossarch and stages it as it is installed: the shim and its init side by side (the
# shim finds the init beside itself). Both are static (musl) static-pie executables built for
# size: a shim runs per pod and mostly sits idle, so its resident memory is mostly its code.
#
#   scripts/build.sh            x86_64, staged in target/dist/
#   scripts/build.sh aarch64    arm64 nodes, staged in target/dist-aarch64/ (linked by
#                               rust-lld, see .cargo/config.toml; no cross toolchain needed)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
case "${1:-x86_64}" in
x86_64) triple=x86_64-unknown-linux-musl dist="$target/dist" machine=62 ;;
aarch64 | arm64) triple=aarch64-unknown-linux-musl dist="$target/dist-aarch64" machine=183 ;;
*)
  echo "usage: scripts/build.sh [x86_64|aarch64]" >&2
  exit 2
  ;;
esac
rustup target list --installed 2>/dev/null | grep -x -- "$triple" >/dev/null || rustup target add "$triple" >/dev/null
CROSSARCH_REVISION="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  cargo build -p crossarch-shim -p crossarch-init --profile small --target "$triple"
mkdir -p "$dist"
# Unsigned little-endian integer of $3 bytes at offset $2 of file $1.
le() { od -An -tu"$3" -j"$2" -N"$3" --endian=little "$1" | tr -d ' '; }
# Whether $1 is a static-pie executable for e_machine $2 (an ELF64): ELF type ET_DYN and no
# PT_INTERP (3) among its program headers.
static_pie() {
  [ "$(le "$1" 16 2)" = 3 ] && [ "$(le "$1" 18 2)" = "$2" ] || return 1
  local phoff phentsize phnum i
  phoff=$(le "$1" 32 8) phentsize=$(le "$1" 54 2) phnum=$(le "$1" 56 2)
  for ((i = 0; i < phnum; i++)); do
    [ "$(le "$1" $((phoff + i * phentsize)) 4)" != 3 ] || return 1
  done
}
for bin in containerd-shim-crossarch-v2 crossarch-init; do
  static_pie "$target/$triple/small/$bin" "$machine" ||
    { echo "build: $bin for $triple is not a static-pie executable for it" >&2 && exit 1; }
done
install -m 0755 "$target/$triple/small/containerd-shim-crossarch-v2" "$target/$triple/small/crossarch-init" \
  "$dist/"
echo "build: staged $dist/{containerd-shim-crossarch-v2,crossarch-init}"
