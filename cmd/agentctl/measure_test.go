package main

import (
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/api"
)

// TestCountTrackLines: the lines of lifeboat-agent track --json are
// counted as writes (with their sizes), discards and dirty regions.
func TestCountTrackLines(t *testing.T) {
	out := `{"event":"queued","id":7,"disk":"/dev/loop0","offset":0,"length":65536,"op":"write","gen":1,"completed":false}
{"event":"queued","id":8,"disk":"/dev/loop0","offset":65536,"length":4096,"op":"write-zeroes","gen":1,"completed":false}
{"event":"queued","id":9,"disk":"/dev/loop0","offset":0,"length":1048576,"op":"discard","gen":1,"completed":false}
{"event":"dirty","disk":"/dev/loop0","offset":131072,"length":131072,"op":"dirty","gen":1,"completed":false}
{"event":"cut","offset":0,"length":0,"gen":1,"completed":false}
`
	c := Churn{Sizes: newSizes(), PerSecond: make([]int64, 2)}
	slot := 0
	if err := readTrack(strings.NewReader(out), func(l trackLine) { countChange(&c, l, slot); slot = 1 }); err != nil {
		t.Fatal(err)
	}
	if c.Writes != 2 || c.Bytes != 65536+4096+131072 || c.Discards != 1<<20 || c.Dirty != 131072 {
		t.Errorf("counted %+v", c)
	}
	if c.PerSecond[0] != 65536 || c.PerSecond[1] != 4096+131072 {
		t.Errorf("per second %v", c.PerSecond)
	}
	for _, b := range c.Sizes {
		if want := map[int64]uint64{4 << 10: 1, 64 << 10: 1}[b.UpTo]; b.Count != want {
			t.Errorf("bucket %d: %d writes, want %d", b.UpTo, b.Count, want)
		}
	}
}

// TestTrackErrorKeepsHint: track's error and hint lines become an error
// with that hint.
func TestTrackErrorKeepsHint(t *testing.T) {
	err := trackError("/usr/bin/lifeboat-agent", []string{"lifeboat-agent: track: /dev/sdz: no such device", "hint: give a block device"})
	if !strings.Contains(err.Error(), "/dev/sdz: no such device") || strings.Contains(err.Error(), "hint") {
		t.Errorf("error %q", err)
	}
	if h := api.Hint(err); h != "give a block device" {
		t.Errorf("hint %q", h)
	}
}
