#!/usr/bin/env bash
# bench-replication.sh: how much write churn does replication keep up with,
# at what RPO lag, how fast is the initial sync, and how much memory does the
# agent use? Benchmarks, not tests: it exits 0 also when a target is missed,
# and says so in its RESULT lines (PASS / BELOW / INFO).
#
# Every run uses a fresh lifeboat-server (all roles, its --data in the work
# directory) and a fresh lifeboat-agent (its own --state and bpffs pin
# directory) protecting a loop device, all on this machine, next to fio:
#
#   churn  Sustained churn. For 64 KiB and 4 KiB random writes (fio, libaio,
#          O_DIRECT, iodepth 16) at increasing rates (--rate), each for
#          RUNTIME seconds on a SIZE sparse loop device that the agent has
#          synchronised first: does replication keep up? Keeps up = fio
#          reached the rate, over the last third of the run the backlog
#          (pending_bytes + spool queued_bytes) grew by at most GROWTH_MAX and
#          the lag of the oldest change not yet durable (lag current_seconds)
#          stayed <= LAG_BOUND, and after fio stopped everything was durable on
#          the server within DRAIN_MAX. The sweep stops at the first rate that
#          is not kept up (or that fio cannot reach). Target: >= 250 MB/s at
#          64 KiB. With CONFIRM_RUNTIME > RUNTIME, the highest 64 KiB rate kept
#          up is run again for CONFIRM_RUNTIME seconds.
#   lag    RPO lag p50/p99 (agentctl status: lag) at LAG_RATES MB/s of 64 KiB
#          random writes, LAG_RUNTIME seconds each, fresh agent per run.
#          Target: p99 <= 2 s. The run at 50 MB/s also gives the agent's memory
#          (VmHWM and the median VmRSS of the last third, from
#          /proc/PID/status). Target: <= 64 MiB.
#   wamp   Write amplification on the protected host at WAMP_RATE MB/s of
#          64 KiB random writes (RUNTIME seconds): bytes the agent process
#          wrote to storage (write_bytes of /proc/PID/io, from fio's start
#          until everything is durable on the server) per byte fio wrote.
#          Target: <= 0.02 (the agent without a spool writes only its state).
#   kill9  kill -9 of the agent under KILL_RATE MB/s of 64 KiB random writes,
#          KILL_AT seconds into a KILL_RUNTIME-second fio run, the tracker
#          pinned: the backlog at the kill (agentctl status just before:
#          pending_bytes + the bytes held for the server, from mode_reason),
#          the bytes the restarted agent reads again (its log's
#          reread_bytes: what the dead one persisted plus the kernel's change
#          log, recovered_bytes, less the regions the tracker reported
#          changed before its first cut, which it reads anyway: fio's writes
#          while no agent ran, and those the dead one had not taken), whether
#          it resynced, and when
#          everything is durable after fio. Target: read again <= 2 x the
#          backlog (not the disk's size), no resync.
#   sync   Initial sync of a SYNC_SIZE device full of random data, and of one
#          half random, half zeros (a hole): time from starting the agent to
#          state protected (polled every 100 ms), next to
#          `dd if=DEV of=/dev/null bs=1M iflag=direct`, SYNC_RUNS times each in
#          alternating order. Target: sync rate >= 0.5 x dd's (issue 15).
#
# For every run it prints the command lines, and where the CPU went (agent,
# server, fio, the whole machine with iowait and steal) and what the disk
# under the work directory wrote, from /proc.
# See docs/PERFORMANCE.md for measured numbers.
#
# Run as root from the repository (`make bench-replication` builds first).
# Environment knobs (defaults in brackets):
#   BENCHES          which benchmarks, in order [wamp churn lag sync kill9]
#   KILL_RATE, KILL_RUNTIME, KILL_AT  of the kill9 run [50, 30, 10]
#   WAMP_RATE        MB/s of the write amplification run [100]
#   RUNTIME          seconds of fio per churn rate [60]
#   RATES_64K        churn rates in MB/s (10^6 B/s) at 64 KiB [25 35 50 75 100 150 200 300 400]
#   RATES_4K         churn rates in MB/s at 4 KiB [5 10 15 25 50 100 200]
#                    (an empty list skips that block size)
#   CONFIRM_RUNTIME  run the best 64 KiB rate again this long if > RUNTIME [60]
#   LAG_RATES        MB/s of the lag runs [20 50]
#   LAG_RUNTIME      seconds of each lag run [RUNTIME]
#   SIZE             size of the churn/lag loop device [4G]
#   SYNC_SIZE        size of the initial-sync loop device [2G]
#   SYNC_RUNS        runs per initial-sync device [3]
#   IODEPTH          fio iodepth [16]
#   LAG_BOUND        seconds of lag current_seconds a run may reach [5]
#   GROWTH_MAX       backlog growth allowed over the last third [64M]
#   DRAIN_MAX        seconds after fio for everything to be durable [5]
#   DRAIN_TIMEOUT    give up waiting for a drain after this many seconds [300]
#   SYNC_TIMEOUT     give up waiting for an initial sync after this many seconds [900]
#   QUIET_BUSY       before each run, wait until the machine is less than this
#                    % busy (other people's load) ... [30]
#   QUIET_WAIT       ... but at most this many seconds, then run anyway [120]
#   LOOP_DIRECT_IO   losetup --direct-io=on|off [on]
#   POINT_INTERVAL   agent --point-interval [60s]
#   SPOOL_BYTES      agent --spool-bytes [the agent's default]
#   MEMORY_BYTES     agent --memory-bytes [the agent's default]
#   LOGDIR           if set, copy every run's logs and samples there (kept)
#   TMPDIR           where the work directory goes: backing files, server data,
#                    agent state [/tmp]; must not be on a protected device
#   SERVER_DIR       if set, each run's server data directory goes under it
#                    instead of the work directory: a tmpfs or zram file
#                    system stands for the separate server of a real
#                    deployment (the server then does not share the protected
#                    host's disk) [unset]
#   GO               go command, to build the helper internal/cmd/benchrepl [go]
#   BIN              directory of the lifeboat-server, lifeboat-agent and
#                    agentctl binaries to measure [bin/ of the repository];
#                    e.g. an older build, to compare two versions side by side
#
# Everything it creates (loop devices, backing files, server and agent
# processes, bpffs pin directories, the work directory) is removed on exit,
# also on failure and on Ctrl-C.
set -euo pipefail

prog=bench-replication
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${BIN:-$root/bin}

