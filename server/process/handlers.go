package process

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/store"
)

// processMachine returns the machine a replication request comes from: the
// CommonName of its client certificate, which TLS has verified against the
// CA.
func processMachine(r *http.Request) (string, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", httpapi.Errorf(http.StatusUnauthorized, "no client certificate", "register the agent first: it gets its certificate from the configuration server")
	}
	cn := r.TLS.PeerCertificates[0].Subject.CommonName
	if cn == api.AdminName {
		return "", httpapi.Errorf(http.StatusForbidden, "the admin certificate cannot replicate", "replication needs a machine certificate, which an agent gets by registering")
	}
	if err := api.ValidName(cn); err != nil {
		return "", httpapi.Errorf(http.StatusForbidden, "certificate names no valid machine: "+err.Error(), "register the agent again")
	}
	return cn, nil
}

// diskParam returns the disk of the URL, checked.
func diskParam(r *http.Request) (string, error) {
	disk := r.PathValue("disk")
	if err := api.ValidName(disk); err != nil {
		return "", httpapi.Errorf(http.StatusBadRequest, "bad disk name: "+err.Error(), "disk names are [A-Za-z0-9._-]{1,63}")
	}
	return disk, nil
}

func (p *Role) putMachine(w http.ResponseWriter, r *http.Request, machine string) error {
	var req api.MachineRequest
	if err := httpapi.DecodeJSON(w, r, 1<<20, &req); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, d := range req.Disks {
		if err := api.ValidName(d.Name); err != nil {
			return httpapi.Errorf(http.StatusBadRequest, "bad disk name: "+err.Error(), "disk names are [A-Za-z0-9._-]{1,63}")
		}
		if d.Size <= 0 {
			return httpapi.Errorf(http.StatusBadRequest, fmt.Sprintf("disk %s: size %d", d.Name, d.Size), "give each disk's size in bytes")
		}
		if seen[d.Name] {
			return httpapi.Errorf(http.StatusBadRequest, "disk "+d.Name+" listed twice", "list each disk once")
		}
		seen[d.Name] = true
	}
	disks := slices.Clone(req.Disks)
	slices.SortFunc(disks, func(a, b api.DiskSpec) int { return strings.Compare(a.Name, b.Name) })
	infos := make([]store.DiskInfo, len(disks))
	for i, d := range disks {
		infos[i] = store.DiskInfo{Name: d.Name, Size: d.Size}
	}
	if err := p.store.SetDisks(r.Context(), machine, infos); err != nil {
		return &httpapi.Error{Status: http.StatusInternalServerError, Msg: "target storage refused the disk set", Remedy: "see the server's log", Err: err}
	}
	if err := p.machines.SetDisks(machine, disks); err != nil {
		return err
	}
	p.log.With(httpapi.LogComponent, "process", httpapi.LogMachine, machine).Info("disk set", "disks", len(disks))
	m, err := p.machines.Status(r.Context(), machine)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, m)
	return nil
}

func (p *Role) getDiskState(w http.ResponseWriter, r *http.Request, machine string) error {
	disk, err := diskParam(r)
	if err != nil {
		return err
	}
	if s := r.Header.Get(api.HeaderAgentSession); s != "" {
		// Where the journal stands, for this agent process: the
		// uploads of an earlier one no longer land (fence.go).
		d, err := p.disk(machine, disk)
		if err != nil {
			return err
		}
		d.fence(s)
	}
	st, err := p.DiskState(machine, disk)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}

// putSegmentNoted is putSegment, with its refusals kept as the disk's
// problem (problems.go).
func (p *Role) putSegmentNoted(w http.ResponseWriter, r *http.Request, machine string) error {
	err := p.putSegment(w, r, machine)
	if disk, derr := diskParam(r); derr == nil {
		seq, _ := strconv.ParseUint(r.PathValue("seq"), 10, 64)
		p.noteUpload(machine, disk, seq, err)
	}
	return err
}

