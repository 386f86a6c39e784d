package azblob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/store"
)

// Names in the container (see doc.go).
const (
	markerBlob   = "lifeboat.json"
	machinesPfx  = "machines/"
	disksBlob    = "disks.json"
	leaseBlob    = "lease"
	replicaBlob  = "replica.vhd"
	cutsBlob     = "cuts.json"
	journalPfx   = "journal/"
	storeFormat  = "lifeboat-azblob"
	storeVersion = 1

	// Metadata of the replica page blob.
	metaApplied = "lifeboatappliedseq"
	metaSize    = "lifeboatdisksize"
	// Metadata of a journal segment: its SHA-256.
	metaSum = "lifeboatsha256"
)

// Options configure Open.
type Options struct {
	// Owner names this writer (the process server's name): the lease of
	// a machine is taken in its name.
	Owner string
	// LeaseDuration is how long a machine's lease lasts unrenewed
	// (15 s to 60 s; 0 means 60 s). It is renewed at a third of it.
	LeaseDuration time.Duration
	// CreateContainer creates the container when it does not exist
	// (init --store-create-container); otherwise a missing container is
	// an error with the remedy.
	CreateContainer bool
}

// Store is target storage in an Azure Blob Storage container (see the
// package documentation). It implements store.Store.
type Store struct {
	loc   Location
	cred  Credential // for the containers of MaterializeToBlob
	cc    *container.Client
	owner string
	lease time.Duration

	mu       sync.Mutex
	disks    map[string]*sync.Mutex   // by machine/disk: one Apply at a time
	journals map[string]*sync.RWMutex // by machine/disk: Prune against Materialize
	leases   map[string]*machineLease
	stop     chan struct{}
	stopped  sync.WaitGroup
	closed   bool

	readBytes atomic.Int64
}

var _ store.Store = (*Store)(nil)

// marker is the content of lifeboat.json.
type marker struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
}

// Open opens (creating when empty) the store in the container at loc with
// cred. The container must exist. Errors carry a remedy: bad credentials,
// a missing container and an unreachable endpoint are told apart.
func Open(ctx context.Context, loc Location, cred Credential, o Options) (*Store, error) {
	if cred.Endpoint != "" && loc.Endpoint == "https://"+loc.Account+".blob.core.windows.net" {
		loc.Endpoint = cred.Endpoint
	}
	cc, err := newContainerClient(loc, cred, defaultRetry)
	if err != nil {
		return nil, err
	}
	if o.LeaseDuration == 0 {
		o.LeaseDuration = 60 * time.Second
	}
	if o.LeaseDuration < 15*time.Second || o.LeaseDuration > 60*time.Second {
		return nil, fmt.Errorf("open blob store: lease duration %v, want 15 s to 60 s", o.LeaseDuration)
	}
	if o.Owner == "" {
		return nil, errors.New("open blob store: an owner name is required")
	}
	s := &Store{loc: loc, cred: cred, cc: cc, owner: o.Owner, lease: o.LeaseDuration,
		disks: make(map[string]*sync.Mutex), leases: make(map[string]*machineLease), stop: make(chan struct{})}
	if _, err := cc.GetProperties(ctx, nil); err != nil {
		if !o.CreateContainer || !bloberror.HasCode(err, bloberror.ContainerNotFound) {
			return nil, openError(loc, cred, err)
		}
		if _, err := cc.Create(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
			return nil, openError(loc, cred, err)
		}
	}
	var m marker
	_, ok, err := getJSON(ctx, cc, markerBlob, &m)
	if err != nil {
		return nil, openError(loc, cred, err)
	}
	if !ok {
		m = marker{Format: storeFormat, Version: storeVersion}
		if _, err := putJSON(ctx, cc, markerBlob, m, ""); err != nil && !errors.Is(err, ErrConflict) {
			return nil, openError(loc, cred, err)
		}
		if _, _, err := getJSON(ctx, cc, markerBlob, &m); err != nil {
			return nil, openError(loc, cred, err)
		}
	}
	if m.Format != storeFormat || m.Version != storeVersion {
		return nil, fmt.Errorf("open blob store %s: %s is a %q store of version %d, this one reads %q version %d",
			loc.ContainerURL(), markerBlob, m.Format, m.Version, storeFormat, storeVersion)
	}
	return s, nil
}

