#!/usr/bin/env bash
# bench-freeze.sh: how long does an app-consistent point keep the file system
# frozen, with writes going on?
#
# It makes a file system (FS: ext4 or xfs) on a loop device (backing file in
# TMPDIR, --direct-io=on; every flush the file system sends is then an fsync
# of that file on the machine's disk) or on a zram device (DEV=zram: flushes
# cost nothing, so what is left is the freeze itself), starts a fresh lifeboat-server and lifeboat-agent
# protecting it (app points only on request), runs fio in the file system as
# the load (random buffered writes with periodic fsync, RATE bytes/s, BS
# block size), and takes POINTS app-consistent points one after another with
# `agentctl bookmark --app-consistent --wait`. The freeze time of each point
# is read from `lifeboat points --json` (freeze_seconds): from FIFREEZE to the
# end of FITHAW, which includes the cut and the read of what the freeze
# flushed. It prints p50, p99 and max. Target (issue 4): p99 <= 50 ms.
# It is a benchmark, not a test: it exits 0 also when the target is missed.
#
# Run as root from the repository after `make build`.
# Environment knobs (defaults in brackets):
#   FS      ext4 or xfs [ext4]
#   DEV     loop or zram [loop]
#   POINTS  app points to take [40]
#   RATE    fio write rate in bytes/s [20000000]
#   BS      fio block size [64k]
#   SIZE    loop device size [2G]
#   TARGET  p99 target in ms [50]
#   TMPDIR  where the backing file and the work directory go [/tmp]
#
# Everything it creates (processes, mount, loop device, bpffs pins, work
# directory) is removed on exit, also on failure and on Ctrl-C.
set -euo pipefail

prog=bench-freeze
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$root/bin
FS=${FS:-ext4}
DEV=${DEV:-loop}
POINTS=${POINTS:-40}
RATE=${RATE:-20000000}
BS=${BS:-64k}
SIZE=${SIZE:-2G}
TARGET=${TARGET:-50}
tmp=${TMPDIR:-/tmp}

die() {
	echo "$prog: $*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "needs root (loop devices, mount, eBPF)"
case $FS in ext4 | xfs) ;; *) die "FS must be ext4 or xfs, got '$FS'" ;; esac
case $DEV in loop | zram) ;; *) die "DEV must be loop or zram, got '$DEV'" ;; esac
[[ $POINTS =~ ^[1-9][0-9]*$ ]] || die "POINTS must be a positive integer, got '$POINTS'"
[[ $RATE =~ ^[1-9][0-9]*$ ]] || die "RATE must be bytes/s, got '$RATE'"
for b in lifeboat-server lifeboat-agent agentctl lifeboat; do
	[ -x "$bin/$b" ] || die "$bin/$b missing: run 'make build' first"
done
command -v fio >/dev/null || die "fio not found: run 'make deps'"

