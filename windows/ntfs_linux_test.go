package windows

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/tracker"
)

// These tests use real NTFS volumes made by ntfs-3g's tools. ntfs-3g does
// not write a USN journal, so the records a Windows host would write for
// each change are built by the test (the change is known); everything
// else (cluster runs, bitmap, metadata files, the bytes) is the real
// file system's.

const clusterSize = 4096

func needNTFSTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"mkntfs", "ntfscp", "ntfsinfo", "ntfscat", "ntfstruncate"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found: install ntfs-3g (scripts/install-deps.sh)", tool)
			}
			t.Skipf("%s not found (apt-get install ntfs-3g)", tool)
		}
	}
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("%s %v: %v: %s", name, args, err, ee.Stderr)
		}
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return out
}

func mkImage(t *testing.T, size int64) string {
	img := filepath.Join(t.TempDir(), "ntfs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	f.Close()
	run(t, "mkntfs", "-F", "-q", "-Q", "-c", strconv.Itoa(clusterSize), img)
	return img
}

func putFile(t *testing.T, img, name string, data []byte) {
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, "ntfscp", "-f", img, src, name)
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// attrRuns are the runlists ntfsinfo -v prints for an inode, by
// attribute ("$DATA", "$INDEX_ALLOCATION:$I30", ...). ok is false when the
// inode is not in use.
func attrRuns(t *testing.T, img string, inode uint64) (map[string][]Run, bool) {
	out, err := exec.Command("ntfsinfo", "-v", "-i", strconv.FormatUint(inode, 10), img).Output()
	if err != nil || !bytes.Contains(out, []byte("IN_USE")) {
		return nil, false
	}
	runs := map[string][]Run{}
	attr := ""
	inRuns := false
	for _, line := range strings.Split(string(out), "\n") {
		s := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(s, "Dumping attribute "):
			attr = strings.Fields(s)[2]
			inRuns = false
		case strings.HasPrefix(s, "Attribute name:"):
			attr += ":" + strings.Trim(strings.TrimSpace(strings.TrimPrefix(s, "Attribute name:")), "'")
		case strings.HasPrefix(s, "Runlist:"):
			inRuns = true
		case inRuns:
			f := strings.Fields(s)
			if len(f) != 3 {
				inRuns = false
				continue
			}
			vcn, err1 := strconv.ParseInt(f[0], 0, 64)
			lcn, err2 := strconv.ParseInt(f[1], 0, 64)
			n, err3 := strconv.ParseInt(f[2], 0, 64)
			if err1 != nil || err3 != nil {
				inRuns = false
				continue
			}
			if err2 != nil {
				lcn = -1 // a hole
			}
			runs[attr] = append(runs[attr], Run{VCN: vcn, LCN: lcn, Len: n})
		}
	}
	return runs, true
}

// imageSnap is a Snapshot over an NTFS image: the runs come from the real
// file system (ntfsinfo), passed through the RETRIEVAL_POINTERS_BUFFER
// and VOLUME_BITMAP_BUFFER parsers as Windows would hand them over.
type imageSnap struct {
	t   *testing.T
	img string
	f   *os.File
}

func openImageSnap(t *testing.T, img string) *imageSnap {
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &imageSnap{t: t, img: img, f: f}
}

func (s *imageSnap) ReadAt(p []byte, off int64) (int, error) { return s.f.ReadAt(p, off) }

func (s *imageSnap) viaParser(runs []Run) ([]Run, error) {
	if len(runs) == 0 {
		return nil, nil
	}
	got, _, err := ParseRetrievalPointers(retrievalFixture(runs[0].VCN, runs))
	return got, err
}

func (s *imageSnap) FileRuns(ref FileRef, stream string) ([]Run, error) {
	attrs, ok := attrRuns(s.t, s.img, ref.Lo&(1<<48-1))
	if !ok {
		return nil, fmt.Errorf("inode %v: %w", ref, ErrFileGone)
	}
	key := "$DATA"
	if stream == "$I30" {
		key = "$INDEX_ALLOCATION:$I30"
	}
	return s.viaParser(attrs[key])
}

