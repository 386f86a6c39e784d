package guesttest

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// DamageKernel overwrites the blocks of the guest's kernel inside image (a
// copy of g.Image) with a pattern, so that the kernel no longer
// decompresses: it finds the kernel's first 4 KiB by content (at any
// sector of the root partition) and damages the rest of the file as far
// as it is contiguous in the image. It
// returns the byte range it overwrote.
func DamageKernel(image string, g *Guest) (off, n int64, err error) {
	kernel, err := os.ReadFile(g.Kernel)
	if err != nil {
		return 0, 0, fmt.Errorf("guest: damage: %w", err)
	}
	const bs = 4096
	if len(kernel) < 2*bs {
		return 0, 0, fmt.Errorf("guest: damage: kernel %s is too small", g.Kernel)
	}
	f, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("guest: damage: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("guest: damage: %w", err)
	}
	first := kernel[:bs]
	buf := make([]byte, bs)
	at := int64(-1)
	for o := g.PartStart; o+bs <= st.Size(); o += 512 {
		if _, err := f.ReadAt(buf, o); err != nil && err != io.EOF {
			return 0, 0, fmt.Errorf("guest: damage: %w", err)
		}
		if bytes.Equal(buf, first) {
			at = o
			break
		}
	}
	if at < 0 {
		return 0, 0, fmt.Errorf("guest: damage: kernel blocks not found in %s", image)
	}
	// Keep the first block (the boot header) so GRUB loads the kernel and
	// the failure is the kernel's own; damage what follows while it is
	// contiguous on disk.
	junk := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, bs/4)
	start := at + bs
	o := start
	for i := bs; i+bs <= len(kernel); i += bs {
		if _, err := f.ReadAt(buf, o); err != nil {
			break
		}
		if !bytes.Equal(buf, kernel[i:i+bs]) {
			break
		}
		if _, err := f.WriteAt(junk, o); err != nil {
			return 0, 0, fmt.Errorf("guest: damage: %w", err)
		}
		o += bs
	}
	if o == start {
		return 0, 0, fmt.Errorf("guest: damage: kernel in %s is not contiguous after its first block", image)
	}
	if err := f.Sync(); err != nil {
		return 0, 0, fmt.Errorf("guest: damage: %w", err)
	}
	return start, o - start, nil
}
