#!/usr/bin/env bash
# The Debian package, for real: build it with CPack from the test build, install it with dpkg -i,
# run the installed binary (--version, check-config on the installed conffile), check the unit
# with systemd-analyze verify and the man page with man, then purge it and check nothing is left.
# Usage: test_package.sh BUILD_DIR. Needs root (dpkg); CI runs as root.
set -euo pipefail
build=$1
out=$(mktemp -d /tmp/jb-deb.XXXXXX)
fail() { echo "FAIL: $*" >&2; exit 1; }
if dpkg-query -W -f='${Status}' jobbridge 2>/dev/null | grep -q "install ok installed"; then
  fail "a jobbridge package is installed on this machine already; this test would replace it"
fi
trap 'dpkg --purge jobbridge >/dev/null 2>&1 || true; rm -rf "$out"' EXIT

(cd "$build" && cpack -G DEB -B "$out" >"$out/cpack.log" 2>&1) || { cat "$out/cpack.log"; fail "cpack"; }
deb=$(ls "$out"/jobbridge_*.deb)
echo "built $(basename "$deb") ($(stat -c %s "$deb") bytes)"
dpkg-deb -I "$deb" conffiles | grep -qx /etc/jobbridge/jobbridge.json || fail "config is not a conffile"

dpkg -i "$deb" >"$out/dpkg.log" 2>&1 || { cat "$out/dpkg.log"; fail "dpkg -i"; }
want=$(sed -n 's/^project(jobbridge VERSION \([0-9.]*\).*/\1/p' "$(dirname "$0")/../../CMakeLists.txt")
got=$(/usr/bin/jobbridge --version)
[ "$got" = "jobbridge $want" ] || fail "--version printed '$got', expected 'jobbridge $want'"
/usr/bin/jobbridge check-config --config /etc/jobbridge/jobbridge.json >/dev/null ||
  fail "check-config refused the installed config"
getent passwd jobbridge >/dev/null || fail "the jobbridge user was not created"
[ "$(stat -c '%U:%G %a' /etc/jobbridge/jobbridge.json)" = "root:jobbridge 640" ] ||
  fail "config is $(stat -c '%U:%G %a' /etc/jobbridge/jobbridge.json), expected root:jobbridge 640"
systemd-analyze verify /lib/systemd/system/jobbridge.service ||
  fail "systemd-analyze verify found problems in the installed unit"
exposure=$(systemd-analyze security --offline=true /lib/systemd/system/jobbridge.service 2>&1 |
  sed -n 's/.*Overall exposure level for jobbridge.service: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security: exposure $exposure"
man -w jobbridge >/dev/null 2>&1 || fail "man jobbridge finds no page"
[ -f /usr/share/man/man1/jobbridge.1.gz ] || fail "man page not installed"

dpkg --purge jobbridge >"$out/purge.log" 2>&1 || { cat "$out/purge.log"; fail "dpkg --purge"; }
for p in /usr/bin/jobbridge /etc/jobbridge /lib/systemd/system/jobbridge.service \
  /usr/share/man/man1/jobbridge.1.gz /var/lib/jobbridge; do
  [ ! -e "$p" ] || fail "$p is left after purge"
done
! getent passwd jobbridge >/dev/null || fail "the jobbridge user is left after purge"
dpkg-query -W jobbridge >/dev/null 2>&1 && dpkg-query -W -f='${Status}' jobbridge | grep -q installed &&
  fail "dpkg still lists jobbridge as installed"
echo "ok: built, installed, ran, verified, purged"
