#!/usr/bin/env bash
# Runs the injected init's trace mode on a real aarch64 kernel: boots a small arm64 Linux VM
# under qemu-system-aarch64 (TCG, no KVM needed) whose initramfs holds the aarch64 build of
# crossarch-init, an amd64 busybox tree at /amd64 and the arm64 build of qemu-x86_64-static
# at /qemu, and runs `crossarch-init --trace /qemu -- ...` against amd64 programs there, as
# root without CAP_SYS_PTRACE, as in a container; the last check under Yama's ptrace_scope 1.
# qemu-user cannot emulate ptrace, so the aarch64 tracer (init/src/trace/regs.rs) can only
# run in a full-system VM. The VM has no binfmt_misc (Debian builds it as a module, and the
# initramfs has no modules); nothing on this host is registered or changed.
#
# The VM's /init prints one `CHECK <name> ok|FAIL <details>` line per check and powers off;
# this script checks that every expected line is there and ok, and exits 1 otherwise.
#
#   scripts/test-trace-arm64-vm.sh
#
# Needs root (apt-get installs qemu-system-arm, cpio and the like when missing; the initramfs
# holds a /dev/console node). Downloads Debian 12 arm64 packages (the kernel,
# qemu-user-static, busybox-static; ~100 MB once) with `apt-get download` under a private,
# temporary apt configuration, as scripts/fixtures.sh does: the host's apt sources and dpkg
# architectures stay untouched. They are cached in /var/cache/crossarch/arm64-vm/debs/; the
# last run's console is kept in /var/cache/crossarch/arm64-vm/console.log.
# Env: CROSSARCH_VM_CACHE (default /var/cache/crossarch/arm64-vm),
#      CROSSARCH_VM_TARGET_DIR (the build's CARGO_TARGET_DIR, default $CARGO_TARGET_DIR or
#      target/ in the repository), CROSSARCH_VM_TIMEOUT (seconds, default 600),
#      FIXTURES_MIRROR (default http://deb.debian.org/debian), FIXTURES_SUITE (bookworm).
set -euo pipefail

# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

case "${1:-}" in
  "") ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *) die "unknown argument '$1' (try --help)" ;;
esac

need_root test-trace-arm64-vm.sh
CACHE=${CROSSARCH_VM_CACHE:-/var/cache/crossarch/arm64-vm}
DEBS=$CACHE/debs
MIRROR="${FIXTURES_MIRROR:-http://deb.debian.org/debian}"
SUITE="${FIXTURES_SUITE:-bookworm}"
TIMEOUT=${CROSSARCH_VM_TIMEOUT:-600}
export CARGO_TARGET_DIR="${CROSSARCH_VM_TARGET_DIR:-${CARGO_TARGET_DIR:-$CROSSARCH_REPO/target}}"
LOG=$CACHE/console.log
# What the VM's /init checks, in its order; each must print `CHECK <name> ok`.
CHECKS=(amd64-uname amd64-shell-children amd64-shebang native-untouched sigterm-143 no-trace-fails
  yama1-user-switch)

now() { echo "${EPOCHREALTIME/./}"; } # microseconds
secs() { printf '%d.%01d s' $(($1 / 1000000)) $(($1 % 1000000 / 100000)); } # of microseconds
span() { if [ -n "$1" ] && [ -n "$2" ]; then secs $(($2 - $1)); else echo n/a; fi; } # from to
t_start=$(now)

# ---------------------------------------------------------------------------------------------
# 1. host tools

step "host tools"
declare -A pkg_of=([qemu-system-aarch64]=qemu-system-arm [cpio]=cpio [dpkg-deb]=dpkg
  [apt-get]=apt [gzip]=gzip [zstd]=zstd [xz]=xz-utils [file]=file [timeout]=coreutils)
want=()
for c in "${!pkg_of[@]}"; do
  command -v "$c" >/dev/null 2>&1 || want+=("${pkg_of[$c]}")
