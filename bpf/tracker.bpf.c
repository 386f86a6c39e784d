//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Lifeboat block-change tracker.
 *
 * Every write-like bio queued on a protected disk (found in `disk_fast`,
 * a direct-mapped copy of `protected_disks`) becomes a queue event stamped
 * with the current generation and the time in `clock`, in the queue ring
 * of the CPU that queued it (`qring`, read by user space through mmap).
 * When that ring is full (or the disk is in bitmap mode) the bio's range
 * is marked in the disk's slice of a dirty bitmap instead, so no change is
 * ever lost. Each disk has two bitmap halves, chosen by the parity of the
 * generation: once a cut of generation N has settled, the half of N's
 * parity holds only changes of generations <= N, so user space can stamp
 * them exactly.
 *
 * Completion: a queued bio is remembered (keyed by its address) with a
 * count of pieces: in its slot of the direct-mapped array `inflight_fast`
 * (claimed with a compare-and-swap: no lock, no allocation, and the
 * verifier inlines the lookup), or, when another bio holds that slot, in
 * the hash map `inflight`. A split (block_split) adds the split-off
 * child as a piece of the same root. Only tracepoints are used (kernels
 * locked down for integrity refuse fentry and kprobes): on blk-mq devices
 * block_rq_complete reports a request's completed bytes, matched to the bios
 * chained at rq->bio; on bio-based devices block_bio_complete fires when a
 * bio and all its chained pieces are done. When the last piece of a root
 * ends, its generation has one request less in flight and a completion
 * event is sent.
 *
 * Generations: `state.gen` is read once per bio, inside a per-CPU
 * "busy" window: on_bio_queue adds 1 to its CPU's `cpu_local.busy` before it
 * reads the generation (odd: inside) and 1 after its last write of the
 * event, count and bitmap (even: outside). The first add is a fully
 * ordered atomic (the store of busy must be visible before the load of
 * the generation); the second needs only to come after the window's
 * stores (publish_step). The program cannot nest on one CPU (the kernel
 * skips a recursive run and counts it as missed). The `cut` syscall program bumps
 * the generation with an atomic add; user space then reads every CPU's busy
 * counter and waits until each odd one has changed: after that no program
 * that read the old generation is still running (the same guarantee as an
 * RCU grace period, in microseconds instead of milliseconds). It then asks
 * `cut` to put a CUT marker into the ring buffer `events`: every queue
 * event of the old generation was published in its CPU's queue ring before
 * that marker was written, so user space, on reading the marker, drains
 * the queue rings and then reports the cut. Completion events go through
 * `events` too: their queue event was published before the write was
 * submitted, so before them.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define MAX_DISKS 64
#define GEN_SLOTS 1024
#define REQ_OP_MASK 0xff
#define SECTOR_SHIFT 9

enum lb_op {
	LB_OP_WRITE = 1,
	LB_OP_DISCARD = 2,
	LB_OP_WRITE_ZEROES = 3,
	LB_OP_SECURE_ERASE = 4,
};

enum lb_kind {
	LB_EV_QUEUED = 1,
	LB_EV_COMPLETED = 2,
	LB_EV_CUT = 4,
};

enum lb_flags {
	/* Send an LB_EV_COMPLETED event when a request completes. The agent
	 * does not need them (it waits on the per-generation counts): off by
	 * default, each one costs a ring-buffer record. */
	LB_F_COMPLETION_EVENTS = 1,
};

enum lb_mode {
	LB_MODE_METADATA = 0,
	LB_MODE_BITMAP = 1,
};

enum lb_cut_op {
	LB_CUT_BUMP = 1,
	LB_CUT_MARK = 2,
	LB_CUT_FLAGS = 3, /* set state.flags to args.gen */
	LB_CUT_REAP = 4,  /* forget the in-flight entry args.key if its id is args.id */
};

/* One protected whole disk, keyed by its dev_t (kernel encoding). */
struct lb_disk_cfg {
	__u64 start;    /* first protected sector */
	__u64 end;      /* sector after the last protected one */
	__u64 bm_base;  /* first word of this disk in `dirty` */
	__u64 bm_words; /* words of one half; the disk owns 2 * bm_words */
	__u32 slot;     /* index in `stats` */
	__u32 mode;     /* enum lb_mode */
	__u32 bm_shift; /* log2 of the bitmap granule in sectors */
	__u32 _pad;
};