work= loop= zram= mnt= pindir= server_pid= agent_pid= fio_pid=
cleanup() {
	trap '' INT TERM
	set +e
	for p in $fio_pid $agent_pid $server_pid; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	[ -z "$mnt" ] || umount "$mnt"
	[ -z "$loop" ] || losetup -d "$loop"
	[ -z "$zram" ] || echo "$zram" >/sys/class/zram-control/hot_remove
	[ -z "$pindir" ] || rm -rf "$pindir"
	[ -z "$work" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

work=$(mktemp -d "$tmp/$prog.XXXXXX")
if [ "$DEV" = loop ]; then
	truncate -s "$SIZE" "$work/disk.img"
	loop=$(losetup --find --show --direct-io=on "$work/disk.img")
	dev=$loop
else
	[ -e /sys/class/zram-control ] || modprobe zram num_devices=0 || die "no zram module"
	zram=$(cat /sys/class/zram-control/hot_add)
	echo "$SIZE" >"/sys/block/zram$zram/disksize"
	dev=/dev/zram$zram
fi
if [ "$FS" = ext4 ]; then mkfs.ext4 -q -F "$dev"; else mkfs.xfs -q -f "$dev"; fi
mnt=$work/mnt
mkdir -p "$mnt"
mount "$dev" "$mnt"

"$bin/lifeboat-server" init --data "$work/server" >"$work/server-init.log" 2>&1
"$bin/lifeboat-server" run --data "$work/server" --api 127.0.0.1:0 --listen 127.0.0.1:0 >"$work/server.log" 2>&1 </dev/null &
server_pid=$!
for ((i = 0; i < 300; i++)); do
	api=$(sed -n 's/.*"api": *"\([^"]*\)".*/\1/p' "$work/server/server.json" 2>/dev/null || true)
	[ -n "$api" ] && break
	sleep 0.1
done
[ -n "$api" ] || die "server did not start: $(tail -n 5 "$work/server.log")"

pindir=$(mktemp -d /sys/fs/bpf/lifeboat-bench-XXXXXX)
mkdir -p "$work/scripts"
"$bin/lifeboat-agent" run --server "$api" --passphrase-file "$work/server/passphrase" --state "$work/agent" \
	--name bench --pin-dir "$pindir" --disk "$dev" --app-interval=-1s --scripts "$work/scripts" \
	>"$work/agent.log" 2>&1 </dev/null &
agent_pid=$!
for ((i = 0; i < 600; i++)); do
	"$bin/agentctl" status --state "$work/agent" --json 2>/dev/null | grep -q '"state": *"protected"' && break
	kill -0 "$agent_pid" 2>/dev/null || die "agent exited: $(tail -n 5 "$work/agent.log")"
	sleep 0.2
done

fio --name=load --directory="$mnt" --rw=randwrite --bs="$BS" --size=512M --ioengine=psync \
	--fsync=16 --rate="$RATE" --time_based --runtime=3600 --thread >"$work/fio.log" 2>&1 &
fio_pid=$!
sleep 5
busy() { awk '{ u = $2 + $3 + $4 + $7 + $8; t = u + $5 + $6; print u, t }' <(head -n 1 /proc/stat); }
read -r u0 t0 < <(busy)
echo "$prog: FS=$FS DEV=$DEV POINTS=$POINTS RATE=$RATE BS=$BS, fio running; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((i = 1; i <= POINTS; i++)); do
	"$bin/agentctl" bookmark --state "$work/agent" --app-consistent --wait >/dev/null ||
		echo "$prog: point $i failed: $(tail -n 2 "$work/agent.log")" >&2
	sleep 0.5
done
read -r u1 t1 < <(busy)
kill "$fio_pid" && wait "$fio_pid" 2>/dev/null || true
fio_pid=
"$bin/lifeboat" --data "$work/server" points bench --json >"$work/points.json"
python3 - "$work/points.json" "$TARGET" "$(awk -v a="$u1" -v b="$u0" -v c="$t1" -v d="$t0" 'BEGIN { printf "%.0f", 100 * (a - b) / (c - d) }')" <<'EOF'
import json, sys
pts = json.load(open(sys.argv[1]))
pts = pts.get("points", pts) if isinstance(pts, dict) else pts
ms = sorted(p["freeze_seconds"] * 1000 for p in pts if p.get("kind") == "app")
if not ms:
    sys.exit("bench-freeze: no app point was listed")
q = lambda f: ms[min(len(ms) - 1, int(f * len(ms)))]
target = float(sys.argv[2])
print(f"app points: {len(ms)}   machine busy during the points: {sys.argv[3]} %")
print(f"freeze ms: p50 {q(0.50):.1f}  p99 {q(0.99):.1f}  max {ms[-1]:.1f}  min {ms[0]:.1f}")
phases = {}
for p in pts:
    if p.get("kind") != "app" or not p.get("note"):
        continue
    try:
        n = json.loads(p["note"])
    except ValueError:
        continue
    for k in ("freeze_ioctl_ms", "cut_ms", "frozen_read_ms", "thaw_ms", "frozen_read_bytes"):
        if k in n:
            phases.setdefault(k, []).append(n[k])
for k, v in phases.items():
    v.sort()
    print(f"  {k:18s} p50 {v[len(v) // 2]:10.1f}  max {v[-1]:10.1f}")
print(f"RESULT freeze_p99_ms {q(0.99):.1f} target {target:g} {'PASS' if q(0.99) <= target else 'BELOW'}")
EOF
