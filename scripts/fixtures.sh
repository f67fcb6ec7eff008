#!/usr/bin/env bash
# Builds crossarch's test fixtures into fixtures/out/ (gitignored). Idempotent; a second run
# with nothing changed only checks stamps.
#
#   fixtures/out/debs/                      busybox-static_*_<debarch>.deb (cache)
#   fixtures/out/rootfs/<debarch>/          minimal busybox root, for `ctr run --rootfs`
#   fixtures/out/images/busybox-<debarch>.tar   crossarch.test/busybox:<debarch>
#   fixtures/out/images/script-amd64.tar    crossarch.test/script:amd64 (Entrypoint is a #!/bin/sh script)
#   fixtures/out/images/script-arm64.tar    crossarch.test/script:arm64 (Cmd is a foreign #!/bin/sh script)
#
# Usage: scripts/fixtures.sh [--verify] [--force]
#   --verify  import every image into a private containerd and run them with runc
#   --force   rebuild rootfs and images even if the stamps say they are current
#
# The .debs are fetched with a private, temporary apt configuration (fixtures/out/apt): the host's
# dpkg architecture list and apt sources stay untouched, so a flaky foreign index can never
# break the host's `apt-get update`. riscv64 is not a release architecture of Debian 12, so
# its busybox comes from Debian 13 (trixie); the others come from bookworm.
# Env: FIXTURES_MIRROR (default http://deb.debian.org/debian), FIXTURES_SUITE (bookworm),
#      FIXTURES_RISCV64_SUITE (trixie).
set -euo pipefail

# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

OUT="$CROSSARCH_REPO/fixtures/out"
MIRROR="${FIXTURES_MIRROR:-http://deb.debian.org/debian}"
SUITE="${FIXTURES_SUITE:-bookworm}"
RISCV64_SUITE="${FIXTURES_RISCV64_SUITE:-trixie}"
MKIMAGE="$CROSSARCH_REPO/scripts/lib/mkimage.py"
# Bump when the layout of a rootfs or image changes in a way the stamps cannot see.
FIXTURE_FORMAT=1

verify=0
force=0
for arg in "$@"; do
  case "$arg" in
    --verify) verify=1 ;;
    --force) force=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument '$arg' (try --help)" ;;
  esac
done

need_cmd dpkg-deb apt-get python3 sha256sum
mkdir -p "$OUT"/{debs,rootfs,images,stamps}

# ---------------------------------------------------------------------------------------------
# 1. busybox-static .debs

APT_DIR="$OUT/apt"
apt_opts=()
private_apt_setup() {
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -r "$keyring" ] || die "$keyring missing; apt-get install debian-archive-keyring"
  private_apt "$APT_DIR" "deb [arch=amd64,arm64,armhf,s390x,ppc64el signed-by=$keyring] $MIRROR $SUITE main
deb [arch=riscv64 signed-by=$keyring] $MIRROR $RISCV64_SUITE main" "${CROSSARCH_ARCHES[@]}"
}

deb_for() { compgen -G "$OUT/debs/busybox-static_*_$1.deb" | sed -n 1p; }

missing=()
for a in "${CROSSARCH_ARCHES[@]}"; do
  [ -n "$(deb_for "$a")" ] || missing+=("$a")
done
if [ "${#missing[@]}" -gt 0 ]; then
  step "downloading busybox-static for: ${missing[*]}"
  private_apt_setup
  # apt-get update exits 0 even when some indexes failed; whether the download works is what
  # counts, and it says clearly which package it could not find.
  if ! apt-get "${apt_opts[@]}" -qq update >"$APT_DIR/update.log" 2>&1; then
    warn "apt-get update reported errors (see $APT_DIR/update.log); trying the downloads anyway"
  fi
  for a in "${missing[@]}"; do
    (cd "$OUT/debs" && apt-get "${apt_opts[@]}" -qq download "busybox-static:$a") ||
      die "could not download busybox-static:$a from $MIRROR (see $APT_DIR/update.log)"
    log "  $(basename "$(deb_for "$a")")"
  done
  # The package indexes (~120 MB) are only needed to fetch; the .debs are the cache.
  rm -rf "$APT_DIR"