// putSegment receives one segment: see the package documentation.
func (p *Role) putSegment(w http.ResponseWriter, r *http.Request, machine string) error {
	disk, err := diskParam(r)
	if err != nil {
		return err
	}
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		return httpapi.Errorf(http.StatusBadRequest, "bad sequence number "+strconv.Quote(r.PathValue("seq")), "the sequence number is a decimal integer")
	}
	if err := p.checkDeclared(machine, disk); err != nil {
		return err
	}
	d, err := p.disk(machine, disk)
	if err != nil {
		return err
	}
	session := r.Header.Get(api.HeaderAgentSession)
	if err := d.superseded(session); err != nil {
		return err
	}
	max := p.maxSegment
	if r.ContentLength > max {
		return tooLarge(r.ContentLength, max)
	}
	// Answer gaps before reading the body (with "Expect: 100-continue"
	// the agent does not even send it). A duplicate is acknowledged only
	// when its body is the segment accepted (digest.go).
	if err := d.discardConflict(seq, nil); err != nil {
		return err
	}
	ahead := false
	if next, _ := d.state(); pipelined(r, seq, next) {
		ahead = true // received now, made durable in turn (pipeline.go)
	} else if ack, err := d.checkSeq(seq); ack != nil || err != nil {
		if err != nil {
			return err
		}
		sum, err := duplicateBody(w, r, max)
		if err != nil {
			return err
		}
		if ack, err = d.checkDuplicate(r.Context(), seq, sum); err != nil {
			return err
		}
		httpapi.WriteJSON(w, http.StatusOK, ack)
		return nil
	}
	h := sha256.New()
	tmp, m, verr, err := d.receive(w, r, max, h)
	if tmp != "" {
		defer os.Remove(tmp)
	}
	if err != nil {
		return err
	}
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	hd := m.Header
	if hd.Machine != "" && hd.Machine != machine {
		return httpapi.Errorf(http.StatusForbidden, fmt.Sprintf("segment of machine %q, but the certificate is %q's", hd.Machine, machine),
			"an agent may only send its own machine's segments: check the agent's --name and its certificate")
	}
	if verr != nil {
		var fe *hrlfmt.FormatError
		if errors.As(verr, &fe) {
			return &httpapi.Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("corrupt segment: offset %d: %v", fe.Offset, fe.Err),
				Remedy: "the segment was damaged or cut short in transit, or on the agent's spool: send it again; if it fails again, the agent must resync", Err: verr}
		}
		return &httpapi.Error{Status: http.StatusInternalServerError, Msg: "read received segment", Remedy: "see the server's log", Err: verr}
	}
	if !m.Summary.Complete {
		return httpapi.Errorf(http.StatusBadRequest, "segment has no trailer", "send only sealed segments")
	}
	if hd.Disk != disk {
		return httpapi.Errorf(http.StatusBadRequest, fmt.Sprintf("segment of disk %q sent as disk %q", hd.Disk, disk), "send each segment to the URL of the disk its header names")
	}
	if err := p.checkHeader(machine, disk, hd.DiskSize); err != nil {
		return err
	}
	if hd.Seq != seq {
		return httpapi.Errorf(http.StatusBadRequest, fmt.Sprintf("segment %d sent as segment %d", hd.Seq, seq), "send each segment to the URL of the sequence number its header holds")
	}
	if ahead {
		if err := d.waitTurn(r.Context(), seq); err != nil {
			return err
		}
	}
	ack, err := d.commitSegment(seq, tmp, m, sum, session)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, ack)
	return nil
}

// tooLarge is the answer to a segment over the limit; n < 0 when its size
// is unknown (a body without Content-Length cut off at the limit).
func tooLarge(n, max int64) error {
	msg := fmt.Sprintf("segment of %d bytes, more than the limit of %d", n, max)
	if n < 0 {
		msg = fmt.Sprintf("segment larger than the limit of %d bytes", max)
	}
	return httpapi.Errorf(http.StatusRequestEntityTooLarge, msg,
		"make the agent rotate segments sooner (smaller segments), or raise the server's --max-segment-bytes")
}