done
[ -r /usr/share/keyrings/debian-archive-keyring.gpg ] || want+=(debian-archive-keyring)
if [ "${#want[@]}" -gt 0 ]; then
  mapfile -t want < <(printf '%s\n' "${want[@]}" | sort -u)
  log "installing ${want[*]}"
  apt-get -qq update >/dev/null || warn "apt-get update reported errors; trying the install anyway"
  DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends "${want[@]}" >/dev/null ||
    die "apt-get install ${want[*]} failed"
fi
log "$(qemu-system-aarch64 --version | sed -n 1p)"

WORK=$(mktemp -d /tmp/crossarch-arm64-vm.XXXXXX)
QEMU_PID=""
cleanup() {
  # Only the VM this script started, by its pid.
  if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then kill "$QEMU_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# 2. arm64 packages (and the amd64 busybox-static when the host has none)

mkdir -p "$DEBS"
APT_DIR=$CACHE/apt
apt_opts=()
private_apt_setup() { # debarch...
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg arches
  arches=$(IFS=,; echo "$*")
  rm -rf "$APT_DIR"
  private_apt "$APT_DIR" "deb [arch=$arches signed-by=$keyring] $MIRROR $SUITE main" "$@"
}

# The cached .deb of a package name (a glob) for an architecture, or nothing.
cached() { { compgen -G "$DEBS/$1_*_$2.deb" || true; } | sort -V | tail -n 1; }
kernel_deb() { { compgen -G "$DEBS/linux-image-[0-9]*-arm64_*_arm64.deb" || true; } | sort -V | tail -n 1; }

# The amd64 busybox: the host's own busybox-static, else fixtures' .deb, else downloaded.
amd64_busybox=""
amd64_deb=""
if dpkg-query -W -f '${Status} ${Architecture}\n' busybox-static 2>/dev/null | grep -x 'install ok installed amd64' >/dev/null &&
  [ -x /bin/busybox ]; then
  amd64_busybox=/bin/busybox
else
  amd64_deb=$(compgen -G "$CROSSARCH_REPO/fixtures/out/debs/busybox-static_*_amd64.deb" | sed -n 1p || true)
  [ -n "$amd64_deb" ] || amd64_deb=$(cached busybox-static amd64)
fi

need_arches=()
[ -n "$(kernel_deb)" ] && [ -n "$(cached qemu-user-static arm64)" ] && [ -n "$(cached busybox-static arm64)" ] ||
  need_arches+=(arm64)
[ -n "$amd64_busybox" ] || [ -n "$amd64_deb" ] || need_arches+=(amd64)
t0=$(now)
if [ "${#need_arches[@]}" -gt 0 ]; then
  step "downloading Debian $SUITE packages (${need_arches[*]}) into $DEBS"
  private_apt_setup "${need_arches[@]}"
  if ! apt-get "${apt_opts[@]}" -qq update >"$APT_DIR/update.log" 2>&1; then
    warn "apt-get update reported errors (see $APT_DIR/update.log); trying the downloads anyway"
  fi
  fetch() { # package:arch
    (cd "$DEBS" && apt-get "${apt_opts[@]}" -qq download "$1") ||
      die "could not download $1 from $MIRROR $SUITE (see $APT_DIR/update.log)"
  }
  if [ -z "$(kernel_deb)" ]; then
    # linux-image-arm64 only depends on the current ABI's package; that one holds vmlinuz.
    kpkg=$(apt-cache "${apt_opts[@]}" show --no-all-versions linux-image-arm64:arm64 |
      sed -n 's/^Depends: .*\(linux-image-[0-9][^ ,]*-arm64\).*/\1/p' | sed -n 1p)
    [ -n "$kpkg" ] || die "linux-image-arm64:arm64 names no kernel package (see $APT_DIR/update.log)"
    fetch "$kpkg:arm64"
  fi
  [ -n "$(cached qemu-user-static arm64)" ] || fetch qemu-user-static:arm64
  [ -n "$(cached busybox-static arm64)" ] || fetch busybox-static:arm64
  if [ -z "$amd64_busybox" ] && [ -z "$amd64_deb" ]; then
    fetch busybox-static:amd64
    amd64_deb=$(cached busybox-static amd64)
  fi
  # The indexes are only needed to fetch; the .debs are the cache.
  rm -rf "$APT_DIR"
fi
t_download=$(($(now) - t0))
KDEB=$(kernel_deb)
QDEB=$(cached qemu-user-static arm64)
BDEB=$(cached busybox-static arm64)
for d in "$KDEB" "$QDEB" "$BDEB" ${amd64_deb:+"$amd64_deb"}; do
  log "  $(du -h "$d" | cut -f1)	$(basename "$d")"
done

# ---------------------------------------------------------------------------------------------
# 3. the kernel, as an uncompressed arm64 Image (qemu's -kernel boots that on any version)

# Unsigned little-endian integer of $3 bytes at offset $2 of file $1.
le() { od -An -tu"$3" -j"$2" -N"$3" --endian=little "$1" | tr -d ' '; }
bytes() { od -An -c -j"$2" -N"$3" "$1" | tr -d ' \n'; } # $3 bytes at offset $2, as text
decompress() {                                               # type file
  case "$1" in
    gzip) gzip -dc "$2" ;;
    zstd) zstd -qdc "$2" ;;
    xz | xzkern | lzma) xz -dc "$2" ;;
    *) die "kernel payload compressed with '$1', which this script cannot decompress" ;;
  esac
}
arm64_image() { [ "$(bytes "$1" 56 4)" = 'ARMd' ]; } # "ARM\x64" at offset 56

