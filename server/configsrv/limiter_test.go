package configsrv

import (
	"net/http/httptest"
	"testing"
	"time"
)

// Wrong proofs from one address make it wait longer and longer; another
// address is not slowed; a success forgets the address (issue 18, item 8).
func TestLimiterDelaysGrow(t *testing.T) {
	now := time.Unix(1e9, 0)
	l := NewLimiter()
	l.now = func() time.Time { return now }
	bursts := 0
	l.OnBurst = func(string, int, time.Duration) { bursts++ }
	allow := func(src string) bool { return l.Allow(httptest.NewRecorder(), src) == nil }
	for range FreeFailures {
		if !allow("a") {
			t.Fatal("refused within the free failures")
		}
		l.Failed("a")
	}
	var prev time.Duration
	for i := range 6 {
		if allow("a") {
			t.Fatalf("failure %d: allowed at once", FreeFailures+i)
		}
		if !allow("b") {
			t.Fatal("another address slowed down")
		}
		d := delay(FreeFailures + i)
		if d <= prev {
			t.Fatalf("delay %v after %d failures, not more than %v", d, FreeFailures+i, prev)
		}
		prev = d
		now = now.Add(d)
		if !allow("a") {
			t.Fatalf("refused after waiting %v", d)
		}
		l.Failed("a")
	}
	if delay(100) != MaxDelay {
		t.Errorf("delay after 100 failures %v, want the cap %v", delay(100), MaxDelay)
	}
	rec := httptest.NewRecorder()
	if l.Allow(rec, "a") == nil || rec.Header().Get("Retry-After") == "" {
		t.Error("no Retry-After on a refusal")
	}
	for range BurstFailures {
		allow("a")
	}
	if bursts == 0 {
		t.Error("a burst of attempts raised no alert")
	}
	l.Succeeded("a")
	if !allow("a") {
		t.Error("still slowed down after a success")
	}
}
