package buildinfo

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestVersionDefaultsAndOverride(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })

	Version = ""
	if got := Get().Version; got != "devel" {
		t.Fatalf("unset version: got %q, want devel", got)
	}
	Version = "1.2.3"
	var b bytes.Buffer
	Print(&b, "lifeboat-agent")
	if !strings.HasPrefix(b.String(), "lifeboat-agent 1.2.3 (") || !strings.HasSuffix(b.String(), ")\n") {
		t.Fatalf("version line: %q", b.String())
	}
}

func TestIsVersionArg(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"--version"}, true},
		{[]string{"-version"}, true},
		{[]string{"version"}, true},
		{[]string{"run", "--version"}, false},
		{nil, false},
	} {
		if got := IsVersionArg(c.args); got != c.want {
			t.Errorf("IsVersionArg(%q) = %v, want %v", c.args, got, c.want)
		}
	}
}

func TestCollector(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "9.8.7"
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collector("lifeboat-server"))
	n, err := testutil.GatherAndCount(reg, "lifeboat_build_info")
	if err != nil || n != 1 {
		t.Fatalf("lifeboat_build_info series: %d, %v", n, err)
	}
	mfs, _ := reg.Gather()
	m := mfs[0].GetMetric()[0]
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["version"] != "9.8.7" || labels["program"] != "lifeboat-server" || m.GetGauge().GetValue() != 1 {
		t.Fatalf("metric: labels %v value %v", labels, m.GetGauge().GetValue())
	}
}