IMAGE=$CACHE/Image-$(basename "$KDEB" .deb)
if ! { [ -f "$IMAGE" ] && arm64_image "$IMAGE"; }; then
  step "kernel Image from $(basename "$KDEB")"
  mkdir "$WORK/kernel"
  dpkg-deb --fsys-tarfile "$KDEB" | tar -x -C "$WORK/kernel" --wildcards './boot/vmlinuz-*'
  vmlinuz=$(compgen -G "$WORK/kernel/boot/vmlinuz-*" | sed -n 1p)
  [ -n "$vmlinuz" ] || die "no /boot/vmlinuz-* in $KDEB"
  log "  $(basename "$vmlinuz"): $(file -b "$vmlinuz" 2>/dev/null || echo "?")"
  if [ "$(bytes "$vmlinuz" 0 2)" = MZ ] && [ "$(bytes "$vmlinuz" 4 4)" = zimg ]; then
    # EFI zboot (linux/drivers/firmware/efi/libstub/zboot-header.S): payload offset and size
    # at 8 and 12, its compression's name at 24.
    off=$(le "$vmlinuz" 8 4) size=$(le "$vmlinuz" 12 4)
    ctype=$(od -An -c -j24 -N32 "$vmlinuz" | tr -d ' \n' | sed 's/\\0.*//')
    log "  EFI zboot image, $ctype payload of $size bytes at $off"
    dd if="$vmlinuz" of="$WORK/kernel/payload" iflag=skip_bytes,count_bytes skip="$off" count="$size" bs=1M status=none
    decompress "$ctype" "$WORK/kernel/payload" >"$WORK/kernel/Image"
  elif [ "$(od -An -tx1 -N2 "$vmlinuz" | tr -d ' ')" = 1f8b ]; then
    log "  gzip-compressed Image"
    gzip -dc "$vmlinuz" >"$WORK/kernel/Image"
  else
    cp "$vmlinuz" "$WORK/kernel/Image"
  fi
  arm64_image "$WORK/kernel/Image" || die "$(basename "$vmlinuz") does not unpack to an arm64 Image"
  rm -f "$CACHE"/Image-*
  mv "$WORK/kernel/Image" "$IMAGE"
  rm -rf "$WORK/kernel"
fi
log "kernel: $IMAGE ($(du -h "$IMAGE" | cut -f1))"

# ---------------------------------------------------------------------------------------------
# 4. the aarch64 init

