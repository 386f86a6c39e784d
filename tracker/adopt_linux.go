//go:build linux

package tracker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math/bits"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	lbbpf "github.com/lifeboat-dr/lifeboat/bpf"
)

// ProgramVersion is stored in the pinned state; a process only adopts pins
// of the same version.
const ProgramVersion = 8

// stateVersionAt is the byte of struct lb_state where the program version
// is, in every version so far: a process reads it there before it knows
// whether the rest of a pinned state has the layout it knows. It must
// never move (TestRecordLayout).
const stateVersionAt = 16

// The pins are derived from the generated bindings of package bpf, not
// kept by hand. Every map of the program (every field of
// lbbpf.TrackerMaps) is pinned under its name: an adopting process must
// read the same ones (cpu_local above all: a cut that waited on a fresh
// copy of the busy counters would not wait at all). Every hook's link is
// pinned as linkPin of its program's name. TestPinNames holds the names
// of this ProgramVersion: pins of the same version keep their names.

// hooks are the tracing programs in the order they are attached:
// completion hooks first, so that no queued bio misses its completion.
// TestPinNames checks that they are every tracing program of the object.
var hooks = []string{
	lbbpf.TrackerProgOnRqComplete,
	lbbpf.TrackerProgOnBioComplete,
	lbbpf.TrackerProgOnBlockSplit,
	lbbpf.TrackerProgOnBioQueue,
}

// linkPin is the pin name of the link of a hook: on_bio_queue is pinned
// as link_bio_queue.
func linkPin(prog string) string { return "link_" + strings.TrimPrefix(prog, "on_") }

// objects yields the fields of a bpf2go struct (lbbpf.TrackerMaps,
// lbbpf.TrackerPrograms, ...) with the names of their objects, in the
// order of the struct. s points to the struct; T is its fields' type.
func objects[T any](s any) iter.Seq2[string, *T] {
	v := reflect.ValueOf(s).Elem()
	return func(yield func(string, *T) bool) {
		for i := range v.NumField() {
			name := v.Type().Field(i).Tag.Get("ebpf")
			if name == "" {
				continue
			}
			if !yield(name, v.Field(i).Addr().Interface().(*T)) {
				return
			}
		}
	}
}

