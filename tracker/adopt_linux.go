//go:build linux

package tracker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	lbbpf "github.com/lifeboat-dr/lifeboat/bpf"
)

// ProgramVersion is stored in the pinned state; a process only adopts pins
// of the same version.
const ProgramVersion = 6

// stateVersionAt is the byte of struct lb_state where the program version
// is, in every version so far: a process reads it there before it knows
// whether the rest of a pinned state has the layout it knows. It must
// never move (TestRecordLayout).
const stateVersionAt = 16

// pinnedMaps are every map the attached programs use: an adopting process
// must read the same ones (cpu_local above all: a cut that waited on a
// fresh copy of the busy counters would not wait at all).
var pinnedMaps = []string{"protected_disks", "disk_stats", "state", "gen_inflight", "inflight_fast", "inflight", "qring", "qpos", "clock", "disk_fast", "events", "dirty", "cpu_local"}

var linkPins = []string{"link_rq_complete", "link_bio_complete", "link_block_split", "link_bio_queue"}

// adopt takes over a pinned tracker. It returns false (and cleans the
// directory) when there is nothing complete to adopt.
func (t *Linux) adopt(spec *ebpf.CollectionSpec) (bool, error) {
	dir := t.opts.PinDir
	if _, err := os.Stat(filepath.Join(dir, "state")); errors.Is(err, os.ErrNotExist) {
		// Nothing pinned, or a pin set that never completed: start anew.
		if err := removePins(dir); err != nil {
			return false, err
		}
		return false, nil
	}
	maps := map[string]*ebpf.Map{}
	defer func() {
		for _, m := range maps {
			m.Close()
		}
	}()
	for _, name := range pinnedMaps {
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), nil)
		if err != nil {
			return false, &PinError{Dir: dir, Err: fmt.Errorf("load pinned map %s: %w", name, err)}
		}
		maps[name] = m
	}
	// The version is at stateVersionAt in every version so far; a
	// pinned tracker of another version has other maps and programs, so
	// it is taken down and replaced (an upgrade): tracking has a gap
	// there, and the disks it protected are resynced (a checksum compare).
	raw := make([]byte, maps["state"].ValueSize())
	if err := maps["state"].Lookup(uint32(0), &raw); err != nil || len(raw) < stateVersionAt+8 {
		return false, &PinError{Dir: dir, Err: fmt.Errorf("read pinned state: %v", err)}
	}
	if v := binary.LittleEndian.Uint64(raw[stateVersionAt:]); v != ProgramVersion {
		for _, m := range maps {
			m.Close()
		}
		clear(maps)
		if err := removePins(dir); err != nil {
			return false, &PinError{Dir: dir, Err: fmt.Errorf("replace the pinned tracker of version %d: %w", v, err)}
		}
		t.takeover = fmt.Sprintf("tracker program replaced (pinned version %d, this agent's version %d)", v, ProgramVersion)
		return false, nil
	}
	var st lbbpf.TrackerLbState
	if err := maps["state"].Lookup(uint32(0), &st); err != nil {
		return false, &PinError{Dir: dir, Err: fmt.Errorf("read pinned state: %w", err)}
	}
	if st.BootIdHi != binary.BigEndian.Uint64(t.bootID[:8]) || st.BootIdLo != binary.BigEndian.Uint64(t.bootID[8:]) {
		return false, &PinError{Dir: dir, Err: errors.New("pinned tracker belongs to another boot")}
	}
	for _, name := range linkPins {
		l, err := link.LoadPinnedLink(filepath.Join(dir, name), nil)
		if err != nil {
			return false, &PinError{Dir: dir, Err: fmt.Errorf("load pinned link %s: %w", name, err)}
		}
		t.links = append(t.links, l)
	}
	// The ring buffer and bitmap sizes are those of the pinned maps.
	spec.Maps["events"].MaxEntries = maps["events"].MaxEntries()
	spec.Maps["dirty"].MaxEntries = maps["dirty"].MaxEntries()
	spec.Maps["inflight_fast"].MaxEntries = maps["inflight_fast"].MaxEntries()
	spec.Maps["qring"].MaxEntries = maps["qring"].MaxEntries()
	spec.Maps["qpos"].MaxEntries = maps["qpos"].MaxEntries()
	if cpus := int(maps["qpos"].MaxEntries()) / qposStride; cpus != t.ncpu {
		return false, &PinError{Dir: dir, Err: fmt.Errorf("pinned tracker was sized for %d CPUs, this machine has %d", cpus, t.ncpu)}
	}
	t.qshift = uint(bits.TrailingZeros(uint(maps["qring"].MaxEntries()) / uint(t.ncpu)))
	t.opts.InflightSlots = int(maps["inflight_fast"].MaxEntries())
	spec.Maps["disk_fast"].MaxEntries = maps["disk_fast"].MaxEntries()
	t.opts.DiskSlots = int(maps["disk_fast"].MaxEntries())
	t.opts.RingBufferSize = int(maps["events"].MaxEntries())
	t.opts.BitmapWords = int(maps["dirty"].MaxEntries())

	// Load only the cut program, bound to the pinned maps.
	var objs struct {
		Cut *ebpf.Program `ebpf:"cut"`
		lbbpf.TrackerMaps
	}
	if err := spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{MapReplacements: maps}); err != nil {
		return false, fmt.Errorf("load cut program: %w", err)
	}
	t.cut = objs.Cut
	t.maps = objs.TrackerMaps
	return true, nil
}