step "build the aarch64 init (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
t0=$(now)
"$CROSSARCH_REPO/scripts/build.sh" aarch64 >&2
t_build=$(($(now) - t0))
INIT=$CARGO_TARGET_DIR/dist-aarch64/crossarch-init
[ -x "$INIT" ] || die "scripts/build.sh aarch64 staged no $INIT"
# The init runs without CAP_SYS_PTRACE in the VM, as in a container.
NOCAP=$WORK/without-cap-sys-ptrace
"${RUSTC:-rustc}" --edition 2021 -O --target aarch64-unknown-linux-musl \
  -C linker="$CROSSARCH_REPO/scripts/lib/musl-static-pie-ld" -C linker-flavor=ld.lld \
  -o "$NOCAP" "$CROSSARCH_REPO/scripts/lib/without-cap-sys-ptrace.rs" >&2 ||
  die "could not build scripts/lib/without-cap-sys-ptrace.rs for aarch64"

# ---------------------------------------------------------------------------------------------
# 5. the initramfs

step "initramfs"
R=$WORK/root
mkdir -p "$R"/{bin,sbin,etc,usr/bin,usr/sbin,proc,sys,dev,tmp,qemu,amd64/bin} "$WORK/x"
dpkg-deb -x "$BDEB" "$WORK/x/busybox-arm64"
install -m 0755 "$WORK/x/busybox-arm64/bin/busybox" "$R/bin/busybox"
dpkg-deb --fsys-tarfile "$QDEB" | tar -x -C "$WORK/x" ./usr/bin/qemu-x86_64-static
install -m 0755 "$WORK/x/usr/bin/qemu-x86_64-static" "$R/qemu/qemu-x86_64-static"
if [ -z "$amd64_busybox" ]; then
  dpkg-deb -x "$amd64_deb" "$WORK/x/busybox-amd64"
  amd64_busybox=$WORK/x/busybox-amd64/bin/busybox
fi
install -m 0755 "$amd64_busybox" "$R/amd64/bin/busybox"
for a in sh uname cat sleep su id; do ln -s busybox "$R/amd64/bin/$a"; done
install -m 0755 "$INIT" "$R/crossarch-init"
install -m 0755 "$NOCAP" "$R/without-cap-sys-ptrace"
# The arm64 busybox's applets, asked through the host's qemu-aarch64-static when it has one
# (called directly, no binfmt_misc); else the amd64 busybox's list stands in (same Debian build).
if ! applets=$(qemu-aarch64-static "$R/bin/busybox" --list-full 2>/dev/null) || [ -z "$applets" ]; then
  applets=$("$R/amd64/bin/busybox" --list-full)
fi
while IFS= read -r applet; do
  case "$applet" in "" | */busybox | linuxrc) continue ;; esac
  case "${applet%/*}" in
    bin) rel=busybox ;;
    sbin) rel=../bin/busybox ;;
    usr/bin | usr/sbin) rel=../../bin/busybox ;;
    *) continue ;;
  esac
  [ -e "$R/$applet" ] || ln -s "$rel" "$R/$applet"
done <<<"$applets"
[ -L "$R/bin/sh" ] || die "the arm64 busybox has no sh applet?"
mknod -m 600 "$R/dev/console" c 5 1
for f in "$R/bin/busybox" "$R/qemu/qemu-x86_64-static" "$R/crossarch-init" "$R/without-cap-sys-ptrace" "$R/amd64/bin/busybox"; do
  log "  /${f#"$R"/}: $(file -b "$f" | cut -d, -f1-2)"
done

# The VM's PID 1. It must never exit (a kernel panic, which -no-reboot turns into the end of
# the VM, but without the checks' verdict), so no `set -e`: each check reports itself.
# shellcheck disable=SC2016  # the VM's shell expands it
cat >"$R/init" <<'INIT'
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
echo "VM-UP uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r) machine=$(uname -m)"
echo "VM-INFO yama.ptrace_scope=$(cat /proc/sys/kernel/yama/ptrace_scope 2>/dev/null || echo none)" \
  "binfmt_misc=$(grep binfmt_misc /proc/filesystems >/dev/null && echo available || echo absent)"

