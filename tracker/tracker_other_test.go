//go:build !linux

package tracker

import (
	"errors"
	"testing"
)

func TestOpenNotSupported(t *testing.T) {
	if _, err := Open(Options{}); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("Open = %v; want an error wrapping ErrNotSupported", err)
	}
	var de *DeviceError
	if err := CheckDevice("disk0"); !errors.As(err, &de) || !errors.Is(err, ErrNotSupported) || de.Hint() == "" {
		t.Fatalf("CheckDevice = %v; want a *DeviceError with a hint, wrapping ErrNotSupported", err)
	}
}
