package azblob

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/store"
)

const testMachine = "m1"

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// seg is a test segment: its records, for a disk of size bytes.
type seg struct {
	size int64
	recs []hrlfmt.Record
}

func writeSeg(t *testing.T, dir, disk string, seq uint64, s seg) string {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.hrl", disk, seq))
	w, err := hrlfmt.CreateSegment(path, hrlfmt.Header{Machine: testMachine, Disk: disk, DiskSize: s.size, Seq: seq, Created: t0})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range s.recs {
		switch r.Type {
		case hrlfmt.RecData:
			err = w.WriteData(r.Offset, r.Gen, r.Data)
		case hrlfmt.RecZero:
			err = w.WriteZero(r.Offset, r.Length, r.Gen, hrlfmt.ZeroDiscarded)
		case hrlfmt.RecCut:
			err = w.WriteCut(*r.Cut)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// plan makes n segments of random writes (aligned and not, up to 5 MiB so
// that Put Page splits), zeros and cuts for a disk that grows once.
func plan(rng *rand.Rand, n int, cuts *[]string) []seg {
	size := int64(9<<20 + 1000) // not a multiple of 1 MiB nor of 512
	var segs []seg
	for i := range n {
		if i == n/2 {
			size += 3 << 20
		}
		s := seg{size: size}
		for range 6 {
			var off, l int64
			if rng.IntN(2) == 0 {
				l = int64(1+rng.IntN(8)) * 4096
				off = rng.Int64N((size-l)/4096) * 4096
			} else {
				l = 1 + rng.Int64N(3000)
				off = rng.Int64N(size - l)
			}
			if rng.IntN(5) == 0 {
				s.recs = append(s.recs, hrlfmt.Record{Type: hrlfmt.RecZero, Offset: off, Length: l, Gen: 1})
				continue
			}
			d := make([]byte, l)
			for k := range d {
				d[k] = byte(rng.IntN(256))
			}
			if rng.IntN(2) == 0 { // compressible: stored lz4, after raw ones
				for k := range d {
					d[k] = byte(k / 512)
				}
			}
			s.recs = append(s.recs, hrlfmt.Record{Type: hrlfmt.RecData, Offset: off, Length: l, Gen: 1, Data: d})
		}
		if i == 1 {
			big := make([]byte, 5<<20)
			for k := range big {
				big[k] = byte(k * 7)
			}
			s.recs = append(s.recs, hrlfmt.Record{Type: hrlfmt.RecData, Offset: 512 * 3, Length: int64(len(big)), Gen: 1, Data: big})
		}
		id := fmt.Sprintf("p%d", i)
		c := hrlfmt.Cut{Kind: hrlfmt.CutCrash, Gen: 1, Time: t0.Add(time.Duration(i) * time.Second), PointID: id}
		s.recs = append(s.recs, hrlfmt.Record{Type: hrlfmt.RecCut, Cut: &c})
		if cuts != nil {
			*cuts = append(*cuts, id)
		}
		segs = append(segs, s)
	}
	return segs
}

// TestApplyMaterializeMatchesLocal applies the same segments to the local
// store and to Azurite: the points, the hashes of the replica and every
// point's image are the same; the replica is a fixed VHD of the disk.
func TestApplyMaterializeMatchesLocal(t *testing.T) {
	az := startAzurite(t)
	ctx := context.Background()
	bs := az.open(t, az.container(t, "match"), "ps1")
	ls, err := store.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	segDir := t.TempDir()
	disks := []string{"sda", "sdb"}
	var ids []string
	plans := map[string][]seg{"sda": plan(rng, 4, &ids), "sdb": plan(rng, 4, nil)}
	for _, st := range []store.Store{ls, bs} {
		if err := st.SetDisks(ctx, testMachine, []store.DiskInfo{{Name: "sda"}, {Name: "sdb"}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range disks {
		for i, s := range plans[d] {
			p := writeSeg(t, segDir, d, uint64(i), s)
			for _, st := range []store.Store{ls, bs} {
				if err := st.Apply(ctx, testMachine, d, uint64(i), p); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	lp, err := ls.Points(ctx, testMachine)
	if err != nil {
		t.Fatal(err)
	}
	bp, err := bs.Points(ctx, testMachine)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(lp) != fmt.Sprint(bp) || len(bp) != len(ids) {
		t.Fatalf("points: local %v, blob %v", lp, bp)
	}
	for _, d := range disks {
		size := plans[d][len(plans[d])-1].size
		lh, err := ls.Hashes(ctx, testMachine, d, 0, size+4096, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		bh, err := bs.Hashes(ctx, testMachine, d, 0, size+4096, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(lh) != fmt.Sprint(bh) {
			t.Fatalf("disk %s: replica hashes differ", d)
		}
		// The page blob is a fixed VHD of the disk's virtual size.
		pb, st, err := bs.replica(ctx, testMachine, d)
		if err != nil {
			t.Fatal(err)
		}
		if st.size != size || !st.applied || st.seq != 3 {
			t.Fatalf("disk %s: replica state %+v, want size %d seq 3", d, st, size)
		}
		foot := make([]byte, FooterSize)
		if err := readRange(ctx, pb.BlobClient(), VirtualSize(size), foot); err != nil {
			t.Fatal(err)
		}
		if vs, err := ParseFooter(foot); err != nil || vs != VirtualSize(size) {
			t.Fatalf("disk %s: footer: size %d, %v; want %d", d, vs, err, VirtualSize(size))
		}
	}
	for _, id := range ids {
		lo, bo := t.TempDir(), t.TempDir()
		if _, err := ls.Materialize(ctx, testMachine, id, lo); err != nil {
			t.Fatal(err)
		}
		imgs, err := bs.Materialize(ctx, testMachine, id, bo)
		if err != nil {
			t.Fatal(err)
		}
		if len(imgs) != 2 {
			t.Fatalf("point %s: %d images", id, len(imgs))
		}
		for _, d := range disks {
			a, _ := os.ReadFile(filepath.Join(lo, d+".img"))
			b, err := os.ReadFile(filepath.Join(bo, d+".img"))
			if err != nil || len(a) == 0 || !bytes.Equal(a, b) {
				t.Fatalf("point %s disk %s: blob image (%d bytes, %v) differs from local (%d bytes)", id, d, len(b), err, len(a))
			}
		}
	}
	if _, err := bs.Materialize(ctx, testMachine, "nope", t.TempDir()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown point: %v", err)
	}
	ms, err := bs.Machines(ctx)
	if err != nil || fmt.Sprint(ms) != "["+testMachine+"]" {
		t.Fatalf("machines: %v %v", ms, err)
	}
}

// TestApplyIdempotentAfterCrash: a segment applied again is a no-op; an
// apply interrupted before its marker moved completes; a different
// segment under the same number is refused; a gap is an error.
func TestApplyIdempotentAfterCrash(t *testing.T) {
	az := startAzurite(t)
	ctx := context.Background()
	bs := az.open(t, az.container(t, "crash"), "ps1")
	rng := rand.New(rand.NewPCG(3, 4))
	segs := plan(rng, 3, nil)
	dir := t.TempDir()
	var paths []string
	for i, s := range segs {
		paths = append(paths, writeSeg(t, dir, "sda", uint64(i), s))
	}
	if err := bs.Apply(ctx, testMachine, "sda", 2, paths[2]); !errors.Is(err, store.ErrOutOfOrder) {
		t.Fatalf("gap: %v", err)
	}
	for i, p := range paths[:2] {
		if err := bs.Apply(ctx, testMachine, "sda", uint64(i), p); err != nil {
			t.Fatal(err)
		}
	}
	want, err := bs.Hashes(ctx, testMachine, "sda", 0, 16<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	// The crash: segment 1's records, index and cuts are in, the marker
	// still says 0.
	pb, _, _ := bs.replica(ctx, testMachine, "sda")
	if _, err := pb.SetMetadata(ctx, map[string]*string{metaApplied: to("0"), metaSize: to(fmt.Sprint(segs[0].size))}, nil); err != nil {
		t.Fatal(err)
	}
	if pts, _ := bs.Points(ctx, testMachine); len(pts) != 1 {
		t.Fatalf("points after the crash: %v, want p0 only", pts)
	}
	other := seg{size: segs[1].size, recs: []hrlfmt.Record{{Type: hrlfmt.RecData, Offset: 0, Length: 512, Data: make([]byte, 512)}}}
	if err := bs.Apply(ctx, testMachine, "sda", 1, writeSeg(t, t.TempDir(), "sda", 1, other)); err == nil || !strings.Contains(err.Error(), "differs") {
		t.Fatalf("another segment 1: %v", err)
	}
	if err := bs.Apply(ctx, testMachine, "sda", 1, paths[1]); err != nil {
		t.Fatal(err)
	}
	if err := bs.Apply(ctx, testMachine, "sda", 1, paths[1]); err != nil {
		t.Fatal(err)
	}
	got, err := bs.Hashes(ctx, testMachine, "sda", 0, 16<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatal("replica differs after the apply was completed")
	}
	if pts, _ := bs.Points(ctx, testMachine); len(pts) != 2 {
		t.Fatalf("points: %v, want p0 p1", pts)
	}
}

// TestLease: a second process server sharing the account cannot apply a
// machine whose lease the first holds; once released it can, and the
// first then cannot.
func TestLease(t *testing.T) {
	az := startAzurite(t)
	ctx := context.Background()
	loc := az.container(t, "lease")
	a := az.open(t, loc, "ps1")
	b := az.open(t, loc, "ps2")
	segs := plan(rand.New(rand.NewPCG(5, 6)), 2, nil)
	dir := t.TempDir()
	p0, p1 := writeSeg(t, dir, "sda", 0, segs[0]), writeSeg(t, dir, "sda", 1, segs[1])
	if err := a.Apply(ctx, testMachine, "sda", 0, p0); err != nil {
		t.Fatal(err)
	}
	err := b.Apply(ctx, testMachine, "sda", 1, p1)
	var le *LeaseError
	if !errors.As(err, &le) || !errors.Is(err, ErrLeaseHeld) || le.Hint() == "" {
		t.Fatalf("second server applied a leased machine: %v", err)
	}
	if d, _ := b.Disks(ctx, testMachine); len(d) != 1 || d[0].AppliedSeq != 0 {
		t.Fatalf("disks after the refused apply: %+v", d)
	}
	// The same owner after a restart takes its lease back at once.
	a2 := az.open(t, loc, "ps1")
	if err := a2.SetDisks(ctx, testMachine, []store.DiskInfo{{Name: "sda"}}); err != nil {
		t.Fatalf("same owner again: %v", err)
	}
	a.Close()
	a2.Close()
	if err := b.Apply(ctx, testMachine, "sda", 1, p1); err != nil {
		t.Fatalf("after release: %v", err)
	}
	a3 := az.open(t, loc, "ps1")
	if err := a3.Apply(ctx, testMachine, "sda", 2, p1); !errors.As(err, &le) {
		t.Fatalf("first server after losing the lease: %v", err)
	}
	// A lease lost while held: b's is broken and a3 takes it; b's next
	// apply stops at once, not at its next renewal.
	lc, err := lease.NewBlobClient(b.cc.NewBlobClient(machinePrefix(testMachine)+leaseBlob), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lc.BreakLease(ctx, &lease.BlobBreakOptions{BreakPeriod: to(int32(0))}); err != nil {
		t.Fatal(err)
	}
	if err := a3.SetDisks(ctx, testMachine, []store.DiskInfo{{Name: "sda"}}); err != nil {
		t.Fatalf("taking the broken lease: %v", err)
	}
	segs2 := plan(rand.New(rand.NewPCG(5, 6)), 3, nil)
	if err := b.Apply(ctx, testMachine, "sda", 2, writeSeg(t, dir, "sda", 2, segs2[2])); !errors.As(err, &le) || b.LeaseHeld(testMachine) {
		t.Fatalf("server whose lease was taken applied: %v", err)
	}
}

// TestETagConflict: metadata is replaced only on the ETag read; a second
// writer's newer version is never overwritten.
func TestETagConflict(t *testing.T) {
	az := startAzurite(t)
	ctx := context.Background()
	s := az.open(t, az.container(t, "etag"), "ps1")
	e1, err := putJSON(ctx, s.cc, "x.json", map[string]int{"v": 1}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := putJSON(ctx, s.cc, "x.json", map[string]int{"v": 9}, ""); !errors.Is(err, ErrConflict) {
		t.Fatalf("create over an existing blob: %v", err)
	}
	if _, err := putJSON(ctx, s.cc, "x.json", map[string]int{"v": 2}, e1); err != nil {
		t.Fatal(err)
	}
	if _, err := putJSON(ctx, s.cc, "x.json", map[string]int{"v": 3}, e1); !errors.Is(err, ErrConflict) {
		t.Fatalf("replace with a stale ETag: %v", err)
	}
	var v map[string]int
	if _, _, err := getJSON(ctx, s.cc, "x.json", &v); err != nil || v["v"] != 2 {
		t.Fatalf("got %v %v, want v=2", v, err)
	}
}

// TestPageAlignmentRefused: the client refuses a Put Page that Azure
// would, before sending it (Azurite would accept it).
func TestPageAlignmentRefused(t *testing.T) {
	az := startAzurite(t)
	ctx := context.Background()
	s := az.open(t, az.container(t, "align"), "ps1")
	pb := s.cc.NewPageBlobClient("p.vhd")
	if _, err := pb.Create(ctx, 16<<20, nil); err != nil {
		t.Fatal(err)
	}
	w := &pages{pb: pb}
	for _, c := range []struct{ off, n int64 }{{1, 512}, {0, 100}, {512, 4<<20 + 512}, {0, 0}} {
		if err := w.putOne(ctx, c.off, make([]byte, c.n)); !errors.Is(err, ErrUnaligned) {
			t.Errorf("put [%d, +%d): %v, want ErrUnaligned", c.off, c.n, err)
		}
	}
	if err := w.clear(ctx, 3, 512); !errors.Is(err, ErrUnaligned) {
		t.Errorf("clear unaligned: %v", err)
	}
	if w.puts != 0 || w.clears != 0 {
		t.Fatalf("%d puts, %d clears sent", w.puts, w.clears)
	}
	// An unaligned write goes out as aligned pages of at most 4 MiB.
	data := bytes.Repeat([]byte{7}, 9<<20)
	if err := w.write(ctx, 100, data); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 9<<20+200)
	if err := w.read(ctx, 0, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[100:100+len(data)], data) || got[99] != 0 || got[100+len(data)] != 0 {
		t.Fatal("unaligned write read back wrong")
	}
}

// TestFooter checks the footer against the VHD specification's fields and
// lets qemu-img read a fixed VHD made with it.
func TestFooter(t *testing.T) {
	id := diskID("m", "d")
	vs := VirtualSize(10<<20 + 1)
	if vs != 11<<20 {
		t.Fatalf("virtual size %d", vs)
	}
	f, err := Footer(vs, id, time.Date(2000, 1, 1, 0, 1, 40, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	be := binary.BigEndian
	if string(f[:8]) != "conectix" || be.Uint32(f[8:]) != 2 || be.Uint32(f[12:]) != 0x10000 ||
		be.Uint64(f[16:]) != ^uint64(0) || be.Uint32(f[24:]) != 100 || string(f[36:40]) != "Wi2k" ||
		be.Uint64(f[40:]) != uint64(vs) || be.Uint64(f[48:]) != uint64(vs) || be.Uint32(f[60:]) != 2 ||
		!bytes.Equal(f[68:84], id[:]) || f[84] != 0 || !bytes.Equal(f[85:], make([]byte, 427)) {
		t.Fatalf("footer fields wrong: %x", f[:90])
	}
	var sum uint32
	for i, b := range f {
		if i < 64 || i >= 68 {
			sum += uint32(b)
		}
	}
	if be.Uint32(f[64:]) != ^sum {
		t.Fatal("checksum is not the one's complement of the byte sum")
	}
	// Geometry of the specification's algorithm: 11 MiB = 22528 sectors
	// gives 17 sectors per track, 4 heads, 331 cylinders.
	if c, h, s := be.Uint16(f[56:]), f[58], f[59]; c != 331 || h != 4 || s != 17 {
		t.Fatalf("CHS %d/%d/%d, want 331/4/17", c, h, s)
	}
	if _, err := ParseFooter(f); err != nil {
		t.Fatal(err)
	}
	f[100] ^= 1
	if _, err := ParseFooter(f); err == nil {
		t.Fatal("a damaged footer parsed")
	}
	f[100] ^= 1

	qemu, err := exec.LookPath("qemu-img")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("qemu-img not found (qemu-utils, scripts/install-deps.sh): %v", err)
		}
		t.Skip("qemu-img not installed")
	}
	path := filepath.Join(t.TempDir(), "d.vhd")
	img := make([]byte, vs+FooterSize)
	copy(img[4096:], "lifeboat")
	copy(img[vs:], f)
	if err := os.WriteFile(path, img, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(qemu, "info", "-f", "vpc", "--output=json", path).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img info: %v: %s", err, out)
	}
	if !strings.Contains(string(out), `"format": "vpc"`) || !strings.Contains(string(out), fmt.Sprintf(`"virtual-size": %d`, vs)) {
		t.Fatalf("qemu-img info does not read a %d-byte VHD: %s", vs, out)
	}
	raw := filepath.Join(t.TempDir(), "d.raw")
	if out, err := exec.Command(qemu, "convert", "-f", "vpc", "-O", "raw", path, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, out)
	}
	if b, _ := os.ReadFile(raw); !bytes.Equal(b, img[:vs]) {
		t.Fatal("qemu reads other data from the VHD")
	}
}
