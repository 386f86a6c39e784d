package recdir_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
	"github.com/lifeboat-dr/lifeboat/server/recdir"
)

type rec struct {
	Name string `json:"name"`
	N    int    `json:"n"`
}

func noDots(name string) error {
	if strings.HasPrefix(name, ".") {
		return errors.New("starts with a dot")
	}
	return nil
}

func TestPutGetList(t *testing.T) {
	d := recdir.New[rec](filepath.Join(t.TempDir(), "recs"), noDots)
	if names, err := d.Names(); err != nil || len(names) != 0 {
		t.Fatalf("missing directory: %v %v", names, err)
	}
	if _, err := d.Get("a"); !errors.Is(err, recdir.ErrNotFound) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("get of a missing record: %v", err)
	}
	for i, n := range []string{"b", "a", "c"} {
		if err := d.Put(n, rec{Name: n, N: i}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := d.Get("b")
	if err != nil || got != (rec{Name: "b", N: 0}) {
		t.Fatalf("get b: %+v %v", got, err)
	}
	b, err := os.ReadFile(d.File("a"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"name\": \"a\",\n  \"n\": 1\n}\n"; string(b) != want {
		t.Errorf("file a = %q, want %q", b, want)
	}
	fi, err := os.Stat(d.File("a"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode of a record: %v %v", fi.Mode(), err)
	}
	l, err := d.List()
	if err != nil || len(l) != 3 || l[0].Name != "a" || l[1].Name != "b" || l[2].Name != "c" || l[0].Value.N != 1 {
		t.Fatalf("list: %+v %v", l, err)
	}
	if ok, err := d.Exists("c"); !ok || err != nil {
		t.Errorf("exists c: %v %v", ok, err)
	}
	if err := d.Delete("c"); err != nil {
		t.Fatal(err)
	}
	if ok, err := d.Exists("c"); ok || err != nil {
		t.Errorf("exists c after delete: %v %v", ok, err)
	}
	if err := d.Delete("c"); !errors.Is(err, recdir.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	for _, bad := range []string{"", "../x", "a/b", ".hidden"} {
		if err := d.Put(bad, rec{}); err == nil {
			t.Errorf("put %q accepted", bad)
		}
		if _, err := d.Get(bad); err == nil {
			t.Errorf("get %q accepted", bad)
		}
	}
}

// A crash between the temporary file and the rename leaves a temporary
// file: it is no record, the record keeps its old content, and
// RemoveTemps cleans it.
func TestLeftoverTempIgnored(t *testing.T) {
	d := recdir.New[rec](t.TempDir(), nil)
	if err := d.Put("m", rec{Name: "m", N: 1}); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(d.Path(), fsutil.TempPrefix("m.json")+"123")
	if err := os.WriteFile(tmp, []byte(`{"name":"m","n":2`), 0o600); err != nil {
		t.Fatal(err)
	}
	// A temporary file named like a record of its own.
	tmp2 := filepath.Join(d.Path(), fsutil.TempPrefix("x.json")+"9.json")
	if err := os.WriteFile(tmp2, []byte(`garbage`), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := d.List()
	if err != nil || len(l) != 1 || l[0].Name != "m" || l[0].Value.N != 1 {
		t.Fatalf("list with a leftover temporary file: %+v %v", l, err)
	}
	if err := d.RemoveTemps(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{tmp, tmp2} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", f, err)
		}
	}
	if v, err := d.Get("m"); err != nil || v.N != 1 {
		t.Errorf("record after RemoveTemps: %+v %v", v, err)
	}
}

func TestCorruptRecordNamesItsFile(t *testing.T) {
	d := recdir.New[rec](t.TempDir(), nil)
	if err := d.Put("good", rec{N: 1}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.File("bad"), []byte(`{"n":`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := d.Get("bad")
	var ce *recdir.CorruptError
	if !errors.As(err, &ce) || ce.File != d.File("bad") || !strings.Contains(err.Error(), "bad.json") {
		t.Fatalf("get of a damaged record: %v", err)
	}
	if _, err := d.List(); !errors.As(err, &ce) || ce.File != d.File("bad") {
		t.Fatalf("list with a damaged record: %v", err)
	}
}

func TestWriteReadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "list.json")
	if err := recdir.ReadFile(p, new([]rec)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	in := []rec{{Name: "x", N: 1}}
	if err := recdir.WriteFile(p, in); err != nil {
		t.Fatal(err)
	}
	var out []rec
	if err := recdir.ReadFile(p, &out); err != nil || len(out) != 1 || out[0] != in[0] {
		t.Fatalf("read back: %+v %v", out, err)
	}
}