/* A slot of disk_fast: the disk whose dev_t hashes to it and is there, or
 * dev 0; spill says some protected disk of this hash is only in
 * protected_disks. */
struct lb_disk_fast {
	__u32 dev;
	__u32 spill;
	struct lb_disk_cfg cfg;
};

struct lb_disk_stats {
	__u64 events;
	__u64 bytes;
	__u64 drops;
	__u64 marks;
	__u64 lost;
	__u64 completions;
	__u64 untracked;
	__u64 requeued;
};

struct lb_state {
	__u64 gen;
	__u64 marked_next; /* 1 + the newest generation whose CUT marker is in the ring */
	__u64 version;
	__u64 flags; /* LB_F_* */
	__u64 boot_id_hi;
	__u64 boot_id_lo;
	__u64 created_ns;
	__u64 overflow; /* entries in the `inflight` hash map now */
	__u64 spilled;  /* bios ever put in the `inflight` hash map */
	__u64 reaped;   /* entries forgotten by LB_CUT_REAP */
};

/* Per CPU: the busy window of on_bio_queue (see the top comment) and the
 * request-id counter (ids are (count << 12) | cpu: unique without a shared
 * cache line). */
struct lb_cpu_local {
	__u64 busy;
	__u64 seq;
	__u64 addr[4]; /* see addr_of */
};

struct lb_inflight {
	__u64 key; /* the bio's address; 0 for a free slot of inflight_fast */
	__u64 id;
	__u64 root; /* 0 for a root bio, else the root's address */
	__u64 gen;
	__u64 sector;
	__u32 bytes;
	__u32 dev;
	__u32 pending; /* pieces still to complete (roots only) */
	__u32 slot;
	__u32 op;
	__u32 _pad;
};

struct lb_event {
	__u64 id;
	__u64 sector;
	__u64 ts;
	__u64 gen;
	__u32 bytes;
	__u32 dev;
	__u8 kind;
	__u8 op;
	__u16 slot;
	__u32 _pad;
};

struct lb_cut_args {
	__u64 op;
	__u64 gen;
	__u64 key; /* LB_CUT_REAP */
	__u64 id;  /* LB_CUT_REAP */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_DISKS);
	__type(key, __u32);
	__type(value, struct lb_disk_cfg);
} protected_disks SEC(".maps");

/* The protected disks again, direct-mapped by a hash of dev_t, which is
 * what on_bio_queue consults for every bio of the machine: an array lookup
 * is inlined by the verifier, a hash lookup is a call and a bucket walk
 * (about 35 ns). protected_disks stays the whole truth; user space mirrors
 * it here through mmap, writing a slot's fields before its dev and
 * clearing dev before a slot is reused, with atomic stores for fields
 * that change while the disk is in the slot (mode, start, end). */
const volatile __u32 disk_bits = 8;
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << 8); /* 1 << disk_bits, sized by the loader */
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct lb_disk_fast);
} disk_fast SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_DISKS);
	__type(key, __u32);
	__type(value, struct lb_disk_stats);
} disk_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_state);
} state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_cpu_local);
} cpu_local SEC(".maps");

/* Requests in flight per generation slot, per CPU: a request counts +1 on
 * the CPU that queued it and -1 on the CPU that completed it, so no cache
 * line is shared between CPUs on the I/O path; user space sums the CPUs
 * (modulo 2^64, which is exact). The adds are atomic because a completion
 * may interrupt the queue program on the same CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GEN_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} gen_inflight SEC(".maps");

/* Bios in flight, direct-mapped by address (see fast_index). With tens or
 * hundreds of requests in flight a slot is rarely taken; a bio whose slot
 * is goes to `inflight`, the hash map below. The loader sizes the array
 * to 1 << fast_bits entries. */
const volatile __u32 fast_bits = 15;
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << 15);
	__type(key, __u32);
	__type(value, struct lb_inflight);
} inflight_fast SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct lb_inflight);
} inflight SEC(".maps");

