package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Without a spool (Config.SpoolBytes 0, the default), the segments of a
// disk's journal are built in memory (hrlfmt.WriterOptions.Memory) and
// the uploader streams them to the process server from there: the
// protected host pays the reads of its changed blocks, never a second
// write of them. The segment is still the unit the server verifies, makes
// durable and acknowledges, and a point's CUT is in the journal after
// all its data, so a point is listed only once all its data is durable.
//
// Memory is bounded by Config.MemoryBytes: segments sealed and not yet
// acknowledged plus the open one. When they reach it (the server is
// unreachable or slower than the churn), rounds stop reading and the
// tracker keeps only the changed regions (metadata mode; in the kernel a
// coarse bitmap): nothing is lost, the regions are read once the server
// has caught up, and no crash-consistent point is listed for that window.
//
// The memory of an acknowledged segment goes back to a small pool for
// the next one, so the agent does not allocate a segment's worth of
// garbage every second under churn.

// segmentSlack is room beyond SegmentBytes in a pooled buffer: the record
// that fills a segment (up to one chunk of the read pipeline, plus the
// trailer) lands in it without growing the buffer.
const segmentSlack = maxRead + 4<<10

// segmentPool keeps the buffers of segments for reuse. They are mapped
// outside Go's heap (newReadBuf), a bounded number of them: the agent's
// memory is what its segments hold, not twice that as the garbage
// collector's headroom would make it. A free buffer keeps its pages: the
// pool never maps more buffers than were in use at once, so that adds
// nothing to the peak (VmHWM), and giving the pages back made every
// segment fault its pages in again: measured on this project's VM
// (2026-12-07, initial sync, server on tmpfs), the copy into freshly
// faulted segment pages took 80 % of the agent's CPU (5.0 s of 6.3 s) and
// bounded the sync at about 100 MB/s.
type segmentPool struct {
	mu     sync.Mutex
	free   [][]byte
	size   int // capacity of a buffer
	mapped int // buffers mapped so far
	most   int // buffers mapped at most; beyond, segments use the heap
}

func newSegmentPool(segmentBytes, memoryBytes int64) *segmentPool {
	return &segmentPool{size: int(segmentBytes) + segmentSlack, most: int(max(1, memoryBytes/segmentBytes)) + 2}
}

// get returns an empty buffer for a new segment.
func (p *segmentPool) get() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		return b[:0]
	}
	if p.mapped < p.most {
		if b, err := newReadBuf(p.size); err == nil {
			p.mapped++
			return b[:0]
		}
	}
	return nil // the segment grows on the heap
}

// put gives back the buffer of an acknowledged segment, pages and all;
// one the pool did not map (it grew on the heap) is left to the garbage
// collector.
func (p *segmentPool) put(b []byte) {
	if cap(b) != p.size {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free = append(p.free, b[:0])
}

// roomFreed tells the loop that the server acknowledged a segment held
// in memory (the uploader's release, under the uploader's lock: it must
// not block or ask the uploader anything).
func (a *Agent) roomFreed() {
	select {
	case a.room <- struct{}{}:
	default:
	}
}

// memoryFull reports whether the last round found the memory backlog
// full (metadata mode without a spool).
func (a *Agent) memoryFull() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.spoolFull && a.cfg.SpoolBytes == 0
}

// stillFull reports whether the memory backlog is still too full for the
// next round to read anything (checkSpool's bound of leaving metadata
// mode).
func (a *Agent) stillFull() bool {
	spool := a.spoolBytes()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.spoolFull && spool > a.backlogLimit()/2
}

// backlogLimit is the bound of what waits for the server: the spool's, or
// without one the memory's.
func (a *Agent) backlogLimit() int64 {
	if a.cfg.SpoolBytes > 0 {
		return a.cfg.SpoolBytes
	}
	return a.cfg.MemoryBytes
}

// drainWait bounds how long an orderly stop waits for the server to
// acknowledge the segments held in memory.
const drainWait = 10 * time.Second

// drainMemory, at an orderly stop without a spool, waits for the server
// to acknowledge the segments in memory: they die with the process. If it
// cannot, the stop is not clean and the next start resyncs (by hashes,
// sending only what differs).
func (a *Agent) drainMemory() error {
	if a.cfg.SpoolBytes > 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), drainWait)
	defer cancel()
	for _, d := range a.disks {
		if d.up.Status().Queued == 0 {
			continue
		}
		if !a.uploading.Load() {
			return fmt.Errorf("%s: %d segments in memory not sent", d.name, d.up.Status().Queued)
		}
		if err := d.up.WaitIdle(ctx); err != nil {
			return fmt.Errorf("%s: segments in memory not acknowledged by the process server within %s: the disk will be resynced at the next start", d.name, drainWait)
		}
	}
	return nil
}

// modeLocked returns the mode of the disks (api.AgentModeStream, Spool or
// Metadata) and why, for the status; backlog is what waits for the server.
// The bound is the machine's, so all its disks share the mode.
func (a *Agent) modeLocked(backlog int64) (mode, why string) {
	switch {
	case a.spoolFull:
		cause := "the process server is slower than the disks' churn"
		for _, d := range a.disks {
			if st := d.up.Status(); st.LastError != "" {
				cause = "the process server does not take segments: " + st.LastError
				break
			}
		}
		what := "memory backlog"
		if a.cfg.SpoolBytes > 0 {
			what = "spool"
		}
		return api.AgentModeMetadata, fmt.Sprintf("%s full (%d of %d bytes) since %s: %s; only the changed regions are tracked, no point until they are read",
			what, backlog, a.backlogLimit(), a.modeSince.UTC().Format(time.RFC3339), cause)
	case a.cfg.SpoolBytes > 0:
		return api.AgentModeSpool, fmt.Sprintf("segments wait for the server in the spool (%d of %d bytes)", backlog, a.cfg.SpoolBytes)
	}
	return api.AgentModeStream, fmt.Sprintf("segments are streamed from memory (%d of %d bytes held); nothing is written on this host", backlog, a.cfg.MemoryBytes)
}
