package fsutil

import "testing"

func TestIsZero(t *testing.T) {
	for _, n := range []int{0, 1, 4095, 4096, 64 << 10, 64<<10 + 1, 1 << 20} {
		p := make([]byte, n)
		if !IsZero(p) {
			t.Errorf("%d zeros: not zero", n)
		}
		for _, i := range []int{0, n / 2, n - 1} {
			if n == 0 {
				continue
			}
			p[i] = 1
			if IsZero(p) {
				t.Errorf("%d bytes with byte %d set: zero", n, i)
			}
			p[i] = 0
		}
	}
}
