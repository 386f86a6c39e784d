package configsrv

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/lifeboat-dr/lifeboat/api"
)

// TestCleanupKeepsRealFailoverImages: an image that the machine's real
// failover uses is kept by a test failover's cleanup, the test's other
// image removed.
func TestCleanupKeepsRealFailoverImages(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	real, test := filepath.Join(out, "sda.img"), filepath.Join(out, "sdb.img")
	for _, p := range []string{real, test} {
		if err := os.WriteFile(p, []byte("image"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tf := NewTestFailovers(dir, nil)
	tf.Real = func(m string) []api.Image {
		if m == "web1" {
			return []api.Image{{Disk: "sda", Path: real}}
		}
		return nil
	}
	id, err := tf.Add("web1", api.Point{ID: "p0"}, out, []api.Image{{Disk: "sda", Path: real}, {Disk: "sdb", Path: test}})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodDelete, "/v1/test-failovers/"+id, nil)
	r.SetPathValue("id", id)
	w := httptest.NewRecorder()
	if err := tf.Cleanup(w, r); err != nil {
		t.Fatal(err)
	}
	var res api.TestFailoverCleanup
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Kept) != 1 || res.Kept[0] != real || len(res.Removed) != 1 || res.Removed[0] != test || res.OutRemoved {
		t.Fatalf("cleanup: %+v", res)
	}
	if _, err := os.Stat(real); err != nil {
		t.Fatalf("the real failover's image: %v", err)
	}
}
