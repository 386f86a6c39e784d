package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Webhook formats.
const (
	// FormatAlertmanager is the payload Prometheus Alertmanager sends to
	// its webhook receivers (version 4): tools that take Alertmanager's
	// webhooks (chat bridges, incident tools) take Lifeboat's.
	FormatAlertmanager = "alertmanager"
	// FormatJSON is Lifeboat's own: {"event": "raised"|"cleared",
	// "alert": <the api.Alert of GET /v1/alerts>, "server": name}.
	FormatJSON = "json"
)

// Webhook is one receiver of alert notifications.
type Webhook struct {
	URL    string
	Format string // FormatAlertmanager (default) or FormatJSON
}

// Notifier delivers every raised and cleared alert to webhooks, each
// POST retried with backoff (1 s doubling to MaxBackoff) for up to
// RetryFor; deliveries run in the background, in order per webhook, and
// never hold up an evaluation.
type Notifier struct {
	Hooks       []Webhook
	Server      string // the server's name, in every payload
	ExternalURL string
	Client      *http.Client
	RetryFor    time.Duration // 0: 10 minutes
	MaxBackoff  time.Duration // 0: 1 minute
	Log         *slog.Logger

	mu     sync.Mutex
	queues map[int]chan []byte
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Notify queues a notification of the alerts raised and cleared by one
// evaluation. It never blocks: a webhook whose queue is full (1000
// notifications behind) loses the newest, with a log line.
func (n *Notifier) Notify(raised, cleared []api.Alert) {
	if len(n.Hooks) == 0 || len(raised)+len(cleared) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.queues == nil {
		n.queues = map[int]chan []byte{}
		n.ctx, n.cancel = context.WithCancel(context.Background())
	}
	for i, h := range n.Hooks {
		for _, body := range n.payloads(h, raised, cleared) {
			q := n.queues[i]
			if q == nil {
				q = make(chan []byte, 1000)
				n.queues[i] = q
				n.wg.Add(1)
				go n.deliver(h, q)
			}
			select {
			case q <- body:
			default:
				n.log().Error("alert webhook queue full: notification dropped", "url", h.URL)
			}
		}
	}
}

// Close stops the deliveries (those being retried are abandoned).
func (n *Notifier) Close() {
	n.mu.Lock()
	if n.cancel != nil {
		n.cancel()
	}
	n.mu.Unlock()
	n.wg.Wait()
}

func (n *Notifier) log() *slog.Logger {
	if n.Log != nil {
		return n.Log
	}
	return slog.Default()
}

func (n *Notifier) deliver(h Webhook, q chan []byte) {
	defer n.wg.Done()
	client := n.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	retryFor := n.RetryFor
	if retryFor <= 0 {
		retryFor = 10 * time.Minute
	}
	maxBackoff := n.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = time.Minute
	}
	for {
		var body []byte
		select {
		case <-n.ctx.Done():
			return
		case body = <-q:
		}
		deadline := time.Now().Add(retryFor)
		wait := time.Second
		for attempt := 1; ; attempt++ {
			err := post(n.ctx, client, h.URL, body)
			if err == nil {
				break
			}
			if time.Now().Add(wait).After(deadline) || n.ctx.Err() != nil {
				n.log().Error("alert webhook: notification not delivered", "url", h.URL, "attempts", attempt, "err", err)
				break
			}
			n.log().Warn("alert webhook: delivery failed, retrying", "url", h.URL, "attempt", attempt, "in", wait.String(), "err", err)
			select {
			case <-n.ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, maxBackoff)
		}
	}
}

func post(ctx context.Context, c *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "lifeboat-server")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}

// payloads renders one evaluation's changes for h: one Alertmanager
// message carrying every alert, or one plain JSON message per change.
func (n *Notifier) payloads(h Webhook, raised, cleared []api.Alert) [][]byte {
	if h.Format == FormatJSON {
		var out [][]byte
		for _, ev := range []struct {
			name string
			as   []api.Alert
		}{{"raised", raised}, {"cleared", cleared}} {
			for _, a := range ev.as {
				b, _ := json.Marshal(map[string]any{"event": ev.name, "server": n.Server, "alert": a})
				out = append(out, b)
			}
		}
		return out
	}
	type amAlert struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     time.Time         `json:"startsAt"`
		EndsAt       time.Time         `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
		Fingerprint  string            `json:"fingerprint"`
	}
	var alerts []amAlert
	status := "resolved"
	add := func(a api.Alert, st string) {
		labels := map[string]string{"alertname": a.Alert, "severity": a.Severity, "server": n.Server}
		if a.Machine != "" {
			labels["machine"] = a.Machine
		}
		if a.Disk != "" {
			labels["disk"] = a.Disk
		}
		am := amAlert{Status: st, Labels: labels, StartsAt: a.Since,
			Annotations:  map[string]string{"summary": a.Message, "remedy": a.Remedy},
			GeneratorURL: n.ExternalURL, Fingerprint: fmt.Sprintf("%s/%s/%s/%s", n.Server, a.Alert, a.Machine, a.Disk)}
		if a.Cleared != nil {
			am.EndsAt = *a.Cleared
		}
		alerts = append(alerts, am)
	}
	for _, a := range raised {
		add(a, "firing")
		status = "firing"
	}
	for _, a := range cleared {
		add(a, "resolved")
	}
	common := map[string]string{"server": n.Server}
	b, _ := json.Marshal(map[string]any{
		"version": "4", "groupKey": "{}:{server=\"" + n.Server + "\"}", "truncatedAlerts": 0,
		"status": status, "receiver": "lifeboat", "groupLabels": common, "commonLabels": common,
		"commonAnnotations": map[string]string{}, "externalURL": n.ExternalURL, "alerts": alerts,
	})
	return [][]byte{b}
}
