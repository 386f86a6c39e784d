#!/usr/bin/env bash
# deb.sh OLD.deb NEW.deb (of one package: lifeboat-agent or lifeboat-server):
# installs, upgrades, disables then upgrades, masks then upgrades, removes
# and purges it with dpkg on this machine, and checks what the maintainer
# scripts decided:
# - the enablement through the real deb-systemd-helper and systemctl (they
#   work on unit files without systemd running): symlinks and state files;
# - start, try-restart and stop through deb-systemd-invoke, whose calls of
#   systemctl a shim on PATH records (systemd is not PID 1 here), with
#   /run/systemd/system present only inside this script's mount namespace;
# - then the System V path (no /run/systemd/system): update-rc.d links.
# Run as root, under flock /tmp/lifeboat-kernel.lock (the dpkg database is
# shared). Leaves nothing installed; fails at the first wrong decision.
set -euo pipefail
old=$(realpath "$1") new=$(realpath "$2")
pkg=$(dpkg-deb -f "$new" Package)
unit=$pkg.service
conf=/etc/lifeboat/${pkg#lifeboat-}.toml
work=$(mktemp -d /tmp/lifeboat-debtest.XXXXXX)
user_before=$(getent passwd lifeboat >/dev/null && echo yes || echo no)

fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() {
	rc=$?
	dpkg --purge "$pkg" >/dev/null 2>&1 || true
	systemctl unmask "$unit" >/dev/null 2>&1 || true
	rm -f /etc/systemd/system/multi-user.target.wants/"$unit"
	if [ "$user_before" = no ] && getent passwd lifeboat >/dev/null; then
		deluser --quiet --system lifeboat >/dev/null 2>&1 || userdel lifeboat || true
		getent group lifeboat >/dev/null && { delgroup --quiet --system lifeboat 2>/dev/null || groupdel lifeboat || true; }
	fi
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT

[ "$(id -u)" -eq 0 ] || fail "needs root"
dpkg -s "$pkg" >/dev/null 2>&1 && fail "$pkg is already installed on this machine: not touching it"

# The systemctl shim: enablement goes to the real systemctl (offline); the
# run-time verbs are recorded and answered from $work/active.
mkdir -p "$work/bin" "$work/systemd/system"
real=$(command -v systemctl)
cat >"$work/bin/systemctl" <<SHIM
#!/bin/sh
echo "systemctl \$*" >>"$work/calls"
for a in "\$@"; do
	case "\$a" in
	enable | disable | mask | unmask | is-enabled | preset | reenable) exec "$real" --root=/ "\$@" ;;
	is-active) [ -f "$work/active" ]; exit \$? ;;
	start | restart) touch "$work/active"; exit 0 ;;
	try-restart) exit 0 ;;
	stop) rm -f "$work/active"; exit 0 ;;
	daemon-reload) exit 0 ;;
	esac
done
exit 0
SHIM
chmod 755 "$work/bin/systemctl"
export PATH="$work/bin:$PATH"

calls() { cat "$work/calls" 2>/dev/null || true; }
reset_calls() { : >"$work/calls"; }
enabled() { [ -L /etc/systemd/system/multi-user.target.wants/"$unit" ]; }
called() { grep -qx -- "systemctl $1" "$work/calls"; }
dpkgi() { dpkg --force-confold -i "$1" >"$work/out" 2>&1 || { cat "$work/out"; fail "dpkg -i $(basename "$1")"; }; }