/* Queue events: one ring per CPU, slots [cpu << qring_shift, (cpu + 1) <<
 * qring_shift) of this mmapped array. Only on_bio_queue writes a CPU's ring,
 * on that CPU, and it cannot nest there: no lock, where the BPF ring
 * buffer's reservation (a spin lock with interrupts off) cost about 100 ns
 * per write. The loader sizes both arrays for the possible CPUs. */
const volatile __u32 qring_shift = 12;
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 << 12);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct lb_event);
} qring SEC(".maps");

/* Per CPU, on cache lines of their own: the head of its queue ring at
 * [cpu * 16] (records published, written by on_bio_queue after the record,
 * with an atomic add) and the tail at [cpu * 16 + 8] (records consumed,
 * written by user space once it has copied them). */
#define QPOS_STRIDE 16
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * QPOS_STRIDE);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} qpos SEC(".maps");

/* The queue time of queue events: CLOCK_MONOTONIC ns, published by user
 * space (the reader on every poll, the agent when a read of a disk ends),
 * only ever raised. A queue event carries the value it finds, never later
 * than the truth and at most a poll interval earlier: enough to date a
 * change against a read, and about 55 ns per write cheaper than reading
 * the clock here (an indirect call through a retpoline). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} clock SEC(".maps");

/* Set by the loader when the CPU orders stores (x86): a record, the ring's
 * head and the busy window's end are then published with plain stores in
 * program order, where other CPUs need the fully ordered atomic add. */
const volatile __u32 tso = 0;

/* Completion events and cut markers. Sized by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/* Sized by the loader; mmapped by user space, which swaps words to zero. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << 18);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} dirty SEC(".maps");

/* The change log that survives the agent (gen_dirty): per protected disk
 * (by its stats slot) and per generation parity, one bit per granule of
 * 1 << gen_dirty_shift[slot] sectors (0: the disk is not logged), set for
 * every write queued. The agent persists the regions it still has to send
 * at each cut N and then clears the other parity's half, which holds only
 * changes of generations < N, all covered by what it persisted; a new
 * agent after a crash (kill -9) reads both halves, so the changes the dead
 * one took from the rings after its last persisted cut are not lost.
 * Mmapped by user space (tracker/dirtylog_linux.go). */
#define GD_WORDS 1024 /* words of one disk's half: 65536 granules */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_DISKS * 2 * GD_WORDS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} gen_dirty SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_DISKS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} gen_dirty_shift SEC(".maps");

struct gd_ctx {
	__u64 first; /* first granule bit, relative to the disk's half */
	__u64 last;
	__u64 base; /* first word of the half */
};

static long gd_mark_word(__u64 i, struct gd_ctx *c)
{
	__u64 w = (c->first >> 6) + i;
	__u64 lo = w << 6, hi = lo + 63, mask = ~0ULL;
	__u32 key = (__u32)(c->base + w);
	__u64 *word;

	if (w > (c->last >> 6))
		return 1;
	if (c->first > lo)
		mask &= ~0ULL << (c->first - lo);
	if (c->last < hi)
		mask &= ~0ULL >> (hi - c->last);
	word = bpf_map_lookup_elem(&gen_dirty, &key);
	if (!word)
		return 1;
	__sync_fetch_and_or(word, mask);
	return 0;
}

/* Logs sectors [sector, sector+nsect) of the disk in slot in gen's half.
 * A range beyond the log's granules is folded onto its last granule (user
 * space reads that one as reaching the end of the disk). */
static __always_inline void gd_mark(__u32 slot, __u64 gen, __u64 sector, __u64 nsect)
{
	struct gd_ctx c = {};
	__u64 *shift;

	shift = bpf_map_lookup_elem(&gen_dirty_shift, &slot);
	if (!shift || !*shift || slot >= MAX_DISKS || nsect == 0)
		return;
	c.first = sector >> (*shift & 63);
	c.last = (sector + nsect - 1) >> (*shift & 63);
	if (c.last >= GD_WORDS * 64)
		c.last = GD_WORDS * 64 - 1;
	if (c.first > c.last)
		c.first = c.last;
	c.base = ((__u64)slot * 2 + (gen & 1)) * GD_WORDS;
	bpf_loop((__u32)((c.last >> 6) - (c.first >> 6) + 1), gd_mark_word, &c, 0);
}

