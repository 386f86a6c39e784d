//go:build !linux

package boot

import (
	"context"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Boot is Linux only: qemu's process group, priorities and KVM are handled
// there.
func Boot(ctx context.Context, o Options) (Result, error) {
	return Result{}, api.WithHint(ErrNotSupported, "boot-verified failover runs on a Linux server with qemu-system-x86")
}
