#!/usr/bin/env bash
# bench-recovery.sh: does materializing a point cost the data changed since
# the base, or the size of the disk?
#
# It runs BenchmarkMaterialize (store/bench_linux_test.go) on each file system
# it is given: a 10 GiB disk whose base.img holds 1 GiB of random data spread
# across it (folded into the base by Prune), then 100 MiB of random 64 KiB
# writes in 8 segments, each ending with a point, then 10 MiB more after the
# last of them (the changes replication brings after the point one fails over
# to); it times Materialize of that point (100 MiB since the base) against a
# full sparse copy of the replica (cp --sparse=always --reflink=never of
# current.img, then fsync), side by side, and prints the medians and the
# ratio. Target: ratio <= 0.1. It also times, in the same run, Materialize
# forced to replay from the base (replay: what it does without reflink), of
# the newest point, and the sparse copy of base.img alone: without reflinks,
# that copy is most of a replay.
# It is a benchmark, not a test: it exits 0 also when a ratio is above target.
# See docs/PERFORMANCE.md ("Recovery") for the measured numbers.
#
# Run from the repository. As root, it also makes an XFS file system with
# reflink=1 on a loop device (backing file under TMPDIR) and runs there, so
# that base.img is cloned (FICLONE) instead of copied.
# Environment knobs (defaults in brackets):
#   RUNS        timed iterations per file system [3]
#   DISK        disk size [10G]
#   BASE        data in the base [1G]
#   CHANGED     data written after the base, up to the point [100M]
#   AFTER       data written after the point (0: none, the point is the newest) [10M]
#   SEGMENTS    segments the changes are written in [8]
#   FILESYSTEMS which: tmp (TMPDIR as it is), xfs (reflink, root) [tmp xfs]
#   COLD        1: drop the page cache before each timed step (root) [0]
#   TARGET      ratio printed as the target [0.1]
#   TMPDIR      where the tmp run and the XFS backing file go [/tmp]
#
# Everything it creates (benchmark directories, the loop device, its mount and
# backing file) is removed on exit, also on failure and on Ctrl-C.
set -euo pipefail

prog=bench-recovery
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

RUNS=${RUNS:-3}
DISK=${DISK:-10G}
BASE=${BASE:-1G}
CHANGED=${CHANGED:-100M}
AFTER=${AFTER:-10M}
SEGMENTS=${SEGMENTS:-8}
FILESYSTEMS=${FILESYSTEMS:-tmp xfs}
COLD=${COLD:-0}
TARGET=${TARGET:-0.1}
tmp=${TMPDIR:-/tmp}

die() {
	echo "$prog: $*" >&2
	exit 1
}

# ---- checks ---------------------------------------------------------------

command -v go >/dev/null || die "go not found"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"
[[ $SEGMENTS =~ ^[1-9][0-9]*$ ]] || die "SEGMENTS must be a positive integer, got '$SEGMENTS'"
[[ $AFTER =~ ^(0|[1-9][0-9]*[KMG]?)$ ]] || die "AFTER must be 0 or a size such as 10M, got '$AFTER'"
for v in DISK BASE CHANGED; do
	[[ ${!v} =~ ^[1-9][0-9]*[KMG]?$ ]] || die "$v must be a size such as 512M or 10G, got '${!v}'"
done
[[ $TARGET =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "TARGET must be a number, got '$TARGET'"
case $COLD in 0 | 1) ;; *) die "COLD must be 0 or 1, got '$COLD'" ;; esac
for f in $FILESYSTEMS; do
	case $f in tmp | xfs) ;; *) die "FILESYSTEMS: unknown '$f' (tmp, xfs)" ;; esac
done
if [ "$COLD" = 1 ] && [ "$(id -u)" -ne 0 ]; then
	die "COLD=1 needs root (it writes /proc/sys/vm/drop_caches)"
fi
[ -d "$tmp" ] || die "TMPDIR $tmp is not a directory"

# ---- resources and cleanup ------------------------------------------------
# Each variable names one thing this script created; cleanup releases exactly
# those, and clears the variable once done.