# As in a container: root, without CAP_SYS_PTRACE.
T="/without-cap-sys-ptrace /crossarch-init --trace /qemu --"
flat() { printf '%s' "$1" | tr '\n' '|'; }
up() { cut -d' ' -f1 /proc/uptime; }
t0=$(up)
# check NAME WANT_RC WANT_OUT RC OUT, and how long it took since the last one (TIME NAME s).
check() {
  t1=$(up)
  echo "TIME $1 $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')s"
  t0=$t1
  if [ "$4" = "$2" ] && [ "$5" = "$3" ]; then
    echo "CHECK $1 ok"
  else
    echo "CHECK $1 FAIL rc=$4 (want $2) output='$(flat "$5")' (want '$(flat "$3")')"
  fi
}

# An amd64 program: the tracer turns its exec into one of qemu.
out=$($T /amd64/bin/busybox uname -m 2>&1 </dev/null); rc=$?
check amd64-uname 0 x86_64 "$rc" "$out"

# An amd64 shell's children (a plain exec, a pipeline, a nested shell) are amd64 too: the
# tracer catches qemu's own execs for them; the exit status passes through.
out=$($T /amd64/bin/sh -c '/amd64/bin/uname -m; /amd64/bin/uname -m | /amd64/bin/cat; /amd64/bin/sh -c "exit 7"' 2>&1 </dev/null); rc=$?
check amd64-shell-children 7 "x86_64
x86_64" "$rc" "$out"

# A #!/amd64/bin/sh script from the native shell (which forks for it). A native shell would
# run the script itself on ENOEXEC, so the script also shows its interpreter: /proc/$$/exe
# read by another (native) process is the qemu that runs it.
printf '#!/amd64/bin/sh\n/amd64/bin/uname -m\n/bin/busybox readlink /proc/$$/exe\n' >/tmp/amd64-script
chmod 755 /tmp/amd64-script
out=$($T /bin/sh -c '/tmp/amd64-script; echo "rc=$?"' 2>&1 </dev/null); rc=$?
check amd64-shebang 0 "x86_64
/qemu/qemu-x86_64-static
rc=0" "$rc" "$out"

# A native program under the tracer execs untouched: aarch64, and it is busybox itself.
out=$($T /bin/sh -c '/bin/uname -m; /bin/busybox readlink /proc/self/exe' 2>&1 </dev/null); rc=$?
check native-untouched 0 "aarch64
/bin/busybox" "$rc" "$out"

# An untrapped SIGTERM to init, forwarded to an amd64 shell waiting for an amd64 sleep: the
# shell dies of it, and init exits 128+15.
# The pids of the emulated sleeps, as trace mode runs them (Debian's busybox has no pgrep).
sleeps() {
  for f in /proc/[0-9]*/cmdline; do
    case "$(tr '\0' ' ' <"$f" 2>/dev/null)" in
      "/qemu/qemu-x86_64-static -0 /amd64/bin/sleep "*) p=${f#/proc/} && echo "${p%/cmdline}" ;;
    esac
  done
}
$T /amd64/bin/sh -c '/amd64/bin/sleep 300; echo not reached' >/tmp/term.out 2>&1 </dev/null &
pid=$!
i=0
while [ -z "$(sleeps)" ] && kill -0 $pid 2>/dev/null && [ $i -lt 300 ]; do
  sleep 1; i=$((i + 1))
done
running=$([ -n "$(sleeps)" ] && echo yes || echo no)
kill -TERM $pid
wait $pid; rc=$?
out="sleep-running=$running$(cat /tmp/term.out)"
check sigterm-143 143 "sleep-running=yes" "$rc" "$out"
# The orphaned sleep outlived its init (as in a container whose init is not PID 1).
for p in $(sleeps); do kill $p; done

# Without --trace the kernel alone cannot run it: no binfmt_misc here.
out=$(/crossarch-init -- /amd64/bin/busybox uname -m 2>&1 </dev/null); rc=$?
check no-trace-fails 126 "crossarch-init: cannot run /amd64/bin/busybox: Exec format error" "$rc" "$out"

