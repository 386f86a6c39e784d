package api

import (
	"errors"
	"fmt"
	"testing"
)

func TestStatusErrorIs(t *testing.T) {
	exp := uint64(7)
	tests := []struct {
		err  *StatusError
		want error
		not  error
	}{
		{&StatusError{Status: 409, Expected: &exp}, ErrSequenceGap, ErrRetired},
		{&StatusError{Status: 409}, ErrConflict, ErrSequenceGap},
		{&StatusError{Status: 410}, ErrRetired, ErrConflict},
		{&StatusError{Status: 421}, ErrMisdirected, ErrNotFound},
		{&StatusError{Status: 507}, ErrCacheFull, ErrUnavailable},
		{&StatusError{Status: 503, Code: CodeMoving}, ErrMoving, ErrCacheFull},
		{&StatusError{Status: 503, Code: CodeMoving}, ErrUnavailable, ErrMisdirected},
		{&StatusError{Status: 503}, ErrUnavailable, ErrMoving},
		{&StatusError{Status: 502}, ErrServer, ErrCacheFull},
		{&StatusError{Status: 403}, ErrForbidden, ErrUnauthorized},
	}
	for _, tt := range tests {
		err := fmt.Errorf("segment 3: %w", tt.err)
		if !errors.Is(err, tt.want) {
			t.Errorf("%d: errors.Is(%v) = false", tt.err.Status, tt.want)
		}
		if errors.Is(err, tt.not) {
			t.Errorf("%d: errors.Is(%v) = true", tt.err.Status, tt.not)
		}
	}
}

type fieldless struct{}

func (fieldless) Error() string { return "x" }

func TestHint(t *testing.T) {
	base := errors.New("disk full")
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"none", fmt.Errorf("a: %w", base), ""},
		{"direct", WithHint(base, "free space"), "free space"},
		{"wrapped", fmt.Errorf("write: %w", WithHint(base, "free space")), "free space"},
		{"outer wins", WithHint(WithHint(base, "inner"), "outer"), "outer"},
		{"empty outer", WithHint(WithHint(base, "inner"), ""), "inner"},
		{"joined", errors.Join(fieldless{}, Errorf("h2", "b")), "h2"},
		{"status", fmt.Errorf("put: %w", &StatusError{Status: 507, Remedy: "grow the cache"}), "grow the cache"},
	}
	for _, tt := range tests {
		if got := Hint(tt.err); got != tt.want {
			t.Errorf("%s: Hint = %q, want %q", tt.name, got, tt.want)
		}
	}
	if err := WithHint(base, "h"); err.Error() != "disk full" {
		t.Errorf("hint leaked into Error(): %q", err.Error())
	}
}
