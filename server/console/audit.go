package console

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
)

// AuditFile is the audit log in the console's directory: one JSON
// api.AuditEntry a line, appended and synced before the action's answer.
const AuditFile = "audit.log"

// Rotation bounds the audit log: past AuditMaxBytes the log is renamed
// audit.log.1 (the older ones shift to .2, .3…) and a new one begins;
// AuditKeep rotated files are kept, the oldest beyond them removed.
const (
	AuditMaxBytes = 10 << 20
	AuditKeep     = 5
)

// Audit is the append-only audit log. Safe for concurrent use.
type Audit struct {
	path string
	// MaxBytes and Keep bound the log (0: AuditMaxBytes, AuditKeep);
	// set them before the first Write.
	MaxBytes int64
	Keep     int
	mu       sync.Mutex
}

// NewAudit returns the audit log kept in dataDir.
func NewAudit(dataDir string) *Audit {
	return &Audit{path: filepath.Join(dataDir, Dir, AuditFile)}
}

func (a *Audit) limits() (int64, int) {
	max, keep := a.MaxBytes, a.Keep
	if max <= 0 {
		max = AuditMaxBytes
	}
	if keep <= 0 {
		keep = AuditKeep
	}
	return max, keep
}

// rotated is the name of the n-th rotated file (n ≥ 1), or of the live
// log for n = 0.
func (a *Audit) rotated(n int) string {
	if n == 0 {
		return a.path
	}
	return a.path + "." + strconv.Itoa(n)
}

// rotate makes room for a line of n bytes; a.mu is held.
func (a *Audit) rotate(n int) error {
	max, keep := a.limits()
	fi, err := os.Stat(a.path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Size() == 0 || fi.Size()+int64(n) <= max {
		return nil
	}
	if err := os.Remove(a.rotated(keep)); err != nil && !os.IsNotExist(err) {
		return err
	}
	for i := keep - 1; i >= 0; i-- {
		if err := os.Rename(a.rotated(i), a.rotated(i+1)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return fsutil.SyncDir(filepath.Dir(a.path))
}

// Write appends e, stamped now when its time is zero.
func (a *Audit) Write(e api.AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(a.path), 0o700); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	if err := a.rotate(len(b) + 1); err != nil {
		return fmt.Errorf("audit log: rotate: %w", err)
	}
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err2 := f.Sync(); err == nil {
		err = err2
	}
	if err2 := f.Close(); err == nil {
		err = err2
	}
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	return nil
}

// Last returns the newest limit entries, oldest first, reading across
// the rotated files from the newest back until it has them. A line that
// does not decode (a torn last line after a crash) is skipped.
func (a *Audit) Last(limit int) ([]api.AuditEntry, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, keep := a.limits()
	var out []api.AuditEntry
	for n := 0; n <= keep && len(out) < limit; n++ {
		es, err := readAudit(a.rotated(n), limit-len(out))
		if err != nil {
			return nil, err
		}
		out = append(es, out...)
	}
	if out == nil {
		out = []api.AuditEntry{}
	}
	return out, nil
}

// readAudit returns the newest limit entries of one file, oldest first;
// none if it does not exist.
func readAudit(path string, limit int) ([]api.AuditEntry, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	var out []api.AuditEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e api.AuditEntry
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		out = append(out, e)
		if len(out) > 2*limit {
			out = append(out[:0], out[len(out)-limit:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit log %s: %w", filepath.Base(path), err)
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}
