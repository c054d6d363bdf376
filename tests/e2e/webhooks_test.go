package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The webhook tests run `shrike serve` with alerts.webhooks against the
// helper broker and a redis-server, with receivers that the test runs on
// loopback. A receiver checks every request's signatures as the README's
// snippets do (X-Shrike-Signature: HMAC-SHA256 of the body with the shared
// key; X-Shrike-Signature-Timestamped: of "<timestamp>.<body>", the
// timestamp within five minutes), and records what it accepted by alert
// id.

// webhookSecret is the HMAC key of the tests' webhooks.
const webhookSecret = "4f1c9a7e2b8d6f3a0c5e9b1d7a4f2c8e"

// receiver is a webhook receiver on loopback.
type receiver struct {
	url string
	// failFirst answers 503 to the first failFirst attempts of each alert.
	failFirst int
	// delay holds every answer this long, or until the test ends.
	delay   time.Duration
	release chan struct{}

	mu       sync.Mutex
	attempts map[string]int    // alert id → attempts seen
	accepted map[string]int    // alert id → attempts answered 2xx
	bodies   map[string][]byte // alert id → the body of its first accepted attempt
	problems []string          // bad signatures, timestamps, ids
}

func startReceiver(t *testing.T, failFirst int, delay time.Duration) *receiver {
	t.Helper()
	r := &receiver{
		failFirst: failFirst, delay: delay, release: make(chan struct{}),
		attempts: map[string]int{}, accepted: map[string]int{}, bodies: map[string][]byte{},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }() // ends with Close below
	t.Cleanup(func() {
		close(r.release)
		_ = srv.Close()
	})
	r.url = "http://" + ln.Addr().String() + "/hooks/shrike"
	return r
}

// verifySignature is the README's receiver check of X-Shrike-Signature.
func verifySignature(secret, signature string, body []byte) error {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(signature), []byte(want)) {
		return fmt.Errorf("signature %q, want %q", signature, want)
	}
	return nil
}

