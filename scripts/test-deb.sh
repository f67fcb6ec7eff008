#!/usr/bin/env bash
# Tests the Debian package for real on this machine: builds it (scripts/deb.sh), runs
# lintian, installs it with dpkg, runs a native and an arm64 container through a private
# containerd that finds the shim in /usr/bin, runs `doctor` and `install-config` from the
# package, then purges it and checks that nothing of it is left but what the admin added.
# Also checks that deploy/*.yaml parse. Needs root; refuses to run where crossarch is already
# installed, since purging would remove that installation's config. The package is purged on
# every exit, failure and Ctrl-C included.
#
#   scripts/test-deb.sh                  build, then test
#   CROSSARCH_DEB=path.deb scripts/...   test that package instead
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=testenv.sh
. scripts/testenv.sh
need_root test-deb.sh
need_cmd dpkg containerd ctr runc python3
FIXTURES=${CROSSARCH_FIXTURES:-$CROSSARCH_REPO/fixtures/out}
[ -f "$FIXTURES/images/busybox-arm64.tar" ] || die "no fixture images in $FIXTURES; run scripts/fixtures.sh"
PKG=crossarch
FILES=(/usr/bin/containerd-shim-crossarch-v2 /usr/bin/crossarch-init /etc/crossarch
  /usr/share/doc/crossarch)

