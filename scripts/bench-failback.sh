#!/usr/bin/env bash
# bench-failback.sh: does a failback send what differs, or more?
#
# It protects a loop device (DISK, its first FILL of random data) with a real
# lifeboat-server and lifeboat-agent, cuts a point, fails over for real into
# an image and commits, stops the agent and removes its tracker pins, puts the
# image on a loop device (the recovered machine) and writes BLOCKS random
# 4 KiB blocks at distinct random offsets of it (fio randwrite with its random
# map, so no block twice). Then it runs
#   lifeboat failback MACHINE --to SOURCE --complete --json
# onto the source disk, which still holds the old content: the master target
# compares 1 MiB then 4 KiB checksums and writes only differing 4 KiB blocks.
# It prints bytes compared, bytes that differ (counted independently by cmp
# on 4 KiB blocks, and by the server), bytes sent, the ratio sent/differ
# (target <= 1.05) and the duration, and checks the disks are identical.
# It is a benchmark, not a test: it exits 0 also when the ratio is above
# target. Needs root, eBPF, fio, losetup. Numbers: docs/PERFORMANCE.md.
# Environment knobs (defaults in brackets):
#   DISK    disk size [1G]
#   FILL    random data written before the failover [256M]
#   BLOCKS  4 KiB blocks changed on the recovered image [10000]
#   TMPDIR  where the backing files go [/tmp]
# Everything it creates (processes, loop devices, pins, files) is removed on
# exit, also on failure and on Ctrl-C.
set -euo pipefail

prog=bench-failback
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DISK=${DISK:-1G}
FILL=${FILL:-256M}
BLOCKS=${BLOCKS:-10000}
bin=$root/bin

die() {
	echo "$prog: $*" >&2
	exit 1
}
[[ $(id -u) -eq 0 ]] || die "needs root (eBPF, loop devices)"
for c in fio losetup python3; do command -v $c >/dev/null || die "$c not found (make deps)"; done
for b in lifeboat-server lifeboat-agent agentctl lifeboat; do [[ -x $bin/$b ]] || die "$bin/$b missing: make build"; done
[[ $BLOCKS =~ ^[1-9][0-9]*$ ]] || die "BLOCKS must be a positive integer"

work=$(mktemp -d "${TMPDIR:-/tmp}/$prog.XXXXXX")
pins=/sys/fs/bpf/lifeboat-bench-failback-$$
loops=()
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
	rm -rf "$pins"
	for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

truncate -s "$DISK" "$work/source.img"
src=$(losetup --find --show "$work/source.img")
loops+=("$src")
fio --name=fill --filename="$src" --size="$FILL" --rw=write --bs=1M --ioengine=psync --direct=1 --thread \
	--refill_buffers --output=/dev/null

data=$work/server
"$bin/lifeboat-server" init --data "$data" >/dev/null
"$bin/lifeboat-server" run --data "$data" --api 127.0.0.1:0 --listen 127.0.0.1:0 >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do [[ -s $data/server.json ]] && break; sleep 0.1; done
api=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api"])' "$data/server.json")
lb() { "$bin/lifeboat" --data "$data" "$@"; }

"$bin/lifeboat-agent" run --server "$api" --passphrase-file "$data/passphrase" --state "$work/agent" \
	--name bench-fb --pin-dir "$pins" --disk "$src" >"$work/agent.log" 2>&1 &
agent=$!
pids+=($agent)
for _ in $(seq 600); do
	if id=$("$bin/agentctl" bookmark --state "$work/agent" --wait 2>/dev/null); then break; fi
	sleep 0.5
done
[[ -n ${id:-} ]] || die "no point: see $work/agent.log"
lb failover bench-fb --point "$id" --out "$work/out" >/dev/null
lb commit bench-fb >/dev/null
kill "$agent"
wait "$agent" 2>/dev/null || true
rm -rf "$pins"

img=$work/out/$(basename "$src").img
rec=$(losetup --find --show "$img")
loops+=("$rec")
fio --name=change --filename="$rec" --rw=randwrite --bs=4k --number_ios="$BLOCKS" --ioengine=psync --direct=1 \
	--thread --refill_buffers --randrepeat=0 --output=/dev/null
differ=$(python3 - "$src" "$rec" <<'PY'
import sys
a, b = open(sys.argv[1], 'rb'), open(sys.argv[2], 'rb')
n = 0
while True:
    x, y = a.read(4096), b.read(4096)
    if not x:
        break
    if x != y:
        n += len(x)
print(n)
PY
)

start=$(date +%s.%N)
lb failback bench-fb --to "$src" --complete --json >"$work/failback.json"
end=$(date +%s.%N)
cmp -s "$src" "$img" && same=identical || same=DIFFERENT
python3 - "$work/failback.json" "$differ" "$start" "$end" "$same" "$DISK" "$BLOCKS" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
differ, t0, t1, same, disk, blocks = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7]
d = st["disks"][0]
print(f"disk {disk}, {blocks} random 4 KiB blocks changed at distinct offsets")
print(f"compared      {st['compared_bytes']:>14,} B")
print(f"differ (cmp)  {differ:>14,} B")
print(f"differ (srv)  {st['differ_bytes']:>14,} B")
print(f"sent          {st['sent_bytes']:>14,} B (delta {d['delta_bytes']:,}, verify fixed {d['verify_fixed_bytes']:,})")
print(f"sent/differ   {st['sent_bytes']/differ:.4f} (target <= 1.05)")
print(f"duration      {t1-t0:.2f} s (server: {st['duration_seconds']:.2f} s, compare + final delta + verify)")
print(f"result        {same}")
PY
