//go:build linux

package recovery

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// sfdiskImage makes a sparse image of size bytes with the partition table
// that script (sfdisk's input) describes, and returns its path.
func sfdiskImage(t *testing.T, size int64, script string) string {
	t.Helper()
	testenv.RequireCommand(t, "sfdisk")
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sfdisk", "-q", "--no-reread", "--no-tell-kernel", path)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	return path
}

// sfdiskTable is what 'sfdisk --json' says of an image.
type sfdiskTable struct {
	PartitionTable struct {
		Label      string `json:"label"`
		SectorSize int    `json:"sectorsize"`
		Partitions []struct {
			Node  string `json:"node"`
			Start int64  `json:"start"`
			Size  int64  `json:"size"`
			Type  string `json:"type"`
			Name  string `json:"name"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

func readWithSfdisk(t *testing.T, path string) sfdiskTable {
	t.Helper()
	out, err := exec.Command("sfdisk", "--json", path).Output()
	if err != nil {
		t.Fatalf("sfdisk --json: %v", err)
	}
	var st sfdiskTable
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func readTableFile(t *testing.T, path string) (Table, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	return ReadTable(f, fi.Size())
}

// TestReadTableAgreesWithSfdisk: on tables sfdisk writes (GPT; MBR with an
// extended partition and logical ones), ReadTable finds what sfdisk reads.
func TestReadTableAgreesWithSfdisk(t *testing.T) {
	cases := []struct {
		name, script, scheme string
	}{
		{"gpt", "label: gpt\nsize=4M, type=L, name=root\n,4M,S\n,2M,U\n,\n", SchemeGPT},
		{"mbr", "label: dos\n,2M,L\n,,E\n,3M,L\n,2M,S\n,1M,8e\n", SchemeMBR},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := sfdiskImage(t, 32<<20, c.script)
			tab, err := readTableFile(t, path)
			if err != nil {
				t.Fatal(err)
			}
			st := readWithSfdisk(t, path)
			if tab.Scheme != c.scheme || tab.SectorSize != st.PartitionTable.SectorSize {
				t.Fatalf("table %+v, sfdisk says %s/%d", tab, st.PartitionTable.Label, st.PartitionTable.SectorSize)
			}
			var want []Partition
			for _, p := range st.PartitionTable.Partitions {
				num := p.Node[strings.LastIndexAny(p.Node, "img")+1:]
				if c.scheme == SchemeMBR && (p.Type == "5" || p.Type == "f" || p.Type == "85") {
					continue // the extended container itself
				}
				want = append(want, Partition{Start: p.Start * 512, Size: p.Size * 512, Type: p.Type, Name: p.Name, Number: atoi(t, num)})
			}
			if len(tab.Partitions) != len(want) {
				t.Fatalf("%d partitions, sfdisk has %d: %+v", len(tab.Partitions), len(want), tab.Partitions)
			}
			for i, p := range tab.Partitions {
				w := want[i]
				typ := p.Type
				if c.scheme == SchemeMBR {
					typ = strings.TrimLeft(strings.TrimPrefix(p.Type, "0x"), "0")
				}
				if p.Number != w.Number || p.Start != w.Start || p.Size != w.Size || !strings.EqualFold(typ, w.Type) || p.Name != w.Name {
					t.Errorf("partition %d: %+v, sfdisk: %+v", i, p, w)
				}
			}
			if c.scheme == SchemeGPT && (tab.Partitions[0].TypeName != "linux" || tab.Partitions[1].TypeName != "swap") {
				t.Errorf("type names: %+v", tab.Partitions)
			}
		})
	}
}

func atoi(t *testing.T, s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("bad number %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// TestReadTableGPTBackup: a GPT whose primary header is damaged is read
// from its backup; with both damaged, ReadTable says so (the protective
// MBR proves a GPT was there).
func TestReadTableGPTBackup(t *testing.T) {
	path := sfdiskImage(t, 16<<20, "label: gpt\n,4M,L\n,\n")
	good, err := readTableFile(t, path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteAt([]byte("garbage!"), 512+24) // primary header's my-lba: crc breaks
	tab, err := readTableFile(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if !tab.Backup || len(tab.Partitions) != 2 || tab.Partitions[1] != good.Partitions[1] {
		t.Errorf("from backup: %+v, want %+v", tab, good)
	}
	f.WriteAt([]byte("garbage!"), 16<<20-512+24)
	_, err = readTableFile(t, path)
	if err == nil || errors.Is(err, ErrNoTable) || !strings.Contains(err.Error(), "crc") {
		t.Errorf("both headers damaged: %v", err)
	}
}

// gptImage builds a GPT by hand with sector size ss: entries are
// (first lba, last lba) of Linux filesystem partitions.
func gptImage(ss int, sectors int64, parts [][2]uint64) []byte {
	img := make([]byte, sectors*int64(ss))
	le := binary.LittleEndian
	mbr := img[:512]
	mbr[446+4] = 0xee
	le.PutUint32(mbr[446+8:], 1)
	le.PutUint32(mbr[446+12:], uint32(sectors-1))
	mbr[510], mbr[511] = 0x55, 0xaa
	const n, esize = 128, 128
	ents := make([]byte, n*esize)
	linux := []byte{0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4}
	for i, p := range parts {
		e := ents[i*esize:]
		copy(e, linux)
		e[16] = byte(i + 1) // unique guid
		le.PutUint64(e[32:], p[0])
		le.PutUint64(e[40:], p[1])
	}
	entSectors := int64(n*esize) / int64(ss)
	write := func(hdrLBA, altLBA, entLBA int64) {
		copy(img[entLBA*int64(ss):], ents)
		h := img[hdrLBA*int64(ss):]
		copy(h, "EFI PART")
		le.PutUint32(h[8:], 0x00010000)
		le.PutUint32(h[12:], 92)
		le.PutUint64(h[24:], uint64(hdrLBA))
		le.PutUint64(h[32:], uint64(altLBA))
		le.PutUint64(h[40:], uint64(2+entSectors))
		le.PutUint64(h[48:], uint64(sectors-2-entSectors))
		le.PutUint64(h[72:], uint64(entLBA))
		le.PutUint32(h[80:], n)
		le.PutUint32(h[84:], esize)
		le.PutUint32(h[88:], crc32.ChecksumIEEE(ents))
		le.PutUint32(h[16:], 0)
		le.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
	}
	write(1, sectors-1, 2)
	write(sectors-1, 1, sectors-1-entSectors)
	return img
}

func TestReadTableGPT4K(t *testing.T) {
	img := gptImage(4096, 1024, [][2]uint64{{256, 511}, {512, 1000}})
	tab, err := ReadTable(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	want := []Partition{
		{Number: 1, Start: 256 * 4096, Size: 256 * 4096, Type: "0FC63DAF-8483-4772-8E79-3D69D8477DE4", TypeName: "linux"},
		{Number: 2, Start: 512 * 4096, Size: 489 * 4096, Type: "0FC63DAF-8483-4772-8E79-3D69D8477DE4", TypeName: "linux"},
	}
	if tab.Scheme != SchemeGPT || tab.SectorSize != 4096 || tab.Backup || len(tab.Partitions) != 2 || tab.Partitions[0] != want[0] || tab.Partitions[1] != want[1] {
		t.Errorf("got %+v", tab)
	}
}

func TestReadTableBad(t *testing.T) {
	mbr := func(entries ...[4]uint32) []byte { // status, type, start, count
		img := make([]byte, 1<<20)
		for i, e := range entries {
			p := img[446+16*i:]
			p[0], p[4] = byte(e[0]), byte(e[1])
			binary.LittleEndian.PutUint32(p[8:], e[2])
			binary.LittleEndian.PutUint32(p[12:], e[3])
		}
		img[510], img[511] = 0x55, 0xaa
		return img
	}
	// An extended partition at sector 100 whose second boot record (at
	// 120) names itself as the next one.
	cycle := mbr([4]uint32{0, 0x05, 100, 1000})
	ebr := func(at int, logicalStart, logicalCount, next uint32) {
		e := cycle[at*512:]
		if logicalCount > 0 {
			e[446+4] = 0x83
			binary.LittleEndian.PutUint32(e[446+8:], logicalStart)
			binary.LittleEndian.PutUint32(e[446+12:], logicalCount)
		}
		e[446+16+4] = 0x05
		binary.LittleEndian.PutUint32(e[446+16+8:], next)
		e[510], e[511] = 0x55, 0xaa
	}
	ebr(100, 1, 10, 20)
	ebr(120, 0, 0, 20)

	cases := []struct {
		name string
		img  []byte
		want string // in the error; "" for ErrNoTable
	}{
		{"zeros", make([]byte, 1<<20), ""},
		{"short", make([]byte, 100), ""},
		{"boot sector, not a table", func() []byte { b := mbr(); b[446] = 0x12; return b }(), ""},
		{"beyond the end", mbr([4]uint32{0, 0x83, 2048, 1 << 20}), "beyond the image"},
		{"ebr cycle", cycle, "loops"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadTable(bytes.NewReader(c.img), int64(len(c.img)))
			if c.want == "" {
				if !errors.Is(err, ErrNoTable) {
					t.Errorf("err = %v, want ErrNoTable", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
}

// FuzzReadTable: no input makes ReadTable panic or return a partition
// outside the image.
func FuzzReadTable(f *testing.F) {
	f.Add(gptImage(512, 128, [][2]uint64{{34, 60}, {61, 90}}))
	b := make([]byte, 64<<10)
	b[446+4], b[446+8], b[446+12], b[510], b[511] = 0x83, 1, 10, 0x55, 0xaa
	f.Add(b)
	f.Fuzz(func(t *testing.T, img []byte) {
		tab, err := ReadTable(bytes.NewReader(img), int64(len(img)))
		if err != nil {
			return
		}
		for _, p := range tab.Partitions {
			if p.Start < 0 || p.Size <= 0 || p.Start+p.Size > int64(len(img)) {
				t.Fatalf("partition %+v outside the image of %d bytes", p, len(img))
			}
		}
	})
}