// checkSeq answers a sequence number that is not the next one: an
// acknowledgement for a duplicate, an error for a gap. Both nil means seq
// is the next one.
func (d *diskState) checkSeq(seq uint64) (*api.SegmentAck, error) {
	next, _ := d.state()
	switch {
	case seq < next:
		return &api.SegmentAck{Acked: seq, Duplicate: true}, nil
	case seq > next:
		return nil, &httpapi.Error{Status: http.StatusConflict, Msg: "out of order", Expected: &next,
			Remedy: fmt.Sprintf("send segment %d first: the server has every segment before it", next)}
	}
	return nil, nil
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// storageError is the answer to a failure of the server's own disk.
func storageError(what string, err error) error {
	if isNoSpace(err) {
		return &httpapi.Error{Status: http.StatusInsufficientStorage, Msg: "process server cache disk full",
			Remedy: "free space in the server's data directory (cache/), or wait for segments to be applied; the agent keeps its segments and retries", Err: err}
	}
	return &httpapi.Error{Status: http.StatusInternalServerError, Msg: what, Remedy: "see the server's log", Err: err}
}

// commitSegment makes a verified temporary segment the durable segment
// seq: cut log, digest log, rename, fsync of the directory. Only then is
// seq acknowledged. sum is the segment's SHA-256; session is the agent
// session that sent it (fence.go).
func (d *diskState) commitSegment(seq uint64, tmp string, m *hrlfmt.Map, sum [32]byte, session string) (*api.SegmentAck, error) {
	cuts := m.Summary.Cuts
	d.commit.Lock()
	defer d.commit.Unlock()
	if err := d.superseded(session); err != nil {
		return nil, err // a later agent process asked where the journal stands
	}
	if ack, err := d.checkSeq(seq); ack != nil || err != nil {
		if err != nil {
			return nil, err
		}
		return d.checkDuplicate(context.Background(), seq, sum) // another upload of seq won the race
	}
	if err := d.p.machines.CheckAssigned(d.machine); err != nil {
		return nil, err // a move began: never acknowledge what the drain missed
	}
	if err := d.discardConflict(seq, &sum); err != nil {
		return nil, err // the discarded segment again: the agent must resync
	}
	if err := d.clearDiscard(); err != nil {
		return nil, storageError("remove discard mark", err)
	}
	if err := d.appendCuts(seq, cuts); err != nil {
		return nil, storageError("write cut log", err)
	}
	if err := d.appendDigest(seq, sum); err != nil {
		return nil, storageError("write digest log", err)
	}
	fi, err := os.Stat(tmp)
	if err != nil {
		return nil, storageError("stat cache file", err)
	}
	if err := os.Rename(tmp, d.segPath(seq)); err != nil {
		return nil, storageError("rename cache file", err)
	}
	if err := fsutil.SyncDir(d.dir); err != nil {
		// The rename may or may not be durable: take it back, so that
		// the segment is not acknowledged without being durable.
		os.Remove(d.segPath(seq))
		return nil, storageError("sync cache directory", err)
	}
	keep := d.reserveMap(m)
	d.mu.Lock()
	d.next = seq + 1
	d.madeDurable()
	d.keepDigest(seq, sum)
	d.keepMap(seq, segMap{m: m, fi: fi}, keep)
	for _, c := range cuts {
		if _, dup := d.cuts[c.PointID]; !dup {
			d.cuts[c.PointID] = cutEntry{Seq: seq, ID: c.PointID, Kind: c.Kind.String(), Gen: c.Gen, Time: c.Time.UTC()}
		}
	}
	d.mu.Unlock()
	d.kick()
	d.log.Debug("segment durable", httpapi.LogSeq, seq, "cuts", len(cuts))
	return &api.SegmentAck{Acked: seq}, nil
}

func (p *Role) getHashes(w http.ResponseWriter, r *http.Request, machine string) error {
	disk, err := diskParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var v [3]int64
	for i, k := range []string{"offset", "length", "block"} {
		n, err := strconv.ParseInt(q.Get(k), 10, 64)
		if err != nil || n < 0 {
			return httpapi.Errorf(http.StatusBadRequest, "bad or missing "+k, "give offset, length and block as non-negative decimal integers")
		}
		v[i] = n
	}
	off, n, block := v[0], v[1], v[2]
	if block == 0 {
		return httpapi.Errorf(http.StatusBadRequest, "block is 0", "give a block size in bytes")
	}
	if (n+block-1)/block > api.MaxHashBlocks {
		return httpapi.Errorf(http.StatusBadRequest, fmt.Sprintf("%d blocks, more than %d", (n+block-1)/block, api.MaxHashBlocks), "ask for a smaller range or larger blocks")
	}
	d, err := p.disk(machine, disk)
	if err != nil {
		return err
	}
	next, _ := d.state()
	ctx, cancel := context.WithTimeout(r.Context(), p.hashesWait)
	defer cancel()
	if err := d.waitApplied(ctx, next); err != nil {
		return &httpapi.Error{Status: http.StatusServiceUnavailable, Msg: "segments not yet applied to target storage",
			Remedy: "the replica is behind the segments already acknowledged: retry in a moment; if it stays so, see the server's log for apply errors", Err: err}
	}
	hs, err := p.store.Hashes(r.Context(), machine, disk, off, n, block)
	if errors.Is(err, store.ErrNotFound) {
		return &httpapi.Error{Status: http.StatusNotFound, Msg: "disk has no replica yet", Remedy: "declare the disk with PUT /v1/machine or send its segments first", Err: err}
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(32*len(hs)))
	for _, h := range hs {
		if _, err := w.Write(h[:]); err != nil {
			return nil // the client is gone
		}
	}
	return nil
}

func (p *Role) getPoint(w http.ResponseWriter, r *http.Request, machine string) error {
	id := r.PathValue("id")
	if id == "" || len(id) > hrlfmt.MaxPointIDLength {
		return httpapi.Errorf(http.StatusBadRequest, "bad point id", "a point id has 1 to 64 bytes")
	}
	disks, err := p.machineDisks(r.Context(), machine)
	if err != nil {
		return err
	}
	st := api.PointStatus{ID: id, Durable: len(disks) > 0}
	for _, name := range disks {
		d, err := p.disk(machine, name)
		if err != nil {
			return err
		}
		if !d.hasCut(id) {
			st.Durable = false
			break
		}
	}
	pts, err := p.store.Points(r.Context(), machine)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	for _, p := range pts {
		if p.ID == id {
			st.Listed = true
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}
