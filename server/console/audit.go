package console

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// AuditFile is the audit log in the console's directory: one JSON
// api.AuditEntry a line, appended and synced before the action's answer.
const AuditFile = "audit.log"

// Audit is the append-only audit log. Safe for concurrent use.
type Audit struct {
	path string
	mu   sync.Mutex
}

// NewAudit returns the audit log kept in dataDir.
func NewAudit(dataDir string) *Audit {
	return &Audit{path: filepath.Join(dataDir, Dir, AuditFile)}
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

// Last returns the newest limit entries, oldest first. A line that does
// not decode (a torn last line after a crash) is skipped.
func (a *Audit) Last(limit int) ([]api.AuditEntry, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f, err := os.Open(a.path)
	if os.IsNotExist(err) {
		return []api.AuditEntry{}, nil
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
		return nil, fmt.Errorf("audit log: %w", err)
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	if out == nil {
		out = []api.AuditEntry{}
	}
	return out, nil
}
