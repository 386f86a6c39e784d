package azblob

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
)

// LeaseError is the error of a write to a machine whose lease this store
// does not hold: another process server applies it, or this one lost the
// lease (it could not renew it in time) and stopped.
type LeaseError struct {
	Machine string
	Err     error
}

func (e *LeaseError) Error() string {
	return fmt.Sprintf("machine %s: not applying: its blob lease is held by another process server or was lost: %v", e.Machine, e.Err)
}
func (e *LeaseError) Unwrap() error { return e.Err }

// Hint is the remedy (docs/ARCHITECTURE.md §9).
func (e *LeaseError) Hint() string {
	return "one process server applies a machine: move the machine (lifeboat machines move) or stop the other server; a lease not renewed expires within a minute"
}

// ErrLeaseHeld is wrapped by a LeaseError when another owner holds the
// lease.
var ErrLeaseHeld = errors.New("lease held by another owner")

// machineLease is this store's lease of one machine's lease blob.
type machineLease struct {
	name string
	lc   *lease.BlobClient

	mu      sync.Mutex
	held    bool
	renewed time.Time // when the service last confirmed it
	err     error     // why it is not held
}

func (s *Store) machineLease(machine string) (*machineLease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("blob store closed")
	}
	if l := s.leases[machine]; l != nil {
		return l, nil
	}
	bc := s.cc.NewBlobClient(machinePrefix(machine) + leaseBlob)
	lc, err := lease.NewBlobClient(bc, &lease.BlobClientOptions{LeaseID: to(leaseID(s.owner))})
	if err != nil {
		return nil, err
	}
	l := &machineLease{name: machine, lc: lc}
	s.leases[machine] = l
	s.stopped.Add(1)
	go s.renew(l)
	return l, nil
}

// holdLease makes sure this store holds the machine's lease, taking it
// when free: always with a call to the service (acquiring a lease one
// holds renews it), so that a server whose lease was broken and taken
// learns it before it writes, not at its next renewal.
func (s *Store) holdLease(ctx context.Context, machine string) error {
	l, err := s.machineLease(machine)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := s.acquire(ctx, l, machine); err != nil {
		l.held, l.err = false, err
		return &LeaseError{Machine: machine, Err: err}
	}
	l.held, l.renewed, l.err = true, time.Now(), nil
	return nil
}

// acquire takes (or renews, when it is already ours) the lease, creating
// the lease blob when missing.
func (s *Store) acquire(ctx context.Context, l *machineLease, machine string) error {
	for range 2 {
		_, err := l.lc.AcquireLease(ctx, int32(s.lease/time.Second), nil)
		switch {
		case err == nil:
			return nil
		case bloberror.HasCode(err, bloberror.BlobNotFound):
			bb := s.cc.NewBlockBlobClient(machinePrefix(machine) + leaseBlob)
			_, cerr := bb.UploadBuffer(ctx, nil, &blockblob.UploadBufferOptions{
				AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to(azcore.ETagAny)}},
			})
			if cerr != nil && !bloberror.HasCode(cerr, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet, bloberror.LeaseIDMissing, bloberror.LeaseAlreadyPresent) {
				return fmt.Errorf("create lease blob: %w", cerr)
			}
		case bloberror.HasCode(err, bloberror.LeaseAlreadyPresent, bloberror.LeaseIDMismatchWithLeaseOperation):
			return ErrLeaseHeld
		default:
			return fmt.Errorf("acquire lease: %w", err)
		}
	}
	return errors.New("acquire lease: lease blob vanished")
}

// confirmLease renews the machine's lease now, failing when another
// owner holds it: Apply calls it right before it moves the applied marker.
func (s *Store) confirmLease(ctx context.Context, machine string) error {
	return s.holdLease(ctx, machine)
}

// checkLease fails when the lease is not known held, or its last renewal
// is older than the lease could last.
func (s *Store) checkLease(machine string) error {
	s.mu.Lock()
	l := s.leases[machine]
	s.mu.Unlock()
	if l == nil {
		return &LeaseError{Machine: machine, Err: errors.New("never taken")}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held {
		return &LeaseError{Machine: machine, Err: l.err}
	}
	if time.Since(l.renewed) >= s.lease {
		return &LeaseError{Machine: machine, Err: errors.New("not renewed in time")}
	}
	return nil
}

// renew renews a held lease every third of its duration until Close.
func (s *Store) renew(l *machineLease) {
	defer s.stopped.Done()
	t := time.NewTicker(s.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		if l.held {
			ctx, cancel := context.WithTimeout(context.Background(), s.lease/3)
			_, err := l.lc.RenewLease(ctx, nil)
			cancel()
			if err == nil {
				l.renewed = time.Now()
			} else if bloberror.HasCode(err, bloberror.LeaseIDMismatchWithLeaseOperation, bloberror.LeaseNotPresentWithLeaseOperation, bloberror.LeaseLost, bloberror.LeaseAlreadyPresent) {
				l.held, l.err = false, fmt.Errorf("%w (renewal refused)", ErrLeaseHeld)
			} else if time.Since(l.renewed) >= s.lease {
				l.held, l.err = false, fmt.Errorf("not renewed in time: %w", err)
			}
		}
		l.mu.Unlock()
	}
}

func (l *machineLease) release(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held {
		_, _ = l.lc.ReleaseLease(ctx, nil)
		l.held = false
	}
}

// ReleaseMachine gives up the machine's lease now: the machine moved to
// another process server, which must be able to apply it. Held, the lease
// would be renewed for as long as this store is open, and every apply of
// the server the machine moved to would fail with a LeaseError. A later
// write of the machine by this store takes the lease again when it is
// free, as ever.
func (s *Store) ReleaseMachine(ctx context.Context, machine string) {
	s.mu.Lock()
	l := s.leases[machine]
	s.mu.Unlock()
	if l != nil {
		l.release(ctx)
	}
}

// LeaseHeld reports whether this store holds the machine's lease now.
func (s *Store) LeaseHeld(machine string) bool { return s.checkLease(machine) == nil }