// verifyTimestamped is the README's receiver check of
// X-Shrike-Signature-Timestamped, with the replay window.
func verifyTimestamped(secret, signature, timestamp string, body []byte, now time.Time) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("bad X-Shrike-Timestamp %q", timestamp)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %s off", d)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp + "."))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(signature), []byte(want)) {
		return fmt.Errorf("timestamped signature %q, want %q", signature, want)
	}
	return nil
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 16<<20))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id := req.Header.Get("X-Shrike-Alert-Id")
	r.mu.Lock()
	if err := verifySignature(webhookSecret, req.Header.Get("X-Shrike-Signature"), body); err != nil {
		r.problems = append(r.problems, fmt.Sprintf("alert %s: %v", id, err))
	}
	if err := verifyTimestamped(webhookSecret, req.Header.Get("X-Shrike-Signature-Timestamped"), req.Header.Get("X-Shrike-Timestamp"), body, time.Now()); err != nil {
		r.problems = append(r.problems, fmt.Sprintf("alert %s: %v", id, err))
	}
	if req.Method != http.MethodPost || req.URL.Path != "/hooks/shrike" || req.Header.Get("Content-Type") != "application/json" {
		r.problems = append(r.problems, fmt.Sprintf("alert %s: %s %s, Content-Type %q", id, req.Method, req.URL.Path, req.Header.Get("Content-Type")))
	}
	r.attempts[id]++
	fail := r.attempts[id] <= r.failFirst
	r.mu.Unlock()
	if r.delay > 0 {
		select {
		case <-time.After(r.delay):
		case <-r.release:
		}
	}
	if fail {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	r.mu.Lock()
	r.accepted[id]++
	if _, ok := r.bodies[id]; !ok {
		r.bodies[id] = body
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// got returns the canonical forms of the alerts accepted (json format),
// sorted, checking that each body's id is its X-Shrike-Alert-Id and that
// equal alerts came with equal ids.
func (r *receiver) got(t *testing.T) []string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	byCanon := map[string]string{}
	for id, body := range r.bodies {
		c, bodyID := canonAlert(t, body)
		if bodyID != id {
			t.Errorf("the body of alert %s has the id %s", id, bodyID)
		}
		if prev, ok := byCanon[c]; ok && prev != id {
			t.Errorf("one alert delivered with two ids, %s and %s: %s", prev, id, c)
		}
		byCanon[c] = id
	}
	out := make([]string, 0, len(byCanon))
	for c := range byCanon {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

func (r *receiver) acceptedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.accepted)
}

func (r *receiver) checkProblems(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.problems {
		t.Error(p)
	}
}

// webhookServe starts serve on the helper broker and redis with the
// payments ruleset and the webhooks YAML (items of alerts.webhooks, each
// line indented for the list), their secret_file given by the test.
func webhookServe(t *testing.T, name, broker, redisAddr, rulesDir, hooks string) *serve {
	t.Helper()
	secretFile := filepath.Join(t.TempDir(), "webhook.secret")
	if err := os.WriteFile(secretFile, []byte(webhookSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hooks = strings.ReplaceAll(hooks, "SECRET_FILE", strconv.Quote(secretFile))
	return startServe(t, serveOptions{
		Rules: rulesDir, Kafka: broker, Redis: redisAddr, LogName: name,
		Extra: "alerts:\n  webhooks:\n" + hooks,
	})
}

// closedURL is an http URL on loopback where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("http://127.0.0.1:%d/hooks/shrike", freePort(t))
}

// feedPayments produces n generated payment events and the flush events,
// and returns the alerts `shrike run` finds on them.
func feedPayments(t *testing.T, broker, payments string, n int) []string {
	t.Helper()
	events := genEvents(t, n)
	p := newProducer(t, broker)
	p.produce(keyed(t, events))
	p.flush()
	all := events
	for part := range partitions {
		all = append(all, flushEvent(part))
	}
	return runAlerts(t, payments, all)
}

// TestWebhookDelivery: every alert `shrike run` finds on the events
// reaches a webhook whose receiver fails each alert's first two attempts,
// with valid signatures (retries); every alert of a webhook whose receiver
// is down for good lands in shrike-alerts-undelivered with the webhook's
// name and the last error; a filtered slack webhook gets the high and
// critical alerts only; the metrics count it all, and exist at 0 from the
// start.
func TestWebhookDelivery(t *testing.T) {
	requireTools(t, "redis-server", "kcat")
	_, payments, _ := shipped(t)
	rulesDir := t.TempDir()
	copyFile(t, payments, filepath.Join(rulesDir, "payments.yaml"))
	broker, _ := startBroker(t, "")
	redisAddr := startRedis(t, false)

	flaky := startReceiver(t, 2, 0)
	chat := startReceiver(t, 0, 0)
	down := closedURL(t)
	s := webhookServe(t, "serve", broker, redisAddr, rulesDir, fmt.Sprintf(`    - name: soc
      url: %q
      secret_file: SECRET_FILE
      backoff: 100ms
      max_backoff: 400ms
    - name: down
      url: %q
      secret_file: SECRET_FILE
      max_attempts: 3
      backoff: 50ms
      timeout: 2s
    - name: chat
      url: %q
      secret_file: SECRET_FILE
      format: slack
      filter: 'alert.severity in ["high", "critical"]'
`, flaky.url, down, chat.url))
	s.waitReady(t, 60*time.Second)

	ms := s.metrics(t)
	for _, series := range []string{
		`shrike_webhook_deliveries_total{result="delivered",webhook="soc"}`,
		`shrike_webhook_deliveries_total{result="failed",webhook="down"}`,
		`shrike_webhook_retries_total{webhook="chat"}`,
		`shrike_webhook_delivery_seconds_count{webhook="soc"}`,
	} {
		if v, ok := ms[series]; !ok || v != 0 {
			t.Errorf("at start %s = %v (present %v), want 0", series, v, ok)
		}
	}

	want := feedPayments(t, broker, payments, 3000)
	onTopic := waitAlerts(t, broker, want, 60*time.Second)

	waitFor(t, 60*time.Second, "the soc webhook to get every alert", func() bool { return flaky.acceptedCount() >= len(want) })
	if diff := cmp.Diff(want, flaky.got(t)); diff != "" {
		t.Errorf("alerts delivered to the webhook, against shrike run's (-want +got):\n%s", shortDiff(diff))
	}
	flaky.checkProblems(t)
	flaky.mu.Lock()
	for id, n := range flaky.attempts {
		if n < 3 {
			t.Errorf("alert %s: %d attempts, want at least 3 (two refused)", id, n)
		}
		if onTopic.ids != nil && !containsValue(onTopic.ids, id) {
			t.Errorf("alert %s was delivered but is not on the alerts topic", id)
		}
	}
	flaky.mu.Unlock()

	// Every alert of the webhook that is down lands in the undelivered
	// topic, keyed by its id, its value the alert, with the reason.
	var undelivered []kcatRecord
	waitFor(t, 60*time.Second, "every alert in shrike-alerts-undelivered", func() bool {
		undelivered = kcatConsume(t, broker, "shrike-alerts-undelivered")
		return len(undelivered) >= len(want)
	})
	seen := map[string]bool{}
	for _, r := range undelivered {
		c, id := canonAlert(t, []byte(*r.Payload))
		seen[c] = true
		if r.Key == nil || *r.Key != id {
			t.Errorf("undelivered record %d@%d keyed %v, its alert is %s", r.Partition, r.Offset, r.Key, id)
		}
		hook, _ := r.header("shrike-webhook")
		reason, _ := r.header("shrike-reason")
		attempts, _ := r.header("shrike-attempts")
		if hook != "down" || attempts != "3" || !strings.Contains(reason, "connection refused") || strings.Contains(reason, "/hooks/shrike") {
			t.Errorf("undelivered record %d@%d: webhook %q, attempts %q, reason %q", r.Partition, r.Offset, hook, attempts, reason)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("%d distinct alerts undelivered, want %d", len(seen), len(want))
	}

	// The filtered slack webhook gets the high and critical alerts.
	var high []string
	for _, c := range want {
		var a struct{ Severity string }
		_ = json.Unmarshal([]byte(c), &a) // a canonical form is JSON
		if a.Severity == "high" || a.Severity == "critical" {
			high = append(high, c)
		}
	}
	if len(high) == 0 || len(high) == len(want) {
		t.Fatalf("%d of %d alerts are high or critical: the filter shows nothing", len(high), len(want))
	}
	waitFor(t, 30*time.Second, "the chat webhook to get every high and critical alert", func() bool {
		return chat.acceptedCount() >= len(high)
	})
	time.Sleep(time.Second) // time for any alert the filter should have kept out
	if n := chat.acceptedCount(); n != len(high) {
		t.Errorf("the chat webhook got %d alerts, want the %d high and critical ones", n, len(high))
	}
	chat.checkProblems(t)
	chat.mu.Lock()
	for id, b := range chat.bodies {
		var msg struct {
			Text   string            `json:"text"`
			Blocks []json.RawMessage `json:"blocks"`
		}
		if err := json.Unmarshal(b, &msg); err != nil || msg.Text == "" || len(msg.Blocks) == 0 {
			t.Errorf("slack message of alert %s: %v: %s", id, err, b)
		}
	}
	chat.mu.Unlock()

	ms = s.metrics(t)
	for series, atLeast := range map[string]float64{
		`shrike_webhook_deliveries_total{result="delivered",webhook="soc"}`:  float64(len(want)),
		`shrike_webhook_retries_total{webhook="soc"}`:                        float64(2 * len(want)),
		`shrike_webhook_deliveries_total{result="failed",webhook="down"}`:    float64(len(want)),
		`shrike_webhook_retries_total{webhook="down"}`:                       float64(2 * len(want)),
		`shrike_webhook_deliveries_total{result="delivered",webhook="chat"}`: float64(len(high)),
		`shrike_webhook_delivery_seconds_count{webhook="soc"}`:               float64(len(want)),
	} {
		if v := ms[series]; v < atLeast {
			t.Errorf("%s = %v, want at least %v", series, v, atLeast)
		}
	}
	s.exitedCleanly(t)
}

func containsValue(m map[string]string, v string) bool {
	for _, x := range m {
		if x == v {
			return true
		}
	}
	return false
}

// TestWebhookCrashLosesNothing kills serve with SIGKILL while it delivers
// to a slow receiver, and starts it again: every alert reaches the
// receiver, and an alert delivered twice carries its id both times.
func TestWebhookCrashLosesNothing(t *testing.T) {
	requireTools(t, "redis-server", "kcat")
	_, payments, _ := shipped(t)
	rulesDir := t.TempDir()
	copyFile(t, payments, filepath.Join(rulesDir, "payments.yaml"))
	broker, _ := startBroker(t, "")
	redisAddr := startRedis(t, true)

	slow := startReceiver(t, 0, 150*time.Millisecond)
	hooks := fmt.Sprintf(`    - name: soc
      url: %q
      secret_file: SECRET_FILE
      max_in_flight: 2
`, slow.url)
	s1 := webhookServe(t, "serve 1", broker, redisAddr, rulesDir, hooks)
	s1.waitReady(t, 60*time.Second)
	want := feedPayments(t, broker, payments, 3000)
	waitFor(t, 60*time.Second, "serve 1 to deliver some alerts", func() bool { return slow.acceptedCount() >= 5 })
	s1.kill()
	before := slow.acceptedCount()
	t.Logf("serve 1 killed after delivering %d of %d alerts", before, len(want))
	if before >= len(want) {
		t.Fatal("every alert was delivered before the kill: not mid-delivery")
	}

	s2 := webhookServe(t, "serve 2", broker, redisAddr, rulesDir, hooks)
	s2.waitReady(t, 60*time.Second)
	waitFor(t, 120*time.Second, "every alert to reach the receiver", func() bool { return slow.acceptedCount() >= len(want) })
	if diff := cmp.Diff(want, slow.got(t)); diff != "" {
		t.Errorf("alerts delivered across the crash, against shrike run's (-want +got):\n%s", shortDiff(diff))
	}
	slow.checkProblems(t)
	slow.mu.Lock()
	again := 0
	for _, n := range slow.accepted {
		again += n - 1
	}
	slow.mu.Unlock()
	t.Logf("%d alerts delivered again after the crash, each with its id", again)
	s2.exitedCleanly(t)
}

// TestWebhookSlowReceiverDoesNotSlowMatching: with a receiver that holds
// every request for 10 s, one at a time, the alerts topic still gets every
// alert of the events as it does without webhooks, while the receiver has
// taken only a few.
func TestWebhookSlowReceiverDoesNotSlowMatching(t *testing.T) {
	requireTools(t, "redis-server", "kcat")
	_, payments, _ := shipped(t)
	rulesDir := t.TempDir()
	copyFile(t, payments, filepath.Join(rulesDir, "payments.yaml"))
	broker, _ := startBroker(t, "")
	redisAddr := startRedis(t, false)

	stuck := startReceiver(t, 0, 10*time.Second)
	s := webhookServe(t, "serve", broker, redisAddr, rulesDir, fmt.Sprintf(`    - name: soc
      url: %q
      secret_file: SECRET_FILE
      timeout: 30s
      max_in_flight: 1
`, stuck.url))
	s.waitReady(t, 60*time.Second)
	want := feedPayments(t, broker, payments, 3000)
	waitAlerts(t, broker, want, 60*time.Second)
	stuck.mu.Lock()
	requests := 0
	for _, n := range stuck.attempts {
		requests += n
	}
	stuck.mu.Unlock()
	if requests >= len(want) {
		t.Errorf("the receiver got %d requests for %d alerts by the time the alerts topic had them all: it did not hold deliveries back", requests, len(want))
	}
	t.Logf("every one of %d alerts on the alerts topic while the receiver had taken %d requests", len(want), requests)
	ms := s.metrics(t)
	if n := metricSum(ms, "shrike_engine_alerts_total"); n != float64(len(want)) {
		t.Errorf("shrike_engine_alerts_total = %v, want %d", n, len(want))
	}
	s.exitedCleanly(t)
}
