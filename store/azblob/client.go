package azblob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"
)

// MaxPutPage is the largest Put Page Azure accepts; PageSize is its
// alignment.
const (
	MaxPutPage = 4 << 20
	PageSize   = 512
)

// ErrUnaligned is wrapped by a page write the client refuses before
// sending it: Azure refuses pages that are not 512-byte aligned or larger
// than 4 MiB (Azurite accepts some of them, so the client checks).
var ErrUnaligned = errors.New("page write not 512-byte aligned or larger than 4 MiB")

// ErrConflict is wrapped when a conditional write lost: another writer
// changed the blob since it was read (If-Match), or created it
// (If-None-Match).
var ErrConflict = errors.New("blob changed by another writer")

// newContainerClient makes the client of the store's container, with
// retries on throttling (429), timeouts and 5xx, with exponential backoff.
func newContainerClient(loc Location, cred Credential, retry policy.RetryOptions) (*container.Client, error) {
	key, err := container.NewSharedKeyCredential(cred.Account, cred.key)
	if err != nil {
		return nil, fmt.Errorf("store credentials from %s: %w", cred.Source, err)
	}
	opts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{Retry: retry}}
	return container.NewClientWithSharedKeyCredential(loc.ContainerURL(), key, opts)
}

// defaultRetry retries 6 times, from 200 ms doubling up to 10 s, each try
// at most a minute: about 20 s before an unreachable endpoint is an error.
var defaultRetry = policy.RetryOptions{
	MaxRetries:    6,
	RetryDelay:    200 * time.Millisecond,
	MaxRetryDelay: 10 * time.Second,
	TryTimeout:    time.Minute,
	StatusCodes:   []int{http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout},
}

// pages writes a page blob within the service's limits.
type pages struct {
	pb *pageblob.Client
	// puts and clears count the calls made (tests, metrics).
	puts, clears int
}

// checkPages checks that [off, off+n) may be one Put Page.
func checkPages(off, n int64) error {
	if off < 0 || n <= 0 || off%PageSize != 0 || n%PageSize != 0 || n > MaxPutPage {
		return fmt.Errorf("pages [%d, +%d): %w", off, n, ErrUnaligned)
	}
	return nil
}

// put writes p at off, in Put Page calls of at most 4 MiB; off and len(p)
// must be multiples of 512.
func (w *pages) put(ctx context.Context, off int64, p []byte) error {
	if off%PageSize != 0 || len(p)%PageSize != 0 || len(p) == 0 {
		return fmt.Errorf("pages [%d, +%d): %w", off, len(p), ErrUnaligned)
	}
	for len(p) > 0 {
		n := min(len(p), MaxPutPage)
		if err := w.putOne(ctx, off, p[:n]); err != nil {
			return err
		}
		off, p = off+int64(n), p[n:]
	}
	return nil
}

// putOne is one Put Page call, refused here unless aligned and ≤ 4 MiB.
func (w *pages) putOne(ctx context.Context, off int64, p []byte) error {
	if err := checkPages(off, int64(len(p))); err != nil {
		return err
	}
	w.puts++
	_, err := w.pb.UploadPages(ctx, nopCloser{bytes.NewReader(p)}, blob.HTTPRange{Offset: off, Count: int64(len(p))}, nil)
	if err != nil {
		return fmt.Errorf("put pages [%d, +%d): %w", off, len(p), err)
	}
	return nil
}

// clear clears [off, off+n) (both multiples of 512): the pages read as
// zeros and take no space.
func (w *pages) clear(ctx context.Context, off, n int64) error {
	if off%PageSize != 0 || n%PageSize != 0 || n <= 0 {
		return fmt.Errorf("clear pages [%d, +%d): %w", off, n, ErrUnaligned)
	}
	w.clears++
	if _, err := w.pb.ClearPages(ctx, blob.HTTPRange{Offset: off, Count: n}, nil); err != nil {
		return fmt.Errorf("clear pages [%d, +%d): %w", off, n, err)
	}
	return nil
}

// read reads [off, off+len(p)) of the blob.
func (w *pages) read(ctx context.Context, off int64, p []byte) error {
	return readRange(ctx, w.pb.BlobClient(), off, p)
}