step "deploy/*.yaml parse"
python3 -c 'import yaml' 2>/dev/null || die "python3-yaml is missing: apt-get install python3-yaml"
python3 - deploy/*.yaml <<'PY'
import sys, yaml
kinds = {}
for f in sys.argv[1:]:
    for d in yaml.safe_load_all(open(f)):
        kinds.setdefault(d["kind"], []).append(d)
rc = kinds["RuntimeClass"][0]
assert rc["handler"] == "crossarch", rc
label = rc["scheduling"]["nodeSelector"]
assert label == {"crossarch.io/enabled": "true"}, label
pod = kinds["Pod"][0]
assert pod["spec"]["runtimeClassName"] == rc["metadata"]["name"], pod
print("deploy: " + ", ".join(f"{k} x{len(v)}" for k, v in sorted(kinds.items())))
PY

if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep installed >/dev/null; then
  die "the $PKG package is installed here; this test would purge it"
fi
for f in "${FILES[@]}"; do
  [ ! -e "$f" ] || die "$f exists; this test installs and purges crossarch there, remove it first"
done

if [ -z "${CROSSARCH_DEB:-}" ]; then
  step "build the package"
  CROSSARCH_DEB=$(scripts/deb.sh | tail -n 1)
fi
log "package: $CROSSARCH_DEB"
dpkg-deb --info "$CROSSARCH_DEB" >&2
dpkg-deb --contents "$CROSSARCH_DEB" >&2

if command -v lintian >/dev/null; then
  step "lintian"
  # Errors fail the test; warnings are printed (and explained in the commit that added them).
  lintian --fail-on error --tag-display-limit 0 "$CROSSARCH_DEB" >&2
else
  warn "lintian is not installed (apt-get install lintian); skipping it"
fi

WORK=$(mktemp -d /tmp/crossarch-deb.XXXXXX)
cleanup() {
  local rc=$?
  testenv_stop "$WORK/env" || true
  if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep 'ok installed\|config-files\|half' >/dev/null; then
    dpkg --purge "$PKG" >/dev/null 2>&1 || warn "dpkg --purge $PKG failed"
  fi
  # What this test added as the admin; the files the package owned are dpkg's to remove.
  rm -f /etc/crossarch/admin-added.toml
  rmdir /etc/crossarch 2>/dev/null || true
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "dpkg -i"
dpkg -i "$CROSSARCH_DEB" >&2
for f in /usr/bin/containerd-shim-crossarch-v2 /usr/bin/crossarch-init /etc/crossarch/config.toml; do
  [ -e "$f" ] || die "the package did not install $f"
done
dpkg-query -W -f='${Conffiles}\n' "$PKG" | grep /etc/crossarch/config.toml >/dev/null ||
  die "/etc/crossarch/config.toml is not a conffile"
cmp etc/config.toml /etc/crossarch/config.toml || die "/etc/crossarch/config.toml is not etc/config.toml"
/usr/bin/containerd-shim-crossarch-v2 --version >&2

step "doctor"
# Exit 1 only when containers would fail here; the runs below say the same for real.
doctor=$(/usr/bin/containerd-shim-crossarch-v2 doctor) || die "doctor reports a failure: $doctor"
printf '%s\n' "$doctor" >&2
grep -qE "^ok +init +/usr/bin/crossarch-init$" <<<"$doctor" ||
  die "doctor does not find the init beside the shim in /usr/bin"

step "install-config from the package"
cp shim/tests/fixtures/install_config/containerd-1.6-default.toml "$WORK/containerd.toml"
/usr/bin/containerd-shim-crossarch-v2 install-config --config "$WORK/containerd.toml" >&2
grep -q 'runtime_type = "io.containerd.crossarch.v2"' "$WORK/containerd.toml" ||
  die "install-config did not add the handler"
/usr/bin/containerd-shim-crossarch-v2 install-config --config "$WORK/containerd.toml" --undo >&2
cmp shim/tests/fixtures/install_config/containerd-1.6-default.toml "$WORK/containerd.toml" ||
  die "install-config --undo did not give the file back"

step "containers through the shim in /usr/bin"
# PATH starts with /usr/bin, where the shim now is; runc and containerd's own shims are there
# too, as on a node.
CROSSARCH_SHIM_DIR=/usr/bin testenv_start "$WORK/env"
ctrx image import "$FIXTURES/images/busybox-amd64.tar" >/dev/null
ctrx image import --all-platforms "$FIXTURES/images/busybox-arm64.tar" >/dev/null
rt=io.containerd.crossarch.v2
out=$(ctrx run --rm --runtime "$rt" crossarch.test/busybox:amd64 deb-native uname -m </dev/null)
[ "$out" = x86_64 ] || die "native container printed '$out', not x86_64"
out=$(ctrx run --rm --runtime "$rt" --platform linux/arm64 crossarch.test/busybox:arm64 deb-arm64 \
  sh -c 'uname -m; sh -c "echo nested"' </dev/null | tr '\n' ' ')
[ "$out" = "aarch64 nested " ] || die "arm64 container printed '$out', not 'aarch64 nested'"
# The shim serving a container is the packaged one, not a build from target/.
ctrx run -d --runtime "$rt" crossarch.test/busybox:amd64 deb-sleeper sleep 60 </dev/null >/dev/null
exe=
for pid in $(_testenv_shim_pids "$WORK/env/containerd.sock"); do
  exe=$(readlink "/proc/$pid/exe")
done
[ "$exe" = /usr/bin/containerd-shim-crossarch-v2 ] || die "the container's shim is '$exe', not /usr/bin's"
log "native: x86_64, arm64: aarch64 (and a nested exec), through /usr/bin/containerd-shim-crossarch-v2"
testenv_stop "$WORK/env"

step "dpkg --purge keeps what the admin added"
echo '# added by the admin' >/etc/crossarch/admin-added.toml
echo '# changed by the admin' >>/etc/crossarch/config.toml
dpkg --purge "$PKG" >&2
for f in /usr/bin/containerd-shim-crossarch-v2 /usr/bin/crossarch-init /etc/crossarch/config.toml \
  /usr/share/doc/crossarch; do
  [ ! -e "$f" ] || die "$f is left after dpkg --purge"
done
[ -f /etc/crossarch/admin-added.toml ] || die "dpkg --purge removed a file the admin added"
left=$(find /etc/crossarch -mindepth 1 ! -name admin-added.toml)
[ -z "$left" ] || die "left in /etc/crossarch after dpkg --purge: $left"
if dpkg-query -W "$PKG" >/dev/null 2>&1; then die "dpkg still knows $PKG after --purge"; fi
log "test-deb: ok"
