#!/usr/bin/env bash
# Builds the Debian package target/debian/crossarch_<version>_<arch>.deb: the static musl build
# of scripts/build.sh (shim and init side by side in /usr/bin) and the default config as a
# conffile in /etc/crossarch/. cargo-deb is installed on first use, into
# /var/cache/crossarch/tools (CROSSARCH_TOOLS_CACHE), or target/tools where that is not writable.
#
#   scripts/deb.sh                      amd64: build, then package
#   scripts/deb.sh aarch64              arm64 (built as scripts/build.sh aarch64)
#   scripts/deb.sh --no-build [ARCH]    package what scripts/build.sh built last
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TARGET_DIR="$target"
build=1 arch=x86_64
for a in "$@"; do
  case "$a" in
  --no-build) build= ;;
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=aarch64 ;;
  *)
    echo "usage: scripts/deb.sh [--no-build] [x86_64|aarch64]" >&2
    exit 2
    ;;
  esac
done
triple=$arch-unknown-linux-musl
cargo_deb_version=3.8.0
# Kept between checkouts where the machine lets us (as the test lanes' roots are), since a
# fresh checkout would otherwise build it again (about a minute and a quarter).
cache=${CROSSARCH_TOOLS_CACHE:-/var/cache/crossarch/tools}
if mkdir -p "$cache" 2>/dev/null && [ -w "$cache" ]; then
  tools="$cache/cargo-deb-$cargo_deb_version"
else
  tools="$target/tools"
fi
if [ ! -x "$tools/bin/cargo-deb" ]; then
  echo "deb: installing cargo-deb $cargo_deb_version into $tools" >&2
  CARGO_TARGET_DIR="$target/tools/build" cargo install cargo-deb --locked --version "$cargo_deb_version" \
    --root "$tools" >&2
fi
[ -z "$build" ] || scripts/build.sh "$arch" >&2
# --no-build: the binaries are scripts/build.sh's (profile small, musl); cargo-deb maps the
# assets' target/release/ to that target and profile, and the package's Architecture to the
# target's (amd64, arm64). --no-strip: the small profile strips.
# cargo-deb prints the package's path on stdout, which is all this script prints there.
"$tools/bin/cargo-deb" -p crossarch-shim --no-build --no-strip --target "$triple" \
  --profile small --output "$target/debian/"
