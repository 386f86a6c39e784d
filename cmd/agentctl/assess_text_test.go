package main

import (
	"strings"
	"testing"
)

// TestJudgeNamesTodaysDefault: a link that keeps up only on average is
// judged against the agent's default (no spool: 16 MiB of segments in
// memory, then metadata mode), never a spool the agent no longer has.
func TestJudgeNamesTodaysDefault(t *testing.T) {
	for _, x := range []struct {
		peak      int64
		want, not []string
	}{
		{30 << 20, []string{"up to 10 MiB wait", "within what the agent holds in memory by default (16 MiB, --memory-bytes)"}, []string{"spool", "metadata"}},
		{300 << 20, []string{"up to 280 MiB wait", "metadata mode", "lists no point", "nothing is lost", "--memory-bytes", "spool of at least 280 MiB", "--spool-bytes"}, []string{"1 GiB", "default 1"}},
	} {
		c := Churn{PerSecond: make([]int64, 20), Seconds: 20, Bytes: x.peak}
		c.PerSecond[0] = x.peak
		c.finish()
		v := judge(c, float64(20<<20))
		if v.Code != "keeps-up-on-average" {
			t.Fatalf("peak %d: %+v", x.peak, v)
		}
		for _, w := range x.want {
			if !strings.Contains(v.Text, w) {
				t.Errorf("peak %d: verdict %q lacks %q", x.peak, v.Text, w)
			}
		}
		for _, n := range x.not {
			if strings.Contains(v.Text, n) {
				t.Errorf("peak %d: verdict %q mentions %q", x.peak, v.Text, n)
			}
		}
	}
}
