//go:build !linux

package configsrv

// lowPriority runs f; elsewhere than Linux booting is not supported, so
// nothing runs a boot test's materialize.
func lowPriority[T any](f func() (T, error)) (T, error) { return f() }
