// Package tracker owns change tracking (docs/ARCHITECTURE.md §3): the
// Tracker interface, which the Linux eBPF tracker here implements and a
// planned Windows tracker (issue 14) will implement too, the extent and
// event types everything above it uses, extent coalescing (Set, Coalesce)
// and the math of the overflow dirty bitmap.
//
// The Linux tracker (Open) loads the programs of package bpf and attaches
// them to block-layer tracepoints only (block_bio_queue, block_split,
// block_rq_complete, block_bio_complete): kernels locked down for integrity
// refuse fentry and kprobes. Its promises:
//
//   - Every write-like request to a protected disk is reported, keyed on the
//     whole disk: a partition's writes come at their whole-disk offset.
//   - Nothing is lost silently. Queue events travel through one ring per
//     CPU (an mmapped array only that CPU's program writes); a request its
//     ring cannot take is marked in the disk's dirty bitmap and comes out as an EventDirty at
//     the next cut; what the bitmap cannot take is counted in Lost, and Gap
//     then returns a *ResyncRequiredError.
//   - Cut is exact: when Cut returns N+1, every request issued in
//     generation <= N has been delivered before the EventCut of N (a bump,
//     a wait until no CPU is inside a queue-program run that may have read
//     the old generation, then a marker in the BPF ring buffer, on which the
//     reader drains every CPU's ring before it reports the cut), and
//     Completed(N) tells when all of them have completed.
//   - Completion is known, not guessed: a request counts as in flight from
//     its queue event until the last piece of it (splits included) has
//     completed on the device.
//   - Queue times are never late: the program stamps a queue event with the
//     last time user space handed it (Now, and every poll of the reader),
//     not with its own clock read, so a time may be a poll interval early;
//     a read dated with Now is tainted exactly by the changes queued
//     before it ended.
//   - With Options.PinDir, a process may stop and a new one continue with no
//     gap; tracking gaps across reboots or lost pins are detected through
//     Options.StateFile.
//
// It must never read disk data, block the I/O path, or decide what to
// replicate: that belongs to the agent.
//
// # Files
//
// Platform-free, built everywhere:
//
//   - tracker.go: the Tracker interface, events, extents, stats, errors.
//   - options.go: Options and Mode.
//   - extent.go, bitmap.go: Set and Coalesce; the dirty bitmap's math.
//
// The Linux tracker, one concern per file:
//
//   - tracker_linux.go: the Linux type, Open, Close and Detach.
//   - adopt_linux.go: loading the programs of package bpf and pinning
//     them, or adopting a pinned set (ProgramVersion); the pin names come
//     from the generated bindings.
//   - rings_linux.go: the memory shared with the programs (the queue
//     rings, the dirty bitmap, the clock of Now), the layout of a record.
//   - reader_linux.go: the reader that turns records into events.
//   - protect_linux.go: Protect, Unprotect, SetMode and the kernel's disk
//     tables (protected_disks and its direct-mapped copy).
//   - cut_linux.go: Cut, Generation and Completed.
//   - stats_linux.go: Stats.
//   - state_linux.go: the state file, the boot id, Gap and AckGap.
//   - device_linux.go, inuse_linux.go: block devices; TrackedAnywhere.
//
// tracker_other.go stands in on other systems: Open and the functions
// that need a kernel fail with errors wrapping ErrNotSupported.
//
// The tests follow the same split. bindings_linux_test.go needs no
// kernel: it ties the Go side (record offsets, constants, pin names) to
// the compiled object and the C source. The other _linux_test.go files
// need root and eBPF; with CI=true they fail instead of skipping.
package tracker
