#!/usr/bin/env bash
# Installs the Debian packages Lifeboat's tests, demo and BPF build need,
# and mounts bpffs and tracefs if they are missing. Run as root.
#   install-deps.sh          everything for tests and demo
#   install-deps.sh clang    only the BPF toolchain (make generate)
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps.sh: run as root (it uses apt-get and mount)" >&2
	exit 1
fi
pkgs=(clang llvm libbpf-dev)
if [ "${1:-}" != clang ]; then
	pkgs+=(bpftool fio util-linux fdisk e2fsprogs xfsprogs fuse3 kmod psmisc postgresql systemd lintian openssh-server)
	# packaging tests: maintainer scripts (deb-systemd-helper, adduser), systemd-analyze verify
	pkgs+=(init-system-helpers adduser)
	# recovery/boot: qemu boots recovered disks (OVMF for GPT/UEFI disks); the
	# test guest is built from GRUB's BIOS modules, busybox, cpio and FAT tools.
	pkgs+=(qemu-system-x86 qemu-utils ovmf grub-pc-bin grub2-common busybox-static cpio dosfstools mtools)
	# windows/: real NTFS volumes for the Windows tracker's tests (mkntfs, ntfscp, ntfsinfo, ntfscat)
	pkgs+=(ntfs-3g)
	# scripts/package-msi.sh: the Windows agent's MSI, built and checked on Linux
	pkgs+=(wixl msitools)
	# server/console: the web console's browser tests drive headless chromium.
	pkgs+=(chromium)
	# internal/cmdline: the completion scripts run in real shells (cobra's bash script needs bash-completion)
	pkgs+=(bash-completion fish zsh)
fi
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ "${1:-}" != clang ]; then
	mountpoint -q /sys/fs/bpf || { mkdir -p /sys/fs/bpf && mount -t bpf bpf /sys/fs/bpf; }
	mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing || true
fi
# store/azblob tests run a real Azure Blob emulator: Azurite from npm
# (3.35.0: later releases need Node >= 21), in /usr/local/bin.
if [ "${1:-}" != clang ]; then
	if ! command -v npm >/dev/null; then
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
	fi
	if [ "$(/usr/local/bin/azurite-blob --version 2>/dev/null)" != 3.35.0 ]; then
		npm install -g --prefix /usr/local --no-audit --no-fund azurite@3.35.0
	fi
fi