func (s *imageSnap) MetadataRuns() ([]Run, error) {
	var all []Run
	for inode := uint64(0); inode < 16; inode++ {
		attrs, _ := attrRuns(s.t, s.img, inode)
		for _, runs := range attrs {
			all = append(all, runs...)
		}
	}
	return s.viaParser2(all)
}

func (s *imageSnap) viaParser2(runs []Run) ([]Run, error) {
	// runs of several files: check each through the parser on its own
	var out []Run
	for _, r := range runs {
		got, err := s.viaParser([]Run{r})
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

func (s *imageSnap) Bitmap() (*Bitmap, error) {
	bits := run(s.t, "ntfscat", s.img, "$Bitmap")
	st, err := s.f.Stat()
	if err != nil {
		return nil, err
	}
	clusters := min(int64(len(bits))*8, st.Size()/clusterSize)
	return ParseVolumeBitmap(bitmapFixture(0, clusters, bits))
}

func readRanges(t *testing.T, img string, rs []tracker.Range) []byte {
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []byte
	for _, r := range rs {
		b := make([]byte, r.Len)
		if _, err := f.ReadAt(b, r.Off); err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

func inodeOf(t *testing.T, img, name string) uint64 {
	for _, line := range strings.Split(string(run(t, "ntfsls", "-i", img)), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[1] == name {
			n, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("%s not in %s", name, img)
	return 0
}

// TestRetrievalPointersMatchNtfscat: the byte ranges the tracker maps for a
// file, read from the image, are the file's content as ntfscat reads it,
// for whole files and for ranges within them, on fragmented files too.
func TestRetrievalPointersMatchNtfscat(t *testing.T) {
	needNTFSTools(t)
	img := mkImage(t, 16<<20)
	// fill the volume, then free every other file: a file larger than the
	// free space at the end must be split over the holes
	for i := range 40 {
		putFile(t, img, fmt.Sprintf("x%d", i), randBytes(256<<10))
	}
	for i := 0; i < 40; i += 2 {
		run(t, "ntfstruncate", img, strconv.FormatUint(inodeOf(t, img, fmt.Sprintf("x%d", i)), 10), "0x80", "0")
	}
	files := map[string][]byte{"frag.bin": randBytes(4<<20 + 123), "small.bin": randBytes(5000)}
	for n, d := range files {
		putFile(t, img, n, d)
	}
	snap := openImageSnap(t, img)
	l := Layout{Size: 16 << 20, ClusterSize: clusterSize}
	fragmented := false
	for name, data := range files {
		runs, err := snap.FileRuns(FileRef{Lo: inodeOf(t, img, name)}, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) > 1 {
			fragmented = true
		}
		got := readRanges(t, img, l.RunRanges(runs))[:len(data)]
		if cat := run(t, "ntfscat", img, name); !bytes.Equal(cat, data) || !bytes.Equal(got, cat) {
			t.Fatalf("%s: mapped bytes differ from ntfscat's (%d runs)", name, len(runs))
		}
		// a range of the file, cluster aligned, maps to those bytes
		off := int64(len(data)) / 3 / clusterSize * clusterSize
		n := int64(len(data)) - off - 100
		part := readRanges(t, img, l.FileRanges(runs, []FileRange{{Off: off, Len: n}}))
		if !bytes.Equal(part[:n], data[off:off+n]) {
			t.Fatalf("%s: range [%d,+%d) mapped wrong", name, off, n)
		}
	}
	if !fragmented {
		t.Fatal("no file came out fragmented: the test does not cover multi-run files")
	}
}

func copyFile(t *testing.T, src, dst string) {
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func rawWrite(t *testing.T, img string, off int64, data []byte) {
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
}

// diffBlocks returns the 4 KiB blocks that differ between two images.
func diffBlocks(t *testing.T, a, b string) []int64 {
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for off := 0; off < len(x); off += 4096 {
		if !bytes.Equal(x[off:off+4096], y[off:off+4096]) {
			out = append(out, int64(off))
		}
	}
	return out
}

// TestCutAndSweepCoverImageDiff runs the tracker's cut over a volume
// before and after a set of changes (files created, overwritten in place
// with range tracking, rewritten whole, truncated, one moved to other
// clusters with no data record, one raw write behind the file system),
// then one sweep: together they cover every block that differs between
// the two images, and the sweep alone catches the raw write.
func TestCutAndSweepCoverImageDiff(t *testing.T) {
	needNTFSTools(t)
	const size = 32 << 20
	before := mkImage(t, size)
	putFile(t, before, "inplace.db", randBytes(1<<20))
	putFile(t, before, "rewrite.bin", randBytes(300000))
	putFile(t, before, "trunc.bin", randBytes(400000))
	putFile(t, before, "moved.bin", randBytes(500000))
	putFile(t, before, "victim.bin", randBytes(600000))
	putFile(t, before, "openlog.txt", randBytes(200000))
	l := Layout{Size: size, ClusterSize: clusterSize}

	// The state after the cut of "before" (the baseline), and a full
	// sweep pass over it.
	st := &VolumeState{JournalID: 1}
	if _, err := Cut(st, l, nil, 100, openImageSnap(t, before)); err != nil {
		t.Fatal(err)
	}
	var sw Sweep
	bm0 := st.Bitmap
	if _, err := sw.Step(openImageSnap(t, before), l, bm0, size); err != nil {
		t.Fatal(err)
	}

	after := filepath.Join(t.TempDir(), "after.img")
	copyFile(t, before, after)
	ino := func(n string) FileRef { return FileRef{Lo: inodeOf(t, after, n)} }
	runsOf := func(n string) []Run {
		attrs, _ := attrRuns(t, after, ino(n).Lo)
		return attrs["$DATA"]
	}
	var recs []Record
	usn := int64(100)
	rec := func(major uint16, f FileRef, reason uint32, ranges ...FileRange) {
		recs = append(recs, Record{Major: major, File: f, Parent: FileRef{Lo: 5}, USN: usn, Reason: reason, Ranges: ranges})
		usn += 96
	}

	// 1. in-place overwrite of two ranges of a big file, range tracking on:
	//    V3 DATA_OVERWRITE, then V4 records with the ranges, then CLOSE.
	db := runsOf("inplace.db")
	for _, fr := range []FileRange{{Off: 64 << 10, Len: 8192}, {Off: 900 << 10, Len: 100}} {
		rg := l.FileRanges(db, []FileRange{fr})
		rawWrite(t, after, rg[0].Off+fr.Off%clusterSize, randBytes(int(fr.Len)))
	}
	rec(3, ino("inplace.db"), ReasonDataOverwrite)
	rec(4, ino("inplace.db"), ReasonDataOverwrite, FileRange{Off: 64 << 10, Len: 8192}, FileRange{Off: 900 << 10, Len: 100})
	rec(3, ino("inplace.db"), ReasonDataOverwrite|ReasonClose)

	// 2. a file rewritten whole (no range tracking below its threshold)
	putFile(t, after, "rewrite.bin", randBytes(300000))
	rec(3, ino("rewrite.bin"), ReasonDataOverwrite|ReasonDataTruncation|ReasonDataExtend|ReasonClose)

	// 3. a new file
	putFile(t, after, "new.bin", randBytes(700000))
	rec(3, ino("new.bin"), ReasonFileCreate|ReasonDataExtend|ReasonClose)

	// 4. a truncated file
	run(t, "ntfstruncate", after, strconv.FormatUint(ino("trunc.bin").Lo, 10), "0x80", "100000")
	rec(3, ino("trunc.bin"), ReasonDataTruncation|ReasonClose)

	// 5. a file moved to other clusters, as a defragmenter moves it: the
	//    same content elsewhere, and no data record (FSCTL_MOVE_FILE writes
	//    none). Its clusters are freed, a filler takes them, the content
	//    is written again after it.
	content := run(t, "ntfscat", after, "moved.bin")
	oldRuns := runsOf("moved.bin")
	run(t, "ntfstruncate", after, strconv.FormatUint(ino("moved.bin").Lo, 10), "0x80", "0")
	putFile(t, after, "filler.bin", randBytes(len(content)))
	rec(3, ino("filler.bin"), ReasonFileCreate|ReasonDataExtend|ReasonClose)
	putFile(t, after, "moved.bin", content)
	if newRuns := runsOf("moved.bin"); len(newRuns) == 0 || newRuns[0].LCN == oldRuns[0].LCN {
		t.Fatalf("moved.bin did not move: %v -> %v", oldRuns, newRuns)
	}

	// 6. a file being written and still open: its first data record, no
	//    CLOSE yet (nothing more comes until it closes).
	ol := runsOf("openlog.txt")
	rg := l.FileRanges(ol, []FileRange{{Off: 0, Len: 4096}})
	rawWrite(t, after, rg[0].Off, randBytes(4096))
	rec(3, ino("openlog.txt"), ReasonDataExtend)

	// 7. a raw write behind the file system, into an unchanged file
	victim := l.RunRanges(runsOf("victim.bin"))[0]
	rawOff := victim.Off + 3*clusterSize
	rawWrite(t, after, rawOff, randBytes(4096))

	snap := openImageSnap(t, after)
	res, err := Cut(st, l, recs, usn, snap)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cut: %d files (%d whole), %d directories, %d of %d hashed blocks changed, %d new clusters, %d ranges",
		res.Files, res.WholeFiles, res.Directories, res.HashChanged, res.HashedBlocks, res.NewClusters, len(res.Dirty))
	var cut tracker.Set
	for _, r := range res.Dirty {
		cut.Add(r.Off, r.Len)
	}
	if !st.Open[ino("openlog.txt")] || len(st.Open) != 1 {
		t.Fatalf("open files %v, want openlog.txt only", st.Open)
	}
	if cut.Overlaps(rawOff, 4096) {
		t.Fatal("the cut reports the raw write: the test no longer shows what only the sweep catches")
	}
	sw.Reported(res.Dirty)
	swept, err := sw.Step(snap, l, st.Bitmap, size)
	if err != nil {
		t.Fatal(err)
	}
	var sweptSet tracker.Set
	for _, r := range swept {
		sweptSet.Add(r.Off, r.Len)
	}
	if !sweptSet.Covers(rawOff, 4096) {
		t.Fatalf("sweep: %d misses, %v; want the raw write at %d", sw.Misses, swept, rawOff)
	}
	t.Logf("sweep: %d blocks dirty, %d misses", len(swept), sw.Misses)
	all := cut
	for _, r := range swept {
		all.Add(r.Off, r.Len)
	}
	diff := diffBlocks(t, before, after)
	var missed []int64
	for _, off := range diff {
		if !all.Covers(off, 4096) {
			missed = append(missed, off)
		}
	}
	if len(missed) > 0 {
		t.Fatalf("%d of %d changed blocks not covered, first at %#x", len(missed), len(diff), missed[0])
	}
	if cut.Bytes() > size/4 {
		t.Fatalf("the cut reports %d bytes of a %d-byte volume: not a delta", cut.Bytes(), size)
	}
	t.Logf("%d changed 4 KiB blocks, all covered; cut reports %d KiB, sweep %d KiB", len(diff), cut.Bytes()>>10, (all.Bytes()-cut.Bytes())>>10)

	// A second cut with no change reports only what the open file may
	// have changed (hashed: nothing) and nothing else.
	res, err = Cut(st, l, nil, usn, snap)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Dirty) != 0 {
		t.Fatalf("a cut with no change reports %v", res.Dirty)
	}
}