/* Make the event layout visible to bpf2go. */
const struct lb_event *unused_event __attribute__((unused));
const struct lb_cut_args *unused_cut_args __attribute__((unused));
const struct lb_disk_fast *unused_disk_fast __attribute__((unused));

/* Waking the consumer for every record costs an interrupt per write (in a
 * VM, a trap to the hypervisor): completion records are submitted without
 * a wakeup until WAKEUP_BYTES are waiting; the consumer also polls every
 * few ms (the queue rings never wake it), and cut markers always wake it. */
#define WAKEUP_BYTES (64 << 10)

static __always_inline __u64 submit_flags(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP
									     : BPF_RB_NO_WAKEUP;
}

static __always_inline struct lb_disk_stats *stats_of(__u32 slot)
{
	return bpf_map_lookup_elem(&disk_stats, &slot);
}

static __always_inline int lb_op_of(blk_opf_t opf)
{
	__u32 op = opf & REQ_OP_MASK;

	if (op == bpf_core_enum_value(enum req_op, REQ_OP_WRITE) ||
	    op == bpf_core_enum_value(enum req_op, REQ_OP_ZONE_APPEND))
		return LB_OP_WRITE;
	if (op == bpf_core_enum_value(enum req_op, REQ_OP_DISCARD))
		return LB_OP_DISCARD;
	if (op == bpf_core_enum_value(enum req_op, REQ_OP_WRITE_ZEROES))
		return LB_OP_WRITE_ZEROES;
	if (op == bpf_core_enum_value(enum req_op, REQ_OP_SECURE_ERASE))
		return LB_OP_SECURE_ERASE;
	return 0;
}

struct mark_ctx {
	__u64 word;    /* absolute index of the first word to touch */
	__u64 first;   /* first granule bit, relative to the disk */
	__u64 last;    /* last granule bit, relative to the disk */
	__u64 bm_base;
};

static long mark_word(__u64 i, struct mark_ctx *c)
{
	__u64 w = (c->first >> 6) + i;
	__u32 key = (__u32)(c->bm_base + w);
	__u64 lo = w << 6, hi = lo + 63, mask = ~0ULL;
	__u64 *word;

	if (w > (c->last >> 6))
		return 1;
	if (c->first > lo)
		mask &= ~0ULL << (c->first - lo);
	if (c->last < hi)
		mask &= ~0ULL >> (hi - c->last);
	word = bpf_map_lookup_elem(&dirty, &key);
	if (!word)
		return 1;
	__sync_fetch_and_or(word, mask);
	return 0;
}

/* Marks sectors [sector, sector+nsect) of a disk in the dirty bitmap.
 * Returns 0 if every granule was marked. */
static __always_inline int mark_dirty(const struct lb_disk_cfg *cfg, __u64 gen, __u64 sector,
				      __u64 nsect)
{
	struct mark_ctx c = {};
	__u64 limit = cfg->bm_words << 6;
	int clipped = 0;

	if (nsect == 0)
		return 0;
	c.first = sector >> cfg->bm_shift;
	c.last = (sector + nsect - 1) >> cfg->bm_shift;
	c.bm_base = cfg->bm_base + (gen & 1) * cfg->bm_words;
	if (c.first >= limit)
		return -1;
	if (c.last >= limit) {
		c.last = limit - 1;
		clipped = 1;
	}
	bpf_loop((__u32)((c.last >> 6) - (c.first >> 6) + 1), mark_word, &c, 0);
	return clipped ? -1 : 0;
}

/* Adds 1 with a fully ordered atomic: the fetch form (BPF_FETCH) is
 * ordered on every architecture, the plain atomic add is not (arm64 STADD).
 * The result is consumed through a volatile store so clang keeps the fetch. */
static __always_inline void busy_step(__u64 *p)
{
	volatile __u64 old;

	old = __sync_fetch_and_add(p, 1);
	(void)old;
}