// adopt takes over a pinned tracker. It returns false (and cleans the
// directory) when there is nothing complete to adopt.
func (t *Linux) adopt(spec *ebpf.CollectionSpec, specs *lbbpf.TrackerSpecs) (bool, error) {
	dir := t.opts.PinDir
	if _, err := os.Stat(filepath.Join(dir, lbbpf.TrackerMapState)); errors.Is(err, os.ErrNotExist) {
		// Nothing pinned, or a pin set that never completed: start anew.
		if err := removePins(dir); err != nil {
			return false, err
		}
		return false, nil
	}
	// The pinned maps; the cut program below is loaded with clones of
	// them (MapReplacements), so these handles are closed on return.
	var pinned lbbpf.TrackerMaps
	maps := map[string]*ebpf.Map{}
	defer func() {
		for _, m := range maps {
			m.Close()
		}
	}()
	for name, m := range objects[*ebpf.Map](&pinned) {
		pm, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), nil)
		if err != nil {
			return false, &PinError{Dir: dir, Err: fmt.Errorf("load pinned map %s: %w", name, err)}
		}
		*m, maps[name] = pm, pm
	}
	// The version is at stateVersionAt in every version so far; a
	// pinned tracker of another version has other maps and programs, so
	// it is taken down and replaced (an upgrade): tracking has a gap
	// there, and the disks it protected are resynced (a checksum compare).
	raw := make([]byte, pinned.State.ValueSize())
	if err := pinned.State.Lookup(uint32(0), &raw); err != nil || len(raw) < stateVersionAt+8 {
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
	if err := pinned.State.Lookup(uint32(0), &st); err != nil {
		return false, &PinError{Dir: dir, Err: fmt.Errorf("read pinned state: %w", err)}
	}
	if st.BootIdHi != binary.BigEndian.Uint64(t.bootID[:8]) || st.BootIdLo != binary.BigEndian.Uint64(t.bootID[8:]) {
		return false, &PinError{Dir: dir, Err: errors.New("pinned tracker belongs to another boot")}
	}
	for _, prog := range hooks {
		name := linkPin(prog)
		l, err := link.LoadPinnedLink(filepath.Join(dir, name), nil)
		if err != nil {
			return false, &PinError{Dir: dir, Err: fmt.Errorf("load pinned link %s: %w", name, err)}
		}
		t.links = append(t.links, l)
		// The program behind the link, for its run counters: a run the
		// kernel skips (the program re-entered on one CPU) is a change or
		// a completion not seen, and must show after a restart too.
		info, err := l.Info()
		if err != nil {
			return false, &PinError{Dir: dir, Err: fmt.Errorf("read pinned link %s: %w", name, err)}
		}
		p, err := ebpf.NewProgramFromID(info.Program)
		if err != nil {
			return false, &PinError{Dir: dir, Err: fmt.Errorf("open the program of pinned link %s: %w", name, err)}
		}
		t.progs = append(t.progs, p)
	}
	// Runs skipped before this process are not known to have been handled
	// or not; only those from now on make a gap (see Gap).
	t.missBase = t.missedRuns()
	// The ring buffer and bitmap sizes are those of the pinned maps.
	specs.Events.MaxEntries = pinned.Events.MaxEntries()
	specs.Dirty.MaxEntries = pinned.Dirty.MaxEntries()
	specs.InflightFast.MaxEntries = pinned.InflightFast.MaxEntries()
	specs.Qring.MaxEntries = pinned.Qring.MaxEntries()
	specs.Qpos.MaxEntries = pinned.Qpos.MaxEntries()
	if cpus := int(pinned.Qpos.MaxEntries()) / qposStride; cpus != t.ncpu {
		return false, &PinError{Dir: dir, Err: fmt.Errorf("pinned tracker was sized for %d CPUs, this machine has %d", cpus, t.ncpu)}
	}
	t.qshift = uint(bits.TrailingZeros(uint(pinned.Qring.MaxEntries()) / uint(t.ncpu)))
	t.opts.InflightSlots = int(pinned.InflightFast.MaxEntries())
	specs.DiskFast.MaxEntries = pinned.DiskFast.MaxEntries()
	t.opts.DiskSlots = int(pinned.DiskFast.MaxEntries())
	t.opts.RingBufferSize = int(pinned.Events.MaxEntries())
	t.opts.QueueRingSize = int(pinned.Qring.MaxEntries()) * qrecSize
	t.opts.BitmapWords = int(pinned.Dirty.MaxEntries())

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
	// The hooks in attach order, then the cut program.
	progs := map[string]*ebpf.Program{}
	for name, p := range objects[*ebpf.Program](&objs.TrackerPrograms) {
		progs[name] = *p
	}
	for _, name := range hooks {
		t.progs = append(t.progs, progs[name])
	}
	t.progs = append(t.progs, objs.Cut)

	st := lbbpf.TrackerLbState{
		Version:   ProgramVersion,
		BootIdHi:  binary.BigEndian.Uint64(t.bootID[:8]),
		BootIdLo:  binary.BigEndian.Uint64(t.bootID[8:]),
		CreatedNs: uint64(time.Now().UnixNano()),
	}
	if err := t.maps.State.Update(uint32(0), &st, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("init tracker state: %w", err)
	}
	for _, prog := range t.progs[:len(hooks)] {
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err != nil {
			return fmt.Errorf("attach %s: %w", prog, err)
		}
		t.links = append(t.links, l)
	}
	if t.opts.PinDir == "" {
		return nil
	}
	if err := os.MkdirAll(t.opts.PinDir, 0o700); err != nil {
		return &PinError{Dir: t.opts.PinDir, Err: err}
	}
	for i, prog := range hooks {
		name := linkPin(prog)
		if err := t.links[i].Pin(filepath.Join(t.opts.PinDir, name)); err != nil {
			return &PinError{Dir: t.opts.PinDir, Err: fmt.Errorf("pin %s: %w", name, err)}
		}
	}
	// The state last: its pin marks a complete set.
	for name, m := range objects[*ebpf.Map](&t.maps) {
		if name == lbbpf.TrackerMapState {
			continue
		}
		if err := (*m).Pin(filepath.Join(t.opts.PinDir, name)); err != nil {
			return &PinError{Dir: t.opts.PinDir, Err: fmt.Errorf("pin map %s: %w", name, err)}
		}
	}
	if err := t.maps.State.Pin(filepath.Join(t.opts.PinDir, lbbpf.TrackerMapState)); err != nil {
		return &PinError{Dir: t.opts.PinDir, Err: fmt.Errorf("pin map %s: %w", lbbpf.TrackerMapState, err)}
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
