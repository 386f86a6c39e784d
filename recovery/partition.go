package recovery

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

// Partition schemes a Table can have.
const (
	SchemeGPT = "gpt"
	SchemeMBR = "mbr"
)

// Partition is one partition of a disk image.
type Partition struct {
	// Number is the partition's number as Linux names it: the GPT entry
	// index + 1, 1-4 for MBR primaries and 5 on for logical partitions.
	Number int
	// Start and Size are in bytes from the start of the image.
	Start, Size int64
	// Type is the GPT type GUID (upper case) or the MBR type byte as
	// "0x83".
	Type string
	// TypeName names well-known types ("linux", "efi", "swap", ...), or
	// is "".
	TypeName string
	// Name is the GPT partition name ("" for MBR).
	Name string
}

// Table is the partition table of a disk image.
type Table struct {
	// Scheme is SchemeGPT or SchemeMBR.
	Scheme string
	// SectorSize is the logical sector size the table uses (512 or 4096).
	SectorSize int
	// Backup is true when a GPT was read from its backup header because
	// the primary one is damaged.
	Backup bool
	// Partitions, in table order (empty entries left out).
	Partitions []Partition
}

// ErrNoTable is returned by ReadTable when the image has no partition table
// it recognizes.
var ErrNoTable = errors.New("no partition table")

// Limits on what ReadTable accepts from an image.
const (
	maxGPTEntries   = 4096
	maxGPTEntrySize = 4096
	maxLogical      = 128
)

// ReadTable reads the partition table of an image of size bytes: a GPT
// (primary or backup), else an MBR. It returns ErrNoTable when there is
// neither, and an error that says what is wrong with a table that is
// present but damaged (a GPT whose primary and backup are both bad, an
// MBR partition beyond the end of the image).
func ReadTable(r io.ReaderAt, size int64) (Table, error) {
	var gptErr error
	for _, ss := range []int{512, 4096} {
		t, err := readGPT(r, size, ss)
		if err == nil {
			return t, nil
		}
		if !errors.Is(err, ErrNoTable) && gptErr == nil {
			gptErr = err
		}
	}
	mbr := make([]byte, 512)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return Table{}, ErrNoTable
		}
		return Table{}, fmt.Errorf("read mbr: %w", err)
	}
	if gptErr != nil && hasProtectiveMBR(mbr) {
		return Table{}, gptErr
	}
	return readMBR(r, size, mbr)
}

// readGPT reads a GPT with the given sector size: the primary header at
// LBA 1, else the backup at the last LBA.
func readGPT(r io.ReaderAt, size int64, ss int) (Table, error) {
	if size < int64(3*ss) {
		return Table{}, ErrNoTable
	}
	t, perr := readGPTHeader(r, size, ss, 1)
	if perr == nil {
		return t, nil
	}
	last := size/int64(ss) - 1
	t, berr := readGPTHeader(r, size, ss, last)
	if berr == nil {
		t.Backup = true
		return t, nil
	}
	if errors.Is(perr, ErrNoTable) && errors.Is(berr, ErrNoTable) {
		return Table{}, ErrNoTable
	}
	if !errors.Is(perr, ErrNoTable) {
		return Table{}, fmt.Errorf("gpt: primary header: %w (and no valid backup: %v)", perr, berr)
	}
	return Table{}, fmt.Errorf("gpt: backup header: %w", berr)
}