// OpenError is an error of Open with the remedy for the operator.
type OpenError struct {
	Msg    string
	Remedy string
	Err    error
}

func (e *OpenError) Error() string { return e.Msg + ": " + e.Err.Error() }
func (e *OpenError) Unwrap() error { return e.Err }

// Hint is the remedy (docs/ARCHITECTURE.md §9).
func (e *OpenError) Hint() string { return e.Remedy }

func openError(loc Location, cred Credential, err error) error {
	msg := "open blob store " + loc.ContainerURL()
	var re *azcore.ResponseError
	switch {
	case bloberror.HasCode(err, bloberror.ContainerNotFound):
		return &OpenError{Msg: msg, Remedy: "create container " + loc.Container + " in account " + loc.Account + " (az storage container create), or name an existing one", Err: errors.New("container not found")}
	case bloberror.HasCode(err, bloberror.AuthenticationFailed, bloberror.AuthorizationFailure, bloberror.InvalidAuthenticationInfo) ||
		errors.As(err, &re) && (re.StatusCode == 401 || re.StatusCode == 403):
		return &OpenError{Msg: msg, Remedy: "check the account key (" + cred.Source + ") and that it is of account " + loc.Account, Err: errors.New("authentication failed")}
	case errors.As(err, &re):
		return &OpenError{Msg: msg, Remedy: "check --store-endpoint and the account's network rules", Err: fmt.Errorf("status %d %s", re.StatusCode, re.ErrorCode)}
	}
	return &OpenError{Msg: msg, Remedy: "is the endpoint " + loc.Endpoint + " reachable from here? check --store-endpoint, DNS and firewalls", Err: err}
}

// Location returns where the store is.
func (s *Store) Location() Location { return s.loc }

// Close stops renewing leases and releases them.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	leases := make([]*machineLease, 0, len(s.leases))
	for _, l := range s.leases {
		leases = append(leases, l)
	}
	s.mu.Unlock()
	s.stopped.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, l := range leases {
		l.release(ctx)
	}
	return nil
}

func machinePrefix(machine string) string { return machinesPfx + machine + "/" }
func diskPrefix(machine, disk string) string {
	return machinePrefix(machine) + "disks/" + disk + "/"
}
func segmentBlob(machine, disk string, seq uint64) string {
	return diskPrefix(machine, disk) + journalPfx + hrlfmt.SegmentName(seq)
}
func indexBlob(machine, disk string, seq uint64) string {
	return diskPrefix(machine, disk) + journalPfx + fmt.Sprintf("%016x.idx", seq)
}

func (s *Store) diskLock(machine, disk string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := machine + "/" + disk
	if s.disks[k] == nil {
		s.disks[k] = new(sync.Mutex)
	}
	return s.disks[k]
}

// disksMeta is the content of disks.json.
type disksMeta struct {
	Version int              `json:"version"`
	Disks   []store.DiskInfo `json:"disks"`
}

