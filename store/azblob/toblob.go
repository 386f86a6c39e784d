package azblob

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"

	"github.com/lifeboat-dr/lifeboat/store"
)

// BlobImage is one disk materialized as a fixed-VHD page blob.
type BlobImage struct {
	Disk string
	// URL is the page blob's URL (no credential in it).
	URL string
	// Size is the disk's size; the blob is BlobSize(Size) bytes.
	Size int64
	// Copied is how many bytes of the base the service copied (server
	// side), Written how many bytes of changed ranges were written to
	// the blob after it.
	Copied, Written int64
}

// ToBlobError is an error of MaterializeToBlob about its destination,
// with the remedy.
type ToBlobError struct {
	Msg    string
	Remedy string
	// Exists is true when a blob of the same point is already there.
	Exists bool
}

func (e *ToBlobError) Error() string { return e.Msg }

// Hint is the remedy (docs/ARCHITECTURE.md §9).
func (e *ToBlobError) Hint() string { return e.Remedy }

// ToBlobName is the name of the page blob MaterializeToBlob makes of a
// disk at a point.
func ToBlobName(machine, pointID, disk string) string {
	return machine + "/" + pointID + "/" + disk + ".vhd"
}

// MaterializeToBlob writes every disk of the machine as it was at the
// point as a new fixed-VHD page blob <machine>/<point>/<disk>.vhd in
// container dest of the store's account, ready to become a managed disk:
// a server-side copy of a snapshot of the disk's base (when retention has
// made one), then only the records of the journal from the base to the
// point's cut written to it, then the footer. It never overwrites a blob;
// on failure it deletes the blobs it made. Like Materialize it registers
// as a reader of the machine (readers.go), so a Prune on another host
// neither folds nor deletes what it reads.
func (s *Store) MaterializeToBlob(ctx context.Context, machine, pointID, dest string) ([]BlobImage, error) {
	dcc, err := s.destContainer(ctx, dest)
	if err != nil {
		return nil, fmt.Errorf("materialize to blob: %w", err)
	}
	if err := s.checkMachine(ctx, machine); err != nil {
		return nil, fmt.Errorf("materialize to blob: %w", err)
	}
	if err := store.CheckName(pointID); err != nil {
		return nil, fmt.Errorf("materialize to blob: point: %w", err)
	}
	hold, err := s.holdReaders(ctx, machine)
	if err != nil {
		return nil, fmt.Errorf("materialize to blob: %w", err)
	}
	defer hold.release()
	pts, cuts, err := s.points(ctx, machine)
	if err != nil {
		return nil, fmt.Errorf("materialize to blob: %w", err)
	}
	i := slices.IndexFunc(pts, func(p store.Point) bool { return p.ID == pointID })
	if i < 0 {
		return nil, fmt.Errorf("materialize to blob: point %s of %s: %w", pointID, machine, store.ErrNotFound)
	}
	if !pts[i].Materializable {
		return nil, fmt.Errorf("materialize to blob: point %s of %s: %w", pointID, machine, store.ErrPruned)
	}
	var imgs []BlobImage
	undo := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		for _, im := range imgs {
			_, _ = dcc.NewBlobClient(ToBlobName(machine, pointID, im.Disk)).Delete(ctx, nil)
		}
	}
	for _, d := range pts[i].Disks {
		im, err := s.diskToBlob(ctx, dcc, machine, d, cuts[d][pointID])
		if im.URL != "" {
			imgs = append(imgs, im)
		}
		if err == nil {
			err = hold.err()
		}
		if err != nil {
			undo()
			return nil, fmt.Errorf("materialize %s/%s at %s to blob: %w", machine, d, pointID, err)
		}
	}
	return imgs, nil
}

// destContainer is the client of container dest of the store's account,
// which must exist and not be the store's own.
func (s *Store) destContainer(ctx context.Context, dest string) (*container.Client, error) {
	if err := checkContainer(dest); err != nil {
		return nil, &ToBlobError{Msg: err.Error(), Remedy: "name a container of account " + s.loc.Account + " (3 to 63 lowercase letters, digits and hyphens)"}
	}
	if dest == s.loc.Container {
		return nil, &ToBlobError{Msg: "container " + dest + " is the target storage itself",
			Remedy: "name another container of account " + s.loc.Account + " for the failover disks (az storage container create)"}
	}
	loc := s.loc
	loc.Container = dest
	dcc, err := newContainerClient(loc, s.cred, defaultRetry)
	if err != nil {
		return nil, err
	}
	if _, err := dcc.GetProperties(ctx, nil); err != nil {
		if bloberror.HasCode(err, bloberror.ContainerNotFound) {
			return nil, &ToBlobError{Msg: "container " + dest + " not found in account " + s.loc.Account,
				Remedy: "create it (az storage container create --account-name " + s.loc.Account + " --name " + dest + "), or name an existing one"}
		}
		return nil, fmt.Errorf("container %s: %w", dest, err)
	}
	return dcc, nil
}

