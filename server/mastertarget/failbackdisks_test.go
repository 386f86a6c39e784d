//go:build linux

package mastertarget

import (
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

func TestFailbackDisks(t *testing.T) {
	dir := t.TempDir() // images that exist, no loop device on them
	one := []api.Image{{Disk: "loop3", Path: filepath.Join(dir, "missing.img")}}
	two := []api.Image{{Disk: "sda", Path: "/nonexistent/sda.img"}, {Disk: "sdb", Path: "/nonexistent/sdb.img"}}
	for _, tc := range []struct {
		name string
		imgs []api.Image
		req  []api.FailbackDiskRequest
		want string // substring of the error; "" for success
	}{
		{"no target", one, nil, "no target disk given"},
		{"one disk, no name, explicit from", one, []api.FailbackDiskRequest{{To: "/dev/sdz", From: "/dev/loop9"}}, ""},
		{"relative target", one, []api.FailbackDiskRequest{{To: "sdz"}}, "absolute device path"},
		{"unknown disk", one, []api.FailbackDiskRequest{{Disk: "sdq", To: "/dev/sdz"}}, `no disk "sdq"`},
		{"two disks, no name", two, []api.FailbackDiskRequest{{To: "/dev/sdz"}}, "has 2 disks"},
		{"two disks, one mapped", two, []api.FailbackDiskRequest{{Disk: "sda", To: "/dev/sdy", From: "/dev/loop8"}}, "no target for disk sdb"},
		{"twice", two, []api.FailbackDiskRequest{{Disk: "sda", To: "/dev/sdy"}, {Disk: "sda", To: "/dev/sdz"}}, "given twice"},
		{"image gone", one, []api.FailbackDiskRequest{{To: "/dev/sdz"}}, "is gone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := failbackDisks("m", tc.imgs, tc.req)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 1 || got[0].Name != "loop3" || got[0].Target != "/dev/sdz" || got[0].Source != "/dev/loop9" {
					t.Fatalf("got %+v", got)
				}
				return
			}
			var e *httpapi.Error
			if !errors.As(err, &e) || !strings.Contains(e.Msg, tc.want) || e.Remedy == "" || e.Status < http.StatusBadRequest {
				t.Fatalf("err %v; want an *httpapi.Error with a hint containing %q", err, tc.want)
			}
		})
	}
}
