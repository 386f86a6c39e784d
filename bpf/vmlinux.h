/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Only the kernel types tracker.bpf.c touches, written by hand. Every
 * struct carries preserve_access_index, so field offsets are relocated
 * against the running kernel's BTF (CO-RE): the order and the absence of
 * other fields here do not matter.
 */
#ifndef __LIFEBOAT_VMLINUX_H__
#define __LIFEBOAT_VMLINUX_H__

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef __u64 sector_t;
typedef __u32 dev_t;
typedef __u32 blk_opf_t;
typedef _Bool bool;

enum {
	false = 0,
	true = 1,
};

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum {
	BPF_RB_NO_WAKEUP = 1,
	BPF_RB_FORCE_WAKEUP = 2,
};

enum {
	BPF_RB_AVAIL_DATA = 0,
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_EXIST = 2,
	BPF_F_MMAPABLE = 1024,
};

enum req_op {
	REQ_OP_READ = 0,
	REQ_OP_WRITE = 1,
	REQ_OP_FLUSH = 2,
	REQ_OP_DISCARD = 3,
	REQ_OP_SECURE_ERASE = 5,
	REQ_OP_ZONE_APPEND = 7,
	REQ_OP_WRITE_ZEROES = 9,
};

/* Layouts come from the kernel through CO-RE; padding here is not ours. */
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wpadded"

struct gendisk;

struct block_device {
	sector_t bd_start_sect;
	struct gendisk *bd_disk;
	dev_t bd_dev;
} __attribute__((preserve_access_index));

struct gendisk {
	struct block_device *part0;
} __attribute__((preserve_access_index));

struct bvec_iter {
	sector_t bi_sector;
	unsigned int bi_size;
} __attribute__((preserve_access_index));

struct bio {
	struct bio *bi_next;
	struct block_device *bi_bdev;
	blk_opf_t bi_opf;
	struct bvec_iter bi_iter;
	void *bi_private;
} __attribute__((preserve_access_index));

struct request_queue;

struct request {
	struct bio *bio;
} __attribute__((preserve_access_index));

#pragma clang diagnostic pop

#endif /* __LIFEBOAT_VMLINUX_H__ */