func readGPTHeader(r io.ReaderAt, size int64, ss int, lba int64) (Table, error) {
	h := make([]byte, ss)
	if _, err := r.ReadAt(h, lba*int64(ss)); err != nil {
		return Table{}, fmt.Errorf("read header at lba %d: %w", lba, err)
	}
	if string(h[:8]) != "EFI PART" {
		return Table{}, ErrNoTable
	}
	le := binary.LittleEndian
	hsize := le.Uint32(h[12:])
	if hsize < 92 || int(hsize) > ss {
		return Table{}, fmt.Errorf("header size %d", hsize)
	}
	want := le.Uint32(h[16:])
	hc := bytes.Clone(h[:hsize])
	le.PutUint32(hc[16:], 0)
	if crc32.ChecksumIEEE(hc) != want {
		return Table{}, errors.New("header crc mismatch")
	}
	if my := le.Uint64(h[24:]); int64(my) != lba {
		return Table{}, fmt.Errorf("header says it is at lba %d, found at %d", my, lba)
	}
	sectors := uint64(size / int64(ss))
	firstUsable, lastUsable := le.Uint64(h[40:]), le.Uint64(h[48:])
	entriesLBA := le.Uint64(h[72:])
	n, esize := le.Uint32(h[80:]), le.Uint32(h[84:])
	entriesCRC := le.Uint32(h[88:])
	if n > maxGPTEntries || esize < 128 || esize > maxGPTEntrySize || esize%8 != 0 {
		return Table{}, fmt.Errorf("%d entries of %d bytes", n, esize)
	}
	total := uint64(n) * uint64(esize)
	if entriesLBA >= sectors || total > (sectors-entriesLBA)*uint64(ss) {
		return Table{}, fmt.Errorf("entries at lba %d beyond the image", entriesLBA)
	}
	if firstUsable > lastUsable || lastUsable >= sectors {
		return Table{}, fmt.Errorf("usable lbas %d-%d beyond the image of %d sectors", firstUsable, lastUsable, sectors)
	}
	ents := make([]byte, total)
	if _, err := r.ReadAt(ents, int64(entriesLBA)*int64(ss)); err != nil {
		return Table{}, fmt.Errorf("read entries: %w", err)
	}
	if crc32.ChecksumIEEE(ents) != entriesCRC {
		return Table{}, errors.New("partition entries crc mismatch")
	}
	t := Table{Scheme: SchemeGPT, SectorSize: ss}
	for i := range int(n) {
		e := ents[i*int(esize) : (i+1)*int(esize)]
		typ := e[:16]
		if bytes.Equal(typ, make([]byte, 16)) {
			continue
		}
		first, last := le.Uint64(e[32:]), le.Uint64(e[40:])
		if first > last || first < firstUsable || last > lastUsable {
			return Table{}, fmt.Errorf("partition %d: lbas %d-%d outside the usable %d-%d", i+1, first, last, firstUsable, lastUsable)
		}
		g := guidString(typ)
		t.Partitions = append(t.Partitions, Partition{
			Number:   i + 1,
			Start:    int64(first) * int64(ss),
			Size:     int64(last-first+1) * int64(ss),
			Type:     g,
			TypeName: gptTypeNames[g],
			Name:     utf16Name(e[56:128]),
		})
	}
	return t, nil
}

// guidString formats a GUID stored in the mixed-endian layout of GPT.
func guidString(b []byte) string {
	le := binary.LittleEndian
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", le.Uint32(b[0:]), le.Uint16(b[4:]), le.Uint16(b[6:]), b[8:10], b[10:16])
}

func utf16Name(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

var gptTypeNames = map[string]string{
	"0FC63DAF-8483-4772-8E79-3D69D8477DE4": "linux",
	"C12A7328-F81F-11D2-BA4B-00A0C93EC93B": "efi",
	"21686148-6449-6E6F-744E-656564454649": "bios-boot",
	"0657FD6D-A4AB-43C4-84E5-0933C84B4F4F": "swap",
	"E6D6D379-F507-44C2-A23C-238F2A3DF928": "lvm",
	"A19D880F-05FC-4D3B-A006-743F0F84911E": "raid",
	"4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709": "linux-root-x86-64",
	"933AC7E1-2EB4-4F13-B844-0E14E2AEF915": "linux-home",
	"EBD0A0A2-B9E5-4433-87C0-68B6B72699C7": "microsoft-basic-data",
	"E3C9E316-0B5C-4DB8-817D-F92DF00215AE": "microsoft-reserved",
}

var mbrTypeNames = map[byte]string{
	0x07: "ntfs", 0x0b: "fat32", 0x0c: "fat32", 0x0e: "fat16", 0x82: "swap",
	0x83: "linux", 0x8e: "lvm", 0xfd: "raid", 0xef: "efi", 0xee: "gpt-protective",
}

func hasProtectiveMBR(mbr []byte) bool {
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return false
	}
	for i := range 4 {
		if mbr[446+16*i+4] == 0xee {
			return true
		}
	}
	return false
}