/* Adds 1 to a word only this CPU's run of the program writes, ordered
 * after every store before it (release): a plain store on a CPU that keeps
 * stores in order, a busy_step elsewhere. */
static __always_inline void publish_step(__u64 *p)
{
	if (tso) {
		asm volatile("" ::: "memory");
		*(volatile __u64 *)p = *p + 1;
	} else {
		busy_step(p);
	}
}

enum { AT_QUEUE = 0, AT_SPLIT = 1, AT_BIO_COMPLETE = 2, AT_RQ_COMPLETE = 3 };

/* The address of a kernel object as a number: the verifier allows no
 * arithmetic on a typed pointer, so it goes through this CPU's scratch
 * word. Each program has its own word, because one may interrupt another
 * on the same CPU (a program cannot interrupt itself). */
static __always_inline __u64 addr_of(const void *p, int at)
{
	struct lb_cpu_local *cl;
	__u32 zero = 0;

	cl = bpf_map_lookup_elem(&cpu_local, &zero);
	if (!cl)
		return 0;
	cl->addr[at & 3] = (__u64)p;
	return *(volatile __u64 *)&cl->addr[at & 3];
}

/* Fibonacci hashing of a bio's address to its slot of inflight_fast. */
static __always_inline __u32 fast_index(__u64 key)
{
	return (__u32)((key * 0x9E3779B97F4A7C15ULL) >> ((64 - fast_bits) & 63));
}

static __always_inline struct lb_state *state_of(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&state, &zero);
}

/* The in-flight entry of a bio, or NULL; *fast says where it is. */
static __always_inline struct lb_inflight *inflight_find(__u64 key, int *fast)
{
	struct lb_inflight *f;
	struct lb_state *s;
	__u32 i = fast_index(key);

	*fast = 1;
	f = bpf_map_lookup_elem(&inflight_fast, &i);
	if (f && f->key == key)
		return f;
	*fast = 0;
	/* Completions run for every bio of the machine: look in the hash map
	 * only when it holds something. */
	s = state_of();
	if (!s || !*(volatile __u64 *)&s->overflow)
		return NULL;
	return bpf_map_lookup_elem(&inflight, &key);
}

enum { INSERTED = 0, TRACKED = 1, NO_ROOM = 2 };

/* Remembers a bio in flight (in->key is set here). Returns TRACKED when
 * the bio is already remembered (resubmitted before it completed). */
static __always_inline int inflight_insert(__u64 key, struct lb_inflight *in)
{
	struct lb_inflight *f;
	struct lb_state *s;
	__u32 i = fast_index(key);

	in->key = key;
	s = state_of();
	if (!s)
		return NO_ROOM;
	f = bpf_map_lookup_elem(&inflight_fast, &i);
	if (f && f->key == key)
		return TRACKED;
	if (*(volatile __u64 *)&s->overflow && bpf_map_lookup_elem(&inflight, &key))
		return TRACKED;
	if (f && __sync_val_compare_and_swap(&f->key, 0, key) == 0) {
		/* Only this bio's own split and completion read the fields, and
		 * both come after its queueing. */
		f->id = in->id;
		f->root = in->root;
		f->gen = in->gen;
		f->sector = in->sector;
		f->bytes = in->bytes;
		f->dev = in->dev;
		f->pending = in->pending;
		f->slot = in->slot;
		f->op = in->op;
		return INSERTED;
	}
	if (bpf_map_update_elem(&inflight, &key, in, BPF_NOEXIST) == 0) {
		__sync_fetch_and_add(&s->overflow, 1);
		__sync_fetch_and_add(&s->spilled, 1);
		return INSERTED;
	}
	return bpf_map_lookup_elem(&inflight, &key) ? TRACKED : NO_ROOM;
}

/* Forgets a bio found by inflight_find. Returns 0 for the one caller that
 * removed it (only that caller accounts for it), -1 for any other. */
