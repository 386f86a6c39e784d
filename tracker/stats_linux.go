//go:build linux

package tracker

import (
	"fmt"
	"sort"
	"sync/atomic"

	lbbpf "github.com/lifeboat-dr/lifeboat/bpf"
)

type rawStats struct {
	DiskStats
	untracked uint64
}

func (t *Linux) diskStats(dev uint32) (rawStats, error) {
	var cfg lbbpf.TrackerLbDiskCfg
	if err := t.maps.ProtectedDisks.Lookup(dev, &cfg); err != nil {
		return rawStats{}, fmt.Errorf("read disk config: %w", err)
	}
	var per []lbbpf.TrackerLbDiskStats
	if err := t.maps.DiskStats.Lookup(cfg.Slot, &per); err != nil {
		return rawStats{}, fmt.Errorf("read disk stats: %w", err)
	}
	var r rawStats
	for _, s := range per {
		r.Events += s.Events
		r.Bytes += s.Bytes
		r.Drops += s.Drops
		r.Lost += s.Lost
		r.untracked += s.Untracked
	}
	if v, ok := t.regions.Load(dev); ok {
		r.BitmapRegions = v.(*atomic.Uint64).Load()
	}
	r.Mode = Mode(cfg.Mode).String()
	return r, nil
}

func (t *Linux) missedRuns() uint64 {
	var n uint64
	for _, p := range t.progs {
		if s, err := p.Stats(); err == nil {
			n += s.RecursionMisses
		}
	}
	return n
}

// programs lists the attached programs by their links (also when adopted
// from pins) and the cut program.
func (t *Linux) programs() []Program {
	var ps []Program
	for i, l := range t.links {
		info, err := l.Info()
		if err != nil {
			continue
		}
		name := fmt.Sprintf("link%d", i)
		if i < len(hooks) {
			name = linkPin(hooks[i])
		}
		ps = append(ps, Program{Name: name, ID: uint32(info.Program), LinkID: uint32(info.ID)})
	}
	if t.cut != nil {
		if info, err := t.cut.Info(); err == nil {
			if id, ok := info.ID(); ok {
				ps = append(ps, Program{Name: "cut", ID: uint32(id)})
			}
		}
	}
	return ps
}

// Stats returns the tracker's counters.
func (t *Linux) Stats() (Stats, error) {
	var st lbbpf.TrackerLbState
	if err := t.maps.State.Lookup(uint32(0), &st); err != nil {
		return Stats{}, fmt.Errorf("read tracker state: %w", err)
	}
	s := Stats{Generation: st.Gen, InFlightSpilled: st.Spilled, InFlightReaped: st.Reaped, MissedRuns: t.missedRuns(), Programs: t.programs()}
	counts, err := t.genCounts()
	if err != nil {
		return Stats{}, err
	}
	for _, c := range counts {
		s.InFlight += c
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for dev, prots := range t.byDev {
		r, err := t.diskStats(dev)
		if err != nil {
			return Stats{}, err
		}
		r.Disk = prots[0].path
		for _, p := range prots[1:] {
			r.Disk += "," + p.path
		}
		s.Disks = append(s.Disks, r.DiskStats)
	}
	sort.Slice(s.Disks, func(i, j int) bool { return s.Disks[i].Disk < s.Disks[j].Disk })
	return s, nil
}
