package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// A divergence: the process server refused a segment of a disk because it
// accepted another one under the same sequence number (api.ErrSegmentConflict;
// someone else holding the machine's key, or this agent's state restored
// from an old copy). The replica may hold data this agent never sent, so
// the segments still in the spool cannot simply follow it: the agent drops
// them, continues the journal after the server's last segment, and resyncs
// the disk (every block compared with the replica, those that differ
// sent). It is shown as a problem until the resync ends, and the server
// raises an alert naming the sequence number. It is never taken as an
// acknowledgement.

// checkDivergence resyncs every disk whose uploader reports a divergence.
func (a *Agent) checkDivergence(ctx context.Context) error {
	for _, d := range a.disks {
		seq, ok := d.up.Diverged()
		if !ok {
			continue
		}
		if err := a.resyncDiverged(ctx, d, seq); err != nil {
			return fmt.Errorf("resync %s after the divergence at segment %d: %w", d.name, seq, err)
		}
	}
	return nil
}

// resyncDiverged drops the spool of d, restarts its journal at the
// server's next sequence number and marks the whole disk for a resync.
func (a *Agent) resyncDiverged(ctx context.Context, d *disk, seq uint64) error {
	expected, gap := d.up.Gap()
	said := d.up.Status().LastError // the server's words, before Reset clears them
	if gap {
		a.log.Error("divergence: the process server lost segments it had acknowledged and waits for one this agent no longer has; dropping the spool and resyncing the disk",
			"disk", d.name, "seq", seq, "expected", expected)
	} else {
		a.log.Error("divergence: the process server holds another segment under this disk's sequence number; dropping the spool and resyncing the disk",
			"disk", d.name, "seq", seq)
	}
	if err := d.w.Close(); err != nil {
		return fmt.Errorf("close journal: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	st, err := a.cfg.Client.DiskState(sctx, d.name)
	cancel()
	if err != nil {
		// The journal is closed: reopen it where it was, and try again
		// next round.
		if werr := a.newWriter(d); werr != nil {
			return werr
		}
		return fmt.Errorf("ask the process server where the journal stands: %w", err)
	}
	if err := d.up.Reset(st.NextSeq); err != nil {
		return err
	}
	a.mu.Lock()
	d.nextSeq = st.NextSeq
	d.lagWait = nil
	a.mu.Unlock()
	if err := a.newWriter(d); err != nil {
		return err
	}
	a.counts.resync(d.name)
	a.mu.Lock()
	defer a.mu.Unlock()
	d.state = StateResync
	if gap {
		d.reason = fmt.Sprintf("the process server waits for segment %d of this disk, which this agent had sent and no longer has", expected)
		d.diverged = fmt.Sprintf("%s: the process server refused segment %d because it waits for segment %d, which it had acknowledged and lost (a forced move or a restored server): resync running from segment %d, the spooled segments were dropped", d.name, seq, expected, st.NextSeq)
	} else {
		d.reason = fmt.Sprintf("the process server holds another segment %d of this disk", seq)
		d.diverged = fmt.Sprintf("%s: the process server refused segment %d as a conflict (it accepted another segment %d of this disk, or an operator discarded it): the replica may hold data this agent did not send; resync running, the spooled segments were dropped", d.name, seq, seq)
		if said != "" {
			d.diverged += "; the server said: " + said
		}
	}
	a.rounds.MarkPending(d.name, 0, d.size)
	d.total, d.done, d.sent, d.same = d.size, 0, 0, 0
	d.syncStart, d.syncStartDone = time.Now(), 0
	if p := a.st.Disks[d.name]; p != nil {
		p.NextSeq, p.State = d.nextSeq, d.state
	}
	return nil
}

// newWriter opens the journal of d at d.nextSeq; each segment it seals
// goes to d's uploader.
func (a *Agent) newWriter(d *disk) error {
	memory := a.cfg.SpoolBytes == 0
	wo := hrlfmt.WriterOptions{
		Dir: d.spoolDir, Machine: a.cfg.Machine, Disk: d.name, DiskSize: d.size,
		MaxSegmentBytes: a.cfg.SegmentBytes, MaxSegmentAge: a.cfg.SegmentAge, FirstSeq: d.nextSeq,
		OnRotate: func(seq uint64, path string) {
			d.nextSeq = seq + 1
			d.unsealed.Store(0)
			if !memory {
				d.up.Sealed(seq, path)
			}
		},
	}
	if memory {
		if d.mem == nil {
			d.mem = newSegmentPool(a.cfg.SegmentBytes, a.cfg.MemoryBytes)
		}
		wo.Memory, wo.OnSealed, wo.Buffer = true, d.up.SealedMemory, d.mem.get
		d.up.SetRelease(func(b []byte) { d.mem.put(b); a.roomFreed() })
	}
	w, err := hrlfmt.NewWriter(wo)
	if err != nil {
		return fmt.Errorf("journal of %s: %w", d.name, err)
	}
	a.mu.Lock()
	d.w = w
	a.mu.Unlock()
	return nil
}
