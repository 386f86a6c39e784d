package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Bad uses of agentctl bandwidth are refused before the agent is asked,
// with what to give.
func TestBandwidthUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"set"}, "give one RATE"},
		{[]string{"set", "fast"}, "not a rate"},
		{[]string{"--state", "/nonexistent", "set", "1KiB"}, "at least 64KiB"},
		{[]string{"reset", "--for", "1h"}, "--for goes with set"},
		{[]string{"set", "10MiB", "--for", "-1h"}, "must not be negative"},
		{[]string{"slow"}, "unknown action"},
	} {
		var out, errOut bytes.Buffer
		code, err := bandwidthCommand(context.Background(), c.args, &out, &errOut)
		if code != exitUsage || err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("bandwidth %q: exit %d, %v; want usage saying %q", c.args, code, err, c.says)
		}
	}
	// Flags before, between and after the words reach the agent's socket.
	var out, errOut bytes.Buffer
	code, err := bandwidthCommand(context.Background(), []string{"--state", t.TempDir(), "set", "--json", "10MiB", "--for", "1h"}, &out, &errOut)
	if code != exitNoAgent {
		t.Errorf("set with interleaved flags: exit %d, %v; want %d (no agent)", code, err, exitNoAgent)
	}
}