// SetDisks records the disk set of a machine (in disks.json, replaced on
// its ETag). It takes the machine's lease.
func (s *Store) SetDisks(ctx context.Context, machine string, disks []store.DiskInfo) error {
	if err := store.CheckName(machine); err != nil {
		return fmt.Errorf("set disks: machine: %w", err)
	}
	m := disksMeta{Version: 1}
	for _, d := range disks {
		if err := store.CheckName(d.Name); err != nil {
			return fmt.Errorf("set disks: disk: %w", err)
		}
		if d.Size < 0 {
			return fmt.Errorf("set disks: disk %s: negative size %d", d.Name, d.Size)
		}
		m.Disks = append(m.Disks, store.DiskInfo{Name: d.Name, Size: d.Size})
	}
	slices.SortFunc(m.Disks, func(a, b store.DiskInfo) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(m.Disks); i++ {
		if m.Disks[i].Name == m.Disks[i-1].Name {
			return fmt.Errorf("set disks: disk %s listed twice", m.Disks[i].Name)
		}
	}
	if err := s.holdLease(ctx, machine); err != nil {
		return fmt.Errorf("set disks: %w", err)
	}
	name := machinePrefix(machine) + disksBlob
	var old disksMeta
	etag, _, err := getJSON(ctx, s.cc, name, &old)
	if err != nil {
		return fmt.Errorf("set disks: %w", err)
	}
	if _, err := putJSON(ctx, s.cc, name, m, etag); err != nil {
		return fmt.Errorf("set disks: %w", err)
	}
	return nil
}

// replicaState is what the replica page blob's metadata says.
type replicaState struct {
	exists  bool
	applied bool
	seq     uint64
	size    int64
	etag    azcore.ETag
}

func (s *Store) replica(ctx context.Context, machine, disk string) (*pageblob.Client, replicaState, error) {
	pb := s.cc.NewPageBlobClient(diskPrefix(machine, disk) + replicaBlob)
	props, err := pb.GetProperties(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return pb, replicaState{}, nil
	}
	if err != nil {
		return nil, replicaState{}, fmt.Errorf("replica: %w", err)
	}
	st := replicaState{exists: true, etag: *props.ETag}
	md := lower(props.Metadata)
	if v, ok := md[metaApplied]; ok && v != nil {
		if st.seq, err = strconv.ParseUint(*v, 10, 64); err != nil {
			return nil, st, fmt.Errorf("replica metadata %s=%q: %w", metaApplied, *v, err)
		}
		st.applied = true
	}
	if v, ok := md[metaSize]; ok && v != nil {
		if st.size, err = strconv.ParseInt(*v, 10, 64); err != nil || st.size <= 0 {
			return nil, st, fmt.Errorf("replica metadata %s=%q: bad size", metaSize, *v)
		}
	}
	return pb, st, nil
}

// lower returns metadata with lowercase keys (services differ in case).
func lower(md map[string]*string) map[string]*string {
	out := make(map[string]*string, len(md))
	for k, v := range md {
		out[strings.ToLower(k)] = v
	}
	return out
}

// Apply applies segment seq of a disk (see the package documentation):
// the machine's lease must be held; the segment is checked whole, kept as
// a block blob, its records written to the replica page blob, its index
// and cuts stored, and last the applied sequence number set in the
// replica's metadata. Idempotent: a sequence number already applied is a
// no-op; after a crash, Apply of the same segment completes it.
func (s *Store) Apply(ctx context.Context, machine, disk string, seq uint64, segmentPath string) error {
	return s.ApplyMapped(ctx, machine, disk, seq, segmentPath, nil)
}

// ApplyMapped is Apply of a segment the caller has checked in full (m is
// its Map), as store.Local.ApplyMapped.
func (s *Store) ApplyMapped(ctx context.Context, machine, disk string, seq uint64, segmentPath string, m *hrlfmt.Map) error {
	if err := store.CheckName(machine); err != nil {
		return fmt.Errorf("apply: machine: %w", err)
	}
	if err := store.CheckName(disk); err != nil {
		return fmt.Errorf("apply: disk: %w", err)
	}
	if err := s.apply(ctx, machine, disk, seq, segmentPath, m); err != nil {
		return fmt.Errorf("apply %s/%s segment %d: %w", machine, disk, seq, err)
	}
	return nil
}

func (s *Store) apply(ctx context.Context, machine, disk string, seq uint64, segmentPath string, m *hrlfmt.Map) error {
	mu := s.diskLock(machine, disk)
	mu.Lock()
	defer mu.Unlock()
	if err := s.holdLease(ctx, machine); err != nil {
		return err
	}
	pb, st, err := s.replica(ctx, machine, disk)
	if err != nil {
		return err
	}
	switch {
	case st.applied && seq <= st.seq:
		return nil
	case st.applied && seq != st.seq+1:
		return fmt.Errorf("expected segment %d: %w", st.seq+1, store.ErrOutOfOrder)
	case !st.applied && seq != 0:
		return fmt.Errorf("expected segment 0, the first: %w", store.ErrOutOfOrder)
	}
	m, err = store.CheckSegment(ctx, segmentPath, machine, disk, seq, m)
	if err != nil {
		return err
	}
	seg, err := os.ReadFile(segmentPath)
	if err != nil {
		return fmt.Errorf("read segment: %w", err)
	}
	if int64(len(seg)) != m.Summary.ValidBytes {
		return fmt.Errorf("segment %s changed while applied", segmentPath)
	}
	if err := s.putSegment(ctx, machine, disk, seq, seg); err != nil {
		return err
	}
	size := max(st.size, m.Header.DiskSize)
	w := &pages{pb: pb}
	if err := s.sizeBlob(ctx, w, st, machine, disk, size); err != nil {
		return err
	}
	// The records, in order, from the checked bytes.
	var buf []byte
	for i, rec := range m.Records {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		switch rec.Type {
		case hrlfmt.RecData, hrlfmt.RecZero:
			if rec.Offset < 0 || rec.Length <= 0 || rec.Offset > size-rec.Length {
				return fmt.Errorf("record %d: extent [%d, +%d) beyond the disk's %d bytes", i, rec.Offset, rec.Length, size)
			}
		}
		switch rec.Type {
		case hrlfmt.RecData:
			off, n := rec.DataSpan()
			data, err := hrlfmt.DecodeData(rec, seg[off:off+n], buf)
			if err != nil {
				return fmt.Errorf("record %d: %w", i, err)
			}
			if rec.Compression != hrlfmt.CompressNone {
				// Scratch for the next lz4 record; a raw record's data
				// is the segment's own bytes and must not become it.
				buf = data[:cap(data)]
			}
			if int64(len(data)) != rec.Length {
				return fmt.Errorf("record %d: %d bytes for a length of %d", i, len(data), rec.Length)
			}
			if err := w.write(ctx, rec.Offset, data); err != nil {
				return fmt.Errorf("record %d: %w", i, err)
			}
		case hrlfmt.RecZero:
			if err := w.zero(ctx, rec.Offset, rec.Length); err != nil {
				return fmt.Errorf("record %d: %w", i, err)
			}
		}
	}
	if _, err := s.cc.NewBlockBlobClient(indexBlob(machine, disk, seq)).UploadBuffer(ctx, store.SegmentIndex(seq, m), nil); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	cuts, notes := store.SegmentCuts(seq, size, m.Records)
	if err := s.updateCuts(ctx, machine, disk, seq, cuts, notes); err != nil {
		return err
	}
	// Last: the applied marker. Lease still ours? A server that lost it
	// must not move the marker another one may be moving.
	if err := s.confirmLease(ctx, machine); err != nil {
		return err
	}
	md := map[string]*string{metaApplied: to(strconv.FormatUint(seq, 10)), metaSize: to(strconv.FormatInt(size, 10))}
	if _, err := pb.SetMetadata(ctx, md, nil); err != nil {
		return fmt.Errorf("set applied marker: %w", err)
	}
	return nil
}

// putSegment keeps the segment as a block blob with its SHA-256 in its
// metadata. One already there (an interrupted Apply) must be the same
// segment: its records may be in the replica.
func (s *Store) putSegment(ctx context.Context, machine, disk string, seq uint64, seg []byte) error {
	sum := sha256.Sum256(seg)
	hexSum := hex.EncodeToString(sum[:])
	bb := s.cc.NewBlockBlobClient(segmentBlob(machine, disk, seq))
	props, err := bb.GetProperties(ctx, nil)
	switch {
	case err == nil:
		if v := lower(props.Metadata)[metaSum]; v != nil && *v == hexSum {
			return nil
		}
		return fmt.Errorf("segment %d differs from the one an interrupted apply left in the journal: the replica may hold part of that one; resync the disk", seq)
	case !bloberror.HasCode(err, bloberror.BlobNotFound):
		return fmt.Errorf("journal: %w", err)
	}
	_, err = bb.UploadBuffer(ctx, seg, &blockblob.UploadBufferOptions{
		Metadata:         map[string]*string{metaSum: &hexSum},
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to(azcore.ETagAny)}},
	})
	if err != nil {
		return fmt.Errorf("journal: write segment %d: %w", seq, err)
	}
	return nil
}

