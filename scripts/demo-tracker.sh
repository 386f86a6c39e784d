#!/usr/bin/env bash
# make demo: track a loop device while fio writes to it, then set what fio
# says it wrote next to what the eBPF tracker reported. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	echo "demo: run as root: the tracker loads eBPF programs and the demo makes a loop device (sudo make demo)" >&2
	exit 1
fi
for c in fio losetup; do
	command -v "$c" >/dev/null || { echo "demo: $c is missing: run 'make deps' (Debian) first" >&2; exit 1; }
done
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

work=$(mktemp -d /tmp/lifeboat-demo.XXXXXX)
dev=""
pid=""
cleanup() {
	[ -n "$pid" ] && kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	[ -n "$dev" ] && losetup -d "$dev" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

truncate -s 512M "$work/disk.img"
dev=$(losetup --find --show "$work/disk.img")
echo "== protected disk: $dev (512 MiB loop device over $work/disk.img)"

bin/lifeboat-agent track --disk "$dev" --json >"$work/track.jsonl" 2>"$work/track.log" &
pid=$!
for _ in $(seq 100); do grep -q '^tracking' "$work/track.log" && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if ! grep -q '^tracking' "$work/track.log"; then
	cat "$work/track.log" >&2
	echo "demo: the tracker did not start" >&2
	exit 1
fi
echo "== tracker attached; fio writes (4k-256k random, O_DIRECT, iodepth 8) and trims"
fio --name=writes --filename="$dev" --rw=randwrite --bsrange=4k-256k --direct=1 --ioengine=libaio \
	--iodepth=8 --size=512M --io_size=64M --write_iolog="$work/fio-writes.iolog" --output="$work/fio.txt"
fio --name=trims --filename="$dev" --rw=randtrim --bs=64k --ioengine=psync \
	--size=512M --io_size=8M --write_iolog="$work/fio-trims.iolog" --output="$work/fio-trim.txt"
sleep 0.5
kill -INT "$pid"
wait "$pid"
pid=""
echo "== tracker stopped: $(tail -n 1 "$work/track.log")"
echo
bin/fiocompare --track "$work/track.jsonl" "$work/fio-writes.iolog" "$work/fio-trims.iolog"