BENCHES=${BENCHES:-wamp churn lag sync kill9}
RUNTIME=${RUNTIME:-60}
RATES_64K=${RATES_64K-25 35 50 75 100 150 200 300 400}
RATES_4K=${RATES_4K-5 10 15 25 50 100 200}
CONFIRM_RUNTIME=${CONFIRM_RUNTIME:-60}
LAG_RATES=${LAG_RATES:-20 50}
WAMP_RATE=${WAMP_RATE:-100}
LAG_RUNTIME=${LAG_RUNTIME:-$RUNTIME}
SIZE=${SIZE:-4G}
SYNC_SIZE=${SYNC_SIZE:-2G}
SYNC_RUNS=${SYNC_RUNS:-3}
IODEPTH=${IODEPTH:-16}
LAG_BOUND=${LAG_BOUND:-5}
GROWTH_MAX=${GROWTH_MAX:-64M}
DRAIN_MAX=${DRAIN_MAX:-5}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-300}
SYNC_TIMEOUT=${SYNC_TIMEOUT:-900}
LOOP_DIRECT_IO=${LOOP_DIRECT_IO:-on}
QUIET_BUSY=${QUIET_BUSY:-30}
QUIET_WAIT=${QUIET_WAIT:-120}
POINT_INTERVAL=${POINT_INTERVAL:-60s}
SPOOL_BYTES=${SPOOL_BYTES:-}
MEMORY_BYTES=${MEMORY_BYTES:-}
LOGDIR=${LOGDIR:-}
GO=${GO:-go}
KILL_RATE=${KILL_RATE:-50}
KILL_RUNTIME=${KILL_RUNTIME:-30}
KILL_AT=${KILL_AT:-10}

# Targets of the issue.
TARGET_CHURN_64K=250 # MB/s (issue 15; issue 3 asked for 200)
TARGET_LAG_P99=2     # seconds
TARGET_SYNC=0.5      # x dd (issue 15, server on its own device; issue 3 asked for 0.9)
TARGET_RSS_MIB=64
TARGET_WAMP=0.02 # agent write_bytes per byte churned
TARGET_KILL=2    # bytes read again after a kill -9 per byte of backlog

die() {
	echo "$prog: $*" >&2
	exit 1
}

# ---- checks ---------------------------------------------------------------

[ "$(id -u)" -eq 0 ] || die "run as root: it creates loop devices, loads BPF programs (the agent) and pins them in /sys/fs/bpf"
for b in lifeboat-server lifeboat-agent agentctl; do
	[ -x "$bin/$b" ] || die "$bin/$b not found: run 'make build' first (or 'make bench-replication', which builds)"
done
for c in fio losetup numfmt dd truncate findmnt column; do
	command -v "$c" >/dev/null || die "$c not found (install it, e.g. ./scripts/install-deps.sh)"