// diskToBlob makes the page blob of one disk at cut c. im.URL is set once
// the blob exists (so that a failure after it deletes it).
func (s *Store) diskToBlob(ctx context.Context, dcc *container.Client, machine, disk string, c store.Cut) (im BlobImage, err error) {
	im.Disk = disk
	if c.Size <= 0 {
		return im, fmt.Errorf("cut list: size %d at the cut", c.Size)
	}
	name := ToBlobName(machine, c.ID, disk)
	dst := dcc.NewPageBlobClient(name)
	jl := s.journalLock(machine, disk)
	jl.RLock()
	defer jl.RUnlock()
	bpb, base, err := s.base(ctx, machine, disk)
	if err != nil {
		return im, err
	}
	want := BlobSize(c.Size)
	first := uint64(0)
	if base.exists && base.first > 0 {
		var have int64
		first, have, err = s.copyBaseBlob(ctx, bpb, dst)
		if errors.Is(err, errDestExists) {
			return im, destExists(dcc, name)
		}
		im.URL = dcc.URL() + "/" + name
		if err != nil {
			return im, err
		}
		im.Copied = have - FooterSize
		if c.Seq < first {
			return im, fmt.Errorf("cut in segment %d, merged into the base (up to %d): %w", c.Seq, first, store.ErrPruned)
		}
		if have != want {
			if _, err := dst.Resize(ctx, want, nil); err != nil {
				return im, fmt.Errorf("resize: %w", err)
			}
			// The base's footer page becomes disk data: zeros until the
			// journal writes there.
			if w := (&pages{pb: dst}); have < want && have >= FooterSize {
				if err := w.clear(ctx, have-FooterSize, FooterSize); err != nil {
					return im, err
				}
			}
		}
	} else {
		_, err := dst.Create(ctx, want, &pageblob.CreateOptions{
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to(azcore.ETagAny)}},
		})
		if bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
			return im, destExists(dcc, name)
		}
		if err != nil {
			return im, fmt.Errorf("create %s: %w", name, err)
		}
		im.URL = dcc.URL() + "/" + name
	}
	w := &pages{pb: dst}
	for seq := first; seq <= c.Seq; seq++ {
		n, err := s.replayToBlob(ctx, w, machine, disk, seq, c)
		if err != nil {
			return im, err
		}
		im.Written += n
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return im, err
	}
	id[6] = id[6]&0x0f | 0x40 // a new disk: a random UUID
	id[8] = id[8]&0x3f | 0x80
	footer, err := Footer(VirtualSize(c.Size), id, time.Now())
	if err != nil {
		return im, err
	}
	if err := w.put(ctx, want-FooterSize, footer); err != nil {
		return im, fmt.Errorf("write footer: %w", err)
	}
	md := map[string]*string{"lifeboatmachine": to(machine), "lifeboatdisk": to(disk), "lifeboatpoint": to(c.ID),
		metaSize: to(strconv.FormatInt(c.Size, 10))}
	if _, err := dst.SetMetadata(ctx, md, nil); err != nil {
		return im, fmt.Errorf("set metadata: %w", err)
	}
	im.Size = c.Size
	return im, nil
}

var errDestExists = errors.New("destination blob exists")

func destExists(dcc *container.Client, name string) error {
	return &ToBlobError{Msg: dcc.URL() + "/" + name + " exists", Exists: true,
		Remedy: "a failover never overwrites a blob: delete it first, or name another container"}
}

// copyBaseBlob copies a snapshot of the base page blob to dst on the
// service's side (Copy Blob within the account, never through this
// host) and returns the first segment the snapshot does not hold and
// the copy's size. The snapshot is deleted after the copy.
func (s *Store) copyBaseBlob(ctx context.Context, bpb *pageblob.Client, dst *pageblob.Client) (first uint64, size int64, err error) {
	snap, err := bpb.BlobClient().CreateSnapshot(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("snapshot base: %w", err)
	}
	src, err := bpb.BlobClient().WithSnapshot(*snap.Snapshot)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_, _ = src.Delete(dctx, nil)
	}()
	props, err := src.GetProperties(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("base snapshot: %w", err)
	}
	v := lower(props.Metadata)[metaMerged]
	if v == nil {
		return 0, 0, errors.New("base snapshot: no merged marker")
	}
	n, err := strconv.ParseUint(*v, 10, 64)
	if err != nil || n == 1<<64-1 {
		return 0, 0, fmt.Errorf("base metadata %s=%q: bad sequence number", metaMerged, *v)
	}
	resp, err := dst.BlobClient().StartCopyFromURL(ctx, src.URL(), &blob.StartCopyFromURLOptions{
		Metadata:         map[string]*string{"lifeboatcopy": to("base")},
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to(azcore.ETagAny)}},
	})
	if bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
		return 0, 0, errDestExists
	}
	if err != nil {
		return 0, 0, fmt.Errorf("copy base: %w", err)
	}
	status := resp.CopyStatus
	for wait := 100 * time.Millisecond; status != nil && *status == blob.CopyStatusTypePending; wait = min(2*wait, 5*time.Second) {
		select {
		case <-ctx.Done():
			_, _ = dst.BlobClient().AbortCopyFromURL(context.WithoutCancel(ctx), *resp.CopyID, nil)
			return 0, 0, ctx.Err()
		case <-time.After(wait):
		}
		p, err := dst.GetProperties(ctx, nil)
		if err != nil {
			return 0, 0, fmt.Errorf("copy base: %w", err)
		}
		status = p.CopyStatus
	}
	if status != nil && *status != blob.CopyStatusTypeSuccess {
		return 0, 0, fmt.Errorf("copy base: status %s", *status)
	}
	p, err := dst.GetProperties(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("copy base: %w", err)
	}
	return n + 1, *p.ContentLength, nil
}
