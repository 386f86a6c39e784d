#!/usr/bin/env bash
# make demo: Lifeboat's main job end to end on the embedded defaults, all
# under one temporary directory: a loop device with ext4, a server, an agent
# replicating it while fio writes, a recovery point, a test failover, e2fsck
# of the image and a verdict comparing the source and the image. Cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	echo "demo: run as root: the agent loads eBPF programs and the demo makes a loop device (sudo make demo)" >&2
	exit 1
fi
for c in fio losetup mkfs.ext4 e2fsck sha256sum; do
	command -v "$c" >/dev/null || { echo "demo: $c is missing: run 'make deps' (Debian) first" >&2; exit 1; }
done
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

work=$(mktemp -d /tmp/lifeboat-demo.XXXXXX)
pins=/sys/fs/bpf/lifeboat-demo-$$
dev="" server_pid="" agent_pid="" azurite_pid="" mnt="$work/mnt"
cleanup() {
	set +e
	[ -n "$azurite_pid" ] && kill -TERM "$azurite_pid" 2>/dev/null && wait "$azurite_pid" 2>/dev/null
	mountpoint -q "$mnt" && umount "$mnt"
	[ -n "$agent_pid" ] && kill -TERM "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
	[ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
	rm -rf "$pins"
	[ -n "$dev" ] && losetup -d "$dev" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
step() { echo; echo "== $*"; }
fail() { echo "demo: $*" >&2; for f in "$work"/*.log; do echo "--- $f"; tail -n 20 "$f"; done >&2; exit 1; }

step "protected disk: 512 MiB loop device with ext4"
truncate -s 512M "$work/disk.img"
dev=$(losetup --find --show "$work/disk.img")
mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "$dev"
echo "$dev"

store_args=()
if [ "${STORE:-}" = azurite ]; then
	# make demo STORE=azurite: target storage in a throwaway Azurite (npm
	# azurite@3.35.0, scripts/install-deps.sh) instead of a local directory.
	step "Azurite (Azure Blob emulator) as target storage"
	command -v azurite-blob >/dev/null || { echo "demo: azurite-blob is missing: run 'make deps' first" >&2; exit 1; }
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	azurite-blob --location "$work/azurite" --blobHost 127.0.0.1 --blobPort "$port" --skipApiVersionCheck --disableTelemetry --silent >"$work/azurite.log" 2>&1 &
	azurite_pid=$!
	for _ in $(seq 100); do grep -q "successfully listens" "$work/azurite.log" && break; sleep 0.1; done
	# Azurite's well-known development key (public), in a file: never on the command line.
	echo "AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==" >"$work/blob.key"
	store_args=(--store azblob://devstoreaccount1/lifeboat --store-endpoint "http://127.0.0.1:$port/devstoreaccount1" --store-credentials "$work/blob.key")
fi

step "lifeboat-server init and run (configuration + process roles, ${STORE:-local} target storage)"
if [ ${#store_args[@]} -gt 0 ]; then
	bin/lifeboat-server init --data "$work/server" "${store_args[@]}" --store-create-container >/dev/null
else
	bin/lifeboat-server init --data "$work/server" >/dev/null
fi
bin/lifeboat-server run --data "$work/server" --api 127.0.0.1:0 --listen 127.0.0.1:0 ${store_args[@]+"${store_args[@]}"} >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do [ -s "$work/server/server.json" ] && break; sleep 0.1; done
[ -s "$work/server/server.json" ] || fail "the server did not start"
api=$(sed -n 's/.*"api": *"\([^"]*\)".*/\1/p' "$work/server/server.json")
echo "configuration API on $api"

step "lifeboat-agent run: registers, starts tracking, copies the disk once"
bin/lifeboat-agent run --server "$api" --passphrase-file "$work/server/passphrase" --state "$work/agent" \
	--name demo-host --disk "$dev" --pin-dir "$pins" >"$work/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 200); do [ -S "$work/agent/agent.sock" ] && break; kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
[ -S "$work/agent/agent.sock" ] || fail "the agent did not start"

step "fio writes 96 MiB of random blocks with checksums into the filesystem while it replicates"
mkdir -p "$mnt"
mount "$dev" "$mnt"
fio --name=demo --directory="$mnt" --size=96M --rw=randwrite --bsrange=4k-64k --ioengine=psync \
	--verify=crc32c --do_verify=0 --verify_state_save=0 --randseed=2026 --fsync=32 --output="$work/fio.txt"
bin/agentctl status --state "$work/agent" || true
umount "$mnt"

step "agentctl bookmark --wait: a crash-consistent point, once it is durable on the server"
point=$(bin/agentctl bookmark --state "$work/agent" --wait) || fail "bookmark failed"
echo "point $point"
bin/lifeboat --data "$work/server" points demo-host

step "lifeboat failover --test: the disk as it was at the point"
bin/lifeboat --data "$work/server" failover demo-host --point "$point" --test --out "$work/failover"
img="$work/failover/$(basename "$dev").img"

step "e2fsck of the failover image"
e2fsck -fn "$img" || fail "e2fsck found problems in the image"

step "verdict"
src_sum=$(sha256sum <"$dev" | cut -d' ' -f1)
img_sum=$(sha256sum <"$img" | cut -d' ' -f1)
echo "source $dev  sha256 $src_sum"
echo "image         sha256 $img_sum"
if [ "$src_sum" = "$img_sum" ]; then
	echo "verdict: identical — the failover image is the source disk byte for byte"
else
	echo "verdict: DIFFERENT — the failover image does not match the source" >&2
	exit 1
fi
