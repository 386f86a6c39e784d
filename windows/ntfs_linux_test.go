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
