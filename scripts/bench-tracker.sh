#!/usr/bin/env bash
# bench-tracker.sh: what does attaching the tracker cost a writer?
#
# fio writes 4 KiB random blocks (iodepth 32, O_DIRECT) to a zram device and
# to a loop device, several times each, alternately with the tracker attached
# (`lifeboat-agent track --disk DEV --summary > /dev/null`: events consumed and
# coalesced per generation as the agent's rounds do, no completion events; or
# with CONSUMER=json, `track --json`, every event and completion printed as
# JSON) and detached (no
# tracker process). It prints the median IOPS tracked and untracked, their
# ratio, and the events per second the tracker delivered. Target: ratio >= 0.98.
# It is a benchmark, not a test: it exits 0 also when a ratio is below target.
# See docs/PERFORMANCE.md for the measured numbers.
#
# Run as root from the repository (`make bench-tracker` builds first).
# Environment knobs (defaults in brackets):
#   RUNS            pairs of runs per device [5]
#   RUNTIME         seconds per fio run [10]
#   SIZE            size of each device and of the region fio writes [1G]
#   DEVICES         which devices, in order [zram loop]
#   LOOP_DIRECT_IO  losetup --direct-io=on|off for the loop device [on]
#   TARGET          ratio printed as the target [0.98]
#   CONSUMER        summary (as the agent consumes events) or json [summary]
#   LIFEBOAT_AGENT  the agent binary [bin/lifeboat-agent of this repository]
#   TMPDIR          where the sparse backing file of the loop device goes [/tmp]
#
# Everything it creates (zram device, loop device, backing file, tracker and fio
# processes) is removed on exit, also on failure and on Ctrl-C.
set -euo pipefail

prog=bench-tracker
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

RUNS=${RUNS:-5}
RUNTIME=${RUNTIME:-10}
SIZE=${SIZE:-1G}
DEVICES=${DEVICES:-zram loop}
LOOP_DIRECT_IO=${LOOP_DIRECT_IO:-on}
TARGET=${TARGET:-0.98}
CONSUMER=${CONSUMER:-summary}
case $CONSUMER in
summary) track_args=(--summary) ;;
json) track_args=(--json) ;;
*)
	echo "bench-tracker: CONSUMER must be summary or json, got '$CONSUMER'" >&2
	exit 1
	;;
esac
agent=${LIFEBOAT_AGENT:-$root/bin/lifeboat-agent}

die() {
	echo "$prog: $*" >&2
	exit 1
}

# ---- checks ---------------------------------------------------------------

[ "$(id -u)" -eq 0 ] || die "run as root (it creates zram and loop devices and loads BPF programs)"
for c in fio losetup numfmt; do
	command -v "$c" >/dev/null || die "$c not found (install it, e.g. ./scripts/install-deps.sh)"
done
[ -x "$agent" ] || die "$agent not found or not executable: run 'make build' first (or 'make bench-tracker', which builds)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"
[[ $RUNTIME =~ ^[1-9][0-9]*$ ]] || die "RUNTIME must be a positive integer (seconds), got '$RUNTIME'"
[[ $TARGET =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "TARGET must be a number, got '$TARGET'"
case $LOOP_DIRECT_IO in on | off) ;; *) die "LOOP_DIRECT_IO must be on or off, got '$LOOP_DIRECT_IO'" ;; esac
size_bytes=$(numfmt --from=iec "$SIZE" 2>/dev/null) || die "SIZE: cannot parse '$SIZE' (use e.g. 512M, 1G)"
((size_bytes >= 64 << 20 && size_bytes % (1 << 20) == 0)) || die "SIZE must be a multiple of 1 MiB and at least 64M, got '$SIZE'"
for d in $DEVICES; do
	case $d in zram | loop) ;; *) die "DEVICES: unknown device kind '$d' (zram, loop)" ;; esac
done
case " $DEVICES " in *" zram "*) [ -w /sys/class/zram-control/hot_add ] || die "zram not available (/sys/class/zram-control missing: modprobe zram)" ;; esac
case " $DEVICES " in *" loop "*) [ -e /dev/loop-control ] || die "loop driver not available (/dev/loop-control missing: modprobe loop)" ;; esac

