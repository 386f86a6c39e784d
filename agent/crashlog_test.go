package agent

import (
	"testing"

	"github.com/lifeboat-dr/lifeboat/tracker"
)

// TestCoarsenCoversAndBounds: the persisted ranges always cover what was
// pending, and there are at most the bound of them.
func TestCoarsenCoversAndBounds(t *testing.T) {
	var rs []tracker.Range
	for i := int64(0); i < 5000; i++ {
		rs = append(rs, tracker.Range{Off: i*i*4096 + 512, Len: 4096 + i%3*512})
	}
	for _, max := range []int{1, 10, 1024, 5000} {
		got := coarsen(rs, max)
		if len(got) > max {
			t.Errorf("max %d: %d ranges", max, len(got))
		}
		var s tracker.Set
		for _, r := range got {
			s.Add(r.Off, r.Len)
		}
		for _, r := range rs {
			if !s.Covers(r.Off, r.Len) {
				t.Fatalf("max %d: [%d,+%d) not covered", max, r.Off, r.Len)
			}
		}
	}
	if got := coarsen(rs[:10], 1024); len(got) != 10 || got[3] != rs[3] {
		t.Errorf("ranges within the bound changed: %v", got)
	}
}