// sizeBlob creates the page blob (replica or base) of a disk of size
// bytes, or grows it, with the VHD footer at its end. Growing clears the old
// footer's page, which becomes disk data.
func (s *Store) sizeBlob(ctx context.Context, w *pages, st replicaState, machine, disk string, size int64) error {
	want := BlobSize(size)
	footer, err := Footer(VirtualSize(size), diskID(machine, disk), time.Now())
	if err != nil {
		return err
	}
	if !st.exists {
		_, err := w.pb.Create(ctx, want, &pageblob.CreateOptions{
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to(azcore.ETagAny)}},
		})
		if err != nil && !bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
			return fmt.Errorf("create replica: %w", err)
		}
		return w.put(ctx, want-FooterSize, footer)
	}
	props, err := w.pb.GetProperties(ctx, nil)
	if err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	have := *props.ContentLength
	if have >= want {
		if have == want && st.size == 0 {
			return w.put(ctx, want-FooterSize, footer)
		}
		return nil
	}
	if _, err := w.pb.Resize(ctx, want, nil); err != nil {
		return fmt.Errorf("grow replica: %w", err)
	}
	if have >= FooterSize {
		if err := w.clear(ctx, have-FooterSize, FooterSize); err != nil {
			return err
		}
	}
	return w.put(ctx, want-FooterSize, footer)
}