# A user switch under Yama's ptrace_scope 1 (Ubuntu's default), which lets only an ancestor
# attach: an amd64 su to nobody, whose first exec init hands over to itself started as
# nobody, and nobody's later amd64 programs, which a thread of init (their ancestor) reads
# and holds with nobody's ids. The hand-over needs /dev/fd, which a container's /dev has.
ln -s /proc/self/fd /dev/fd
printf 'root:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/amd64/bin/sh\n' >/etc/passwd
if echo 1 >/proc/sys/kernel/yama/ptrace_scope; then
  out=$($T /amd64/bin/su -s /amd64/bin/sh nobody -c \
    '/amd64/bin/id -u; /amd64/bin/uname -m; /amd64/bin/sh -c "/amd64/bin/uname -m | /amd64/bin/cat"' \
    2>&1 </dev/null); rc=$?
  echo 0 >/proc/sys/kernel/yama/ptrace_scope
else
  out="this kernel has no Yama"; rc=none
fi
check yama1-user-switch 0 "65534
x86_64
x86_64" "$rc" "$out"

echo "CHECKS-DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
sleep 5
echo o >/proc/sysrq-trigger
INIT
chmod 755 "$R/init"
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -6 >"$WORK/initrd.gz"
log "initramfs: $(du -h "$WORK/initrd.gz" | cut -f1) gzip'd newc cpio, $(du -sh "$R" | cut -f1) unpacked"

# ---------------------------------------------------------------------------------------------
# 6. boot it

step "boot the arm64 VM (qemu-system-aarch64 -M virt -cpu cortex-a72, TCG; timeout ${TIMEOUT}s)"
: >"$LOG"
t_qemu=$(now)
mkfifo "$WORK/console"
# -nic none: no network (whose default NIC would also need ipxe-qemu's option ROM).
timeout "$TIMEOUT" qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 -nographic -no-reboot -nic none \
  -kernel "$IMAGE" -initrd "$WORK/initrd.gz" \
  -append "rdinit=/init console=ttyAMA0 panic=-1 quiet" \
  </dev/null >"$WORK/console" 2>&1 &
QEMU_PID=$!
t_up="" t_done=""
while IFS= read -r line || [ -n "$line" ]; do
  line=${line%$'\r'}
  printf '%s\n' "$line" >>"$LOG"
  case "$line" in
    VM-UP*) t_up=$(now) ;;
    CHECKS-DONE*) t_done=$(now) ;;
  esac
  printf '  vm| %s\n' "$line" >&2
done <"$WORK/console"
qemu_rc=0
wait "$QEMU_PID" || qemu_rc=$?
QEMU_PID=""
t_end=$(now)

# ---------------------------------------------------------------------------------------------
# 7. verdict

step "verdict"
[ "$qemu_rc" -ne 124 ] || warn "the VM did not power off within ${TIMEOUT}s; timeout stopped it"
[ "$qemu_rc" -eq 0 ] || [ "$qemu_rc" -eq 124 ] || warn "qemu-system-aarch64 exited with $qemu_rc"
[ -n "$t_up" ] || warn "the VM's /init never started (see $LOG)"
fail=0
for name in "${CHECKS[@]}"; do
  lines=$(grep -a "^CHECK $name " "$LOG" || true)
  if [ -z "$lines" ]; then
    log "MISSING  CHECK $name"
    fail=1
  elif [ "$lines" = "CHECK $name ok" ]; then
    log "$lines"
  else
    log "$lines"
    fail=1
  fi
done
[ -n "$t_done" ] || fail=1
log ""
log "downloads: $(secs "$t_download")  build: $(secs "$t_build")" \
  " boot (qemu start to /init): $(span "$t_qemu" "$t_up")  checks: $(span "$t_up" "$t_done")" \
  " VM total: $(span "$t_qemu" "$t_end")  script total: $(span "$t_start" "$t_end")"
log "console log: $LOG"
[ "$fail" -eq 0 ] || die "trace mode on arm64: some checks failed or never ran (see above and $LOG)"
log "trace mode on arm64: all ${#CHECKS[@]} checks passed"
