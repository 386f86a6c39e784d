package api

import "fmt"

// Hinter is an error that tells the operator what to do about it. This is
// the project's one convention for remedies: the hint is never part of
// Error(), and a command prints it on its own line (internal/cli).
type Hinter interface {
	error
	Hint() string
}

// Hint returns the first non-empty hint along err's chain (including
// joined errors), or "".
func Hint(err error) string {
	for err != nil {
		if h, ok := err.(Hinter); ok && h.Hint() != "" {
			return h.Hint()
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if h := Hint(e); h != "" {
					return h
				}
			}
			return ""
		default:
			return ""
		}
	}
	return ""
}

// WithHint returns err with a hint for the operator; nil stays nil.
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &hinted{err: err, hint: hint}
}

// Errorf is fmt.Errorf with a hint.
func Errorf(hint, format string, a ...any) error {
	return WithHint(fmt.Errorf(format, a...), hint)
}

type hinted struct {
	err  error
	hint string
}

func (e *hinted) Error() string { return e.err.Error() }
func (e *hinted) Unwrap() error { return e.err }
func (e *hinted) Hint() string  { return e.hint }