static __always_inline int inflight_delete(__u64 key, int fast)
{
	struct lb_inflight *f;
	struct lb_state *s;
	__u32 i = fast_index(key);

	if (fast) {
		f = bpf_map_lookup_elem(&inflight_fast, &i);
		if (!f)
			return -1;
		return __sync_val_compare_and_swap(&f->key, key, 0) == key ? 0 : -1;
	}
	if (bpf_map_delete_elem(&inflight, &key) != 0)
		return -1;
	s = state_of();
	if (s)
		__sync_fetch_and_add(&s->overflow, -1);
	return 0;
}

/* Forgets an in-flight entry found by inflight_find (a completion, or a
 * reap), given its root and generation as read before: a root leaves its
 * generation's in-flight count. Returns 0 for the one caller that removed
 * it (only that caller accounts for it), -1 for any other. */
static __always_inline int inflight_forget(__u64 key, int fast, __u64 root, __u64 gen)
{
	__u32 gslot = gen & (GEN_SLOTS - 1);
	__u64 *cnt;

	if (inflight_delete(key, fast) != 0)
		return -1;
	if (root)
		return 0;
	cnt = bpf_map_lookup_elem(&gen_inflight, &gslot);
	if (cnt)
		__sync_fetch_and_add(cnt, -1);
	return 0;
}

/* Records one queued bio of a protected disk; runs inside the CPU's busy
 * window (see the top comment). */
static __always_inline void track_bio(struct bio *bio, const struct lb_disk_cfg *cfg,
				      struct lb_cpu_local *cl, __u32 dev, int op,
				      __u32 bytes, __u64 sector, __u64 nsect)
{
	struct lb_disk_stats *st;
	struct lb_state *s;
	struct lb_event *e;
	struct lb_inflight in = {};
	__u64 gen, *cnt;
	__u32 gslot;
	int r;

	st = stats_of(cfg->slot);
	s = state_of();
	if (!st || !s)
		return;

	gen = *(volatile __u64 *)&s->gen;
	in.id = (++cl->seq << 12) | (bpf_get_smp_processor_id() & 0xfff);
	in.gen = gen;
	in.sector = sector;
	in.bytes = bytes;
	in.dev = dev;
	in.pending = 1;
	in.slot = cfg->slot;
	in.op = op;

	/* Count the request in flight for its generation before anything
	 * else, so a cut never misses it. */
	r = inflight_insert(addr_of(bio, AT_QUEUE), &in);
	if (r == INSERTED) {
		gslot = gen & (GEN_SLOTS - 1);
		cnt = bpf_map_lookup_elem(&gen_inflight, &gslot);
		if (cnt)
			__sync_fetch_and_add(cnt, 1);
	} else if (r == TRACKED) {
		/* Resubmitted bio still tracked: its completion is counted once. */
		st->requeued++;
	} else {
		/* No room to follow the completion: user space must not trust
		 * the in-flight counts until it has reconciled. */
		st->untracked++;
	}

	gd_mark(cfg->slot, gen, sector, nsect);

	if (cfg->mode == LB_MODE_METADATA) {
		__u32 cpu = bpf_get_smp_processor_id();
		__u32 hk = cpu * QPOS_STRIDE, tk = hk + 8, idx;
		__u64 *head = bpf_map_lookup_elem(&qpos, &hk);
		__u64 *tail = bpf_map_lookup_elem(&qpos, &tk);
		__u32 zero = 0;
		__u64 *now = bpf_map_lookup_elem(&clock, &zero);
		__u64 h;

		if (head && tail && now) {
			h = *head;
			e = NULL;
			if (h - *(volatile __u64 *)tail < (1ULL << qring_shift)) {
				idx = (cpu << qring_shift) + (__u32)(h & ((1ULL << qring_shift) - 1));
				e = bpf_map_lookup_elem(&qring, &idx);
			}
			if (e) {
				e->id = in.id;
				e->sector = sector;
				e->ts = *(volatile __u64 *)now;
				e->gen = gen;
				e->bytes = bytes;
				e->dev = dev;
				e->kind = LB_EV_QUEUED;
				e->op = op;
				e->slot = cfg->slot;
				e->_pad = 0;
				/* Publish: the record is visible before the
				 * head moves. */
				publish_step(head);
				st->events++;
				st->bytes += bytes;
				return;
			}
		}
		st->drops++;
	}
	if (mark_dirty(cfg, gen, sector, nsect) == 0)
		st->marks++;
	else
		st->lost++;
}

