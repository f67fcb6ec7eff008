#!/usr/bin/env bash
# Builds (and caches) the arm64 Debian root of the trace-mode dpkg test
# (integration/tests/trace_dpkg.rs): debootstrap's FIRST stage only,
#
#   debootstrap --foreign --arch=arm64 --variant=minbase --include=gosu bookworm DIR MIRROR
#
# which downloads the required packages, unpacks them with the host's tools and leaves the
# .debs in DIR/var/cache/apt/archives for the second stage (gosu's too, which the test
# installs itself: a Go program that switches users from every one of its threads). Nothing arm64 runs, so no
# binfmt_misc is needed; this script never mounts or writes /proc/sys/fs/binfmt_misc.
#
#   fixtures/out/debroot/arm64/             the first-stage root (never run; tests copy it)
#   fixtures/out/stamps/debroot-arm64       what built it (a second run only checks this)
#
# Usage: scripts/fixture-debroot.sh [--force]
#   --force   build the root again even if the stamp says it is current
#
# Env: FIXTURES_MIRROR (default http://deb.debian.org/debian), FIXTURES_SUITE (bookworm).
# Must run as root (debootstrap extracts as root and makes device nodes).
set -euo pipefail

# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

OUT="$CROSSARCH_REPO/fixtures/out"
MIRROR="${FIXTURES_MIRROR:-http://deb.debian.org/debian}"
SUITE="${FIXTURES_SUITE:-bookworm}"
ARCH=arm64
VARIANT=minbase
INCLUDE=gosu
DEST="$OUT/debroot/$ARCH"
STAMP="$OUT/stamps/debroot-$ARCH"
# Bump when the layout of the root changes in a way the stamp cannot see.
FIXTURE_FORMAT=1

force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument '$arg' (try --help)" ;;
  esac
done

key=$(printf '%s\n' "$FIXTURE_FORMAT" "$SUITE" "$MIRROR" "$ARCH" "$VARIANT" "$INCLUDE" \
  "$(sha256sum "$0" | cut -c1-64)" | sha256sum | cut -c1-32)
# The second stage's own script and the .debs it installs: what a complete first stage leaves.
if [ "$force" -eq 0 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$key" ] &&
  [ -x "$DEST/debootstrap/debootstrap" ] &&
  [ -n "$(compgen -G "$DEST/var/cache/apt/archives/base-passwd_*_$ARCH.deb" | sed -n 1p)" ] &&
  [ -n "$(compgen -G "$DEST/var/cache/apt/archives/${INCLUDE}_*_$ARCH.deb" | sed -n 1p)" ]; then
  log "debroot/$ARCH: up to date"
  exit 0
fi

need_root "fixture-debroot.sh"
if ! command -v debootstrap >/dev/null 2>&1; then
  # scripts/install-deps.sh installs it; this is for a machine that only ran part of it.
  step "installing debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || warn "apt-get update reported errors; installing anyway"
  apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi
need_cmd debootstrap sha256sum

mkdir -p "$OUT/debroot" "$OUT/stamps"
rm -f "$STAMP"
tmp=$(mktemp -d "$OUT/debroot/.$ARCH.XXXXXX")
trap 'rm -rf "$tmp" "$tmp.log"' EXIT
# mktemp's 0700 would become the container's /.
chmod 0755 "$tmp"
step "debroot/$ARCH: debootstrap --foreign --arch=$ARCH --variant=$VARIANT --include=$INCLUDE $SUITE (first stage only)"
t0=$SECONDS
if ! debootstrap --foreign --arch="$ARCH" --variant="$VARIANT" --include="$INCLUDE" \
  "$SUITE" "$tmp" "$MIRROR" \
  >"$tmp.log" 2>&1; then
  tail -n 30 "$tmp.log" >&2
  die "debootstrap's first stage of $SUITE/$ARCH from $MIRROR failed; check that the mirror \
is reachable"
fi
# On a host that looks like Docker's (/.dockerenv, as some CI VMs have), debootstrap makes
# /proc a symlink to the host's /proc, on which runc refuses to mount the container's proc
# ("must be mounted on ordinary directory"). The root is never used on the host: make it the
# directory that base-files ships.
if [ -L "$tmp/proc" ]; then
  rm "$tmp/proc"
  mkdir -m 0755 "$tmp/proc"
fi
mv "$tmp.log" "$tmp/debootstrap/crossarch-first-stage.log"
rm -rf "$DEST"
mv "$tmp" "$DEST"
echo "$key" >"$STAMP"
log "debroot/$ARCH: built in $((SECONDS - t0)) s, $(du -sh "$DEST" | cut -f1)," \
  "$(compgen -G "$DEST/var/cache/apt/archives/*.deb" | wc -l) .debs"
