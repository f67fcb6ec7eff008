# shellcheck shell=bash
# Shared helpers for crossarch's scripts. Source it; it defines functions and CROSSARCH_REPO only.

# shellcheck disable=SC2034  # CROSSARCH_REPO and CROSSARCH_ARCHES are used by the sourcing scripts.
true
# The repository root, found from this file's location so the scripts work from any checkout.
CROSSARCH_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

log() { printf '%s\n' "$*" >&2; }
step() { printf '\n==> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
  printf 'ERROR: %s\n' "$*" >&2
  exit 1
}

need_root() {
  [ "$(id -u)" -eq 0 ] || die "$1 needs root (it runs containerd, runc and mounts)"
}

need_cmd() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || die "'$c' not found in PATH; run scripts/install-deps.sh"
  done
}

# debarch -> "goarch goarch/variant qemu-arch uname-m"
arch_info() {
  case "$1" in
    amd64) echo "amd64 amd64 x86_64 x86_64" ;;
    arm64) echo "arm64 arm64/v8 aarch64 aarch64" ;;
    armhf) echo "arm arm/v7 arm armv7l" ;;
    s390x) echo "s390x s390x s390x s390x" ;;
    riscv64) echo "riscv64 riscv64 riscv64 riscv64" ;;
    ppc64el) echo "ppc64le ppc64le ppc64le ppc64le" ;;
    *) return 1 ;;
  esac
}

# The value for `ctr run --platform` / `ctr image import --platform` of a Debian architecture.
arch_platform() {
  local info _goarch platform _rest
  info=$(arch_info "$1") || die "unknown Debian architecture '$1'"
  read -r _goarch platform _rest <<<"$info"
  echo "linux/$platform"
}

# The `uname -m` a container of that Debian architecture prints.
arch_uname() {
  local info _a _b _c uname_m
  info=$(arch_info "$1") || die "unknown Debian architecture '$1'"
  read -r _a _b _c uname_m <<<"$info"
  echo "$uname_m"
}

# The suffix of the qemu-<arch>-static binary for a Debian architecture.
arch_qemu() {
  local info _a _b qarch _rest
  info=$(arch_info "$1") || die "unknown Debian architecture '$1'"
  read -r _a _b qarch _rest <<<"$info"
  echo "$qarch"
}

CROSSARCH_ARCHES=(amd64 arm64 armhf s390x riscv64 ppc64el)

# A runtime's short name, for tables and file names: runc-v2, runc-rs (the Rust runc shim of
# containerd's rust-extensions, as scripts/bench.sh names it), crossarch, or the name with
# dashes for dots.
short_name() {
  case "$1" in
    io.containerd.runc.v2) echo runc-v2 ;;
    io.containerd.runcrs.v2) echo runc-rs ;;
    io.containerd.crossarch.v2) echo crossarch ;;
    *) echo "${1//./-}" ;;
  esac
}

# private_apt DIR SOURCES ARCH...: a private apt configuration in DIR (its own lists, cache
# and sources; the host's sources and dpkg architectures stay untouched) for SOURCES, the
# lines of a sources.list, with amd64 and each ARCH. Sets the array apt_opts, for
# `apt-get "${apt_opts[@]}" update` and `... download PKG:ARCH`.
private_apt() {
  local dir=$1 sources=$2 a
  shift 2
  mkdir -p "$dir"/{lists/partial,cache/archives/partial,sources.list.d,preferences.d}
  printf '%s\n' "$sources" >"$dir/sources.list"
  apt_opts=(
    -o "Dir::State::Lists=$dir/lists"
    -o "Dir::Cache=$dir/cache"
    -o "Dir::Etc::SourceList=$dir/sources.list"
    -o "Dir::Etc::SourceParts=$dir/sources.list.d"
    -o "Dir::Etc::Preferences=$dir/preferences"
    -o "Dir::Etc::PreferencesParts=$dir/preferences.d"
    -o "APT::Sandbox::User=root"
    -o "Debug::NoLocking=1"
    -o "APT::Architectures::=amd64"
  )
  for a in "$@"; do
    apt_opts+=(-o "APT::Architectures::=$a")
  done
}
