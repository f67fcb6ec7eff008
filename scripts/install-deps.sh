#!/usr/bin/env bash
# Installs what crossarch needs on a Debian 12 node or CI machine: containerd, runc,
# qemu-user-static, and the tools the tests and fixtures use. Idempotent.
set -euo pipefail

# python3 and debian-archive-keyring: scripts/fixtures.sh (image packing, private apt for the
# foreign busybox .debs) and scripts/bench.sh. containernetworking-plugins and
# protobuf-compiler: the Kubernetes (CRI) tests, which give pods a network through CNI and
# speak CRI's gRPC API. gcc and libc6-dev: the static attack helper of the hostile-container
# tests (integration/helpers). python3-yaml and lintian: scripts/test-deb.sh checks deploy/*.yaml and the package.
# file: scripts/test-deb-arm64.sh checks what the arm64 package's binaries are.
# debootstrap: the root of the second test lane (scripts/lane-sid.sh).
pkgs=(containerd runc qemu-user-static busybox-static criu iproute2 procps util-linux jq
  python3 debian-archive-keyring containernetworking-plugins protobuf-compiler gcc libc6-dev
  python3-yaml lintian file debootstrap)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep 'install ok installed' >/dev/null || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # An index that fails to download (a foreign architecture's, say) must not stop the install
  # of packages the other indexes have; apt-get install fails loudly if one is missing.
  apt-get update -qq || echo "install-deps: apt-get update reported errors; installing anyway" >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The packaged containerd service would share the node's default state; tests start their
# own private daemon, so the packaged one is not needed for them.
if command -v systemctl >/dev/null 2>&1 && [ -n "${CI:-}" ]; then
  systemctl disable --now containerd >/dev/null 2>&1 || true
fi
# x86_64 and arm64 nodes; the aarch64 build links with the toolchain's rust-lld
# (.cargo/config.toml), so it needs no cross toolchain from apt.
for triple in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  if ! rustup target list --installed 2>/dev/null | grep -x -- "$triple" >/dev/null; then
    rustup target add "$triple" >/dev/null
  fi
done
echo "install-deps: containerd $(containerd --version | awk '{print $3}'), $(runc --version | sed -n 1p)"
