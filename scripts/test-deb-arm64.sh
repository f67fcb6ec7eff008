#!/usr/bin/env bash
# Tests the arm64 Debian package as far as an x86_64 machine can: it cannot be installed here,
# so its control fields, contents and lintian's verdict are checked, and its shim is run from
# the unpacked package under qemu-aarch64-static (called directly; no binfmt_misc is used or
# changed): `--version`, and `doctor --json`, which must see an arm64 host that needs
# qemu-x86_64 for amd64 images. What differs on a real arm64 node is in README.md ("arm64
# nodes").
#
#   scripts/test-deb-arm64.sh                        build (scripts/deb.sh aarch64), then test
#   CROSSARCH_DEB_ARM64=path.deb scripts/...         test that package instead
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/common.sh
. scripts/lib/common.sh
need_cmd dpkg-deb file python3 qemu-aarch64-static

if [ -z "${CROSSARCH_DEB_ARM64:-}" ]; then
  step "build the arm64 package"
  CROSSARCH_DEB_ARM64=$(scripts/deb.sh aarch64 | tail -n 1)
fi
DEB=$CROSSARCH_DEB_ARM64
log "package: $DEB"
dpkg-deb --info "$DEB" >&2

step "control fields"
field() { dpkg-deb -f "$DEB" "$1"; }
for want in "Package=crossarch" "Architecture=arm64" "Depends=runc" \
  "Recommends=qemu-user-static | qemu-user"; do
  got=$(field "${want%%=*}")
  [ "$got" = "${want#*=}" ] || die "${want%%=*} is '$got', not '${want#*=}'"
done
log "Architecture: arm64, Depends: runc, Recommends: qemu-user-static | qemu-user"

step "lintian"
if command -v lintian >/dev/null; then
  # The warnings both packages have, explained in the commits that added the package:
  # no-manual-page (the binaries document themselves with --help), initial-upload-closes-no-bugs
  # (the package is not uploaded to Debian). Any other warning or error fails.
  tags=$(lintian --tag-display-limit 0 "$DEB" 2>/dev/null | grep -E '^[EW]: ' || true)
  printf '%s\n' "$tags" >&2
  unexplained=$(grep -vE '^W: crossarch: (no-manual-page|initial-upload-closes-no-bugs) ' <<<"$tags" || true)
  [ -z "$unexplained" ] || die "lintian: $unexplained"
else
  warn "lintian is not installed (apt-get install lintian); skipping it"
fi

WORK=$(mktemp -d /tmp/crossarch-deb-arm64.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
dpkg-deb -x "$DEB" "$WORK/root"

step "contents"
for f in usr/bin/containerd-shim-crossarch-v2 usr/bin/crossarch-init etc/crossarch/config.toml \
  usr/share/doc/crossarch/copyright usr/share/lintian/overrides/crossarch; do
  [ -f "$WORK/root/$f" ] || die "the package has no /$f"
done
cmp etc/config.toml "$WORK/root/etc/crossarch/config.toml" || die "/etc/crossarch/config.toml is not etc/config.toml"
[ "$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xOf - ./conffiles)" = /etc/crossarch/config.toml ] ||
  die "/etc/crossarch/config.toml is not the package's one conffile"
for bin in containerd-shim-crossarch-v2 crossarch-init; do
  what=$(file -b "$WORK/root/usr/bin/$bin")
  log "$bin: $what"
  case "$what" in
  "ELF 64-bit LSB pie executable, ARM aarch64, "*"static-pie linked"*) ;;
  *) die "/usr/bin/$bin is not a static-pie aarch64 executable: $what" ;;
  esac
done

shim() { qemu-aarch64-static "$WORK/root/usr/bin/containerd-shim-crossarch-v2" "$@"; }

step "--version under qemu-aarch64-static"
version=$(shim --version)
printf '%s\n' "$version" >&2
want=$(field Version)
grep -qx "  Version:  ${want%-*}" <<<"$version" || die "--version does not say ${want%-*}"
grep -qx "  Runtime:  io.containerd.crossarch.v2" <<<"$version" || die "--version names no runtime"

step "doctor --json under qemu-aarch64-static"
# A stand-in for qemu-user-static:arm64's qemu-x86_64-static: doctor reads only a file's ELF
# header, and the package's own init is a static aarch64 executable.
mkdir "$WORK/qemu"
cp "$WORK/root/usr/bin/crossarch-init" "$WORK/qemu/qemu-x86_64-static"
printf '[emulation]\nqemu_dirs = ["%s"]\n' "$WORK/qemu" >"$WORK/arm64-qemu.toml"
# This machine's own qemu-user-static (built for x86_64) in the default directories.
printf '[emulation]\nqemu_dirs = ["/usr/bin"]\n' >"$WORK/host-qemu.toml"
for config in arm64-qemu host-qemu; do
  # Exit 1 is expected under emulation (see below); the JSON says why.
  shim doctor --json --config "$WORK/$config.toml" --containerd-config "$WORK/none.toml" \
    >"$WORK/$config.json" || true
done
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
def doc(name):
    with open(f"{work}/{name}.json") as f:
        return json.load(f)
for name in ("arm64-qemu", "host-qemu"):
    d = doc(name)
    facts = d["facts"]
    checks = {c["name"]: c for c in d["checks"]}
    assert facts["host"] == "linux/arm64", facts["host"]
    assert "linux/arm64" in facts["native"], facts["native"]
    # arm may be native (AArch32); under qemu-user the probe asks the x86_64 kernel, which says yes.
    assert not {"linux/amd64", "linux/386"} & set(facts["native"]), facts["native"]
    assert {"linux/amd64", "linux/386"} <= set(facts["qemu"]), facts["qemu"]
    assert facts["init"] == f"{work}/root/usr/bin/crossarch-init", facts["init"]
    assert checks["init"]["level"] == "ok", checks["init"]
    assert checks["config"]["level"] == "ok", checks["config"]
    # qemu-user cannot unshare(CLONE_NEWUSER) in a child of its multi-threaded process: the
    # userns check fails under emulation, and only that one may.
    fails = sorted(n for n, c in checks.items() if c["level"] == "fail")
    assert fails in ([], ["userns"]), fails
    assert d["ready"] == (not fails), d["ready"]
a = doc("arm64-qemu")
assert a["facts"]["qemu"]["linux/amd64"] == f"{work}/qemu/qemu-x86_64-static", a["facts"]["qemu"]
assert a["facts"]["qemu"]["linux/386"] is None, a["facts"]["qemu"]
assert [c["message"] for c in a["checks"] if c["name"] == "qemu"] == ["linux/amd64"], a["checks"]
# This machine's qemu-x86_64-static is built for x86_64: no use on an arm64 host.
h = doc("host-qemu")
assert h["facts"]["qemu"]["linux/amd64"] is None, h["facts"]["qemu"]
assert all(v is None for v in h["facts"]["qemu"].values()), h["facts"]["qemu"]
qemu = [c for c in h["checks"] if c["name"] == "qemu"]
assert qemu and qemu[0]["level"] == "warn" and qemu[0]["message"].startswith("no static qemu-user in /usr/bin"), qemu
print("doctor on arm64: host linux/arm64, native " + ", ".join(a["facts"]["native"])
      + "; linux/amd64 needs qemu-x86_64-static (an aarch64 one was found, the x86_64 one refused)")
PY
log "test-deb-arm64: ok"
