//go:build linux

package tracker

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	lbbpf "github.com/lifeboat-dr/lifeboat/bpf"
)

// These tests need no kernel: they read the embedded object's BTF (the C
// structs as clang laid them out) and the C source, and fail when what
// the Go side assumes about them differs.

func trackerSpec(t *testing.T) *ebpf.CollectionSpec {
	t.Helper()
	spec, err := lbbpf.LoadTracker()
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func btfStruct(t *testing.T, spec *ebpf.CollectionSpec, name string) *btf.Struct {
	t.Helper()
	var s *btf.Struct
	if err := spec.Types.TypeByName(name, &s); err != nil {
		t.Fatalf("struct %s in the object's BTF: %v", name, err)
	}
	return s
}

func btfMember(t *testing.T, s *btf.Struct, name string) (off, size int) {
	t.Helper()
	for _, m := range s.Members {
		if m.Name == name {
			n, err := btf.Sizeof(m.Type)
			if err != nil {
				t.Fatal(err)
			}
			return int(m.Offset.Bytes()), n
		}
	}
	t.Fatalf("struct %s has no member %s", s.Name, name)
	return 0, 0
}

// TestGeneratedTypesMatchBTF: every Go struct of package bpf that the
// tracker reads or writes has the size and field offsets of its C struct
// in the compiled object (a stale `make generate` fails here).
func TestGeneratedTypesMatchBTF(t *testing.T) {
	spec := trackerSpec(t)
	for _, c := range []struct {
		name string
		typ  reflect.Type
	}{
		{"lb_event", reflect.TypeFor[lbbpf.TrackerLbEvent]()},
		{"lb_state", reflect.TypeFor[lbbpf.TrackerLbState]()},
		{"lb_disk_cfg", reflect.TypeFor[lbbpf.TrackerLbDiskCfg]()},
		{"lb_disk_fast", reflect.TypeFor[lbbpf.TrackerLbDiskFast]()},
		{"lb_disk_stats", reflect.TypeFor[lbbpf.TrackerLbDiskStats]()},
		{"lb_cpu_local", reflect.TypeFor[lbbpf.TrackerLbCpuLocal]()},
		{"lb_cut_args", reflect.TypeFor[lbbpf.TrackerLbCutArgs]()},
		{"lb_inflight", reflect.TypeFor[lbbpf.TrackerLbInflight]()},
	} {
		s := btfStruct(t, spec, c.name)
		if int(s.Size) != int(c.typ.Size()) {
			t.Errorf("%s: %d bytes in C, %s has %d", c.name, s.Size, c.typ, c.typ.Size())
		}
		var fields []reflect.StructField
		for i := range c.typ.NumField() {
			if f := c.typ.Field(i); f.Name != "_" {
				fields = append(fields, f)
			}
		}
		if len(fields) != len(s.Members) {
			t.Errorf("%s: %d members in C, %s has %d fields", c.name, len(s.Members), c.typ, len(fields))
			continue
		}
		for i, m := range s.Members {
			f := fields[i]
			if !strings.EqualFold(strings.ReplaceAll(m.Name, "_", ""), f.Name) {
				t.Errorf("%s: member %d is %s in C, %s in %s", c.name, i, m.Name, f.Name, c.typ)
			}
			off, size := btfMember(t, s, m.Name)
			if off != int(f.Offset) || size != int(f.Type.Size()) {
				t.Errorf("%s.%s: offset %d size %d in C, %s.%s: offset %d size %d",
					c.name, m.Name, off, size, c.typ, f.Name, f.Offset, f.Type.Size())
			}
		}
	}
}

// TestRecordLayout: the offsets and widths at which the reader decodes a
// record, and the adopting process reads the pinned version, are those of
// the C structs.
func TestRecordLayout(t *testing.T) {
	spec := trackerSpec(t)
	ev := btfStruct(t, spec, "lb_event")
	if int(ev.Size) != qrecSize {
		t.Errorf("struct lb_event: %d bytes, the reader steps %d", ev.Size, qrecSize)
	}
	for _, f := range []struct {
		member string
		off    uintptr
		width  int // what the reader decodes
	}{
		{"id", recID, 8}, {"sector", recSector, 8}, {"ts", recTs, 8}, {"gen", recGen, 8},
		{"bytes", recBytes, 4}, {"dev", recDev, 4}, {"kind", recKind, 1}, {"op", recOp, 1},
	} {
		off, size := btfMember(t, ev, f.member)
		if off != int(f.off) || size != f.width {
			t.Errorf("lb_event.%s: offset %d size %d in C, the reader decodes %d bytes at %d", f.member, off, size, f.width, f.off)
		}
	}
	if off, _ := btfMember(t, ev, "_pad"); off != recMin {
		t.Errorf("lb_event: fields end at %d in C, the reader needs %d bytes", off, recMin)
	}
	if v := spec.Maps[lbbpf.TrackerMapQring].Value; v == nil || v.TypeName() != "lb_event" {
		t.Errorf("qring holds %v, not struct lb_event", v)
	}
	st := btfStruct(t, spec, "lb_state")
	if off, size := btfMember(t, st, "version"); off != stateVersionAt || size != 8 {
		t.Errorf("lb_state.version: offset %d size %d; every version must keep it at %d, 8 bytes", off, size, stateVersionAt)
	}
}

// TestConstantsMatchC: the Go copies of the C program's constants.
func TestConstantsMatchC(t *testing.T) {
	spec := trackerSpec(t)
	src, err := os.ReadFile("../bpf/tracker.bpf.c")
	if err != nil {
		t.Fatal(err)
	}
	c := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^#define (\w+) (\d+)$|^\s+(LB_\w+) = (\d+),`).FindAllSubmatch(src, -1) {
		name, val := string(m[1])+string(m[3]), string(m[2])+string(m[4])
		n, err := strconv.Atoi(val)
		if err != nil {
			t.Fatal(err)
		}
		c[name] = n
	}
	for name, goVal := range map[string]int{
		"MAX_DISKS":              maxDisks,
		"GEN_SLOTS":              genSlots,
		"QPOS_STRIDE":            qposStride,
		"LB_EV_QUEUED":           evQueued,
		"LB_EV_COMPLETED":        evCompleted,
		"LB_EV_CUT":              evCut,
		"LB_CUT_BUMP":            cutBump,
		"LB_CUT_MARK":            cutMark,
		"LB_CUT_FLAGS":           cutFlags,
		"LB_CUT_REAP":            cutReap,
		"LB_F_COMPLETION_EVENTS": flagCompletionEvents,
		"LB_MODE_METADATA":       int(ModeMetadata),
		"LB_MODE_BITMAP":         int(ModeBitmap),
		"LB_OP_WRITE":            int(OpWrite),
		"LB_OP_DISCARD":          int(OpDiscard),
		"LB_OP_WRITE_ZEROES":     int(OpWriteZeroes),
		"LB_OP_SECURE_ERASE":     int(OpSecureErase),
	} {
		cVal, ok := c[name]
		if !ok {
			t.Errorf("%s is not in tracker.bpf.c", name)
		} else if cVal != goVal {
			t.Errorf("%s is %d in C, %d in Go", name, cVal, goVal)
		}
	}
	// The table sizes the loader overrides are those of the C defaults.
	for _, m := range []struct {
		name string
		want uint32
	}{
		{lbbpf.TrackerMapProtectedDisks, maxDisks},
		{lbbpf.TrackerMapDiskStats, maxDisks},
		{lbbpf.TrackerMapGenInflight, genSlots},
		{lbbpf.TrackerMapQpos, 2 * qposStride},
	} {
		if got := spec.Maps[m.name].MaxEntries; got != m.want {
			t.Errorf("map %s: %d entries in C, Go expects %d", m.name, got, m.want)
		}
	}
}