func isExtended(typ byte) bool { return typ == 0x05 || typ == 0x0f || typ == 0x85 }

// readMBR reads an MBR (first sector given) and its chain of extended
// boot records.
func readMBR(r io.ReaderAt, size int64, mbr []byte) (Table, error) {
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return Table{}, ErrNoTable
	}
	const ss = 512
	sectors := uint64(size / ss)
	t := Table{Scheme: SchemeMBR, SectorSize: ss}
	type entry struct {
		typ          byte
		start, count uint64
	}
	parse := func(sec []byte, i int) (entry, error) {
		e := sec[446+16*i : 446+16*(i+1)]
		if e[0] != 0 && e[0] != 0x80 {
			return entry{}, ErrNoTable // boot code or a filesystem's boot sector, not a table
		}
		return entry{typ: e[4], start: uint64(binary.LittleEndian.Uint32(e[8:])), count: uint64(binary.LittleEndian.Uint32(e[12:]))}, nil
	}
	var prim [4]entry
	for i := range 4 {
		e, err := parse(mbr, i)
		if err != nil {
			return Table{}, err
		}
		prim[i] = e
	}
	var ext *entry
	for i, e := range prim {
		if e.typ == 0 || e.count == 0 {
			continue
		}
		if e.start == 0 || e.start+e.count > sectors {
			return Table{}, fmt.Errorf("mbr: partition %d: sectors %d+%d beyond the image of %d sectors", i+1, e.start, e.count, sectors)
		}
		if isExtended(e.typ) {
			if ext == nil {
				ext = &prim[i]
			}
			continue
		}
		t.Partitions = append(t.Partitions, mbrPartition(i+1, e.typ, e.start, e.count))
	}
	if ext == nil {
		return t, nil
	}
	// The chain of EBRs: the first at the start of the extended
	// partition; each gives one logical partition (relative to itself)
	// and the next EBR (relative to the extended partition).
	ebr := make([]byte, ss)
	seen := map[uint64]bool{}
	cur := ext.start
	for num := 5; ; num++ {
		if num-4 > maxLogical || seen[cur] {
			return Table{}, fmt.Errorf("mbr: extended partition: chain of boot records loops or is longer than %d", maxLogical)
		}
		seen[cur] = true
		if _, err := r.ReadAt(ebr, int64(cur)*ss); err != nil {
			return Table{}, fmt.Errorf("mbr: read extended boot record at sector %d: %w", cur, err)
		}
		if ebr[510] != 0x55 || ebr[511] != 0xaa {
			return Table{}, fmt.Errorf("mbr: extended boot record at sector %d has no signature", cur)
		}
		l, err1 := parse(ebr, 0)
		next, err2 := parse(ebr, 1)
		if err1 != nil || err2 != nil {
			return Table{}, fmt.Errorf("mbr: extended boot record at sector %d is damaged", cur)
		}
		if l.typ != 0 && l.count > 0 {
			start := cur + l.start
			if l.start == 0 || start+l.count > ext.start+ext.count {
				return Table{}, fmt.Errorf("mbr: logical partition %d: sectors %d+%d outside the extended partition", num, start, l.count)
			}
			t.Partitions = append(t.Partitions, mbrPartition(num, l.typ, start, l.count))
		}
		if next.typ == 0 || next.start == 0 {
			return t, nil
		}
		cur = ext.start + next.start
		if cur >= ext.start+ext.count {
			return Table{}, fmt.Errorf("mbr: extended boot record at sector %d outside the extended partition", cur)
		}
	}
}

func mbrPartition(num int, typ byte, start, count uint64) Partition {
	return Partition{
		Number:   num,
		Start:    int64(start) * 512,
		Size:     int64(count) * 512,
		Type:     fmt.Sprintf("0x%02x", typ),
		TypeName: mbrTypeNames[typ],
	}
}

// String describes a partition for logs and errors.
func (p Partition) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "partition %d at %d (%d bytes", p.Number, p.Start, p.Size)
	if p.TypeName != "" {
		b.WriteString(", " + p.TypeName)
	}
	b.WriteString(")")
	return b.String()
}