SEC("tp_btf/block_bio_queue")
int BPF_PROG(on_bio_queue, struct bio *bio)
{
	struct lb_disk_cfg *cfg;
	struct lb_disk_fast *fast;
	struct lb_cpu_local *cl;
	__u64 sector, nsect;
	__u32 dev, fi, zero = 0, bytes;
	int op;

	/* Direct loads through the BTF-typed argument (the verifier turns
	 * them into fault-safe loads, relocated by CO-RE): no helper call per
	 * field, on a path that runs for every bio of the machine. */
	dev = bio->bi_bdev->bd_disk->part0->bd_dev;
	fi = (__u32)((__u64)(dev * 0x9E3779B1u) >> ((32 - disk_bits) & 63));
	fast = bpf_map_lookup_elem(&disk_fast, &fi);
	if (!fast)
		return 0;
	if (*(volatile __u32 *)&fast->dev == dev) {
		cfg = &fast->cfg;
	} else {
		if (!*(volatile __u32 *)&fast->spill)
			return 0;
		cfg = bpf_map_lookup_elem(&protected_disks, &dev);
		if (!cfg)
			return 0;
	}
	op = lb_op_of(bio->bi_opf);
	bytes = bio->bi_iter.bi_size;
	if (!op || bytes == 0)
		return 0;
	sector = bio->bi_iter.bi_sector;
	nsect = ((__u64)bytes + 511) >> SECTOR_SHIFT;
	if (sector >= cfg->end || sector + nsect <= cfg->start)
		return 0;
	cl = bpf_map_lookup_elem(&cpu_local, &zero);
	if (!cl)
		return 0;
	busy_step(&cl->busy);
	track_bio(bio, cfg, cl, dev, op, bytes, sector, nsect);
	publish_step(&cl->busy);
	return 0;
}

SEC("tp_btf/block_split")
int BPF_PROG(on_block_split, struct bio *split, unsigned int new_sector)
{
	struct lb_inflight *parent, child = {};
	__u64 pkey, rkey;
	int fast;

	pkey = addr_of(split->bi_private, AT_SPLIT);
	parent = inflight_find(pkey, &fast);
	if (!parent)
		return 0;
	rkey = parent->root ? parent->root : pkey;
	if (parent->root) {
		parent = inflight_find(rkey, &fast);
		if (!parent)
			return 0;
	}
	child.root = rkey;
	child.id = parent->id;
	__sync_fetch_and_add(&parent->pending, 1);
	if (inflight_insert(addr_of(split, AT_SPLIT), &child) != INSERTED)
		__sync_fetch_and_add(&parent->pending, -1);
	return 0;
}

static __always_inline void root_done(__u64 rkey, struct lb_inflight *r, int fast)
{
	struct lb_disk_stats *st;
	struct lb_event *e = NULL;
	struct lb_state *s;
	__u64 gen = r->gen;

	/* Only the caller that deletes the entry accounts for it. Everything
	 * needed is read before the delete: a freed slot is taken at once. */
	st = stats_of(r->slot);
	s = state_of();
	if (s && (s->flags & LB_F_COMPLETION_EVENTS))
		e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		e->id = r->id;
		e->sector = r->sector;
		e->ts = bpf_ktime_get_ns();
		e->gen = r->gen;
		e->bytes = r->bytes;
		e->dev = r->dev;
		e->kind = LB_EV_COMPLETED;
		e->op = r->op;
		e->slot = r->slot;
		e->_pad = 0;
	}
	if (inflight_forget(rkey, fast, 0, gen) != 0) {
		if (e)
			bpf_ringbuf_discard(e, 0);
		return;
	}
	if (e)
		bpf_ringbuf_submit(e, submit_flags());
	if (st)
		st->completions++;
}

/* The data of one piece (a root bio's own range, or a split-off child) has
 * completed. */