func (t *Linux) load(spec *ebpf.CollectionSpec) error {
	var objs lbbpf.TrackerObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("load tracker programs (verifier): %+v", ve)
		}
		return fmt.Errorf("load tracker programs: %w", err)
	}
	t.maps = objs.TrackerMaps
	t.cut = objs.Cut
	t.progs = []*ebpf.Program{objs.OnRqComplete, objs.OnBioComplete, objs.OnBlockSplit, objs.OnBioQueue, objs.Cut}

	st := lbbpf.TrackerLbState{
		Version:   ProgramVersion,
		BootIdHi:  binary.BigEndian.Uint64(t.bootID[:8]),
		BootIdLo:  binary.BigEndian.Uint64(t.bootID[8:]),
		CreatedNs: uint64(time.Now().UnixNano()),
	}
	if err := t.maps.State.Update(uint32(0), &st, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("init tracker state: %w", err)
	}
	// Completion hooks first, so no queued bio misses its completion.
	attach := []struct {
		prog *ebpf.Program
		pin  string
	}{
		{objs.OnRqComplete, "link_rq_complete"},
		{objs.OnBioComplete, "link_bio_complete"},
		{objs.OnBlockSplit, "link_block_split"},
		{objs.OnBioQueue, "link_bio_queue"},
	}
	for _, a := range attach {
		l, err := link.AttachTracing(link.TracingOptions{Program: a.prog})
		if err != nil {
			return fmt.Errorf("attach %s: %w", a.prog, err)
		}
		t.links = append(t.links, l)
	}
	if t.opts.PinDir == "" {
		return nil
	}
	if err := os.MkdirAll(t.opts.PinDir, 0o700); err != nil {
		return &PinError{Dir: t.opts.PinDir, Err: err}
	}
	for i, a := range attach {
		if err := t.links[i].Pin(filepath.Join(t.opts.PinDir, a.pin)); err != nil {
			return &PinError{Dir: t.opts.PinDir, Err: fmt.Errorf("pin %s: %w", a.pin, err)}
		}
	}
	mapsByName := map[string]*ebpf.Map{
		"protected_disks": t.maps.ProtectedDisks, "disk_stats": t.maps.DiskStats,
		"gen_inflight": t.maps.GenInflight, "inflight": t.maps.Inflight,
		"inflight_fast": t.maps.InflightFast, "qring": t.maps.Qring, "qpos": t.maps.Qpos,
		"clock": t.maps.Clock, "disk_fast": t.maps.DiskFast,
		"events": t.maps.Events, "dirty": t.maps.Dirty, "state": t.maps.State,
		"cpu_local": t.maps.CpuLocal,
	}
	// "state" last: its pin marks a complete set.
	for _, name := range pinnedMaps {
		if name == "state" {
			continue
		}
		if err := mapsByName[name].Pin(filepath.Join(t.opts.PinDir, name)); err != nil {
			return &PinError{Dir: t.opts.PinDir, Err: fmt.Errorf("pin map %s: %w", name, err)}
		}
	}
	if err := t.maps.State.Pin(filepath.Join(t.opts.PinDir, "state")); err != nil {
		return &PinError{Dir: t.opts.PinDir, Err: fmt.Errorf("pin map state: %w", err)}
	}
	return nil
}

func removePins(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &PinError{Dir: dir, Err: err}
	}
	for _, e := range ents {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return &PinError{Dir: dir, Err: err}
		}
	}
	return nil
}
