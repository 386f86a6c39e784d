#!/usr/bin/env bash
# rpm.sh OLD.rpm NEW.rpm (of one package): installs, disables then
# upgrades, and erases it with rpm on this machine (a Debian host with the
# rpm tool: --nodeps, as its database knows none of the dependencies) and
# checks the scriptlets' decisions: enabled on install (offline
# systemctl), an admin's disable kept on upgrade, disabled and gone on
# erase. Run as root under flock /tmp/lifeboat-kernel.lock.
set -euo pipefail
old=$(realpath "$1") new=$(realpath "$2")
pkg=$(rpm -qp --qf '%{NAME}' "$old")
unit=$pkg.service
wants=/etc/systemd/system/multi-user.target.wants/$unit
user_before=$(getent passwd lifeboat >/dev/null && echo yes || echo no)
fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() {
	rc=$?
	rpm -e --nodeps "$pkg" >/dev/null 2>&1 || true
	rm -f "$wants"
	if [ "$user_before" = no ] && getent passwd lifeboat >/dev/null; then
		userdel lifeboat 2>/dev/null || true
		groupdel lifeboat 2>/dev/null || true
	fi
	exit $rc
}
trap cleanup EXIT
rpm -q "$pkg" >/dev/null 2>&1 && fail "$pkg already installed"
echo "== install"
rpm -i --nodeps "$old"
[ -f /usr/lib/systemd/system/$unit ] || fail "unit not in /usr/lib/systemd/system"
[ -L "$wants" ] || fail "not enabled on install"
[ -f /usr/share/licenses/$pkg/LICENSE ] || fail "no LICENSE"
if [ "$pkg" = lifeboat-server ]; then getent passwd lifeboat >/dev/null || fail "no user lifeboat"; fi
echo "== disable, then upgrade"
systemctl disable "$unit" >/dev/null 2>&1
rpm -U --nodeps "$new"
[ -L "$wants" ] && fail "upgrade re-enabled a disabled unit"
[ "$(rpm -q --qf '%{VERSION}' "$pkg")" = "$(rpm -qp --qf '%{VERSION}' "$new")" ] || fail "not upgraded"
echo "== erase"
systemctl enable "$unit" >/dev/null 2>&1
rpm -e --nodeps "$pkg"
[ -e /usr/lib/systemd/system/$unit ] && fail "erase left the unit"
[ -L "$wants" ] && fail "erase left the enablement"
echo "PASS $pkg"
