// Package hrlfmt owns the .hrl journal format: the segment files in which
// the agent journals the changes of a protected disk, ships them to its
// process server and from which replicas are updated. FORMAT.md, next to
// this file, specifies the bytes; this is the summary.
//
// A segment is a sequence of records, all little-endian: a header record
// (format version, machine, disk, disk size, sequence number, creation
// time, first generation), then DATA records (an extent of disk bytes,
// stored raw or as one lz4 block), ZERO records (an extent zeroed or
// discarded), CUT records (a crash-, app- or group-consistent recovery
// point: generation, time, point id), and a trailer record (record count,
// data bytes, highest generation, its own offset and a checksum chained
// over the checksums of all records before it). Every record starts with a
// 20-byte header: magic "LBHR", type, flags, payload length, a CRC-32C of
// the record header and a CRC-32C of the record header and payload.
//
// The package provides:
//   - SegmentWriter, which writes one segment crash-safely (exclusive
//     create, header record first, one write per record, failed writes
//     rolled back, trailer and the only fsyncs on Sync and Close);
//   - Writer, a directory of segments named by sequence number, rotated by
//     size and age, with Recover to seal the torn last segment a crash
//     leaves;
//   - the same Writer with WriterOptions.Memory, which builds the segments
//     in memory and hands each sealed one over (OnSealed), writing no file:
//     the agent without a spool streams them to its server (memory.go);
//   - Reader and VerifySegment, which read a segment and tell apart a
//     clean end (io.EOF), a torn tail (ErrTorn: valid up to an offset),
//     corruption (ErrCorrupt) and a newer format (ErrVersion), always as a
//     *FormatError that names the file and the offset of the bad record.
//
// What it must never do:
//   - trust a length it has not checked: every length read from a segment
//     is checked against the hard limits of the format (MaxPayload,
//     MaxDataLength, the fixed sizes of each record type) before anything
//     is allocated or read for it, a payload buffer grows only as bytes
//     actually arrive, and lz4 output must have exactly the length the
//     record states;
//   - return the data of a record whose checksums failed, or of any record
//     after one: errors are sticky;
//   - silently repair: Recover changes only a torn last segment, and keeps
//     a copy of every byte it drops.
//
// It knows nothing of trackers, cuts' meaning, transport or storage: the
// agent decides what to write, the uploader and server move and apply
// segments.
package hrlfmt
