#!/usr/bin/env bash
# Installs the Debian packages the boot runner (recovery/boot) and its guest
# disk builder need: qemu to boot recovered disks, OVMF for GPT/UEFI disks,
# GRUB's BIOS modules, busybox and the FAT tools (for the UEFI guest's EFI
# system partition) to build the test guest. Run as root.
# Idempotent: it installs only what is missing. It never installs a kernel or
# touches the host's bootloader: the guest's kernel is fetched with
# `apt-get download` by the tests and unpacked into a temporary directory.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
	echo "install-boot-deps.sh: run as root (it uses apt-get)" >&2
	exit 1
fi
pkgs=(qemu-system-x86 qemu-utils ovmf grub-pc-bin grub2-common busybox-static e2fsprogs fdisk util-linux kmod cpio dosfstools mtools)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