# --- systemd path: /run/systemd/system exists in this namespace only.
unshare_body() {
	mount --bind "$work/systemd" /run/systemd
	# This machine's policy-rc.d (a container's) forbids every start; a
	# normal host has none. Allow them in this namespace only.
	if [ -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 0\n' >"$work/policy-rc.d"
		chmod 755 "$work/policy-rc.d"
		mount --bind "$work/policy-rc.d" /usr/sbin/policy-rc.d
	fi
	[ -d /run/systemd/system ] || fail "fake /run/systemd/system missing"

	echo "== $(date +%T) first install"
	reset_calls
	dpkgi "$old"
	enabled || fail "first install: $unit not enabled"
	[ -f /lib/systemd/system/$unit ] || fail "unit not shipped in /lib/systemd/system"
	dpkg -S /lib/systemd/system/$unit >/dev/null || fail "dpkg does not own the unit"
	grep -q "start $unit" "$work/calls" && fail "first install started $unit although its configuration is incomplete"
	grep -q "not started" "$work/out" || fail "first install: no message on what to set: $(cat "$work/out")"
	if [ "$pkg" = lifeboat-server ]; then
		getent passwd lifeboat >/dev/null || fail "no system user lifeboat"
		[ "$(stat -c %U /var/lib/lifeboat/server)" = lifeboat ] || fail "data directory not owned by lifeboat"
	fi
	systemd-analyze verify /lib/systemd/system/$unit >"$work/verify" 2>&1 || { cat "$work/verify"; fail "systemd-analyze verify"; }
	[ -s "$work/verify" ] && { cat "$work/verify"; fail "systemd-analyze verify printed warnings"; }

	echo "== $(date +%T) upgrade while stopped: not started"
	reset_calls
	dpkgi "$new"
	enabled || fail "upgrade: no longer enabled"
	called "--quiet --system start $unit" && fail "upgrade started a stopped service"
	called "--quiet --system restart $unit" && fail "upgrade restarted a stopped service"

	echo "== $(date +%T) upgrade while running: try-restart"
	touch "$work/active"
	reset_calls
	dpkgi "$old"
	called "try-restart $unit" || fail "upgrade of a running service: no try-restart; calls: $(calls)"

	echo "== $(date +%T) disable, then upgrade: stays disabled"
	systemctl disable "$unit" >/dev/null 2>&1
	enabled && fail "systemctl disable did not disable"
	reset_calls
	dpkgi "$new"
	enabled && fail "upgrade re-enabled a unit the admin disabled"
	[ "$(systemctl is-enabled "$unit" 2>/dev/null || true)" = disabled ] || fail "after upgrade: is-enabled says $(systemctl is-enabled "$unit" 2>&1 || true)"

	echo "== $(date +%T) mask, then upgrade: stays masked"
	systemctl mask "$unit" >/dev/null 2>&1
	dpkgi "$old"
	[ "$(readlink /etc/systemd/system/"$unit")" = /dev/null ] || fail "upgrade unmasked a unit the admin masked"
	systemctl unmask "$unit" >/dev/null 2>&1
	systemctl enable "$unit" >/dev/null 2>&1

	if [ "$pkg" = lifeboat-agent ]; then
		# Pins the agent left for a restart are released on removal.
		pins="$work/pins"
		mkdir -p "$pins/x"
		printf '\npin-dir = "%s"\n' "$pins" >>"$conf"
	fi
	echo "== $(date +%T) remove: stopped, masked by the package"
	touch "$work/active"
	reset_calls
	dpkg -r "$pkg" >"$work/out" 2>&1 || { cat "$work/out"; fail "dpkg -r"; }
	called "stop $unit" || fail "remove: not stopped; calls: $(calls)"
	[ -e /lib/systemd/system/$unit ] && fail "remove left the unit"
	if [ "$pkg" = lifeboat-agent ]; then
		[ -e "$pins" ] && fail "remove left the tracker's pins in $pins"
	fi
	[ -f "$conf" ] || fail "remove deleted the configuration (only purge may)"

	echo "== $(date +%T) purge: no trace of the service"
	dpkg --purge "$pkg" >"$work/out" 2>&1 || { cat "$work/out"; fail "dpkg --purge"; }
	[ -e /etc/systemd/system/"$unit" ] && fail "purge left a mask"
	enabled && fail "purge left the enablement"
	ls /var/lib/systemd/deb-systemd-helper-enabled/ 2>/dev/null | grep -q "$pkg" && fail "purge left deb-systemd-helper state"
	ls /var/lib/systemd/deb-systemd-helper-masked/ 2>/dev/null | grep -q "$pkg" && fail "purge left deb-systemd-helper mask state"
	[ -e "$conf" ] && fail "purge left $conf"
	[ -e /etc/init.d/$pkg ] && fail "purge left the init script"
	if [ "$pkg" = lifeboat-agent ]; then
		[ -e /var/lib/lifeboat/agent ] && fail "purge left the agent's state directory"
	fi
	return 0
}
export -f unshare_body fail calls reset_calls enabled called dpkgi
export work real pkg unit conf old new
unshare --mount --propagation private bash ${DEBTEST_X:+-x} -euo pipefail -c unshare_body

echo "== $(date +%T) System V: enabled by update-rc.d, a disable kept on upgrade"
ls /etc/rc2.d/ | grep -q "$pkg" && fail "rc links before install"
dpkgi "$old"
ls /etc/rc2.d/ | grep -q "^S..$pkg\$" || fail "first install: no S link in /etc/rc2.d"
update-rc.d "$pkg" disable >/dev/null 2>&1
ls /etc/rc2.d/ | grep -q "^K..$pkg\$" || fail "update-rc.d disable made no K link"
dpkgi "$new"
ls /etc/rc2.d/ | grep -q "^S..$pkg\$" && fail "upgrade re-enabled the System V service the admin disabled"
dpkg --purge "$pkg" >/dev/null 2>&1 || fail "purge"
ls /etc/rc*.d/ | grep -q "$pkg" && fail "purge left rc links"
echo "PASS $pkg"
