package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "512": 512, "1GiB": 1 << 30, "10 MiB": 10 << 20, "2T": 2 << 40, "3 G": 3 << 30, "7B": 7, "1.5GiB": 3 << 29, "1PB": 1e15} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "lots", "99999999999TiB", "G"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

// TestRunMetricsAndLogFlags: bad values of the new flags are refused with
// the flag's name; an explicit --metrics on a busy port is an error that
// names the flag.
func TestRunMetricsAndLogFlags(t *testing.T) {
	dir := servertest.Init(t)
	base := []string{"run", "--data", dir, "--api", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--metrics", ""}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-format", "xml"}, "--log-format"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--cache-free-alert", "lots"}, "--cache-free-alert"},
		{[]string{"--rpo-alert", "-1m"}, "--rpo-alert"},
		{[]string{"--alert-interval", "0s"}, "--alert-interval"},
	} {
		m := &Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
		err := m.Run(context.Background(), append(append([]string{}, base...), c.args...))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want one naming %s", c.args, err, c.want)
		}
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	m := &Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
	err = m.Run(context.Background(), []string{"run", "--data", dir, "--api", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--metrics", busy.Addr().String()})
	var msg bytes.Buffer
	printError(&msg, err)
	if err == nil || !strings.Contains(msg.String(), "metrics role: listen on") || !strings.Contains(msg.String(), "--metrics") {
		t.Errorf("busy --metrics: %s", msg.String())
	}
}