clk_tck=$(getconf CLK_TCK)

# ---- resources and cleanup ------------------------------------------------
# Each variable names one thing this script created; cleanup releases exactly
# those, and clears the variable once done, so it can run any number of times.

fio_pid=
tracker_pid=
zram_idx=
loop_dev=
loop_sys_backing=
made_nodes=()
workdir=

# exited PID: true once PID (a child of this shell) is gone or a zombie.
exited() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 0
	[ -z "$st" ] || [ "$st" = Z ]
}

# stop_process PID SIGNAL SECONDS: signal a child, wait for it up to SECONDS,
# then SIGKILL it. Returns its exit status.
stop_process() {
	local pid=$1 sig=$2 secs=$3 i rc=0
	kill -s "$sig" "$pid" 2>/dev/null || true
	for ((i = 0; i < secs * 10; i++)); do
		exited "$pid" && break
		sleep 0.1
	done
	if ! exited "$pid"; then
		echo "$prog: pid $pid did not exit within ${secs}s after SIG$sig; killing it" >&2
		kill -s KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || rc=$?
	return "$rc"
}

remove_zram() {
	local idx=$1 i
	for ((i = 0; i < 150; i++)); do
		# reset fails with EBUSY while the device is still open.
		if { echo 1 >"/sys/block/zram$idx/reset"; } 2>/dev/null &&
			{ echo "$idx" >/sys/class/zram-control/hot_remove; } 2>/dev/null; then
			return 0
		fi
		[ -e "/sys/block/zram$idx" ] || return 0
		sleep 0.1
	done
	echo "$prog: could not remove zram$idx (still open?)" >&2
	return 1
}

