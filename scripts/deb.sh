#!/usr/bin/env bash
# Builds the Debian package target/debian/crossarch_<version>_amd64.deb: the static musl build
# of scripts/build.sh (shim and init side by side in /usr/bin) and the default config as a
# conffile in /etc/crossarch/. cargo-deb is installed into target/tools on first use.
#
#   scripts/deb.sh              build, then package
#   scripts/deb.sh --no-build   package what scripts/build.sh built last
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TARGET_DIR="$target"
triple=x86_64-unknown-linux-musl
tools="$target/tools"
cargo_deb_version=3.8.0
if [ ! -x "$tools/bin/cargo-deb" ]; then
  echo "deb: installing cargo-deb $cargo_deb_version into $tools" >&2
  CARGO_TARGET_DIR="$tools/build" cargo install cargo-deb --locked --version "$cargo_deb_version" \
    --root "$tools" >&2
fi
[ "${1:-}" = --no-build ] || scripts/build.sh
# --no-build: the binaries are scripts/build.sh's (profile small, musl); cargo-deb maps the
# assets' target/release/ to that target and profile. --no-strip: the small profile strips.
# cargo-deb prints the package's path on stdout, which is all this script prints there.
"$tools/bin/cargo-deb" -p crossarch-shim --no-build --no-strip --target "$triple" \
  --profile small --output "$target/debian/"