workdir=
loop_dev=
mnt=

cleanup() {
	trap '' INT TERM
	set +e
	if [ -n "$mnt" ]; then
		umount "$mnt" || umount -l "$mnt"
		rmdir "$mnt"
		mnt=
	fi
	if [ -n "$loop_dev" ]; then
		losetup --detach "$loop_dev"
		loop_dev=
	fi
	if [ -n "$workdir" ]; then
		rm -rf "$workdir"
		workdir=
	fi
	set -e
}
on_signal() {
	echo >&2
	echo "$prog: interrupted by SIG$1; cleaning up" >&2
	cleanup
	trap - EXIT
	exit "$2"
}
trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM

workdir=$(mktemp -d "$tmp/lifeboat-bench-recovery.XXXXXX")

# ---- the machine ----------------------------------------------------------

echo "== machine"
echo "kernel:  $(uname -srm)"
echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') x $(nproc)"
echo "memory:  $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "go:      $(go version)"
echo "cp:      $(cp --version | head -1)"
echo "command: go test ./store -run '^\$' -bench BenchmarkMaterialize -benchtime ${RUNS}x -timeout 60m"
echo "         with DISK=$DISK BASE=$BASE CHANGED=$CHANGED AFTER=$AFTER SEGMENTS=$SEGMENTS COLD=$COLD"

# ---- measuring ------------------------------------------------------------

# run NAME DIR: run the benchmark with its files in DIR; print its report.
results=()
run() {
	local name=$1 dir=$2 out
	echo
	echo "== $name: $dir ($(findmnt --noheadings --output FSTYPE,SOURCE --target "$dir" | tr -s ' '))"
	out=$(cd "$root" && LIFEBOAT_BENCH_DIR=$dir LIFEBOAT_BENCH_DISK=$DISK LIFEBOAT_BENCH_BASE=$BASE \
		LIFEBOAT_BENCH_CHANGED=$CHANGED LIFEBOAT_BENCH_AFTER=$AFTER LIFEBOAT_BENCH_SEGMENTS=$SEGMENTS LIFEBOAT_BENCH_COLD=$COLD \
		go test ./store -run '^$' -bench '^BenchmarkMaterialize$' -benchtime "${RUNS}x" -timeout 60m 2>&1) || {
		echo "$out"
		die "benchmark on $name failed"
	}
	echo "$out" | grep -E 'setup in|run [0-9]+:|^BenchmarkMaterialize' | sed 's/^ *//'
	local line
	line=$(echo "$out" | grep '^BenchmarkMaterialize')
	results+=("$name $(awk '{for (i = 1; i <= NF; i++) if ($i ~ /-s$|ratio$/) printf "%s=%s ", $i, $(i-1)}' <<<"$line")")
}

for f in $FILESYSTEMS; do
	case $f in
	tmp)
		run "tmp" "$workdir"
		;;
	xfs)
		if [ "$(id -u)" -ne 0 ]; then
			echo "$prog: not root: skipping the XFS reflink run" >&2
			continue
		fi
		command -v mkfs.xfs >/dev/null || die "mkfs.xfs not found (install xfsprogs) or set FILESYSTEMS=tmp"
		# Room for the store (base, replica, journal) and two images.
		truncate -s 24G "$workdir/xfs.img"
		loop_dev=$(losetup --find --show "$workdir/xfs.img")
		mkfs.xfs -q -m reflink=1 "$loop_dev"
		mnt=$(mktemp -d "$tmp/lifeboat-bench-xfs.XXXXXX")
		mount "$loop_dev" "$mnt"
		run "xfs-reflink" "$mnt"
		umount "$mnt"
		rmdir "$mnt"
		mnt=
		losetup --detach "$loop_dev"
		loop_dev=
		rm -f "$workdir/xfs.img"
		;;
	esac
done

echo
echo "== summary (medians; ratio = materialize / fullcopy, target <= $TARGET; replay-ratio = replay / fullcopy)"
for r in "${results[@]}"; do
	echo "$r"
done
