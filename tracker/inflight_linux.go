//go:build linux

package tracker

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"

	lbbpf "github.com/lifeboat-dr/lifeboat/bpf"
)

// InFlightWrites lists the writes of generations <= gen still in the
// kernel program's in-flight tables, oldest generation first: what a cut
// waits for. It reads the tables while the program runs, so an entry may
// be gone by the time it is returned; it is meant for diagnosis.
func (t *Linux) InFlightWrites(gen uint64) ([]InFlightWrite, error) {
	var out []InFlightWrite
	add := func(v *lbbpf.TrackerLbInflight, spilled bool) {
		if v.Key == 0 || v.Gen > gen && v.Root == 0 {
			return
		}
		major, minor := kdevSplit(v.Dev)
		out = append(out, InFlightWrite{
			Dev: fmt.Sprintf("%d:%d", major, minor), Sector: v.Sector, Bytes: v.Bytes,
			Op: v.Op, Gen: v.Gen, Pending: v.Pending, Split: v.Root != 0, Spilled: spilled, Key: v.Key,
			ID: v.Id, dev: v.Dev, root: v.Root,
		})
	}
	var (
		idx uint32
		v   lbbpf.TrackerLbInflight
	)
	it := t.maps.InflightFast.Iterate()
	for it.Next(&idx, &v) {
		add(&v, false)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read in-flight table: %w", err)
	}
	var key uint64
	hit := t.maps.Inflight.Iterate()
	for hit.Next(&key, &v) {
		add(&v, true)
	}
	if err := hit.Err(); err != nil && !errors.Is(err, ebpf.ErrIterationAborted) {
		return nil, fmt.Errorf("read in-flight overflow table: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Gen < out[j].Gen })
	return out, nil
}

// reapSamples and reapInterval: how often, and how far apart, a disk
// must show no request in flight before entries of it are reaped.
const (
	reapSamples  = 3
	reapInterval = 100 * time.Millisecond
)

// ReapLost forgets the in-flight entries of generations <= gen whose
// completion the kernel program never saw. The caller has waited for
// them: every one was queued before cut gen+1, and is reaped only if it
// is still there, with the same request id, after its disk's block layer
// showed no request at all in flight (reads or writes,
// /sys/dev/block/M:m/inflight) at reapSamples samples reapInterval apart.
// A request still waiting for a tag or in a plug would not sit that long
// with nothing in flight, so such an entry is stale. Each is forgotten by
// the cut program with the compare-and-swap a completion uses, so a
// completion racing with the reap is counted once. It returns the
// entries forgotten.
//
// A split piece has no device of its own (it is its root's): the roots'
// disks decide, and the pieces of a root reaped are forgotten with it, or
// they would keep their fast-table slots. (Before, a lost split write
// could never be reaped: the piece's device 0:0 has no sysfs count, and
// the error ended the reap.)
func (t *Linux) ReapLost(gen uint64) ([]InFlightWrite, error) {
	seen, err := t.InFlightWrites(gen)
	if err != nil || len(seen) == 0 {
		return nil, err
	}
	idle := map[uint32]bool{}
	for _, w := range seen {
		if !w.Split {
			idle[w.dev] = true
		}
	}
	for i := range reapSamples {
		if i > 0 {
			time.Sleep(reapInterval)
		}
		for dev := range idle {
			n, err := t.devInFlight(dev)
			if err != nil {
				return nil, err
			}
			if n != 0 {
				delete(idle, dev)
			}
		}
	}
	now, err := t.InFlightWrites(gen)
	if err != nil {
		return nil, err
	}
	type ident struct{ key, id uint64 }
	still := map[ident]bool{}
	for _, w := range now {
		still[ident{w.Key, w.ID}] = true
	}
	var reaped []InFlightWrite
	gone := map[uint64]bool{} // roots reaped, by key
	reap := func(w InFlightWrite) (bool, error) {
		args := lbbpf.TrackerLbCutArgs{Op: cutReap, Key: w.Key, Id: w.ID}
		ret, err := t.cut.Run(&ebpf.RunOptions{Context: &args})
		if err != nil {
			return false, fmt.Errorf("run cut program: %w", err)
		}
		return ret == 0, nil
	}
	for _, w := range seen {
		if w.Split || !idle[w.dev] || !still[ident{w.Key, w.ID}] {
			continue
		}
		ok, err := reap(w)
		if err != nil {
			return reaped, err
		}
		if ok {
			reaped = append(reaped, w)
			gone[w.Key] = true
		}
	}
	for _, w := range seen {
		if !w.Split || !gone[w.root] || !still[ident{w.Key, w.ID}] {
			continue
		}
		ok, err := reap(w)
		if err != nil {
			return reaped, err
		}
		if ok {
			reaped = append(reaped, w)
		}
	}
	return reaped, nil
}

// devInFlight returns the requests the block layer counts in flight on a
// disk (reads plus writes).
func (t *Linux) devInFlight(dev uint32) (int64, error) {
	if t.inFlightOf != nil {
		return t.inFlightOf(dev)
	}
	major, minor := kdevSplit(dev)
	b, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/inflight", major, minor))
	if err != nil {
		return 0, fmt.Errorf("read requests in flight: %w", err)
	}
	var sum int64
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read requests in flight of %d:%d: %q", major, minor, b)
		}
		sum += n
	}
	return sum, nil
}
