package uploader

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// conflictServer holds another segment under seq 1: it answers the
// agent's segment 1 as the process role does (issue 18, item 1).
type conflictServer struct{ fakeServer }

func (f *conflictServer) PutSegmentFile(ctx context.Context, disk string, seq uint64, path string) (api.SegmentAck, error) {
	if seq == 1 {
		return api.SegmentAck{}, &api.StatusError{Status: http.StatusConflict, Code: api.CodeSegmentConflict,
			Message: "segment 1 conflicts with the segment 1 already accepted", Remedy: "resync"}
	}
	return f.fakeServer.PutSegmentFile(ctx, disk, seq, path)
}

// A segment refused as a conflict is never taken as acknowledged: it stays
// in the spool, the uploader reports the divergence, and Reset drops the
// spool for a resync.
func TestConflictIsADivergence(t *testing.T) {
	dir := t.TempDir()
	srv := &conflictServer{}
	u, err := New(srv, "d", dir, quiet())
	if err != nil {
		t.Fatal(err)
	}
	writeSegments(t, dir, 0, 3, u.Sealed)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	u.Run(ctx)
	seq, ok := u.Diverged()
	if !ok || seq != 1 {
		t.Fatalf("Diverged() = %d, %v; want 1, true", seq, ok)
	}
	st := u.Status()
	if st.NextSeq != 1 || st.Queued != 2 || st.Refused != RefusedConflict {
		t.Errorf("status after a conflict: %+v", st)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("spool after a conflict: %d segments, want 2 (1 and 2 not acknowledged)", len(ents))
	}
	if err := u.Reset(7); err != nil {
		t.Fatal(err)
	}
	if _, ok := u.Diverged(); ok {
		t.Error("diverged after Reset")
	}
	if st := u.Status(); st.NextSeq != 7 || st.Queued != 0 || st.Bytes != 0 || st.LastError != "" {
		t.Errorf("status after Reset: %+v", st)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("spool after Reset: %v", ents)
	}
}
