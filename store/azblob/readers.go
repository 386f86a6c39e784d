package azblob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
)

// Readers fence retention across hosts. A materialization (to files or to
// page blobs) may run on another host than the process server that prunes
// the machine, so the in-process journal lock cannot exclude them. Before
// it reads anything of a machine, a reader creates a blob
// machines/<machine>/readers/<random id> and takes a lease on it, renewed
// every third of its duration until the reader is done, then released and
// the blob deleted. Prune looks at the machine's readers before it folds a
// segment into a base and again before it deletes segments: while one is
// live it leaves that disk's journal as it is (PruneResult.Deferred); the
// next Prune does the work.
//
// A reader is live while its blob is leased, or while it is younger than
// readerGrace by the service's clock (the gap between creating the blob
// and leasing it). A reader that took longer than readerGrace/2 of its own
// clock to create and lease its blob starts again with a new one, so a
// Prune never judges stale a reader that then goes on. A reader whose lease
// was lost (not renewed in time) fails its materialization.
const readersPfx = "readers/"

// readerGrace is how long an unleased reader blob counts as live (a
// variable for the tests).
var readerGrace = 2 * time.Minute

// ErrFenceLost is wrapped by a materialization whose reader lease could
// not be kept: a Prune may have changed what it read.
var ErrFenceLost = errors.New("reader lease lost during the read")

func readersPrefix(machine string) string { return machinePrefix(machine) + readersPfx }

// readerHold is one registered reader.
type readerHold struct {
	bc   *blob.Client
	lc   *lease.BlobClient
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex
	lost error
}

// holdReaders registers a reader of machine (see above) and returns it;
// release it when done. It fails rather than read unfenced.
func (s *Store) holdReaders(ctx context.Context, machine string) (*readerHold, error) {
	for range 3 {
		h, retry, err := s.tryHoldReaders(ctx, machine)
		if !retry {
			return h, err
		}
	}
	return nil, errors.New("register reader: its blob vanished or leasing it was too slow three times")
}

func (s *Store) tryHoldReaders(ctx context.Context, machine string) (h *readerHold, retry bool, err error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, false, err
	}
	start := time.Now()
	name := readersPrefix(machine) + hex.EncodeToString(id[:])
	bb := s.cc.NewBlockBlobClient(name)
	_, err = bb.UploadBuffer(ctx, nil, &blockblob.UploadBufferOptions{
		Metadata:         map[string]*string{"lifeboatreader": to(s.owner)},
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to(azcore.ETagAny)}},
	})
	if err != nil {
		return nil, false, fmt.Errorf("register reader: %w", err)
	}
	bc := s.cc.NewBlobClient(name)
	drop := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_, _ = bc.Delete(dctx, nil)
	}
	lid := leaseID(s.owner + "\x00reader\x00" + hex.EncodeToString(id[:]))
	lc, err := lease.NewBlobClient(bc, &lease.BlobClientOptions{LeaseID: &lid})
	if err != nil {
		drop()
		return nil, false, err
	}
	if _, err := lc.AcquireLease(ctx, int32(s.lease/time.Second), nil); err != nil {
		drop()
		if bloberror.HasCode(err, bloberror.BlobNotFound) {
			return nil, true, nil // judged stale and deleted by a Prune
		}
		return nil, false, fmt.Errorf("register reader: lease: %w", err)
	}
	if time.Since(start) >= readerGrace/2 {
		// A Prune may have judged it stale before the lease: start anew.
		_, _ = lc.ReleaseLease(context.WithoutCancel(ctx), nil)
		drop()
		return nil, true, nil
	}
	h = &readerHold{bc: bc, lc: lc, stop: make(chan struct{}), done: make(chan struct{})}
	go h.renew(s.lease)
	return h, false, nil
}

// renew renews the reader's lease every third of d until release; a lease
// not renewed within d is lost.
func (h *readerHold) renew(d time.Duration) {
	defer close(h.done)
	t := time.NewTicker(d / 3)
	defer t.Stop()
	renewed := time.Now()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), d/3)
		_, err := h.lc.RenewLease(ctx, nil)
		cancel()
		switch {
		case err == nil:
			renewed = time.Now()
		case bloberror.HasCode(err, bloberror.LeaseIDMismatchWithLeaseOperation, bloberror.LeaseNotPresentWithLeaseOperation, bloberror.LeaseLost, bloberror.BlobNotFound) || time.Since(renewed) >= d:
			h.mu.Lock()
			h.lost = fmt.Errorf("%w: %v", ErrFenceLost, err)
			h.mu.Unlock()
			return
		}
	}
}

// err is why the hold was lost, nil while it holds.
func (h *readerHold) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lost
}

// release stops renewing, releases the lease and deletes the blob.
func (h *readerHold) release() {
	close(h.stop)
	<-h.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = h.lc.ReleaseLease(ctx, nil)
	_, _ = h.bc.Delete(ctx, nil)
}

// liveReaders returns how many live readers the machine has, deleting
// the blobs of stale ones (unleased and older than readerGrace).
func (s *Store) liveReaders(ctx context.Context, machine string) (int, error) {
	prefix := readersPrefix(machine)
	p := s.cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix})
	live := 0
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("list readers: %w", err)
		}
		now := time.Now()
		if page.Date != nil {
			now = *page.Date // the service's clock
		}
		for _, b := range page.Segment.BlobItems {
			pr := b.Properties
			leased := pr != nil && pr.LeaseState != nil && *pr.LeaseState != lease.StateTypeAvailable &&
				*pr.LeaseState != lease.StateTypeExpired && *pr.LeaseState != lease.StateTypeBroken
			young := pr == nil || pr.LastModified == nil || now.Sub(*pr.LastModified) < readerGrace
			if leased || young {
				live++
				continue
			}
			// Stale: a reader that crashed. A lease taken since makes the
			// delete fail (no lease id given), and it stays.
			if _, err := s.cc.NewBlobClient(*b.Name).Delete(ctx, nil); err != nil &&
				!bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.LeaseIDMissing, bloberror.LeaseAlreadyPresent) {
				return 0, fmt.Errorf("remove stale reader %s: %w", strings.TrimPrefix(*b.Name, prefix), err)
			}
		}
	}
	return live, nil
}