// cutsName is the cut list of a disk.
func cutsName(machine, disk string) string { return diskPrefix(machine, disk) + cutsBlob }

// updateCuts merges the cuts and notes of segment seq into the disk's cut
// list, replaced on its ETag.
func (s *Store) updateCuts(ctx context.Context, machine, disk string, seq uint64, cuts []store.Cut, notes map[string]store.CutNote) error {
	var old store.CutList
	etag, _, err := getJSON(ctx, s.cc, cutsName(machine, disk), &old)
	if err != nil {
		return err
	}
	m, changed := store.MergeCuts(old, seq, cuts, notes)
	if !changed {
		return nil
	}
	_, err = putJSON(ctx, s.cc, cutsName(machine, disk), m, etag)
	return err
}

// Disks returns the disks of a machine that SetDisks named or that have a
// replica, sorted by name.
func (s *Store) Disks(ctx context.Context, machine string) ([]store.DiskInfo, error) {
	if err := s.checkMachine(ctx, machine); err != nil {
		return nil, fmt.Errorf("disks: %w", err)
	}
	var m disksMeta
	if _, _, err := getJSON(ctx, s.cc, machinePrefix(machine)+disksBlob, &m); err != nil {
		return nil, fmt.Errorf("disks: %w", err)
	}
	byName := make(map[string]store.DiskInfo)
	for _, d := range m.Disks {
		byName[d.Name] = d
	}
	stored, err := s.storedDisks(ctx, machine)
	if err != nil {
		return nil, fmt.Errorf("disks: %w", err)
	}
	for _, name := range stored {
		if _, ok := byName[name]; !ok {
			byName[name] = store.DiskInfo{Name: name}
		}
	}
	out := make([]store.DiskInfo, 0, len(byName))
	for name, d := range byName {
		_, st, err := s.replica(ctx, machine, name)
		if err != nil {
			return nil, fmt.Errorf("disks: %w", err)
		}
		if st.applied {
			d.Size, d.AppliedSeq, d.Applied = st.size, st.seq, true
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b store.DiskInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// listDirs lists the names one level under prefix (which ends with /).
func (s *Store) listDirs(ctx context.Context, prefix string) ([]string, error) {
	var names []string
	p := s.cc.NewListBlobsHierarchyPager("/", &container.ListBlobsHierarchyOptions{Prefix: &prefix})
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, bp := range page.Segment.BlobPrefixes {
			name := strings.TrimSuffix(strings.TrimPrefix(*bp.Name, prefix), "/")
			if store.CheckName(name) == nil {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return names, nil
}

func (s *Store) storedDisks(ctx context.Context, machine string) ([]string, error) {
	return s.listDirs(ctx, machinePrefix(machine)+"disks/")
}

// Machines lists the machines the store holds anything of, sorted.
func (s *Store) Machines(ctx context.Context) ([]string, error) {
	names, err := s.listDirs(ctx, machinesPfx)
	if err != nil {
		return nil, fmt.Errorf("machines: %w", err)
	}
	return names, nil
}

func (s *Store) checkMachine(ctx context.Context, machine string) error {
	if err := store.CheckName(machine); err != nil {
		return fmt.Errorf("machine: %w", err)
	}
	prefix := machinePrefix(machine)
	p := s.cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix, MaxResults: to(int32(1))})
	page, err := p.NextPage(ctx)
	if err != nil {
		return fmt.Errorf("machine %s: %w", machine, err)
	}
	if len(page.Segment.BlobItems) == 0 {
		return fmt.Errorf("machine %s: %w", machine, store.ErrNotFound)
	}
	return nil
}

// diskSet is the disk set of a machine: that of SetDisks, or the disks
// with an applied segment.
func (s *Store) diskSet(ctx context.Context, machine string) ([]string, error) {
	var m disksMeta
	_, ok, err := getJSON(ctx, s.cc, machinePrefix(machine)+disksBlob, &m)
	if err != nil {
		return nil, err
	}
	var names []string
	if ok {
		for _, d := range m.Disks {
			if err := store.CheckName(d.Name); err != nil {
				return nil, fmt.Errorf("%s of %s: %w", disksBlob, machine, err)
			}
			names = append(names, d.Name)
		}
		slices.Sort(names)
		return names, nil
	}
	stored, err := s.storedDisks(ctx, machine)
	if err != nil {
		return nil, err
	}
	for _, d := range stored {
		_, st, err := s.replica(ctx, machine, d)
		if err != nil {
			return nil, err
		}
		if st.applied {
			names = append(names, d)
		}
	}
	return names, nil
}

// points lists the points with the same logic as store.Local.
func (s *Store) points(ctx context.Context, machine string) ([]store.Point, map[string]map[string]store.Cut, error) {
	disks, err := s.diskSet(ctx, machine)
	if err != nil || len(disks) == 0 {
		return nil, nil, err
	}
	journals := make(map[string]store.DiskJournal, len(disks))
	for _, d := range disks {
		_, st, err := s.replica(ctx, machine, d)
		if err != nil {
			return nil, nil, err
		}
		var j store.DiskJournal
		if st.applied {
			var cl store.CutList
			if _, _, err := getJSON(ctx, s.cc, cutsName(machine, d), &cl); err != nil {
				return nil, nil, err
			}
			j.Cuts = store.AppliedCuts(cl.Cuts, st.seq)
		}
		_, bst, err := s.base(ctx, machine, d)
		if err != nil {
			return nil, nil, err
		}
		j.BaseSeq = bst.first
		journals[d] = j
	}
	pts, listed := store.ListPoints(disks, journals)
	return pts, listed, nil
}

// Points lists the points of a machine whose cut is in an applied segment
// of every disk of its disk set, oldest first.
func (s *Store) Points(ctx context.Context, machine string) ([]store.Point, error) {
	if err := s.checkMachine(ctx, machine); err != nil {
		return nil, fmt.Errorf("points: %w", err)
	}
	pts, _, err := s.points(ctx, machine)
	if err != nil {
		return nil, fmt.Errorf("points: %w", err)
	}
	return pts, nil
}

// Materialize writes every disk of the machine as it was at the point
// into outDir/<disk>.img (raw, sparse), replaying each disk's journal from
// its first segment to the cut, read from the block blobs.
func (s *Store) Materialize(ctx context.Context, machine, pointID, outDir string) ([]store.Image, error) {
	if err := s.checkMachine(ctx, machine); err != nil {
		return nil, fmt.Errorf("materialize: %w", err)
	}
	// Registered as a reader before the points are read: a Prune on
	// another host then neither folds nor deletes what this reads.
	hold, err := s.holdReaders(ctx, machine)
	if err != nil {
		return nil, fmt.Errorf("materialize: %w", err)
	}
	defer hold.release()
	pts, cuts, err := s.points(ctx, machine)
	if err != nil {
		return nil, fmt.Errorf("materialize: %w", err)
	}
	i := slices.IndexFunc(pts, func(p store.Point) bool { return p.ID == pointID })
	if i < 0 {
		return nil, fmt.Errorf("materialize: point %s of %s: %w", pointID, machine, store.ErrNotFound)
	}
	if !pts[i].Materializable {
		return nil, fmt.Errorf("materialize: point %s of %s: %w", pointID, machine, store.ErrPruned)
	}
	var imgs []store.Image
	for _, d := range pts[i].Disks {
		img, err := s.materializeDisk(ctx, machine, d, cuts[d][pointID], outDir)
		if err == nil {
			if err = hold.err(); err != nil {
				os.Remove(img.Path)
			}
		}
		if err != nil {
			for _, im := range imgs {
				os.Remove(im.Path)
			}
			return nil, fmt.Errorf("materialize %s/%s at %s: %w", machine, d, pointID, err)
		}
		imgs = append(imgs, img)
	}
	return imgs, nil
}

func (s *Store) materializeDisk(ctx context.Context, machine, disk string, c store.Cut, outDir string) (img store.Image, err error) {
	if c.Size <= 0 {
		return img, fmt.Errorf("cut list: size %d at the cut", c.Size)
	}
	path := filepath.Join(outDir, disk+".img")
	if _, err := os.Lstat(path); err == nil {
		return img, fmt.Errorf("%s exists: %w", path, os.ErrExist)
	}
	out, err := os.CreateTemp(outDir, "."+disk+".img.tmp-*")
	if err != nil {
		return img, err
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	if err := out.Truncate(c.Size); err != nil {
		return img, err
	}
	jl := s.journalLock(machine, disk)
	jl.RLock()
	defer jl.RUnlock()
	bpb, base, err := s.base(ctx, machine, disk)
	if err != nil {
		return img, err
	}
	if c.Seq < base.first {
		return img, fmt.Errorf("cut in segment %d, merged into the base (up to %d): %w", c.Seq, base.first, store.ErrPruned)
	}
	if base.exists && base.first > 0 {
		if err := s.copyBase(ctx, bpb, out, min(base.size, c.Size)); err != nil {
			return img, err
		}
	}
	for seq := base.first; seq <= c.Seq; seq++ {
		if err := s.replaySegment(ctx, out, machine, disk, seq, c); err != nil {
			return img, err
		}
	}
	if err := out.Sync(); err != nil {
		return img, fmt.Errorf("sync image: %w", err)
	}
	if err := out.Close(); err != nil {
		return img, err
	}
	if err := os.Link(out.Name(), path); err != nil {
		return img, err
	}
	os.Remove(out.Name())
	return store.Image{Disk: disk, Path: path, Size: c.Size}, nil
}

// replaySegment writes the records of segment seq to out, checking each;
// in the cut's segment it stops at the cut, which must be the point's.
func (s *Store) replaySegment(ctx context.Context, out *os.File, machine, disk string, seq uint64, c store.Cut) error {
	return s.replay(ctx, machine, disk, seq, c, func(rec hrlfmt.Record) error { return store.WriteRecord(out, rec, c.Size) })
}

// replayToBlob writes the records of segment seq to the page blob of w
// as replaySegment does to a file, and returns the bytes written.
func (s *Store) replayToBlob(ctx context.Context, w *pages, machine, disk string, seq uint64, c store.Cut) (int64, error) {
	var n int64
	err := s.replay(ctx, machine, disk, seq, c, func(rec hrlfmt.Record) error {
		if rec.Type == hrlfmt.RecData {
			n += rec.Length
		}
		return writeRecord(ctx, w, rec, c.Size)
	})
	return n, err
}

// replay calls write with each record of segment seq, checking each; in
// the cut's segment it stops at the cut, which must be the point's.
func (s *Store) replay(ctx context.Context, machine, disk string, seq uint64, c store.Cut, write func(hrlfmt.Record) error) error {
	b, err := s.download(ctx, segmentBlob(machine, disk, seq))
	if err != nil {
		return fmt.Errorf("journal segment %d: %w", seq, err)
	}
	r, err := hrlfmt.NewReader(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("journal segment %d: %w", seq, err)
	}
	if h := r.Header(); h.Machine != machine || h.Disk != disk || h.Seq != seq {
		return fmt.Errorf("journal segment %d: header of %s/%s segment %d", seq, h.Machine, h.Disk, h.Seq)
	}
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			if seq == c.Seq {
				return fmt.Errorf("journal segment %d: no cut %q at offset %d", seq, c.ID, c.Pos)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("journal segment %d: %w", seq, err)
		}
		if seq == c.Seq && rec.Pos >= c.Pos {
			if rec.Pos != c.Pos || rec.Type != hrlfmt.RecCut || rec.Cut.PointID != c.ID {
				return fmt.Errorf("journal segment %d: no cut %q at offset %d", seq, c.ID, c.Pos)
			}
			return nil
		}
		if err := write(rec); err != nil {
			return fmt.Errorf("journal segment %d: %w", seq, err)
		}
	}
}

// Hashes returns the SHA-256 of each block of the disk's replica in
// [off, off+n); bytes beyond the disk read as zeros.
func (s *Store) Hashes(ctx context.Context, machine, disk string, off, n, block int64) ([][32]byte, error) {
	if err := store.CheckName(disk); err != nil {
		return nil, fmt.Errorf("hashes: disk: %w", err)
	}
	if err := s.checkMachine(ctx, machine); err != nil {
		return nil, fmt.Errorf("hashes: %w", err)
	}
	switch {
	case off < 0 || n < 0 || block <= 0:
		return nil, fmt.Errorf("hashes: bad range [%d, +%d) or block %d", off, n, block)
	case off > (1<<63-1)-n:
		return nil, fmt.Errorf("hashes: range [%d, +%d) overflows", off, n)
	case (n+block-1)/block > store.MaxHashBlocks:
		return nil, fmt.Errorf("hashes: %d blocks, more than %d", (n+block-1)/block, store.MaxHashBlocks)
	}
	mu := s.diskLock(machine, disk)
	mu.Lock()
	defer mu.Unlock()
	pb, st, err := s.replica(ctx, machine, disk)
	if err != nil {
		return nil, fmt.Errorf("hashes: %w", err)
	}
	if !st.exists {
		names, err := s.diskSet(ctx, machine)
		if err != nil {
			return nil, fmt.Errorf("hashes: %w", err)
		}
		if !slices.Contains(names, disk) {
			return nil, fmt.Errorf("hashes: disk %s/%s: %w", machine, disk, store.ErrNotFound)
		}
	}
	var sums [][32]byte
	buf := make([]byte, block)
	for pos := off; pos < off+n; pos += block {
		b := buf[:min(block, off+n-pos)]
		clear(b)
		if st.exists && pos < st.size {
			if err := readRange(ctx, pb.BlobClient(), pos, b[:min(int64(len(b)), st.size-pos)]); err != nil {
				return nil, fmt.Errorf("hashes: %w", err)
			}
		}
		sums = append(sums, sha256.Sum256(b))
	}
	return sums, nil
}
