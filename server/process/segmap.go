package process

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

// A segment is decoded once on its hot path: receive checks every record
// as the body streams into the cache file (hrlfmt.Scan through a tee) and
// keeps the segment's hrlfmt.Map; the applier hands that map to target
// storage, which then writes the records without decoding the segment
// again (store.Local.ApplyMapped). A segment the applier finds without a
// map (the server restarted, the map budget was spent, the file is not the
// one received) is applied with store.Apply, which reads and checks all of
// it first: the cold path.

// mapBudget bounds the records of the maps the server keeps for segments
// not yet applied, over all disks (a record of a map is about 100 bytes:
// 256 Ki records are about 25 MiB, 64 segments of 4 KiB changes or 1 024 of
// 64 KiB ones). Segments over the budget take the cold path.
const mapBudget = 256 << 10

// MappedApplier is target storage that can apply a segment the server has
// checked in full without checking it again (store.Local).
type MappedApplier interface {
	ApplyMapped(ctx context.Context, machine, disk string, seq uint64, segmentPath string, m *hrlfmt.Map) error
}

// segMap is the map of a received segment and the identity of the file it
// was made from.
type segMap struct {
	m  *hrlfmt.Map
	fi os.FileInfo
}

// reserveMap takes m's records from the budget and reports whether they
// fitted (never for target storage that cannot use a map).
func (d *diskState) reserveMap(m *hrlfmt.Map) bool {
	if _, ok := d.p.store.(MappedApplier); !ok {
		return false
	}
	n := int64(len(m.Records))
	if d.p.mapRecords.Add(n) > mapBudget {
		d.p.mapRecords.Add(-n)
		return false
	}
	return true
}

// keepMap keeps the map of durable segment seq for the applier when
// reserved (reserveMap), and else gives its reservation back. d.mu must be
// held.
func (d *diskState) keepMap(seq uint64, sm segMap, reserved bool) {
	if !reserved {
		return
	}
	if d.maps == nil || d.maps[seq].m != nil {
		d.p.mapRecords.Add(-int64(len(sm.m.Records))) // the applier is gone, or a map is there
		return
	}
	d.maps[seq] = sm
}

// takeMap removes and returns the map of segment seq, if the server has
// one and the cache file is still the file it was made from. It drops the
// maps of earlier segments too (skipped by resync).
func (d *diskState) takeMap(seq uint64) *hrlfmt.Map {
	d.mu.Lock()
	sm, ok := d.maps[seq]
	for s, old := range d.maps {
		if s <= seq {
			d.p.mapRecords.Add(-int64(len(old.m.Records)))
			delete(d.maps, s)
		}
	}
	d.mu.Unlock()
	if !ok {
		return nil
	}
	// Same inode, size and modification time: a file written anew under
	// the name (even one that got the freed inode number) differs.
	if fi, err := os.Stat(d.segPath(seq)); err != nil || !os.SameFile(fi, sm.fi) || fi.Size() != sm.fi.Size() || !fi.ModTime().Equal(sm.fi.ModTime()) {
		return nil
	}
	return sm.m
}

// dropMaps forgets every map, for good: the applier has stopped.
func (d *diskState) dropMaps() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, sm := range d.maps {
		d.p.mapRecords.Add(-int64(len(sm.m.Records)))
	}
	d.maps = nil
}

// applySegment applies durable segment seq to target storage: from its
// map when the server has one, else checking all of it again.
func (d *diskState) applySegment(ctx context.Context, seq uint64) error {
	m := d.takeMap(seq)
	if ma, ok := d.p.store.(MappedApplier); ok && m != nil {
		return ma.ApplyMapped(ctx, d.machine, d.name, seq, d.segPath(seq), m)
	}
	return d.p.store.Apply(ctx, d.machine, d.name, seq, d.segPath(seq))
}

// receive streams the body into a temporary file of the cache while
// checking every record of it (hrlfmt.Scan), and fsyncs the file when the
// segment is good. It returns the file's path (also with an error once it
// exists), the segment's map, and the segment's own error (a
// *hrlfmt.FormatError, for the caller to answer) apart from the errors of
// the upload and of the server's disk. Every byte of the body is written
// to sum too.
func (d *diskState) receive(w http.ResponseWriter, r *http.Request, max int64, sum hash.Hash) (tmp string, m *hrlfmt.Map, verr, err error) {
	f, err := os.CreateTemp(d.dir, tmpPrefix+"*.hrl")
	if err != nil {
		return "", nil, nil, storageError("create cache file", err)
	}
	tmp = f.Name()
	body := &errReader{r: http.MaxBytesReader(w, r.Body, max)}
	out := &errWriter{w: f}
	m, verr = hrlfmt.Scan(io.TeeReader(io.TeeReader(body, sum), out))
	if verr != nil {
		// Read the rest (bounded by max), so that the agent gets the
		// answer and not a connection reset while it is still sending.
		io.Copy(io.Discard, body)
	}
	if err := receiveError(body, out, max); err != nil {
		f.Close()
		return tmp, nil, nil, err
	}
	if verr != nil {
		f.Close()
		return tmp, m, verr, nil
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return tmp, nil, nil, storageError("sync cache file", err)
	}
	return tmp, m, nil, nil
}

// receiveError is the error of an upload whose body or cache file failed,
// nil when both did their part.
func receiveError(body *errReader, out *errWriter, max int64) error {
	if out.err != nil {
		return storageError("write cache file", out.err)
	}
	if body.err == nil {
		return nil
	}
	var mbe *http.MaxBytesError
	if errors.As(body.err, &mbe) {
		return tooLarge(-1, max)
	}
	return &httpapi.Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("segment body cut short after %d bytes", body.n),
		Remedy: "the connection broke during the upload: send the segment again", Err: body.err}
}

// errReader remembers the first error of r other than io.EOF, and counts
// the bytes read.
type errReader struct {
	r   io.Reader
	n   int64
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.n += int64(n)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// errWriter remembers the first error of w; after it, it writes nothing.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	}
	return n, err
}