fi

# ---------------------------------------------------------------------------------------------
# 2. rootfs/<debarch>

PASSWD='root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false'
GROUP='root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
users:x:100:
nogroup:x:65534:'

host_busybox_list=""
# The applets that busybox binary provides, as paths like bin/ls, usr/bin/env. A foreign
# busybox is asked through qemu-<arch>-static directly (no binfmt_misc involved); without
# qemu, the host's amd64 busybox of the same Debian build stands in.
applet_list() {
  local debarch=$1 bb=$2 qarch list
  qarch=$(arch_qemu "$debarch")
  if [ "$debarch" = amd64 ]; then
    "$bb" --list-full
    return
  fi
  if command -v "qemu-$qarch-static" >/dev/null 2>&1 &&
    list=$("qemu-$qarch-static" "$bb" --list-full 2>/dev/null) && [ -n "$list" ]; then
    printf '%s\n' "$list"
    return
  fi
  warn "qemu-$qarch-static unavailable; using the amd64 busybox's applet list for $debarch"
  if [ -z "$host_busybox_list" ]; then
    local tmp
    tmp=$(mktemp -d)
    dpkg-deb -x "$(deb_for amd64)" "$tmp"
    host_busybox_list=$("$tmp/bin/busybox" --list-full)
    rm -rf "$tmp"
  fi
  printf '%s\n' "$host_busybox_list"
}