static __always_inline void piece_done(__u64 key)
{
	struct lb_inflight *in, *r;
	__u64 rkey;
	int fast;

	in = inflight_find(key, &fast);
	if (!in)
		return;
	if (!in->root) {
		if (__sync_fetch_and_add(&in->pending, -1) == 1)
			root_done(key, in, fast);
		return;
	}
	rkey = in->root;
	if (inflight_delete(key, fast) != 0)
		return;
	r = inflight_find(rkey, &fast);
	if (r && __sync_fetch_and_add(&r->pending, -1) == 1)
		root_done(rkey, r, fast);
}

struct rq_walk {
	__u64 bio;
	__u64 left; /* bytes of the completion not yet matched to bios */
};

static long walk_bio(__u64 i, struct rq_walk *w)
{
	struct bio *b = (struct bio *)w->bio;
	__u32 size;

	if (!b)
		return 1;
	size = BPF_CORE_READ(b, bi_iter.bi_size);
	if (size > w->left)
		return 1; /* partly completed: it ends in a later update */
	w->left -= size;
	piece_done(addr_of(b, AT_RQ_COMPLETE));
	w->bio = (__u64)BPF_CORE_READ(b, bi_next);
	return 0;
}

/* blk-mq devices (loop, virtio, nvme, sd): bio completions are not traced
 * one by one; a request completes nr_bytes at a time, starting with the
 * bio at rq->bio. */
SEC("tp_btf/block_rq_complete")
int BPF_PROG(on_rq_complete, struct request *rq, int error, unsigned int nr_bytes)
{
	struct rq_walk w = {};
	struct bio *b = rq->bio;
	__u32 size;

	/* The first bio inline, with direct loads: most requests have one. */
	if (!b)
		return 0;
	size = b->bi_iter.bi_size;
	if (size > nr_bytes)
		return 0; /* partly completed: it ends in a later update */
	w.left = nr_bytes - size;
	w.bio = (__u64)b->bi_next;
	piece_done(addr_of(b, AT_RQ_COMPLETE));
	if (w.bio)
		bpf_loop(511, walk_bio, &w, 0);
	return 0;
}

/* bio-based devices (zram, device-mapper): fires once a traced bio and
 * every piece chained to it have completed. */
SEC("tp_btf/block_bio_complete")
int BPF_PROG(on_bio_complete, struct request_queue *q, struct bio *bio)
{
	struct lb_inflight *in;
	__u64 key = addr_of(bio, AT_BIO_COMPLETE);
	int fast;

	in = inflight_find(key, &fast);
	if (!in)
		return 0;
	if (!in->root) {
		root_done(key, in, fast);
		return 0;
	}
	piece_done(key);
	return 0;
}

/* Run by user space (BPF_PROG_RUN): bumps the generation, or puts the
 * CUT marker of a generation into the ring buffer. */
SEC("syscall")
int cut(struct lb_cut_args *a)
{
	struct lb_state *s;
	struct lb_event *e;
	__u32 zero = 0;

	s = bpf_map_lookup_elem(&state, &zero);
	if (!s)
		return 1;
	if (a->op == LB_CUT_BUMP) {
		a->gen = __sync_fetch_and_add(&s->gen, 1) + 1;
		return 0;
	}
	if (a->op == LB_CUT_FLAGS) {
		s->flags = a->gen;
		return 0;
	}
	if (a->op == LB_CUT_REAP) {
		/* User space found the entry's request gone from its disk
		 * long ago (tracker/inflight_linux.go): its completion was
		 * never seen. Forget it as its completion would have, if it
		 * is still the same request. */
		struct lb_inflight *in;
		int fast;

		in = inflight_find(a->key, &fast);
		if (!in || in->id != a->id)
			return 4;
		if (inflight_forget(a->key, fast, in->root, in->gen) != 0)
			return 4;
		__sync_fetch_and_add(&s->reaped, 1);
		return 0;
	}
	if (a->op == LB_CUT_MARK) {
		e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (!e)
			return 2;
		__builtin_memset(e, 0, sizeof(*e));
		e->kind = LB_EV_CUT;
		e->gen = a->gen;
		e->ts = bpf_ktime_get_ns();
		bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
		if (a->gen + 1 > s->marked_next)
			s->marked_next = a->gen + 1;
		return 0;
	}
	return 3;
}
