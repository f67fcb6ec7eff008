#!/usr/bin/env bash
# Installs crossarch on this node: the shim and its init into PREFIX/bin (default /usr/local),
# and a commented default config at /etc/crossarch/config.toml unless one exists.
#
#   scripts/install.sh              build, then install
#   scripts/install.sh --no-build   install what scripts/build.sh staged in target/dist
#                                        (target/dist-aarch64 on an arm64 node)
#   PREFIX=/opt/crossarch scripts/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${PREFIX:-/usr/local}"
# This node's build: target/dist on x86_64, target/dist-aarch64 on arm64 (scripts/build.sh).
case "$(uname -m)" in
aarch64) arch=aarch64 dist="${CARGO_TARGET_DIR:-$PWD/target}/dist-aarch64" ;;
*) arch=x86_64 dist="${CARGO_TARGET_DIR:-$PWD/target}/dist" ;;
esac
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 2; }
[ "${1:-}" = --no-build ] || scripts/build.sh "$arch"
for f in containerd-shim-crossarch-v2 crossarch-init; do
  [ -x "$dist/$f" ] || { echo "install.sh: $dist/$f is missing; run scripts/build.sh $arch" >&2; exit 1; }
done
install -d "$prefix/bin"
# Side by side: the shim finds its init beside itself.
install -m 0755 "$dist/containerd-shim-crossarch-v2" "$dist/crossarch-init" "$prefix/bin/"
install -d /etc/crossarch
[ -e /etc/crossarch/config.toml ] || install -m 0644 etc/config.toml /etc/crossarch/config.toml
echo "installed $prefix/bin/containerd-shim-crossarch-v2 and $prefix/bin/crossarch-init"
echo "containerd finds the shim through PATH for the runtime io.containerd.crossarch.v2."
echo "For Kubernetes, add to /etc/containerd/config.toml and restart containerd:"
cat <<'TOML'
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crossarch]
    runtime_type = "io.containerd.crossarch.v2"
TOML
