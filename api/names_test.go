package api

import (
	"strings"
	"testing"
)

// A name's bad character is reported whole, not as its first byte (issue
// 18, item 10).
func TestValidNameReportsRunes(t *testing.T) {
	for name, want := range map[string]string{
		"café":       `character 'é' not allowed`,
		"disk-😀":     `character '😀' not allowed`,
		"a\xffb":     `byte 0xff at 1 is not UTF-8`,
		"space name": `character ' ' not allowed`,
	} {
		err := ValidName(name)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidName(%q) = %v, want %q", name, err, want)
		}
	}
}
