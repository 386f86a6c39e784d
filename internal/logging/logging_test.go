package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/slogtest"
	"time"
)

// TestHandlerConformance runs the standard library's conformance suite for
// slog handlers on the JSON output, turning dotted keys back into groups.
func TestHandlerConformance(t *testing.T) {
	var buf bytes.Buffer
	slogtest.Run(t, func(t *testing.T) slog.Handler {
		buf.Reset()
		h, err := NewHandler(&buf, Options{Format: FormatJSON, Level: slog.LevelDebug})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}, func(t *testing.T) map[string]any {
		lines := nonEmptyLines(buf.String())
		if len(lines) != 1 {
			t.Fatalf("want one line, got %q", buf.String())
		}
		return nest(t, lines[0])
	})
}

func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// nest decodes a JSON line and maps zerolog's keys and dotted groups to
// what slogtest expects.
func nest(t *testing.T, line string) map[string]any {
	t.Helper()
	var flat map[string]any
	if err := json.Unmarshal([]byte(line), &flat); err != nil {
		t.Fatalf("not JSON: %v: %q", err, line)
	}
	out := map[string]any{}
	for k, v := range flat {
		switch k {
		case "message":
			k = slog.MessageKey
		case "level":
			k = slog.LevelKey
		}
		m := out
		parts := strings.Split(k, ".")
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		m[parts[len(parts)-1]] = v
	}
	return out
}

func TestJSONFields(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, Options{Format: FormatJSON})
	if err != nil {
		t.Fatal(err)
	}
	log = log.With("component", "server")
	log.Debug("hidden")
	log.Info("segment durable", "seq", uint64(7), "err", errors.New("boom"), "wait", 1500*time.Millisecond, "disks", []string{"loop3"})
	log.WithGroup("req").Warn("slow", "ms", 12)
	lines := nonEmptyLines(buf.String())
	if len(lines) != 2 {
		t.Fatalf("want 2 lines (debug filtered at info), got %d: %q", len(lines), buf.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatalf("line 1 is not JSON: %v", err)
	}
	want := map[string]any{"level": "info", "message": "segment durable", "component": "server", "seq": 7.0, "err": "boom", "wait": "1.5s"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %#v, want %#v (line %s)", k, m[k], v, lines[0])
		}
	}
	if d, _ := m["disks"].([]any); len(d) != 1 || d[0] != "loop3" {
		t.Errorf("disks = %#v", m["disks"])
	}
	if ts, _ := m["time"].(string); ts == "" {
		t.Errorf("no time in %s", lines[0])
	} else if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		t.Errorf("time %q: %v", ts, err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil {
		t.Fatal(err)
	}
	if m["level"] != "warn" || m["req.ms"] != 12.0 || m["component"] != "server" {
		t.Errorf("line 2 = %s", lines[1])
	}
}

func TestConsoleIsHumanReadable(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, Options{Format: FormatConsole, Level: slog.LevelDebug})
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("disk synchronised", "disk", "loop3")
	out := buf.String()
	if strings.HasPrefix(strings.TrimSpace(out), "{") {
		t.Fatalf("console format wrote JSON: %q", out)
	}
	for _, want := range []string{"DBG", "disk synchronised", "disk=loop3"} {
		if !strings.Contains(out, want) {
			t.Errorf("console line %q lacks %q", out, want)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colours written to a non-terminal: %q", out)
	}
}

func TestAutoIsJSONOffTerminal(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, Options{Format: FormatAuto})
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hello")
	if !json.Valid(bytes.TrimSpace(buf.Bytes())) {
		t.Fatalf("auto format off a terminal is not JSON: %q", buf.String())
	}
}

func TestBadOptions(t *testing.T) {
	if _, err := New(&bytes.Buffer{}, Options{Format: "xml"}); err == nil || !strings.Contains(err.Error(), "json, console or auto") {
		t.Errorf("format xml: err = %v", err)
	}
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "INFO": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError} {
		got, err := ParseLevel(in)
		if err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseLevel("loud"); err == nil || !strings.Contains(err.Error(), "debug, info, warn or error") {
		t.Errorf("ParseLevel(loud): err = %v", err)
	}
}

func TestReservedKeysKept(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, Options{Format: FormatJSON})
	if err != nil {
		t.Fatal(err)
	}
	log.With("level", "x").Info("alert raised", "message", "disk full", "time", "soon")
	line := strings.TrimSpace(buf.String())
	if strings.Count(line, `"message":`) != 1 || strings.Count(line, `"level":`) != 1 || strings.Count(line, `"time":`) != 1 {
		t.Fatalf("duplicate keys: %s", line)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatal(err)
	}
	if m["message"] != "alert raised" || m["message_"] != "disk full" || m["level"] != "info" || m["level_"] != "x" || m["time_"] != "soon" {
		t.Errorf("line = %s", line)
	}
}
