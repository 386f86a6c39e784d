package cli

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/lifeboat-dr/lifeboat/api"
)

func TestPrintError(t *testing.T) {
	var b bytes.Buffer
	PrintError(&b, "agentctl", fmt.Errorf("status: %w", api.WithHint(errors.New("no agent"), "start it")))
	if got, want := b.String(), "agentctl: status: no agent\nhint: start it\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	b.Reset()
	PrintError(&b, "lifeboat", errors.New("boom"))
	if got, want := b.String(), "lifeboat: boom\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
