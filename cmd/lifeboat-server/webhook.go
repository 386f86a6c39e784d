package main

import (
	"fmt"
	"log/slog"
	"net/url"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/alerts"
)

// newNotifier checks --alert-webhook and --alert-webhook-format and
// returns the notifier of the alerts (with no hook it does nothing).
func newNotifier(urls []string, format, server string, log *slog.Logger) (*alerts.Notifier, error) {
	if format != alerts.FormatAlertmanager && format != alerts.FormatJSON {
		return nil, api.WithHint(fmt.Errorf("--alert-webhook-format %q: unknown", format), "give alertmanager or json")
	}
	n := &alerts.Notifier{Server: server, Log: log.With("component", "alerts")}
	for _, u := range urls {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, api.WithHint(fmt.Errorf("--alert-webhook %q: not an http(s) URL", u), "give the receiver's URL, e.g. http://alertmanager:9093/api/v2/... or https://hooks.example.com/lifeboat")
		}
		n.Hooks = append(n.Hooks, alerts.Webhook{URL: u, Format: format})
	}
	return n, nil
}
