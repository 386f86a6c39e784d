//go:build linux

package tracker

import (
	"slices"
	"testing"

	"github.com/cilium/ebpf"

	lbbpf "github.com/lifeboat-dr/lifeboat/bpf"
)

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
		6: {
			{"clock", "cpu_local", "dirty", "disk_fast", "disk_stats", "events", "gen_inflight",
				"inflight", "inflight_fast", "protected_disks", "qpos", "qring", "state"},
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