// TestPinNames: the pins are derived from the generated bindings; these
// are their names for this ProgramVersion. A process adopts the pins of
// an earlier process of the same version by these names, so a change of
// them (a map or hook added, removed or renamed) needs a new
// ProgramVersion, and then a new list here.
func TestPinNames(t *testing.T) {
	spec := trackerSpec(t)
	var maps lbbpf.TrackerMaps
	var gotMaps []string
	for name := range objects[*ebpf.Map](&maps) {
		gotMaps = append(gotMaps, name)
	}
	var gotLinks []string
	for _, prog := range hooks {
		gotLinks = append(gotLinks, linkPin(prog))
	}
	want := map[int][2][]string{
		// 8: the change log of the agent's crashes (gen_dirty, gen_dirty_shift).
		8: {
			{"clock", "cpu_local", "dirty", "disk_fast", "disk_stats", "events", "gen_dirty", "gen_dirty_shift",
				"gen_inflight", "inflight", "inflight_fast", "protected_disks", "qpos", "qring", "state"},
			// In attach order: completion hooks first.
			{"link_rq_complete", "link_bio_complete", "link_block_split", "link_bio_queue"},
		},
	}[ProgramVersion]
	if want[0] == nil {
		t.Fatalf("no pin names known for ProgramVersion %d: add them here", ProgramVersion)
	}
	slices.Sort(gotMaps)
	if !slices.Equal(gotMaps, want[0]) {
		t.Errorf("map pins %v; version %d pins %v", gotMaps, ProgramVersion, want[0])
	}
	if !slices.Equal(gotLinks, want[1]) {
		t.Errorf("link pins %v; version %d pins %v", gotLinks, ProgramVersion, want[1])
	}

	// Every map of the object that is not a global-variable section is
	// one of the pinned maps, and every tracing program one of the hooks.
	for name, m := range spec.Maps {
		if m.Name[0] == '.' {
			continue // .rodata, .bss: the programs' constants
		}
		if !slices.Contains(gotMaps, name) {
			t.Errorf("map %s of the object is not pinned", name)
		}
	}
	for name, p := range spec.Programs {
		switch {
		case p.Type == ebpf.Tracing && !slices.Contains(hooks, name):
			t.Errorf("tracing program %s is not attached (hooks)", name)
		case p.Type != ebpf.Tracing && name != lbbpf.TrackerProgCut:
			t.Errorf("program %s (%s) is neither a hook nor the cut", name, p.Type)
		}
	}
	for _, name := range hooks {
		if p := spec.Programs[name]; p == nil || p.Type != ebpf.Tracing {
			t.Errorf("hook %s is not a tracing program of the object", name)
		}
	}
}