done
[ -e /dev/loop-control ] || die "loop driver not available (/dev/loop-control missing: modprobe loop)"
[ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" = bpf_fs ] || die "no bpffs at /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)"
posint() { [[ ${!1} =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, got '${!1}'"; }
for v in QUIET_BUSY QUIET_WAIT RUNTIME CONFIRM_RUNTIME LAG_RUNTIME SYNC_RUNS IODEPTH DRAIN_MAX DRAIN_TIMEOUT SYNC_TIMEOUT KILL_RATE KILL_RUNTIME KILL_AT; do posint "$v"; done
((KILL_AT < KILL_RUNTIME)) || die "KILL_AT ($KILL_AT) must be less than KILL_RUNTIME ($KILL_RUNTIME)"
[[ $LAG_BOUND =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "LAG_BOUND must be a number of seconds, got '$LAG_BOUND'"
for r in $RATES_64K $RATES_4K $LAG_RATES; do
	[[ $r =~ ^[1-9][0-9]*$ ]] || die "rates are whole MB/s, got '$r'"
done
for b in $BENCHES; do
	case $b in churn | lag | sync | wamp | kill9) ;; *) die "BENCHES: unknown benchmark '$b' (churn, lag, sync, wamp, kill9)" ;; esac
done
case $LOOP_DIRECT_IO in on | off) ;; *) die "LOOP_DIRECT_IO must be on or off, got '$LOOP_DIRECT_IO'" ;; esac
size_bytes=$(numfmt --from=iec "$SIZE" 2>/dev/null) || die "SIZE: cannot parse '$SIZE' (e.g. 4G)"
sync_bytes=$(numfmt --from=iec "$SYNC_SIZE" 2>/dev/null) || die "SYNC_SIZE: cannot parse '$SYNC_SIZE' (e.g. 2G)"
growth_max=$(numfmt --from=iec "$GROWTH_MAX" 2>/dev/null) || die "GROWTH_MAX: cannot parse '$GROWTH_MAX' (e.g. 64M)"
((size_bytes >= 256 << 20 && size_bytes % (1 << 20) == 0)) || die "SIZE must be a multiple of 1 MiB and at least 256M, got '$SIZE'"
((sync_bytes >= 64 << 20 && sync_bytes % (2 << 20) == 0)) || die "SYNC_SIZE must be a multiple of 2 MiB and at least 64M, got '$SYNC_SIZE'"
[ -z "$SPOOL_BYTES" ] || [[ $SPOOL_BYTES =~ ^[1-9][0-9]*$ ]] || die "SPOOL_BYTES must be a number of bytes, got '$SPOOL_BYTES'"
[ -z "$MEMORY_BYTES" ] || [[ $MEMORY_BYTES =~ ^[1-9][0-9]*$ ]] || die "MEMORY_BYTES must be a number of bytes, got '$MEMORY_BYTES'"
if [ -n "$LOGDIR" ]; then
	mkdir -p "$LOGDIR" || die "cannot create LOGDIR $LOGDIR"
	LOGDIR=$(cd "$LOGDIR" && pwd)
fi

# ---- resources and cleanup ------------------------------------------------
# Each variable names one thing this script created; cleanup releases exactly
# those and clears the variable, so it can run any number of times.

workdir=
server_pid=
agent_pid=
fio_pid=
bg_pid=    # a helper, dd or watcher waited for in the foreground
watch_pid= # the sampler of a churn run
declare -A loops=()   # device -> backing file as /sys shows it
declare -A pindirs=() # bpffs directories we made
serverdirs=()         # server data directories made under SERVER_DIR

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

# detach_loop DEV: detach a loop device of ours, only while it is still
# attached to the backing file we gave it.
detach_loop() {
	local dev=$1 want=${loops[$1]} name cur i
	name=${dev#/dev/}
	unset "loops[$dev]"
	cur=$(cat "/sys/block/$name/loop/backing_file" 2>/dev/null) || return 0
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

remove_pindir() {
	local d=$1
	unset "pindirs[$d]"
	rm -rf -- "$d" || echo "$prog: could not remove $d" >&2
}

cleanup() {
	trap '' INT TERM # a second Ctrl-C must not cut the cleanup short
	set +e
	local p d
	for p in fio_pid bg_pid watch_pid; do
		if [ -n "${!p}" ]; then
			kill -s CONT "${!p}" 2>/dev/null # kill9 pauses fio (SIGSTOP)
			stop_process "${!p}" TERM 15
			printf -v "$p" ''
		fi
	done
	if [ -n "$agent_pid" ]; then
		stop_process "$agent_pid" TERM 30
		agent_pid=
	fi
	if [ -n "$server_pid" ]; then
		stop_process "$server_pid" TERM 40
		server_pid=
	fi
	for d in "${!pindirs[@]}"; do remove_pindir "$d"; done
	for d in "${!loops[@]}"; do detach_loop "$d"; done
	for d in "${serverdirs[@]}"; do rm -rf -- "$d"; done
	serverdirs=()
	if [ -n "$workdir" ]; then
		rm -rf -- "$workdir"
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

# ---- helpers --------------------------------------------------------------

workdir=$(mktemp -d "${TMPDIR:-/tmp}/lifeboat-bench-repl.XXXXXX")
chmod 700 "$workdir"

# Our own copy of the binaries: a `make build` elsewhere during the hour this
# takes must not change what is measured halfway.
mkdir "$workdir/bin"
cp -p "$bin/lifeboat-server" "$bin/lifeboat-agent" "$bin/agentctl" "$workdir/bin/"
binsrc=$bin
binfo="$(date -u -r "$bin/lifeboat-agent" +%FT%TZ), agent sha256 $(sha256sum "$bin/lifeboat-agent" | cut -c1-12)"
bin=$workdir/bin

# The measuring helper (internal/cmd/benchrepl): built from the source when
# Go is at hand, else bin/benchrepl.
br=$workdir/benchrepl
if command -v "$GO" >/dev/null; then
	(cd "$root" && CGO_ENABLED=0 "$GO" build -o "$br" ./internal/cmd/benchrepl) || die "cannot build internal/cmd/benchrepl"
elif [ -x "$bin/benchrepl" ]; then
	br=$bin/benchrepl
else
	die "no $GO to build internal/cmd/benchrepl and no $bin/benchrepl"
fi

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
mb() { calc "%.1f" "$1 / 1e6"; }    # bytes -> MB
mib() { calc "%.0f" "$1 / 1048576"; } # bytes -> MiB

# show ARGS...: print a command line as it can be pasted into a shell.
show() {
	local out= a
	for a in "$@"; do out+=" $(printf '%q' "$a")"; done
	echo "    \$${out}"
}

# kv OUTPUT: set shell variables from the helper's "k=v k=v" output.
kv() {
	[[ $1 =~ ^([a-z_0-9]+=[-+A-Za-z0-9._]+( |$))+$ ]] || die "unexpected helper output: $1"
	eval "$1"
}

# run_bg VAR CMD...: run CMD in the background with its pid in VAR (so that
# cleanup can stop it) and wait; a signal reaches our trap at once.
run_bg() {
	local var=$1 rc=0
	shift
	"$@" &
	printf -v "$var" '%s' $!
	wait "${!var}" || rc=$?
	printf -v "$var" ''
	return "$rc"
}

# sched PID: CPU time and run-queue wait (ns) of every thread of a process,
# from /proc/PID/task/*/schedstat; "0 0" when it is gone. The wait is time
# the threads were runnable but had no CPU: summed over threads, it shows
# how much the process was held back by everything else on the machine.
sched() {
	[ -n "$1" ] && [ -d "/proc/$1/task" ] || {
		echo 0 0
		return
	}
	cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ r += $1; w += $2 } END { print r + 0, w + 0 }'
}

# The block device under the work directory, for its write rate.
wd_disk=$(findmnt -n -o SOURCE --target "$workdir" 2>/dev/null | tail -n 1 || true)
wd_disk=$(basename "${wd_disk:-none}")
awk -v d="$wd_disk" '$3 == d { f = 1 } END { exit !f }' /proc/diskstats || wd_disk= # tmpfs, overlay: no disk to watch
disk_sectors() { # read and written sectors of wd_disk, or "0 0"
	awk -v d="$wd_disk" '$3 == d { print $6, $10; f = 1 } END { if (!f) print 0, 0 }' /proc/diskstats
}

# snapshot: machine CPU counters, disk sectors, agent and server CPU and
# run-queue wait.
snapshot() { echo "$(head -n 1 /proc/stat | cut -d' ' -f2-) $(disk_sectors) $(sched "$agent_pid") $(sched "$server_pid") $(now)"; }

# usage_between SNAP_A SNAP_B: sets u_agent, u_server (CPU, % of one CPU),
# u_agent_wait, u_server_wait (run-queue wait summed over threads, % of the
# wall time), u_busy, u_iowait, u_steal (% of the whole machine), u_rd, u_wr
# (MB/s of wd_disk).
usage_between() {
	kv "$(awk -v a="$1" -v b="$2" 'BEGIN {
		n = split(a, x, " "); split(b, y, " ")
		# /proc/stat: user nice system idle iowait irq softirq steal guest guest_nice
		for (i = 1; i <= 8; i++) { d[i] = y[i] - x[i]; t += d[i] }
		if (t == 0) t = 1
		s = y[n] - x[n]; if (s <= 0) s = 1
		printf "u_busy=%.0f u_iowait=%.0f u_steal=%.0f u_rd=%.0f u_wr=%.0f u_agent=%.0f u_agent_wait=%.0f u_server=%.0f u_server_wait=%.0f\n",
			100 * (t - d[4] - d[5]) / t, 100 * d[5] / t, 100 * d[8] / t,
			(y[n-6] - x[n-6]) * 512 / s / 1e6, (y[n-5] - x[n-5]) * 512 / s / 1e6,
			(y[n-4] - x[n-4]) / s / 1e7, (y[n-3] - x[n-3]) / s / 1e7,
			(y[n-2] - x[n-2]) / s / 1e7, (y[n-1] - x[n-1]) / s / 1e7
	}')"
}

# cpu_between SNAP_A SNAP_B: sets c_agent and c_server, the CPU seconds the
# agent and the server used between the two snapshots.
cpu_between() {
	kv "$(awk -v a="$1" -v b="$2" 'BEGIN {
		n = split(a, x, " "); split(b, y, " ")
		printf "c_agent=%.2f c_server=%.2f\n", (y[n-4] - x[n-4]) / 1e9, (y[n-2] - x[n-2]) / 1e9
	}')"
}

# machine_busy: % CPU busy over one second, to show other load on the machine.
machine_busy() {
	local a b
	a=$(snapshot)
	sleep 1
	b=$(snapshot)
	usage_between "$a" "$b"
	echo "$u_busy"
}

# wait_quiet: wait (up to QUIET_WAIT s) until the machine is less than
# QUIET_BUSY % busy; sets busy0 to the last reading.
wait_quiet() {
	local t0=$SECONDS
	busy0=$(machine_busy)
	while ((busy0 >= QUIET_BUSY && SECONDS - t0 < QUIET_WAIT)); do
		busy0=$(machine_busy)
	done
	if ((busy0 >= QUIET_BUSY)); then
		echo "  machine still ${busy0}% busy after ${QUIET_WAIT}s of waiting for < ${QUIET_BUSY}% (other load): running anyway"
	else
		echo "  machine CPU busy before the run (others' load): ${busy0}% (waited $((SECONDS - t0)) s for < ${QUIET_BUSY}%)"
	fi
}

# new_loop FILE: attach FILE to a free loop device; sets loop_dev.
new_loop() {
	local name dio
	show losetup --find --show --direct-io="$LOOP_DIRECT_IO" "$1"
	loop_dev=$(losetup --find --show --direct-io="$LOOP_DIRECT_IO" "$1")
	name=${loop_dev#/dev/}
	loops[$loop_dev]=$(cat "/sys/block/$name/loop/backing_file")
	for ((i = 0; i < 20; i++)); do
		[ -b "$loop_dev" ] && break
		sleep 0.1
	done
	[ -b "$loop_dev" ] || die "$loop_dev has no device node"
	dio=$(cat "/sys/block/$name/loop/dio" 2>/dev/null || echo '?')
	if [ "$LOOP_DIRECT_IO" = on ] && [ "$dio" != 1 ]; then
		echo "$prog: warning: --direct-io=on requested but $loop_dev has loop/dio=$dio" >&2
	fi
}

# check_loop DEV: the device must still be ours (someone else's losetup -D
# would make every number meaningless).
check_loop() {
	local cur
	cur=$(cat "/sys/block/${1#/dev/}/loop/backing_file" 2>/dev/null) || die "$1 was detached behind our back"
	[ "${cur% (deleted)}" = "${loops[$1]% (deleted)}" ] || die "$1 now has another backing file ($cur)"
}

# io_written PID: bytes the process caused to be written to storage so far.
io_written() { awk '/^write_bytes:/ { print $2 }' "/proc/$1/io"; }

# start_server DIR: a fresh lifeboat-server in DIR/server; sets server_pid, api.
start_server() {
	local dir=$1 data=$1/server i st
	if [ -n "${SERVER_DIR:-}" ]; then
		local own
		own=$(mktemp -d "$SERVER_DIR/lifeboat-bench-server.XXXXXX")
		serverdirs+=("$own")
		ln -s "$own" "$data"
		echo "   server data on $(df --output=source,fstype "$own" | tail -n 1) ($own)"
	fi
	show "$bin/lifeboat-server" init --data "$data"
	"$bin/lifeboat-server" init --data "$data" >"$dir/server-init.log" 2>&1 || {
		cat "$dir/server-init.log" >&2
		die "lifeboat-server init failed"
	}
	show "$bin/lifeboat-server" run --data "$data" --api 127.0.0.1:0 --listen 127.0.0.1:0
	"$bin/lifeboat-server" run --data "$data" --api 127.0.0.1:0 --listen 127.0.0.1:0 >"$dir/server.log" 2>&1 </dev/null &
	server_pid=$!
	for ((i = 0; i < 300; i++)); do
		if [ -s "$data/server.json" ] && grep -q '"process"' "$data/server.json"; then
			api=$(sed -n 's/.*"api": *"\([^"]*\)".*/\1/p' "$data/server.json")
			[ -n "$api" ] && return 0
		fi
		if exited "$server_pid"; then
			wait "$server_pid" || st=$?
			server_pid=
			tail -n 30 "$dir/server.log" >&2
			die "lifeboat-server exited (status ${st:-0}) before serving"
		fi
		sleep 0.1
	done
	tail -n 30 "$dir/server.log" >&2
	die "lifeboat-server did not write $data/server.json within 30 s"
}

# start_agent DIR DEV: a fresh agent; sets agent_pid, state, pindir, t_agent.
start_agent() {
	local dir=$1 dev=$2 args
	state=$dir/agent
	pindir=$(mktemp -d /sys/fs/bpf/lifeboat-bench-XXXXXX) # bpffs: no dots in names
	pindirs[$pindir]=1
	args=(run --server "$api" --passphrase-file "$dir/server/passphrase" --state "$state" --name bench
		--pin-dir "$pindir" --disk "$dev" --point-interval "$POINT_INTERVAL")
	[ -z "$SPOOL_BYTES" ] || args+=(--spool-bytes "$SPOOL_BYTES")
	[ -z "$MEMORY_BYTES" ] || args+=(--memory-bytes "$MEMORY_BYTES")
	show "$bin/lifeboat-agent" "${args[@]}"
	t_agent=$(now)
	"$bin/lifeboat-agent" "${args[@]}" >"$dir/agent.log" 2>&1 </dev/null &
	agent_pid=$!
}

# agent_dead DIR: fail with the agent's log if it exited.
agent_dead() {
	if [ -n "$agent_pid" ] && exited "$agent_pid"; then
		local st=0
		wait "$agent_pid" || st=$?
		agent_pid=
		echo "$prog: the agent exited (status $st); its log:" >&2
		tail -n 40 "$1/agent.log" >&2
		die "the agent died during a run: this is a bug worth reporting (log above)"
	fi
}

# wait_protected DIR: until the agent's disk is protected (100 ms polls);
# sets t_protected.
wait_protected() {
	local dir=$1 rc=0 line
	run_bg bg_pid "$br" watch --state "$state" --pid "$agent_pid" --interval 100ms --until protected \
		--timeout "${SYNC_TIMEOUT}s" >"$dir/sync-samples" || rc=$?
	agent_dead "$dir"
	[ "$rc" -eq 0 ] || {
		tail -n 3 "$dir/sync-samples" >&2
		tail -n 20 "$dir/agent.log" >&2
		die "the agent did not reach state protected within ${SYNC_TIMEOUT}s"
	}
	line=$(grep '^until protected ' "$dir/sync-samples") || die "no 'until protected' line from the helper"
	t_protected=${line##* }
}

# stop_run DIR TAG: stop the agent and the server in order, check that they
# stopped cleanly, keep the logs if asked, free everything of the run.
stop_run() {
	local dir=$1 rc=0 tag=$2
	if [ -n "$agent_pid" ]; then
		stop_process "$agent_pid" TERM 30 || rc=$?
		agent_pid=
		[ "$rc" -eq 0 ] || echo "  WARNING: the agent exited with status $rc at SIGTERM (see $tag agent.log)" >&2
	fi
	rc=0
	if [ -n "$server_pid" ]; then
		stop_process "$server_pid" TERM 40 || rc=$?
		server_pid=
		[ "$rc" -eq 0 ] || echo "  WARNING: the server exited with status $rc at SIGTERM (see $tag server.log)" >&2
	fi
	if grep -qE '"level":"(ERROR|WARN)"' "$dir/agent.log" "$dir/server.log" 2>/dev/null; then
		echo "  log warnings/errors of this run:"
		grep -hE '"level":"(ERROR|WARN)"' "$dir/agent.log" "$dir/server.log" | head -n 5 | cut -c1-300 | sed 's/^/    /'
	fi
	if [ -n "$LOGDIR" ]; then
		mkdir -p "$LOGDIR/$tag"
		cp -p "$dir"/*.log "$dir"/*samples* "$dir"/*.json "$LOGDIR/$tag/" 2>/dev/null || true
	fi
	[ -z "$pindir" ] || remove_pindir "$pindir"
	pindir=
	# A server data directory under SERVER_DIR goes with its run: a tmpfs
	# holds only one run's replica and journal.
	if [ -L "$dir/server" ]; then
		rm -rf -- "$(readlink "$dir/server")"
		rm -f -- "$dir/server"
	fi
}

# ---- one churn run --------------------------------------------------------
# churn_run TAG BS RATE_MBPS SECONDS: sets verdict (KEEPS-UP, BEHIND,
# FIO-SHORT) and r_* result variables.
run_no=0
churn_run() {
	local tag=$1 bs=$2 rate=$3 secs=$4 dir img s0 s1 t_fs t_fe t_third rc line fio_cmd
	run_no=$((run_no + 1))
	dir=$workdir/run$run_no
	mkdir -p "$dir"
	img=$dir/disk.img
	echo
	echo "== churn $tag: $bs random writes at $rate MB/s for ${secs}s (fresh server and agent, $(numfmt --to=iec "$size_bytes") sparse loop device)"
	wait_quiet
	show truncate -s "$size_bytes" "$img"
	truncate -s "$size_bytes" "$img"
	new_loop "$img"
	local dev=$loop_dev
	start_server "$dir"
	start_agent "$dir" "$dev"
	wait_protected "$dir"
	echo "  initial sync of the empty device: $(calc %.1f "$t_protected - $t_agent") s"
	check_loop "$dev"

	"$br" watch --state "$state" --pid "$agent_pid" --interval 500ms >"$dir/samples" &
	watch_pid=$!
	fio_cmd=(fio --name=churn --filename="$dev" --rw=randwrite --bs="$bs" --iodepth="$IODEPTH" --ioengine=libaio
		--direct=1 --rate="$((rate * 1000000))" --time_based --runtime="$secs" --size="$size_bytes"
		--randrepeat=0 --output-format=json)
	show "${fio_cmd[@]}"
	s0=$(snapshot)
	local agent_wb0 agent_wb1
	agent_wb0=$(io_written "$agent_pid")
	t_fs=$(now)
	"${fio_cmd[@]}" >"$dir/fio.json" 2>"$dir/fio.err" </dev/null &
	fio_pid=$!
	local k=0
	while ! exited "$fio_pid"; do
		sleep 1
		k=$((k + 1))
		if ((k % 10 == 0)); then
			line=$(tail -n 1 "$dir/samples" 2>/dev/null || true)
			[ -z "$line" ] || awk -v k="$k" '{ printf "  %3ds  backlog %6.0f MiB  lag now %6.2f s  (samples %d, p99 %.2f s)\n", k, ($4 + $5) / 1048576, $11, $7, $9 }' <<<"$line"
		fi
		agent_dead "$dir"
	done
	rc=0
	wait "$fio_pid" || rc=$?
	fio_pid=
	t_fe=$(now)
	s1=$(snapshot)
	if [ "$rc" -ne 0 ]; then
		if [ "$rc" -gt 128 ] || grep -qs 'terminating on signal' "$dir/fio.err" "$dir/fio.json"; then
			on_signal INT 130
		fi
		cat "$dir/fio.err" >&2
		die "fio failed (exit $rc)"
	fi
	usage_between "$s0" "$s1"
	kv "$("$br" fio "$dir/fio.json")"

	# Drain: until everything fio wrote is durable on the server.
	rc=0
	run_bg bg_pid "$br" watch --state "$state" --pid "$agent_pid" --interval 100ms --until drained \
		--timeout "${DRAIN_TIMEOUT}s" >"$dir/drain-samples" || rc=$?
	agent_dead "$dir"
	local drain
	if [ "$rc" -eq 0 ]; then
		line=$(grep '^until drained ' "$dir/drain-samples")
		drain=$(calc %.1f "${line##* } - $t_fe")
	elif [ "$rc" -eq 3 ]; then
		drain=never
		echo "  NOT DRAINED ${DRAIN_TIMEOUT}s after fio stopped; status now:"
		"$bin/agentctl" status --state "$state" | sed 's/^/    /' || true
	else
		die "the drain watcher failed (status $rc)"
	fi
	agent_wb1=$(io_written "$agent_pid")
	stop_process "$watch_pid" TERM 10 || true
	watch_pid=
	check_loop "$dev"

	# The last third of the fio run, and the whole of it.
	t_third=$(calc %.3f "$t_fs + ($t_fe - $t_fs) * 2 / 3")
	kv "$("$br" analyze --from "$t_third" --to "$t_fe" "$dir/samples")"
	local third_slope=$slope third_max_current=$max_current third_rss=$rss_median_kb growth
	growth=$(calc %.0f "$slope * ($t_fe - $t_third)")
	kv "$("$br" analyze --from "$t_fs" --to "$t_fe" "$dir/samples")"
	local run_max_backlog=$max_backlog run_rss_max=$rss_max_kb run_hwm=$hwm_kb
	kv "$("$br" status --state "$state")"
	local _rss _hwm
	read -r _rss _hwm < <(awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } END { print r + 0, h + 0 }' "/proc/$agent_pid/status")

	# Verdict.
	local why=()
	verdict=KEEPS-UP
	if awk -v a="$fio_bw" -v r="$rate" 'BEGIN { exit !(a < 0.95 * r * 1e6) }'; then
		verdict=FIO-SHORT
		why+=("fio reached only $(mb "$fio_bw") MB/s")
	fi
	if ((growth > growth_max)); then
		why+=("backlog grew $(mib "$growth") MiB over the last third")
	fi
	if awk -v c="$third_max_current" -v b="$LAG_BOUND" 'BEGIN { exit !(c > b) }'; then
		why+=("lag reached $(calc %.1f "$third_max_current") s > ${LAG_BOUND} s in the last third")
	fi
	if [ "$drain" = never ] || awk -v d="$drain" -v m="$DRAIN_MAX" 'BEGIN { exit !(d > m) }'; then
		why+=("drain took $drain s > ${DRAIN_MAX} s")
	fi
	if [ "$verdict" = KEEPS-UP ] && ((${#why[@]} > 0)); then
		verdict=BEHIND
	fi

	r_fio=$(mb "$fio_bw") r_p50=$(calc %.2f "$lag_p50") r_p99=$(calc %.2f "$lag_p99") r_max=$(calc %.2f "$lag_max")
	r_samples=$lag_samples r_backlog=$(mib "$run_max_backlog") r_growth=$(mib "$growth") r_drain=$drain
	r_cur=$(calc %.1f "$third_max_current") r_agent=$u_agent/$u_agent_wait r_server=$u_server/$u_server_wait r_fio_cpu=$(calc %.0f "$fio_cpu")
	r_busy=$u_busy r_iowait=$u_iowait r_steal=$u_steal r_wr=$u_wr r_rd=$u_rd
	r_rss_steady=$(calc %.1f "$third_rss / 1024") r_rss_max=$(calc %.1f "$run_rss_max / 1024") r_hwm=$(calc %.1f "$_hwm / 1024")
	r_busy0=$busy0
	r_agent_wr=$((agent_wb1 - agent_wb0))
	r_fio_bytes=$fio_bytes
	r_wamp=$(calc %.4f "$r_agent_wr / ($r_fio_bytes > 0 ? $r_fio_bytes : 1)")
	printf '  agent wrote %s MB to storage (/proc/PID/io write_bytes, fio start to durable) for fio'"'"'s %s MB: write amplification %s\n' "$(mb "$r_agent_wr")" "$(mb "$r_fio_bytes")" "$r_wamp"
	printf '  fio %s MB/s (%s IOPS) | lag p50 %s s, p99 %s s, max %s s (%s samples)\n' "$r_fio" "$fio_iops" "$r_p50" "$r_p99" "$r_max" "$r_samples"
	printf '  backlog max %s MiB; last third: growth %s MiB, lag now up to %s s | durable %s s after fio stopped\n' "$r_backlog" "$r_growth" "$r_cur" "$r_drain"
	printf '  during fio: agent CPU %s%% (run-queue wait %s%%), server CPU %s%% (wait %s%%), fio CPU %s%%; machine %s%% busy, iowait %s%%, steal %s%% | %s: read %s MB/s, write %s MB/s\n' \
		"$u_agent" "$u_agent_wait" "$u_server" "$u_server_wait" "$r_fio_cpu" "$r_busy" "$r_iowait" "$r_steal" "${wd_disk:-(no disk)}" "$(calc %.0f "$r_rd")" "$(calc %.0f "$r_wr")"
	printf '  agent memory: VmHWM %s MiB, VmRSS median of the last third %s MiB, max %s MiB\n' "$r_hwm" "$r_rss_steady" "$r_rss_max"
	local w why_s=
	for w in "${why[@]}"; do why_s+="${why_s:+; }$w"; done
	echo "  verdict: $verdict${why_s:+ ($why_s)}"
	echo "$tag $bs $rate $secs $r_fio $r_p50 $r_p99 $r_max $r_samples $r_backlog $r_growth $r_cur $r_drain $r_agent $r_server $r_fio_cpu $r_busy $r_iowait $r_steal $(calc %.0f "$r_wr") $r_hwm $r_rss_steady $r_busy0 $verdict" >>"$workdir/table"

	stop_run "$dir" "run$run_no-$tag-$bs-$rate"
	detach_loop "$dev"
	rm -rf -- "$dir"
}

# ---- the benchmarks -------------------------------------------------------

results=()

echo "$prog: $(nproc) CPUs, $(uname -r), $(fio --version), lifeboat $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')"
echo "$prog: binaries copied from $binsrc (built $binfo) to $bin"
echo "$prog: work directory $workdir on ${wd_disk:-no block device} ($(df --output=fstype "$workdir" | tail -n 1)), loop direct I/O $LOOP_DIRECT_IO"
echo "$prog: the agent, the server and fio share this machine's CPUs and disk"

# print_table REGEX: the churn runs whose tag matches. CPU columns are
# "CPU/run-queue wait", % of one CPU and % of the wall time.
print_table() {
	[ -s "$workdir/table" ] || return 0
	echo
	{
		echo "run bs MB/s secs fio_MB/s lag_p50_s lag_p99_s lag_max_s samples backlog_max_MiB growth_MiB lag_now_max_s drain_s agent% server% fio% busy% iowait% steal% ${wd_disk:-disk}_wr_MB/s agent_hwm_MiB agent_rss_MiB busy_before% verdict"
		awk '$1 ~ /^('"$1"')$/' "$workdir/table"
	} | column -t | sed 's/^/  /'
}

bench_churn() {
	local bs rates best rate
	for bs in 64k 4k; do
		if [ "$bs" = 64k ]; then rates=$RATES_64K; else rates=$RATES_4K; fi
		[ -n "${rates// /}" ] || continue # RATES_4K= skips 4 KiB
		best=0
		for rate in $rates; do
			churn_run "churn-$bs" "$bs" "$rate" "$RUNTIME"
			[ "$verdict" = KEEPS-UP ] || break
			best=$rate
		done
		local stopped="stopped: $verdict at $rate MB/s" confirmed=
		[ "$verdict" != KEEPS-UP ] || stopped="every rate of the list kept up"
		((best > 0)) || stopped="none kept up; $stopped"
		if [ "$bs" = 64k ] && ((best > 0 && CONFIRM_RUNTIME > RUNTIME)); then
			churn_run "confirm-$bs" "$bs" "$best" "$CONFIRM_RUNTIME"
			confirmed=$verdict
			stopped+="; $best MB/s for ${CONFIRM_RUNTIME}s: $confirmed"
		fi
		if [ "$bs" = 64k ]; then
			if ((best >= TARGET_CHURN_64K)) && [ "${confirmed:-KEEPS-UP}" = KEEPS-UP ]; then v=PASS; else v=BELOW; fi
			results+=("RESULT churn-64k: highest rate kept up for ${RUNTIME}s: ${best} MB/s ($stopped) (target >= $TARGET_CHURN_64K MB/s): $v")
		else
			results+=("RESULT churn-4k: highest rate kept up for ${RUNTIME}s: ${best} MB/s ($stopped) (no target): INFO")
		fi
	done
	print_table 'churn-64k|churn-4k|confirm-64k'
}

bench_lag() {
	local rate v
	for rate in $LAG_RATES; do
		churn_run "lag-$rate" 64k "$rate" "$LAG_RUNTIME"
		if awk -v p="$r_p99" -v t="$TARGET_LAG_P99" 'BEGIN { exit !(p <= t) }' && [ "$r_samples" -gt 0 ]; then v=PASS; else v=BELOW; fi
		results+=("RESULT lag at $rate MB/s (64 KiB, ${LAG_RUNTIME}s): p50 $r_p50 s, p99 $r_p99 s, max $r_max s over $r_samples samples; fio $r_fio MB/s, $verdict (target p99 <= $TARGET_LAG_P99 s): $v")
		if [ "$rate" = 50 ]; then
			if awk -v h="$r_hwm" -v t="$TARGET_RSS_MIB" 'BEGIN { exit !(h <= t) }'; then v=PASS; else v=BELOW; fi
			results+=("RESULT agent memory at 50 MB/s: VmHWM $r_hwm MiB, steady VmRSS $r_rss_steady MiB (median of the last third) (target <= $TARGET_RSS_MIB MiB): $v")
		fi
	done
	print_table 'lag-[0-9]+'
}

# agent_backlog: pending_bytes + the bytes held for the server (mode_reason)
# of the first disk, from agentctl status --json.
agent_backlog() {
	local js pending held
	js=$("$bin/agentctl" status --state "$state" --json 2>/dev/null || true)
	pending=$(grep -o '"pending_bytes": *[0-9]*' <<<"$js" | head -n 1 | grep -o '[0-9]*$')
	held=$(grep -oE '\(([0-9]+) of [0-9]+ bytes held\)' <<<"$js" | head -n 1 | grep -oE '^\([0-9]+' | tr -d '(')
	echo $((${pending:-0} + ${held:-0}))
}

# restart_log_line DIR PATTERN: sets line to the first line of the
# restarted agent's log (after "=== restart" in DIR/agent.log) that matches
# PATTERN, waited for up to 30 s while the agent lives; empty if none came.
# (Not a command substitution: agent_dead must run in this shell.)
restart_log_line() {
	line=
	for _ in $(seq 300); do
		line=$(sed -n '/^=== restart/,$p' "$1/agent.log" | grep -E "$2" | head -n 1 || true)
		[ -z "$line" ] || break
		agent_dead "$1"
		sleep 0.1
	done
}

bench_kill9() {
	local dir img dev fio_cmd backlog t_kill t_back recovered reread line rc drain v resynced=no ratio agent_args
	run_no=$((run_no + 1))
	dir=$workdir/run$run_no
	mkdir -p "$dir"
	img=$dir/disk.img
	echo
	echo "== kill9: kill -9 of the agent ${KILL_AT}s into ${KILL_RUNTIME}s of 64k random writes at $KILL_RATE MB/s ($(numfmt --to=iec "$size_bytes") sparse loop device)"
	wait_quiet
	truncate -s "$size_bytes" "$img"
	new_loop "$img"
	dev=$loop_dev
	start_server "$dir"
	start_agent "$dir" "$dev"
	wait_protected "$dir"
	fio_cmd=(fio --name=churn --filename="$dev" --rw=randwrite --bs=64k --iodepth="$IODEPTH" --ioengine=libaio
		--direct=1 --rate="$((KILL_RATE * 1000000))" --time_based --runtime="$KILL_RUNTIME" --size="$size_bytes"
		--randrepeat=0 --output-format=json)
	show "${fio_cmd[@]}"
	"${fio_cmd[@]}" >"$dir/fio.json" 2>"$dir/fio.err" </dev/null &
	fio_pid=$!
	sleep "$KILL_AT"
	agent_dead "$dir"
	# fio pauses from the status to the kill: otherwise what it writes
	# while agentctl runs (tens to hundreds of ms on a loaded machine, at
	# KILL_RATE) is taken by the agent that dies, read again, and missing
	# from the backlog it is compared with. Its writes in flight land
	# within the 0.1 s the agent has to take them in.
	kill -s STOP "$fio_pid"
	sleep 0.1
	backlog=$(agent_backlog)
	kill -s KILL "$agent_pid"
	wait "$agent_pid" 2>/dev/null || true
	kill -s CONT "$fio_pid"
	t_kill=$(now)
	agent_pid=
	rm -f "$state/agent.sock"
	# The same agent again: its state, its pins.
	agent_args=(run --server "$api" --passphrase-file "$dir/server/passphrase" --state "$state" --name bench
		--pin-dir "$pindir" --disk "$dev" --point-interval "$POINT_INTERVAL")
	[ -z "$SPOOL_BYTES" ] || agent_args+=(--spool-bytes "$SPOOL_BYTES")
	[ -z "$MEMORY_BYTES" ] || agent_args+=(--memory-bytes "$MEMORY_BYTES")
	echo "=== restart" >>"$dir/agent.log"
	"$bin/lifeboat-agent" "${agent_args[@]}" >>"$dir/agent.log" 2>&1 </dev/null &
	agent_pid=$!
	restart_log_line "$dir" 'recovered_bytes|tracking gap: resyncing'
	t_back=$(now)
	[ -n "$line" ] || die "the restarted agent logged neither a recovery nor a resync within 30 s"
	recovered=$(grep -oE '"recovered_bytes":[0-9]+' <<<"$line" | grep -oE '[0-9]+$' || true)
	if [ -z "$recovered" ]; then
		resynced=yes
		recovered=$size_bytes
	fi
	# Of what it reads, the regions the tracker reports changed before the
	# restarted agent's first cut (mostly fio's writes while no agent ran:
	# KILL_RATE for the restart's duration) are read anyway: not re-read.
	# The agent logs what is left at its first round (reread_bytes).
	reread=$recovered
	if [ "$resynced" = no ]; then
		restart_log_line "$dir" 'reread_bytes'
		[ -n "$line" ] || die "the restarted agent did not log what it read again (reread_bytes) within 30 s"
		reread=$(grep -oE '"reread_bytes":[0-9]+' <<<"$line" | grep -oE '[0-9]+$')
	fi
	rc=0
	wait "$fio_pid" || rc=$?
	fio_pid=
	[ "$rc" -eq 0 ] || die "fio failed (exit $rc)"
	local t_fe
	t_fe=$(now)
	rc=0
	run_bg bg_pid "$br" watch --state "$state" --pid "$agent_pid" --interval 100ms --until drained \
		--timeout "${DRAIN_TIMEOUT}s" >"$dir/drain-samples" || rc=$?
	agent_dead "$dir"
	if [ "$rc" -eq 0 ]; then
		line=$(grep '^until drained ' "$dir/drain-samples")
		drain=$(calc %.1f "${line##* } - $t_fe")
	else
		drain=never
	fi
	ratio=$(calc %.2f "$reread / ($backlog > 0 ? $backlog : 1)")
	printf '  backlog at the kill %s MB; read after the restart %s MB (%s %% of the disk), of it written again since or not taken by the dead agent %s MB, read again %s MB (%s x the backlog; all read: %s x); resync: %s; restart to recovery logged %s s; durable %s s after fio stopped\n' \
		"$(mb "$backlog")" "$(mb "$recovered")" "$(calc %.2f "100 * $recovered / $size_bytes")" "$(mb $((recovered - reread)))" "$(mb "$reread")" "$ratio" \
		"$(calc %.2f "$recovered / ($backlog > 0 ? $backlog : 1)")" "$resynced" "$(calc %.1f "$t_back - $t_kill")" "$drain"
	if [ "$resynced" = no ] && awk -v r="$ratio" -v t="$TARGET_KILL" 'BEGIN { exit !(r <= t) }'; then v=PASS; else v=BELOW; fi
	results+=("RESULT kill -9 of the agent at $KILL_RATE MB/s (64 KiB): read again $(mb "$reread") MB for a backlog of $(mb "$backlog") MB at the kill: $ratio x (all read after the restart $(mb "$recovered") MB, $(mb $((recovered - reread))) MB of it changes reported since), resync $resynced, durable $drain s after fio stopped (target <= $TARGET_KILL x, no resync): $v")
	stop_run "$dir" "run$run_no-kill9"
	detach_loop "$dev"
	rm -rf -- "$dir"
}

bench_wamp() {
	local v
	churn_run "wamp-$WAMP_RATE" 64k "$WAMP_RATE" "$RUNTIME"
	if awk -v w="$r_wamp" -v t="$TARGET_WAMP" 'BEGIN { exit !(w <= t) }'; then v=PASS; else v=BELOW; fi
	results+=("RESULT write amplification at $WAMP_RATE MB/s (64 KiB, ${RUNTIME}s): the agent wrote $(mb "$r_agent_wr") MB for fio's $(mb "$r_fio_bytes") MB: $r_wamp; fio $r_fio MB/s, $verdict, durable $r_drain s after fio stopped (target <= $TARGET_WAMP): $v")
	print_table 'wamp-[0-9]+'
}

# sync_once KIND DEV RUN: one initial sync of DEV by a fresh agent.
sync_once() {
	local kind=$1 dev=$2 i=$3 dir s0 s1 s2 t_durable id span rc=0
	run_no=$((run_no + 1))
	dir=$workdir/run$run_no
	mkdir -p "$dir"
	wait_quiet
	start_server "$dir"
	start_agent "$dir" "$dev"
	s0=$(snapshot)
	wait_protected "$dir"
	s1=$(snapshot)
	usage_between "$s0" "$s1"
	show "$bin/agentctl" bookmark --state "$state" --wait
	run_bg bg_pid "$bin/agentctl" bookmark --state "$state" --wait >"$dir/bookmark.out" 2>"$dir/bookmark.err" || rc=$?
	t_durable=$(now)
	s2=$(snapshot)
	cpu_between "$s0" "$s2"
	id=$(cat "$dir/bookmark.out")
	[ "$rc" -eq 0 ] || {
		cat "$dir/bookmark.err" >&2
		die "agentctl bookmark --wait failed after the initial sync"
	}
	span=$("$br" logspan --log "$dir/agent.log" --from replicating --to "disk synchronised" 2>/dev/null || echo '?')
	sync_s=$(calc %.2f "$t_protected - $t_agent")
	durable_s=$(calc %.2f "$t_durable - $t_agent")
	kv "$("$br" analyze "$dir/sync-samples")"
	printf '  run %d agent: protected %s s after start (%s MB/s; sync itself %s s in the agent log), all on the server (point %s listed) %s s\n' \
		"$i" "$sync_s" "$(calc %.0f "$4 / $sync_s / 1e6")" "$span" "$id" "$durable_s"
	printf '               agent CPU %s%% (run-queue wait %s%%), server CPU %s%% (wait %s%%); machine %s%% busy, iowait %s%% | %s write %s MB/s | agent VmHWM %s MiB\n' \
		"$u_agent" "$u_agent_wait" "$u_server" "$u_server_wait" "$u_busy" "$u_iowait" "${wd_disk:-(no disk)}" "$(calc %.0f "$u_wr")" "$(calc %.1f "$hwm_kb / 1024")"
	printf '               CPU from start until all on the server: agent %s s, server %s s (%s s per GiB of the device)\n' \
		"$c_agent" "$c_server" "$(calc %.2f "$c_server * 1073741824 / $4")"
	echo "$kind $i agent $sync_s $(calc %.0f "$4 / $sync_s / 1e6") $durable_s $span $u_agent/$u_agent_wait $u_server/$u_server_wait $u_busy $u_iowait $(calc %.0f "$u_wr") $(calc %.1f "$hwm_kb / 1024") $busy0 $c_server" >>"$workdir/synctable"
	stop_run "$dir" "run$run_no-sync-$kind-$i"
	rm -rf -- "$dir"
}

# dd_once KIND DEV RUN
dd_once() {
	local kind=$1 dev=$2 i=$3 t0 t1 s0 s1 secs
	wait_quiet
	show dd if="$dev" of=/dev/null bs=1M iflag=direct
	s0=$(snapshot)
	t0=$(now)
	run_bg bg_pid dd if="$dev" of=/dev/null bs=1M iflag=direct status=none
	t1=$(now)
	s1=$(snapshot)
	usage_between "$s0" "$s1"
	secs=$(calc %.2f "$t1 - $t0")
	printf '  run %d dd:    %s s | %s MB/s | machine %s%% busy, iowait %s%%\n' "$i" "$secs" "$(calc %.0f "$4 / $secs / 1e6")" "$u_busy" "$u_iowait"
	echo "$kind $i dd $secs $(calc %.0f "$4 / $secs / 1e6") - - - - $u_busy $u_iowait $(calc %.0f "$u_wr") - $busy0 -" >>"$workdir/synctable"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

bench_sync() {
	local kind img dev i half a d ratio v random_s=
	for kind in random half; do
		img=$workdir/sync-$kind.img
		echo
		if [ "$kind" = random ]; then
			echo "== sync: $(numfmt --to=iec "$sync_bytes") of random data, agent (fresh server and agent per run) vs dd, $SYNC_RUNS runs, alternating order"
			show dd if=/dev/urandom of="$img" bs=1M count=$((sync_bytes >> 20)) conv=fsync
			run_bg bg_pid dd if=/dev/urandom of="$img" bs=1M count=$((sync_bytes >> 20)) conv=fsync status=none
		else
			half=$((sync_bytes >> 21))
			echo "== sync: $(numfmt --to=iec "$sync_bytes"), first half random data, second half zeros (a hole), agent vs dd, $SYNC_RUNS runs, alternating order"
			show dd if=/dev/urandom of="$img" bs=1M count=$half conv=fsync
			run_bg bg_pid dd if=/dev/urandom of="$img" bs=1M count=$half conv=fsync status=none
			show truncate -s "$sync_bytes" "$img"
			truncate -s "$sync_bytes" "$img"
		fi
		new_loop "$img"
		dev=$loop_dev
		for ((i = 1; i <= SYNC_RUNS; i++)); do
			if ((i % 2)); then
				dd_once "$kind" "$dev" "$i" "$sync_bytes"
				sync_once "$kind" "$dev" "$i" "$sync_bytes"
			else
				sync_once "$kind" "$dev" "$i" "$sync_bytes"
				dd_once "$kind" "$dev" "$i" "$sync_bytes"
			fi
			check_loop "$dev"
		done
		detach_loop "$dev"
		rm -f -- "$img"
		a=$(median $(awk -v k="$kind" '$1 == k && $3 == "agent" { print $4 }' "$workdir/synctable"))
		d=$(median $(awk -v k="$kind" '$1 == k && $3 == "dd" { print $4 }' "$workdir/synctable"))
		ratio=$(calc %.2f "$d / $a")
		if awk -v r="$ratio" -v t="$TARGET_SYNC" 'BEGIN { exit !(r >= t) }'; then v=PASS; else v=BELOW; fi
		if [ "$kind" = random ]; then
			random_s=$a
			results+=("RESULT initial sync, random data: median ${a} s to protected ($(calc %.0f "$sync_bytes / $a / 1e6") MB/s) vs dd ${d} s ($(calc %.0f "$sync_bytes / $d / 1e6") MB/s): ${ratio}x dd (target >= ${TARGET_SYNC}x): $v")
		else
			results+=("RESULT initial sync, half zeros: median ${a} s to protected ($(calc %.0f "$sync_bytes / $a / 1e6") MB/s) vs dd ${d} s: ${ratio}x dd, $(calc %.2f "${random_s:-0} / $a")x the speed on random data (zero blocks go as zero records) (target >= ${TARGET_SYNC}x dd): $v")
		fi
	done
	echo
	{
		echo "disk run who seconds MB/s durable_s sync_in_log_s agent% server% busy% iowait% ${wd_disk:-disk}_wr_MB/s agent_hwm_MiB busy_before% server_cpu_s"
		cat "$workdir/synctable"
	} | column -t | sed 's/^/  /'
	echo "  (seconds: dd's, or the agent's from start to state protected; durable_s: until agentctl bookmark --wait returned;"
	echo "   agent%/server%: CPU/run-queue wait, % of one CPU and % of the wall time, until protected;"
	echo "   server_cpu_s: the server's CPU seconds from the agent's start until durable_s)"
}

for b in $BENCHES; do
	"bench_$b"
done

echo
for r in "${results[@]}"; do echo "$r"; done
