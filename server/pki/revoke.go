package pki

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
)

// RevokedFile is the revocation list of the data directory: the serial
// numbers of certificates the server refuses on both of its ports.
const RevokedFile = "revoked.json"

// Revoked is one revoked certificate.
type Revoked struct {
	// Serial is the certificate's serial number in hexadecimal.
	Serial string `json:"serial"`
	// Name is its CommonName (a machine, or "admin").
	Name string `json:"name"`
	// Time is when it was revoked; Reason says why.
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
}

// ErrRevoked is wrapped by Revocations.VerifyConnection for a revoked
// certificate.
var ErrRevoked = errors.New("certificate revoked")

// Revocations is the revocation list of a data directory. The listeners
// check every client certificate against it during the handshake
// (VerifyConnection); it re-reads the file when it changed, so that a
// command run beside the server (the admin certificate's renewal) takes
// effect at once. Safe for concurrent use.
type Revocations struct {
	path string

	mu      sync.Mutex
	mtime   time.Time
	size    int64
	serials map[string]Revoked
}

// OpenRevocations reads the revocation list of dir (empty when there is
// none yet).
func OpenRevocations(dir string) (*Revocations, error) {
	r := &Revocations{path: filepath.Join(dir, RevokedFile), serials: map[string]Revoked{}}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// reload re-reads the file if it changed since it was read. r.mu must be
// held.
func (r *Revocations) reload() error {
	fi, err := os.Stat(r.path)
	if errors.Is(err, os.ErrNotExist) {
		r.serials, r.mtime, r.size = map[string]Revoked{}, time.Time{}, 0
		return nil
	}
	if err != nil {
		return fmt.Errorf("revocation list: %w", err)
	}
	if fi.ModTime().Equal(r.mtime) && fi.Size() == r.size {
		return nil
	}
	b, err := os.ReadFile(r.path)
	if err != nil {
		return fmt.Errorf("revocation list: %w", err)
	}
	var list []Revoked
	if err := json.Unmarshal(b, &list); err != nil {
		return &Error{Err: fmt.Errorf("revocation list %s: %w", r.path, err), Remedy: "restore the file from a backup: it lists the certificates the server refuses"}
	}
	m := make(map[string]Revoked, len(list))
	for _, e := range list {
		m[e.Serial] = e
	}
	r.serials, r.mtime, r.size = m, fi.ModTime(), fi.Size()
	return nil
}

// Revoke adds certificates to the list, durably, before it returns.
func (r *Revocations) Revoke(entries ...Revoked) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.reload(); err != nil {
		return err
	}
	list := make([]Revoked, 0, len(r.serials)+len(entries))
	for _, e := range r.serials {
		list = append(list, e)
	}
	added := map[string]bool{}
	for _, e := range entries {
		if _, dup := r.serials[e.Serial]; !dup && e.Serial != "" && !added[e.Serial] {
			list = append(list, e)
			added[e.Serial] = true
		}
	}
	if len(added) == 0 {
		return nil // nothing new: the file stays as it is
	}
	slices.SortFunc(list, func(a, b Revoked) int { return strings.Compare(a.Serial, b.Serial) })
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(r.path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("revocation list: %w", err)
	}
	r.mtime = time.Time{} // read it back at the next check
	return r.reload()
}

// List returns the revoked certificates, ordered by serial number. A
// list that cannot be read is an error.
func (r *Revocations) List() ([]Revoked, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.reload(); err != nil {
		return nil, err
	}
	list := make([]Revoked, 0, len(r.serials))
	for _, e := range r.serials {
		list = append(list, e)
	}
	slices.SortFunc(list, func(a, b Revoked) int { return strings.Compare(a.Serial, b.Serial) })
	return list, nil
}

// ListDigest is the SHA-256 (hex) of the serial numbers of list, in
// order: two lists with the same serials have the same digest, so that a
// joined process server's heartbeat says which list it holds and gets the
// configuration server's only when it differs.
func ListDigest(list []Revoked) string {
	h := sha256.New()
	for _, e := range list {
		h.Write([]byte(e.Serial))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// IsRevoked reports whether the certificate of serial (hexadecimal) is
// revoked. A list that cannot be read refuses everything.
func (r *Revocations) IsRevoked(serial string) (Revoked, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.reload(); err != nil {
		return Revoked{Serial: serial, Reason: err.Error()}, true
	}
	e, ok := r.serials[serial]
	return e, ok
}

// VerifyConnection refuses a handshake whose client certificate is
// revoked (tls.Config.VerifyConnection). A connection without one passes:
// the handlers decide whether they need one.
func (r *Revocations) VerifyConnection(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	c := cs.PeerCertificates[0]
	if e, ok := r.IsRevoked(c.SerialNumber.Text(16)); ok {
		return fmt.Errorf("%w: %q (serial %s) revoked at %s: %s", ErrRevoked, c.Subject.CommonName, e.Serial, e.Time.UTC().Format(time.RFC3339), e.Reason)
	}
	return nil
}
