package configsrv

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

// TestFailoversFile lists, in the data directory, the test failovers
// whose images are still on the server host.
const TestFailoversFile = "test-failovers.json"

// TestFailovers remembers the images every test failover wrote, so that
// an operator can remove them (lifeboat test-failovers cleanup, the
// console) without knowing where they went. Only the image files it
// recorded are ever removed, and none a real failover uses. Safe for
// concurrent use.
type TestFailovers struct {
	path string
	log  *slog.Logger
	// Real returns the images of a machine's current real failover
	// (never removed); nil: none.
	Real func(m string) []api.Image
	mu   sync.Mutex
}

// NewTestFailovers returns the test failovers recorded in dataDir.
func NewTestFailovers(dataDir string, log *slog.Logger) *TestFailovers {
	if log == nil {
		log = slog.Default()
	}
	return &TestFailovers{path: filepath.Join(dataDir, TestFailoversFile), log: log}
}

func (t *TestFailovers) readLocked() ([]api.TestFailover, error) {
	b, err := os.ReadFile(t.path)
	if os.IsNotExist(err) {
		return []api.TestFailover{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("test failovers: %w", err)
	}
	var out []api.TestFailover
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, &httpapi.Error{Status: http.StatusInternalServerError, Msg: "test failovers: " + t.path + " is damaged: " + err.Error(),
			Remedy: "remove the images by hand and then the file, or restore it from a backup", Err: err}
	}
	return out, nil
}

func (t *TestFailovers) writeLocked(tfs []api.TestFailover) error {
	b, err := json.MarshalIndent(tfs, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(t.path, b, 0o600); err != nil {
		return fmt.Errorf("test failovers: %w", err)
	}
	return nil
}

func overlaps(a, b []api.Image) bool {
	for _, x := range a {
		for _, y := range b {
			if filepath.Clean(x.Path) == filepath.Clean(y.Path) {
				return true
			}
		}
	}
	return false
}

// Add records a test failover's images; a record whose images the new
// ones overwrote is dropped (its files are the new ones now).
func (t *TestFailovers) Add(m string, pt api.Point, out string, imgs []api.Image) (string, error) {
	var b [6]byte
	rand.Read(b[:])
	now := time.Now().UTC()
	tf := api.TestFailover{ID: now.Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:]), Machine: m, Point: pt, Time: now, Out: out, Images: imgs}
	t.mu.Lock()
	defer t.mu.Unlock()
	tfs, err := t.readLocked()
	if err != nil {
		return "", err
	}
	tfs = slices.DeleteFunc(tfs, func(o api.TestFailover) bool { return overlaps(o.Images, imgs) })
	return tf.ID, t.writeLocked(append(tfs, tf))
}

// Forget drops the records whose images a real failover overwrote: they
// are its images now, never to be removed as a test's.
func (t *TestFailovers) Forget(imgs []api.Image) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	tfs, err := t.readLocked()
	if err != nil {
		return err
	}
	n := len(tfs)
	tfs = slices.DeleteFunc(tfs, func(o api.TestFailover) bool { return overlaps(o.Images, imgs) })
	if len(tfs) == n {
		return nil
	}
	return t.writeLocked(tfs)
}

// List handles GET /v1/test-failovers[?machine=M], oldest first.
func (t *TestFailovers) List(w http.ResponseWriter, r *http.Request) error {
	t.mu.Lock()
	tfs, err := t.readLocked()
	t.mu.Unlock()
	if err != nil {
		return err
	}
	if m := r.URL.Query().Get("machine"); m != "" {
		tfs = slices.DeleteFunc(tfs, func(o api.TestFailover) bool { return o.Machine != m })
	}
	httpapi.WriteJSON(w, http.StatusOK, tfs)
	return nil
}

// Cleanup handles DELETE /v1/test-failovers/{id}: it removes the image
// files the test failover wrote (not any a real failover uses now), its
// output directory if that is left empty, and its record.
func (t *TestFailovers) Cleanup(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	t.mu.Lock()
	defer t.mu.Unlock()
	tfs, err := t.readLocked()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(tfs, func(o api.TestFailover) bool { return o.ID == id })
	if i < 0 {
		return httpapi.Errorf(http.StatusNotFound, "no test failover "+strconv.Quote(id), "'lifeboat test-failovers' lists the test failovers whose images are kept")
	}
	tf := tfs[i]
	var real []api.Image
	if t.Real != nil {
		real = t.Real(tf.Machine)
	}
	res := api.TestFailoverCleanup{ID: tf.ID, Machine: tf.Machine, Removed: []string{}, Missing: []string{}, Kept: []string{}}
	var errs []error
	for _, im := range tf.Images {
		if overlaps([]api.Image{im}, real) {
			res.Kept = append(res.Kept, im.Path)
			continue
		}
		fi, err := os.Lstat(im.Path)
		switch {
		case os.IsNotExist(err):
			res.Missing = append(res.Missing, im.Path)
		case err != nil:
			errs = append(errs, err)
		case !fi.Mode().IsRegular():
			errs = append(errs, fmt.Errorf("%s is no longer a regular file: left alone", im.Path))
		default:
			if err := os.Remove(im.Path); err != nil {
				errs = append(errs, err)
			} else {
				res.Removed = append(res.Removed, im.Path)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		// The record stays: a second cleanup tries again.
		return &httpapi.Error{Status: http.StatusInternalServerError, Msg: "cleanup of test failover " + tf.ID + ": " + err.Error(),
			Remedy: "see why the server cannot remove them, then run the cleanup again", Err: err}
	}
	if os.Remove(tf.Out) == nil {
		res.OutRemoved = true
	}
	tfs = slices.Delete(tfs, i, i+1)
	if err := t.writeLocked(tfs); err != nil {
		return err
	}
	t.log.Info("test failover cleaned up", httpapi.LogComponent, "config", httpapi.LogMachine, tf.Machine, "id", tf.ID,
		"removed", len(res.Removed), "missing", len(res.Missing), "kept", len(res.Kept))
	httpapi.WriteJSON(w, http.StatusOK, res)
	return nil
}
