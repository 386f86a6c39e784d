package alerts_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/lifeboat-dr/lifeboat/api"
	lbalerts "github.com/lifeboat-dr/lifeboat/server/alerts"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// TestWebhookFromServer: a server configured with a webhook POSTs the
// heartbeat-lost alert when it is raised (firing) and when it clears
// (resolved), to a real HTTP receiver.
func TestWebhookFromServer(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Errorf("decode: %v", err)
		}
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}))
	defer recv.Close()
	n := &lbalerts.Notifier{Hooks: []lbalerts.Webhook{{URL: recv.URL}}, Server: "dr1"}
	defer n.Close()

	dir := servertest.Init(t)
	cfg := alertsCfg(t, dir)
	cfg.AlertNotify = n.Notify
	s := servertest.Start(t, cfg)
	ag := servertest.Register(t, s, dir, "m1")
	ctx := context.Background()
	if _, err := ag.Process.SetMachine(ctx, []api.DiskSpec{{Name: "d0", Size: 1 << 20}}); err != nil {
		t.Fatal(err)
	}
	status := func(want string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range got {
			for _, a := range m["alerts"].([]any) {
				a := a.(map[string]any)
				l := a["labels"].(map[string]any)
				if a["status"] == want && l["alertname"] == api.AlertHeartbeat && l["machine"] == "m1" {
					return true
				}
			}
		}
		return false
	}
	servertest.WaitFor(t, "heartbeat-lost firing at the receiver", func() bool { return status("firing") })
	if _, err := ag.Process.DiskState(ctx, "d0"); err != nil {
		t.Fatal(err)
	}
	servertest.WaitFor(t, "heartbeat-lost resolved at the receiver", func() bool {
		s.Alerts(ctx)
		return status("resolved")
	})
}