build_rootfs() {
  local debarch=$1 deb=$2 dest=$3 tmp bb applet dir rel
  tmp=$(mktemp -d "$OUT/.rootfs-$debarch.XXXXXX")
  dpkg-deb -x "$deb" "$tmp/deb"
  # bookworm ships /bin/busybox, trixie /usr/bin/busybox.
  for bb in "$tmp/deb/bin/busybox" "$tmp/deb/usr/bin/busybox" ""; do
    [ -f "$bb" ] && break
  done
  [ -n "$bb" ] || die "no bin/busybox or usr/bin/busybox in $deb"

  local r="$tmp/rootfs"
  mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,dev,proc,sys,tmp,root,var/tmp,run,home}
  chmod 1777 "$r/tmp" "$r/var/tmp"
  chmod 700 "$r/root"
  install -m 0755 "$bb" "$r/bin/busybox"
  while IFS= read -r applet; do
    [ -n "$applet" ] || continue
    case "$applet" in */busybox | linuxrc) continue ;; esac
    dir=${applet%/*}
    case "$dir" in
      bin) rel=busybox ;;
      sbin) rel=../bin/busybox ;;
      usr/bin | usr/sbin) rel=../../bin/busybox ;;
      *) continue ;;
    esac
    [ -e "$r/$applet" ] || ln -s "$rel" "$r/$applet"
  done < <(applet_list "$debarch" "$bb")
  [ -L "$r/bin/sh" ] || die "busybox for $debarch has no sh applet?"
  printf '%s\n' "$PASSWD" >"$r/etc/passwd"
  printf '%s\n' "$GROUP" >"$r/etc/group"
  printf 'root:*:19000:0:99999:7:::\n' >"$r/etc/shadow"
  chmod 600 "$r/etc/shadow"
  printf 'crossarch-fixture\n' >"$r/etc/hostname"
  : >"$r/etc/hosts"
  : >"$r/etc/resolv.conf"

  rm -rf "$dest"
  mv "$r" "$dest"
  rm -rf "$tmp"
}

key_of() { printf '%s\n' "$@" | sha256sum | cut -c1-32; }
stamp_ok() { [ "$force" -eq 0 ] && [ -f "$OUT/stamps/$1" ] && [ "$(cat "$OUT/stamps/$1")" = "$2" ]; }

built=()
declare -A deb_sha
for a in "${CROSSARCH_ARCHES[@]}"; do
  deb=$(deb_for "$a")
  deb_sha[$a]=$(sha256sum "$deb" | cut -c1-64)
  key=$(key_of "$FIXTURE_FORMAT" "${deb_sha[$a]}" "$(sha256sum "$0" | cut -c1-64)")
  if stamp_ok "rootfs-$a" "$key" && [ -x "$OUT/rootfs/$a/bin/busybox" ]; then
    continue
  fi
  step "rootfs/$a from $(basename "$deb")"
  build_rootfs "$a" "$deb" "$OUT/rootfs/$a"
  echo "$key" >"$OUT/stamps/rootfs-$a"
  built+=("rootfs/$a")
done

# ---------------------------------------------------------------------------------------------
# 3. images

# Prints its arguments and what it ran on, then runs them if any were given. Busybox sh needs
# no other tool for this.
# shellcheck disable=SC2016  # expanded by the container's shell, not here
HELLO_SCRIPT='#!/bin/sh
echo "crossarch-hello: $(uname -m) pid $$ args: $*"
if [ "$#" -gt 0 ]; then exec "$@"; fi
'
SCRIPT_PATH=/usr/local/bin/crossarch-hello
hello_file="$OUT/stamps/crossarch-hello.sh"
printf '%s' "$HELLO_SCRIPT" >"$hello_file.tmp"
if cmp -s "$hello_file.tmp" "$hello_file" 2>/dev/null; then
  rm -f "$hello_file.tmp"
else
  mv "$hello_file.tmp" "$hello_file"
fi

# make_image FILE NAME DEBARCH [mkimage.py args...]
make_image() {
  local file=$1 name=$2 debarch=$3 goarch variant key
  shift 3
  read -r goarch variant _ _ < <(arch_info "$debarch")
  variant=${variant#"$goarch"}
  variant=${variant#/}
  key=$(key_of "$FIXTURE_FORMAT" "$(cat "$OUT/stamps/rootfs-$debarch")" "$name" "$*" \
    "$(sha256sum "$MKIMAGE" "$hello_file" | cut -c1-64)")
  if stamp_ok "image-$(basename "$file")" "$key" && [ -f "$OUT/images/$file" ]; then
    return
  fi
  python3 "$MKIMAGE" --rootfs "$OUT/rootfs/$debarch" --out "$OUT/images/$file" --name "$name" \
    --arch "$goarch" ${variant:+--variant "$variant"} "$@" >&2
  echo "$key" >"$OUT/stamps/image-$(basename "$file")"
  built+=("images/$file")
}

for a in "${CROSSARCH_ARCHES[@]}"; do
  make_image "busybox-$a.tar" "crossarch.test/busybox:$a" "$a" --entrypoint null --cmd '["sh"]'
done
make_image script-amd64.tar crossarch.test/script:amd64 amd64 \
  --add "$hello_file:$SCRIPT_PATH:0755" --entrypoint "[\"$SCRIPT_PATH\"]" --cmd null
make_image script-arm64.tar crossarch.test/script:arm64 arm64 \
  --add "$hello_file:$SCRIPT_PATH:0755" --entrypoint null --cmd "[\"$SCRIPT_PATH\"]"
"$CROSSARCH_REPO/scripts/fixture-debroot.sh" # debroot/arm64: debootstrap's first stage (~20 s once, 220 MB)

# ---------------------------------------------------------------------------------------------
# 4. report

if [ "${#built[@]}" -gt 0 ]; then
  log "fixtures: built ${built[*]}"
else
  log "fixtures: up to date"
fi
printf '%-10s %-14s %-34s %s\n' ARCH PLATFORM IMAGE FILE
for a in "${CROSSARCH_ARCHES[@]}"; do
  printf '%-10s %-14s %-34s %s\n' "$a" "$(arch_platform "$a")" "crossarch.test/busybox:$a" \
    "fixtures/out/images/busybox-$a.tar"
done
printf '%-10s %-14s %-34s %s\n' amd64 linux/amd64 crossarch.test/script:amd64 fixtures/out/images/script-amd64.tar
printf '%-10s %-14s %-34s %s\n' arm64 linux/arm64/v8 crossarch.test/script:arm64 fixtures/out/images/script-arm64.tar
log "rootfs dirs: fixtures/out/rootfs/{$(
  IFS=,
  echo "${CROSSARCH_ARCHES[*]}"
)}"

# ---------------------------------------------------------------------------------------------
# 5. optional verification against a private containerd with runc

[ "$verify" -eq 1 ] || exit 0

need_root "fixtures.sh --verify"
# shellcheck source=testenv.sh
. "$CROSSARCH_REPO/scripts/testenv.sh"
VDIR=$(mktemp -d /tmp/crossarch-fixtures-verify.XXXXXX)
trap 'testenv_stop "$VDIR"' EXIT
step "verifying images with a private containerd in $VDIR"
testenv_start "$VDIR"
for f in "$OUT"/images/*.tar; do
  ctrx image import --all-platforms "$f" >/dev/null || die "import of $f failed"
done
ctrx image ls | awk 'NR==1 || /crossarch.test/ {print "  " $1, $(NF-1), $NF}' >&2

fail=0
check() { # check WHAT EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then
    log "  ok    $1: $3"
  else
    log "  FAIL  $1: expected '$2', got '$3'"
    fail=1
  fi
}
R=io.containerd.runc.v2
out=$(ctrx run --rm --runtime "$R" crossarch.test/busybox:amd64 fx-native uname -m </dev/null 2>&1) || true
check "busybox:amd64 uname -m" x86_64 "$out"
# shellcheck disable=SC2016
out=$(ctrx run --rm --runtime "$R" crossarch.test/busybox:amd64 fx-sh sh -c 'ls /bin/sh /usr/bin/env /sbin/ip >/dev/null && id -un && echo $PATH' </dev/null 2>&1) || true
check "busybox:amd64 applets, passwd, PATH" "root
/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "$out"
out=$(ctrx run --rm --runtime "$R" crossarch.test/script:amd64 fx-script </dev/null 2>&1) || true
check "script:amd64 entrypoint" "crossarch-hello: x86_64 pid 1 args: " "$out"
# ctr (unlike docker/nerdctl) replaces Entrypoint and Cmd with the args given after the id.
out=$(ctrx run --rm --runtime "$R" crossarch.test/script:amd64 fx-script2 "$SCRIPT_PATH" uname -m </dev/null 2>&1) || true
check "script:amd64 script with args" "crossarch-hello: x86_64 pid 1 args: uname -m
x86_64" "$out"
# runc alone cannot run a foreign binary; "exec format error" proves that the foreign image was
# selected for the platform, unpacked, and that its entrypoint is the foreign busybox.
for a in "${CROSSARCH_ARCHES[@]}"; do
  [ "$a" = amd64 ] && continue
  out=$(ctrx run --rm --runtime "$R" --platform "$(arch_platform "$a")" "crossarch.test/busybox:$a" "fx-$a" uname -m </dev/null 2>&1) || true
  case "$out" in
    *"exec format error"*) log "  ok    busybox:$a --platform $(arch_platform "$a"): exec format error under plain runc, as expected" ;;
    "$(arch_uname "$a")") log "  ok    busybox:$a --platform $(arch_platform "$a"): ran, so the HOST's binfmt_misc has qemu registered" ;;
    *)
      log "  FAIL  busybox:$a: unexpected: $out"
      fail=1
      ;;
  esac
done
[ "$fail" -eq 0 ] || die "image verification failed"
log "fixtures: verification passed"
