package alerts

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// A real HTTP receiver that fails the first deliveries: the notifier
// retries with backoff until it is accepted, in both payload formats.
func TestWebhookDeliversWithRetries(t *testing.T) {
	var mu sync.Mutex
	var bodies []map[string]any
	calls := 0
	got := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= 2 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("bad body %q (%v) or content type %q", b, err, r.Header.Get("Content-Type"))
		}
		bodies = append(bodies, m)
		got <- struct{}{}
	}))
	defer srv.Close()

	n := &Notifier{Hooks: []Webhook{{URL: srv.URL}, {URL: srv.URL, Format: FormatJSON}}, Server: "dr1",
		MaxBackoff: 100 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}
	defer n.Close()
	now := time.Now().UTC()
	n.Notify([]api.Alert{{Alert: api.AlertRPO, Machine: "web1", Severity: "critical", Message: "newest point 20m old", Remedy: "check the agent", Since: now}}, nil)
	for range 2 {
		select {
		case <-got:
		case <-time.After(15 * time.Second):
			t.Fatalf("not delivered after retries (%d calls)", calls)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if calls < 4 {
		t.Fatalf("%d calls: the two failures were not retried", calls)
	}
	var am, plain map[string]any
	for _, b := range bodies {
		if b["version"] == "4" {
			am = b
		} else {
			plain = b
		}
	}
	if am == nil || plain == nil {
		t.Fatalf("want one Alertmanager and one plain payload: %v", bodies)
	}
	alerts := am["alerts"].([]any)
	a0 := alerts[0].(map[string]any)
	labels := a0["labels"].(map[string]any)
	if am["status"] != "firing" || a0["status"] != "firing" || labels["alertname"] != api.AlertRPO || labels["machine"] != "web1" ||
		a0["annotations"].(map[string]any)["remedy"] != "check the agent" {
		t.Fatalf("Alertmanager payload: %v", am)
	}
	if plain["event"] != "raised" || plain["alert"].(map[string]any)["machine"] != "web1" {
		t.Fatalf("plain payload: %v", plain)
	}
}
