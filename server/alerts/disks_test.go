package alerts_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// TestSegmentHeaderChecksAndRefusals: a segment whose header declares a
// disk size far beyond the declared one, or a disk the machine never
// declared, is refused before anything is applied; each refusal shows
// per machine in `lifeboat machines` and GET /v1/alerts with its reason,
// and clears once an upload is accepted (issue 18, items 3 and 7).
func TestSegmentHeaderChecksAndRefusals(t *testing.T) {
	const size = 1 << 20
	dir := servertest.Init(t)
	s := servertest.Start(t, alertsCfg(t, dir))
	a := servertest.Register(t, s, dir, "web1")
	adm := servertest.Admin(t, s, dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := a.Process.SetMachine(ctx, []api.DiskSpec{{Name: "sda", Size: size}}); err != nil {
		t.Fatal(err)
	}
	build := func(disk string, diskSize int64, seq uint64) string {
		return servertest.Segment{Machine: "web1", Disk: disk, DiskSize: diskSize, Seq: seq, Gen: seq + 1,
			Writes: []servertest.Write{{Off: 0, Data: bytes.Repeat([]byte{7}, 4096)}}}.Build(t, t.TempDir())
	}
	refused := func(what, disk string, diskSize int64, status int) {
		t.Helper()
		_, err := a.Process.PutSegmentFile(ctx, disk, 0, build(disk, diskSize, 0))
		var se *api.StatusError
		if !errors.As(err, &se) || se.Status != status {
			t.Fatalf("%s: err %v, want a %d refusal", what, err, status)
		}
		if se.Remedy == "" {
			t.Errorf("%s: refusal without a hint: %v", what, err)
		}
	}
	refused("2^62-byte disk", "sda", 1<<62, http.StatusBadRequest)
	refused("undeclared disk", "sdz", size, http.StatusConflict)

	// Both show per machine, with their reason.
	ms, err := adm.Machines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var probs []string
	for _, m := range ms {
		if m.Name == "web1" {
			probs = m.Problems
		}
	}
	joined := strings.Join(probs, "\n")
	if !strings.Contains(joined, "disk sda: upload of segment 0 refused (400") || !strings.Contains(joined, "disk sdz: upload of segment 0 refused (409") {
		t.Errorf("lifeboat machines problems do not show both refusals:\n%s", joined)
	}
	as := alerts(t, adm)
	var sda, sdz *api.Alert
	for i, al := range as.Active {
		if al.Alert == api.AlertUploadRefused && al.Machine == "web1" {
			switch al.Disk {
			case "sda":
				sda = &as.Active[i]
			case "sdz":
				sdz = &as.Active[i]
			}
		}
	}
	if sda == nil || sdz == nil {
		t.Fatalf("no upload-refused alert for each disk: %+v", as.Active)
	}
	if !strings.Contains(sda.Message, "1) bytes") && !strings.Contains(sda.Message, "declares disk sda") || sda.Remedy == "" {
		t.Errorf("alert without the reason or remedy: %+v", *sda)
	}

	// Growth within the bound is accepted, and clears sda's refusal.
	if _, err := a.Process.PutSegmentFile(ctx, "sda", 0, build("sda", 2*size, 0)); err != nil {
		t.Fatalf("segment of a disk grown to twice its declared size: %v", err)
	}
	as = alerts(t, adm)
	for _, al := range as.Active {
		if al.Alert == api.AlertUploadRefused && al.Disk == "sda" {
			t.Errorf("refusal of sda still active after an accepted upload: %+v", al)
		}
	}
	// Beyond the bound: refused.
	_, err = a.Process.PutSegmentFile(ctx, "sda", 1, build("sda", 2*size+1<<20, 1))
	var se *api.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusBadRequest {
		t.Fatalf("segment beyond the growth bound: err %v, want 400", err)
	}
}