detach_loop() {
	local dev=$1 want=$2 name cur i
	name=${dev#/dev/}
	cur=$(cat "/sys/block/$name/loop/backing_file" 2>/dev/null) || return 0
	# Detach only while it is still attached to our backing file.
	[ "${cur% (deleted)}" = "${want% (deleted)}" ] || return 0
	losetup --detach "$dev" || true
	for ((i = 0; i < 150; i++)); do
		cur=$(cat "/sys/block/$name/loop/backing_file" 2>/dev/null) || return 0
		[ "${cur% (deleted)}" = "${want% (deleted)}" ] || return 0
		sleep 0.1
	done
	echo "$prog: $dev still attached 15s after losetup --detach" >&2
	return 1
}

cleanup() {
	trap '' INT TERM # a second Ctrl-C must not cut the cleanup short
	set +e
	if [ -n "$fio_pid" ]; then
		stop_process "$fio_pid" INT 15
		fio_pid=
	fi
	if [ -n "$tracker_pid" ]; then
		stop_process "$tracker_pid" INT 20
		tracker_pid=
	fi
	if [ -n "$loop_dev" ]; then
		detach_loop "$loop_dev" "$loop_sys_backing"
		loop_dev=
	fi
	# Interrupted inside losetup, before loop_dev was set: find it by the
	# backing file, which only this run uses.
	local n img="$workdir/lifeboat-bench-loop.img"
	if [ -n "$workdir" ] && [ -e "$img" ]; then
		for n in $(losetup --noheadings --output NAME --associated "$img" 2>/dev/null); do
			detach_loop "$n" "$(cat "/sys/block/${n#/dev/}/loop/backing_file" 2>/dev/null)"
		done
	fi
	if [ -n "$zram_idx" ]; then
		remove_zram "$zram_idx"
		zram_idx=
	fi
	for n in "${made_nodes[@]}"; do
		[ -b "$n" ] && rm -f "$n"
	done
	made_nodes=()
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

# ensure_node DEV SYSDIR: wait for the device node (devtmpfs creates it); make
# it ourselves when there is none after 2 s, and remember to remove it.
ensure_node() {
	local dev=$1 sys=$2 i majmin
	for ((i = 0; i < 20; i++)); do
		[ -b "$dev" ] && return 0
		sleep 0.1
	done
	majmin=$(cat "$sys/dev")
	mknod "$dev" b "${majmin%%:*}" "${majmin##*:}"
	made_nodes+=("$dev")
}

workdir=$(mktemp -d "${TMPDIR:-/tmp}/lifeboat-bench.XXXXXX")

# ---- measuring ------------------------------------------------------------

fio_bench=(fio --name=bench --rw=randwrite --bs=4k --iodepth=32 --ioengine=libaio --direct=1
	--time_based --runtime="$RUNTIME" --size="$size_bytes" --randrepeat=0
	--group_reporting --output-format=json)
fio_fill=(fio --name=fill --rw=write --bs=1M --iodepth=8 --ioengine=libaio --direct=1
	--size="$size_bytes" --output-format=json)

# fio_write_value FILE KEY: the value of KEY in the "write" object of the
# first (with --group_reporting the only) job of fio's JSON output. fio prints
# its JSON one key a line ("key" : value,), so awk reads it without jq or
# python; the value is checked to be a number.
fio_write_value() {
	local v
	v=$(awk -v key="\"$2\"" '
		/"write" : \{/ && !inw { inw = 1; next }
		inw && $1 == key && $2 == ":" { v = $3; sub(/,$/, "", v); print v; exit }
	' "$1")
	[[ $v =~ ^[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$ ]] || {
		echo "$prog: no numeric write.$2 in fio output $1:" >&2
		head -c 2000 "$1" >&2
		return 1
	}
	echo "$v"
}

# irq_work_count: IRQ work interrupts so far, summed over CPUs (x86 "IWI" in
# /proc/interrupts; empty elsewhere). bpf_ringbuf_submit raises one each time
# it wakes the consumer, so their rate shows how often the tracker wakes up.
irq_work_count() {
	awk '$1 == "IWI:" { s = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i; print s }' /proc/interrupts
}

# irq_work_rate BEFORE AFTER RUNTIME_MS: per second, or n/a.
irq_work_rate() {
	if [ -n "$1" ] && [ -n "$2" ]; then
		awk -v a="$1" -v b="$2" -v ms="$3" 'BEGIN { printf "%.0f", (b - a) * 1000 / ms }'
	else
		echo n/a
	fi
}

# busy_between A B: percentage of CPU time (all CPUs) not idle between two
# samples of the first line of /proc/stat.
busy_between() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		split(a, x, " "); split(b, y, " ")
		for (i = 2; i <= 9; i++) { d = y[i] - x[i]; t += d; if (i == 5 || i == 6) idle += d }
		printf "%.0f", t ? 100 * (t - idle) / t : 0
	}'
}

# cpu_busy: busy percentage over one second, to show whether something else
# runs on the machine.
cpu_busy() {
	local a
	a=$(head -n 1 /proc/stat)
	sleep 1
	busy_between "$a" "$(head -n 1 /proc/stat)"
}

# run_fio OUT DEV ARGS...: run fio in the background (so that a signal reaches
# our trap at once) and wait for it.
run_fio() {
	local out=$1 dev=$2 rc=0
	shift 2
	"$@" --filename="$dev" >"$out" 2>"$out.err" </dev/null &
	fio_pid=$!
	wait "$fio_pid" || rc=$?
	fio_pid=
	if [ "$rc" -ne 0 ]; then
		# On Ctrl-C the terminal signals fio too; fio stops and exits by
		# itself, and bash then does not run our SIGINT trap (it assumes the
		# child handled the signal). Treat that as the interruption it is.
		if [ "$rc" -gt 128 ] || grep -qs 'terminating on signal' "$out.err" "$out"; then
			on_signal INT 130
		fi
		echo "$prog: fio failed (exit $rc) on $dev:" >&2
		cat "$out.err" >&2
		head -n 40 "$out" >&2
		return 1
	fi
}

# Results of the current device's runs, by pair.
declare -a iops_t iops_u ratio_p evs drops_t lost_t cpu_t iwi_t iwi_u
modes=

# untracked_run DEV PAIR
untracked_run() {
	local dev=$1 p=$2 out="$workdir/fio-$3-u$2.json" iops w0 w1 s0 busy
	w0=$(irq_work_count) s0=$(head -n 1 /proc/stat)
	run_fio "$out" "$dev" "${fio_bench[@]}"
	w1=$(irq_work_count) busy=$(busy_between "$s0" "$(head -n 1 /proc/stat)")
	iops=$(fio_write_value "$out" iops)
	iops_u[p]=$iops
	iwi_u[p]=$(irq_work_rate "$w0" "$w1" "$(fio_write_value "$out" runtime)")
	printf '  pair %d/%d  untracked  %9.0f IOPS  %41s  irq_work/s %6s  machine CPU %3s%%\n' "$p" "$RUNS" "$iops" "" "${iwi_u[p]}" "$busy"
}

# tracked_run DEV PAIR KIND
tracked_run() {
	local dev=$1 p=$2 kind=$3 log="$workdir/track-$3-$2.log" out="$workdir/fio-$3-t$2.json"
	local i iops rt_ms ticks rc=0 line ev bytes dr regions lost mode w0 w1 s0 busy
	: >"$log" # exists before the background child opens it, for the grep below
	"$agent" track --disk "$dev" "${track_args[@]}" >/dev/null 2>"$log" </dev/null &
	tracker_pid=$!
	for ((i = 0; i < 100; i++)); do
		grep -q '^tracking ' "$log" && break
		if exited "$tracker_pid"; then
			wait "$tracker_pid" || true
			tracker_pid=
			echo "$prog: the tracker exited before attaching:" >&2
			cat "$log" >&2
			return 1
		fi
		sleep 0.1
	done
	grep -q '^tracking ' "$log" || {
		echo "$prog: the tracker did not report 'tracking' within 10s:" >&2
		cat "$log" >&2
		return 1
	}
	w0=$(irq_work_count) s0=$(head -n 1 /proc/stat)
	run_fio "$out" "$dev" "${fio_bench[@]}"
	w1=$(irq_work_count) busy=$(busy_between "$s0" "$(head -n 1 /proc/stat)")
	# CPU time of the tracker process (user+system, from its start to the end
	# of the fio run; start-up is a few milliseconds).
	ticks=$(sed 's/.*) //' "/proc/$tracker_pid/stat" | awk '{ print $12 + $13 }')
	stop_process "$tracker_pid" INT 20 || rc=$?
	tracker_pid=
	if [ "$rc" -ne 0 ]; then
		echo "$prog: the tracker exited with status $rc:" >&2
		cat "$log" >&2
		return 1
	fi
	line=$(grep -F "$dev: " "$log" | tail -n 1)
	[[ $line =~ ([0-9]+)\ events,\ ([0-9]+)\ bytes,\ ([0-9]+)\ drops,\ ([0-9]+)\ bitmap\ regions,\ ([0-9]+)\ lost\ \(mode\ ([a-z]+)\) ]] || {
		echo "$prog: no summary line for $dev from the tracker:" >&2
		cat "$log" >&2
		return 1
	}
	ev=${BASH_REMATCH[1]} bytes=${BASH_REMATCH[2]} dr=${BASH_REMATCH[3]} regions=${BASH_REMATCH[4]}
	lost=${BASH_REMATCH[5]} mode=${BASH_REMATCH[6]}
	if grep -q '^warning' "$log"; then
		grep '^warning' "$log" | sed "s/^/  tracker: /"
	fi
	iops=$(fio_write_value "$out" iops)
	rt_ms=$(fio_write_value "$out" runtime)
	iops_t[p]=$iops
	evs[p]=$(awk -v e="$ev" -v ms="$rt_ms" 'BEGIN { printf "%.0f", e * 1000 / ms }')
	drops_t[p]=$dr
	lost_t[p]=$lost
	iwi_t[p]=$(irq_work_rate "$w0" "$w1" "$rt_ms")
	cpu_t[p]=$(awk -v t="$ticks" -v hz="$clk_tck" -v ms="$rt_ms" 'BEGIN { printf "%.1f", t / hz * 100000 / ms }')
	case " $modes " in *" $mode "*) ;; *) modes="${modes:+$modes }$mode" ;; esac
	printf '  pair %d/%d  tracked    %9.0f IOPS  %7s events/s  tracker CPU %5s%%  %2d drops  irq_work/s %6s  machine CPU %3s%%\n' \
		"$p" "$RUNS" "$iops" "${evs[p]}" "${cpu_t[p]}" "$dr" "${iwi_t[p]}" "$busy"
	if [ "$regions" -gt 0 ] || [ "$lost" -gt 0 ] || [ "$mode" != metadata ]; then
		printf '             tracker: %d events, %d bitmap regions, %d lost, mode %s\n' "$ev" "$regions" "$lost" "$mode"
	fi
}

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
minimum() { printf '%s\n' "$@" | sort -g | head -n 1; }
maximum() { printf '%s\n' "$@" | sort -g | tail -n 1; }
sum() { printf '%s\n' "$@" | awk '{ s += $1 } END { print s + 0 }'; }

setup_zram() {
	zram_idx=$(cat /sys/class/zram-control/hot_add)
	echo "$size_bytes" >"/sys/block/zram$zram_idx/disksize"
	dev=/dev/zram$zram_idx
	ensure_node "$dev" "/sys/block/zram$zram_idx"
	devinfo="zram$zram_idx, $(numfmt --to=iec "$size_bytes") disksize, compression $(sed -n 's/.*\[\([^]]*\)\].*/\1/p' "/sys/block/zram$zram_idx/comp_algorithm")"
}

setup_loop() {
	local img="$workdir/lifeboat-bench-loop.img" name dio
	truncate -s "$size_bytes" "$img"
	loop_dev=$(losetup --find --show --direct-io="$LOOP_DIRECT_IO" "$img")
	name=${loop_dev#/dev/}
	loop_sys_backing=$(cat "/sys/block/$name/loop/backing_file")
	dev=$loop_dev
	ensure_node "$dev" "/sys/block/$name"
	dio=$(cat "/sys/block/$name/loop/dio" 2>/dev/null || echo '?')
	if [ "$LOOP_DIRECT_IO" = on ] && [ "$dio" != 1 ]; then
		echo "$prog: warning: --direct-io=on requested but the kernel did not enable it on $dev (loop/dio=$dio)" >&2
	fi
	devinfo="$name over a sparse $(numfmt --to=iec "$size_bytes") file on $(df --output=fstype "$img" | tail -n 1) ($(findmnt -n -o SOURCE --target "$img" 2>/dev/null || echo '?')), direct I/O ${LOOP_DIRECT_IO} (loop/dio=$dio)"
}

teardown() {
	if [ -n "$loop_dev" ]; then
		detach_loop "$loop_dev" "$loop_sys_backing" || die "cannot detach $loop_dev"
		loop_dev=
		rm -f "$workdir/lifeboat-bench-loop.img"
	fi
	if [ -n "$zram_idx" ]; then
		remove_zram "$zram_idx" || die "cannot remove zram$zram_idx"
		zram_idx=
	fi
}

results=()
summaries=()

bench_device() {
	local kind=$1 p i busy
	iops_t=() iops_u=() ratio_p=() evs=() drops_t=() lost_t=() cpu_t=() iwi_t=() iwi_u=() modes=
	dev= devinfo=
	"setup_$kind"
	echo
	echo "== $kind: $dev ($devinfo)"
	busy=$(cpu_busy)
	echo "   CPU busy before starting: ${busy}% (1 s sample; anything above a few % is other work adding noise)"
	echo "   preconditioning: writing the whole ${SIZE} region once (${fio_fill[*]} --filename=$dev)"
	run_fio "$workdir/fill-$kind.json" "$dev" "${fio_fill[@]}"
	for ((p = 1; p <= RUNS; p++)); do
		# Odd pairs untracked first, even pairs tracked first: U T T U U T ...
		if ((p % 2)); then
			untracked_run "$dev" "$p" "$kind"
			tracked_run "$dev" "$p" "$kind"
		else
			tracked_run "$dev" "$p" "$kind"
			untracked_run "$dev" "$p" "$kind"
		fi
		ratio_p[p]=$(awk -v t="${iops_t[p]}" -v u="${iops_u[p]}" 'BEGIN { printf "%.3f", t / u }')
	done
	teardown
	echo "   CPU busy after the runs: $(cpu_busy)%"

	local mt mu ratio rmin rmax mev mcpu drops lost verdict miwt miwu
	mt=$(median "${iops_t[@]}")
	mu=$(median "${iops_u[@]}")
	ratio=$(awk -v t="$mt" -v u="$mu" 'BEGIN { printf "%.3f", t / u }')
	rmin=$(minimum "${ratio_p[@]}")
	rmax=$(maximum "${ratio_p[@]}")
	mev=$(printf '%.0f' "$(median "${evs[@]}")")
	mcpu=$(median "${cpu_t[@]}")
	miwt=n/a miwu=n/a
	if [ "${iwi_t[1]}" != n/a ]; then
		miwt=$(printf '%.0f' "$(median "${iwi_t[@]}")")
		miwu=$(printf '%.0f' "$(median "${iwi_u[@]}")")
	fi
	drops=$(sum "${drops_t[@]}")
	lost=$(sum "${lost_t[@]}")
	verdict=$(awk -v r="$ratio" -v t="$TARGET" 'BEGIN { print (r >= t) ? "PASS" : "BELOW" }')
	echo "-- $kind summary over $RUNS pairs of ${RUNTIME}s runs"
	printf '   median IOPS tracked    %9.0f   (runs: %s)\n' "$mt" "$(printf '%.0f ' "${iops_t[@]}")"
	printf '   median IOPS untracked  %9.0f   (runs: %s)\n' "$mu" "$(printf '%.0f ' "${iops_u[@]}")"
	printf '   ratio tracked/untracked %s  (per pair: %s; min %s, max %s)\n' "$ratio" "${ratio_p[*]}" "$rmin" "$rmax"
	printf '   events/s (median)      %9.0f   tracker CPU (median) %s%% of one core\n' "$mev" "$mcpu"
	printf '   irq_work/s (median)    %9s tracked, %s untracked (ring buffer wakeups of the consumer)\n' "$miwt" "$miwu"
	printf '   drops %d, lost %d, mode %s\n' "$drops" "$lost" "$modes"
	if [ "$drops" -gt 0 ]; then
		echo "   note: $drops requests found the ring buffer full and went to the overflow bitmap" \
			"(no data lost: they come out as dirty regions at the next cut), i.e. the consumer did not keep up."
	fi
	if [ "$lost" -gt 0 ]; then
		echo "   WARNING: $lost changes were lost (neither ring buffer nor bitmap could record them)."
	fi
	summaries+=("$(printf '| %s | %.0f | %.0f | %s | %s | %s | %.0f | %s | %s / %s | %d |' "$kind" "$mt" "$mu" "$ratio" "$rmin" "$rmax" "$mev" "$mcpu" "$miwt" "$miwu" "$drops")")
	results+=("RESULT device=$kind ratio=$ratio min=$rmin max=$rmax events_per_s=$mev drops=$drops target>=$TARGET $verdict")
}

echo "$prog: tracker overhead, fio 4 KiB random writes, tracker attached vs detached"
echo "  date      $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "  machine   $(nproc) CPUs ($(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r)"
echo "  fio       $(fio --version)"
echo "  agent     $agent"
echo "  settings  RUNS=$RUNS RUNTIME=$RUNTIME SIZE=$SIZE DEVICES='$DEVICES' LOOP_DIRECT_IO=$LOOP_DIRECT_IO TARGET=$TARGET CONSUMER=$CONSUMER"
echo "  fio run   ${fio_bench[*]} --filename=DEV"
echo "  tracked   $agent track --disk DEV ${track_args[*]} > /dev/null 2> LOG &   (started before, SIGINT after each tracked fio run)"
echo "  order     pairs alternate: untracked,tracked, tracked,untracked, untracked,tracked, ..."
echo "  columns   tracker CPU: user+system time of the tracker process, % of one CPU; irq_work/s: IRQ work"
echo "            interrupts (ring buffer wakeups) on all CPUs; machine CPU: busy time of all CPUs during the run"

for kind in $DEVICES; do
	bench_device "$kind"
done

echo
echo "| device | median IOPS tracked | median IOPS untracked | ratio | min ratio | max ratio | events/s | tracker CPU % | irq_work/s tracked / untracked | drops |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${summaries[@]}"
echo
printf '%s\n' "${results[@]}"
if printf '%s\n' "${results[@]}" | grep -q ' BELOW$'; then
	echo "$prog: at least one ratio is BELOW the target $TARGET (this is a benchmark; the exit status stays 0)"
fi