func readRange(ctx context.Context, bc *blob.Client, off int64, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	resp, err := bc.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: off, Count: int64(len(p))}})
	if err != nil {
		return fmt.Errorf("read [%d, +%d): %w", off, len(p), err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, p); err != nil {
		return fmt.Errorf("read [%d, +%d): %w", off, len(p), err)
	}
	return nil
}

// write writes p at any offset: the pages it covers whole are put, the
// partial pages at its ends are read, patched and put back. zero clears
// instead (p is then only its length's carrier: nil with n).
func (w *pages) write(ctx context.Context, off int64, p []byte) error {
	return w.span(ctx, off, int64(len(p)), p)
}

func (w *pages) zero(ctx context.Context, off, n int64) error { return w.span(ctx, off, n, nil) }

func (w *pages) span(ctx context.Context, off, n int64, p []byte) error {
	end := off + n
	lo := (off + PageSize - 1) / PageSize * PageSize
	hi := end / PageSize * PageSize
	if lo >= hi { // within one or two partial pages
		return w.patch(ctx, off, end, p, off)
	}
	if off < lo {
		if err := w.patch(ctx, off, lo, p, off); err != nil {
			return err
		}
	}
	if p == nil {
		if err := w.clear(ctx, lo, hi-lo); err != nil {
			return err
		}
	} else if err := w.put(ctx, lo, p[lo-off:hi-off]); err != nil {
		return err
	}
	if hi < end {
		return w.patch(ctx, hi, end, p, off)
	}
	return nil
}

// patch writes [from, to) (less than a page or two, not aligned) by a
// read-modify-write of the pages it touches; p (data starting at pOff) or
// zeros when p is nil.
func (w *pages) patch(ctx context.Context, from, to int64, p []byte, pOff int64) error {
	lo := from / PageSize * PageSize
	hi := (to + PageSize - 1) / PageSize * PageSize
	buf := make([]byte, hi-lo)
	if err := w.read(ctx, lo, buf); err != nil {
		return err
	}
	if p == nil {
		clear(buf[from-lo : to-lo])
	} else {
		copy(buf[from-lo:to-lo], p[from-pOff:to-pOff])
	}
	return w.put(ctx, lo, buf)
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

// jsonBlob reads a JSON block blob; etag is "" and ok false when absent.
func getJSON(ctx context.Context, cc *container.Client, name string, v any) (etag azcore.ETag, ok bool, err error) {
	resp, err := cc.NewBlobClient(name).DownloadStream(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read %s: %w", name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", false, fmt.Errorf("read %s: %w", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return "", false, fmt.Errorf("read %s: %w", name, err)
	}
	return *resp.ETag, true, nil
}

// putJSON replaces a JSON block blob in one Put Blob (whole or not at
// all), on condition: etag "" creates it only if absent (If-None-Match
// *), else replaces only the version read (If-Match). A lost race wraps
// ErrConflict.
func putJSON(ctx context.Context, cc *container.Client, name string, v any, etag azcore.ETag) (azcore.ETag, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", err
	}
	cond := &blob.ModifiedAccessConditions{}
	if etag == "" {
		cond.IfNoneMatch = to(azcore.ETagAny)
	} else {
		cond.IfMatch = &etag
	}
	resp, err := cc.NewBlockBlobClient(name).UploadBuffer(ctx, append(b, '\n'), &blockblob.UploadBufferOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: cond},
	})
	if bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobAlreadyExists) {
		return "", fmt.Errorf("write %s: %w", name, ErrConflict)
	}
	if err != nil {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	return *resp.ETag, nil
}

func to[T any](v T) *T { return &v }

// diskID is a stable unique id of a disk, for its VHD footer.
func diskID(machine, disk string) [16]byte {
	s := sha256.Sum256([]byte("lifeboat vhd\x00" + machine + "\x00" + disk))
	var id [16]byte
	copy(id[:], s[:16])
	id[6] = id[6]&0x0f | 0x50 // a name-based UUID
	id[8] = id[8]&0x3f | 0x80
	return id
}

// leaseID is the lease id of an owner: the same owner (a process server's
// name) gets the same id back after a restart, so it takes its leases
// again at once; another owner cannot.
func leaseID(owner string) string {
	s := sha256.Sum256([]byte("lifeboat lease\x00" + owner))
	s[6] = s[6]&0x0f | 0x50
	s[8] = s[8]&0x3f | 0x80
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", binary.BigEndian.Uint32(s[0:4]), s[4:6], s[6:8], s[8:10], s[10:16])
}
