package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// poisonEvent is an event of apiRuleset's stream for account, now, with
// extra fields spliced in as written (they may be JSON no consumer can
// represent). The big rule matches it on amount alone.
func poisonEvent(account, extra string) string {
	return fmt.Sprintf(`{"account":%q,"amount":5000.0,%s"ts":%q}`, account, extra, time.Now().UTC().Format(time.RFC3339Nano))
}

// alertKeys collects the keys of the alerts a stream delivers, decoding
// each value with decode, until every key of want has come or timeout
// passed; it reports the keys still missing.
func alertKeys(t *testing.T, s *jsonStream, decode func(json.RawMessage) string, seen map[string]bool, want []string, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	missing := func() []string {
		var out []string
		for _, k := range want {
			if !seen[k] {
				out = append(out, k)
			}
		}
		return out
	}
	for len(missing()) > 0 {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		v, ok := s.next(left)
		if !ok {
			break
		}
		seen[decode(v)] = true
	}
	return missing()
}

// TestPoisonEventsKeepStreams publishes with kcat, between good events,
// one event carrying 1e999 (beyond float64) and one with invalid UTF-8,
// both of which the rule would match, while a REST subscription (curl -N)
// and `shrike alerts tail` follow the alerts: both go on and deliver every
// later alert, and the two events are in the dead-letter topic with their
// reasons, never alerts. Accepted at decode, either event would make an
// alert the API cannot convert, which ended every subscription (and `shrike
// alerts tail` with exit 1) on each resume.
func TestPoisonEventsKeepStreams(t *testing.T) {
	requireTools(t, "kcat")
	requireAPIClients(t)
	s := startAPIServe(t, apiServeOptions{})
	const topic = "poison-events"
	if r := s.putRuleset(t, "", "poison", apiRuleset("poison", topic)); r.code != http.StatusOK {
		t.Fatalf("PUT /v1/rulesets/poison = %d %s", r.code, r.body)
	}

	rest := startJSONStream(t, "curl -N", nil, "curl", "-sS", "-N", s.url("/v1/alerts:subscribe?ruleset=poison"))
	tail := startJSONStream(t, "shrike alerts tail", []string{"SHRIKE_SERVER=" + s.grpc},
		shrikeBin(t), "alerts", "tail", "-o", "json", "--ruleset", "poison")
	restKey := func(v json.RawMessage) string { a, _ := restAlert(t, v); return a.Key }
	tailKey := func(v json.RawMessage) string {
		var a streamedAlert
		if err := json.Unmarshal(v, &a); err != nil {
			t.Fatalf("shrike alerts tail printed %s: %v", v, err)
		}
		return a.Key
	}
	restSeen, tailSeen := map[string]bool{}, map[string]bool{}

	// Neither stream says when it has subscribed: publish good events
	// until both delivered one.
	for i := 0; ; i++ {
		if i == 20 {
			t.Fatal("no alert reached both subscriptions after 20 events")
		}
		account := fmt.Sprintf("warm-%d", i)
		kcatProduce(t, s.kafka, topic, -1, []kv{{account, poisonEvent(account, "")}})
		alertKeys(t, rest, restKey, restSeen, []string{account}, 1500*time.Millisecond)
		alertKeys(t, tail, tailKey, tailSeen, []string{account}, 500*time.Millisecond)
		if len(restSeen) > 0 && len(tailSeen) > 0 {
			break
		}
	}

	// Each poison event comes between good ones, on a key of its own.
	badNumber := poisonEvent("bad-number", `"fee":1e999,`)
	badUTF8 := poisonEvent("bad-utf8", `"note":"caf`+"\xe9"+`",`)
	kcatProduce(t, s.kafka, topic, -1, []kv{
		{"before", poisonEvent("before", "")},
		{"bad-number", badNumber},
		{"between", poisonEvent("between", "")},
		{"bad-utf8", badUTF8},
	})
	var dead []kcatRecord
	if !poll(30*time.Second, 250*time.Millisecond, func() bool {
		dead = kcatConsume(t, s.kafka, deadLetterTopic)
		return len(dead) >= 2
	}) {
		// Go on: the streams must hold whatever became of the events.
		t.Errorf("%d records in %s after 30 s, want the two poison events", len(dead), deadLetterTopic)
	}
	reasons := map[string]string{}
	for _, r := range dead {
		if r.Key == nil || r.Payload == nil {
			t.Errorf("dead letter without key or value: %+v", r)
			continue
		}
		reason, _ := r.header("shrike-reason")
		reasons[*r.Key] = reason
		// kcat -J writes the invalid byte as U+FFFD.
		if want := map[string]string{"bad-number": badNumber, "bad-utf8": strings.ToValidUTF8(badUTF8, "\uFFFD")}[*r.Key]; *r.Payload != want {
			t.Errorf("dead letter %s holds %q, want the original %q", *r.Key, *r.Payload, want)
		}
	}
	for key, want := range map[string]string{
		"bad-number": `field "fee": number 1e999 out of range`,
		"bad-utf8":   "invalid UTF-8",
	} {
		if r := reasons[key]; !strings.Contains(r, want) || !strings.Contains(r, "value cannot be represented") {
			t.Errorf("dead letter %s: shrike-reason %q, want it to say %q", key, r, want)
		}
	}

	// The poison is behind them: every later alert reaches both.
	var after []string
	var recs []kv
	for i := range 5 {
		account := fmt.Sprintf("after-%d", i)
		after = append(after, account)
		recs = append(recs, kv{account, poisonEvent(account, "")})
	}
	kcatProduce(t, s.kafka, topic, -1, recs)
	want := append([]string{"before", "between"}, after...)
	if missing := alertKeys(t, rest, restKey, restSeen, want, 30*time.Second); len(missing) > 0 {
		t.Errorf("the REST subscription did not deliver the alerts of %v (stream error: %v)", missing, rest.err)
	}
	if missing := alertKeys(t, tail, tailKey, tailSeen, want, 10*time.Second); len(missing) > 0 {
		t.Errorf("shrike alerts tail did not print the alerts of %v", missing)
	}
	for _, st := range []*jsonStream{rest, tail} {
		select {
		case <-st.done:
			t.Errorf("%s ended; stderr:\n%s", st.name, st.stderr.String())
		default:
		}
	}
	for _, k := range []string{"bad-number", "bad-utf8"} {
		if restSeen[k] || tailSeen[k] {
			t.Errorf("an alert for the poison event %s", k)
		}
	}
	s.exitedCleanly(t)
}

// TestOversizedAlertReachesTopic matches an event whose key is 500 KB:
// its alert (the key three times: key, summary, event) is 1.5 MB, over
// Kafka's 1 MB record limit. It reaches the alerts topic shrunk, with its
// truncated list and the event's position, and the API lists it with the
// same list. Produced whole it would be refused by the broker, only
// counted in produce_errors_total, and lost.
func TestOversizedAlertReachesTopic(t *testing.T) {
	requireTools(t, "kcat")
	requireAPIClients(t)
	s := startAPIServe(t, apiServeOptions{})
	const topic = "huge-events"
	if r := s.putRuleset(t, "", "huge", apiRuleset("huge", topic)); r.code != http.StatusOK {
		t.Fatalf("PUT /v1/rulesets/huge = %d %s", r.code, r.body)
	}
	// A 500 KB account; the Kafka key is short, so that the record stays
	// under kcat's and the events topic's 1 MB.
	account := "huge-" + strings.Repeat("k", 500<<10)
	event := poisonEvent(account, "")

	type topicAlert struct {
		ID        string                       `json:"id"`
		Rule      string                       `json:"rule"`
		Key       string                       `json:"key"`
		Truncated []string                     `json:"truncated"`
		Events    map[string][]json.RawMessage `json:"events"`
	}
	var got *topicAlert
	var raw int
	// The partition's watermark passes the event a second or two after it
	// arrives; publish again if the stream was not yet read.
	for i := 0; i < 6 && got == nil; i++ {
		kcatProduce(t, s.kafka, topic, -1, []kv{{"huge", event}})
		poll(10*time.Second, 500*time.Millisecond, func() bool {
			for _, r := range kcatConsume(t, s.kafka, alertsTopic) {
				if r.Payload == nil {
					continue
				}
				var a topicAlert
				if err := json.Unmarshal([]byte(*r.Payload), &a); err != nil {
					t.Fatalf("alerts topic record %.200q: %v", *r.Payload, err)
				}
				if strings.HasPrefix(a.Key, "huge-") {
					got, raw = &a, len(*r.Payload)
					return true
				}
			}
			return false
		})
	}
	if got == nil {
		log := s.log()
		t.Fatalf("no alert of the 500 KB key on %s; serve's log:\n%s", alertsTopic, tail(log))
	}
	if raw > 1<<20 {
		t.Errorf("the alert record is %d bytes, over 1 MiB", raw)
	}
	if strings.Join(got.Truncated, ",") != "events,key,summary" {
		t.Errorf("truncated = %v, want [events key summary]", got.Truncated)
	}
	if !strings.HasPrefix(account, got.Key) || len(got.Key) >= len(account) {
		t.Errorf("key of %d bytes, want a prefix of the 500 KB key", len(got.Key))
	}
	var marker struct {
		Truncated bool   `json:"truncated"`
		Topic     string `json:"topic"`
		Offset    *int64 `json:"offset"`
		Bytes     int    `json:"bytes"`
	}
	if evs := got.Events["event"]; len(evs) != 1 {
		t.Errorf("events %v, want one marker", got.Events)
	} else if err := json.Unmarshal(evs[0], &marker); err != nil || !marker.Truncated || marker.Topic != topic || marker.Offset == nil || marker.Bytes != len(event) {
		t.Errorf("event marker %s, want truncated, topic %s, an offset and bytes %d (%v)", evs[0], topic, len(event), err)
	}

	// ListAlerts over REST has it, truncated list included.
	var listed struct {
		Alerts []struct {
			ID        string   `json:"id"`
			Truncated []string `json:"truncated"`
		} `json:"alerts"`
	}
	r := curl(t, s.url("/v1/alerts?ruleset=huge"))
	if r.code != http.StatusOK {
		t.Fatalf("GET /v1/alerts = %d %.500s", r.code, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), &listed); err != nil {
		t.Fatalf("GET /v1/alerts: %v in %.500s", err, r.body)
	}
	found := false
	for _, a := range listed.Alerts {
		if a.ID == got.ID {
			found = true
			if strings.Join(a.Truncated, ",") != "events,key,summary" {
				t.Errorf("ListAlerts: truncated = %v, want [events key summary]", a.Truncated)
			}
		}
	}
	if !found {
		t.Errorf("ListAlerts does not list alert %s", got.ID)
	}
	if n := metricSum(s.metrics(t), "shrike_engine_produce_errors_total"); n != 0 {
		t.Errorf("shrike_engine_produce_errors_total = %v, want 0", n)
	}
	s.exitedCleanly(t)
}

// TestWeakTokenRefused starts serve with a token file holding a guessable
// secret: it exits with status 2 before the API listens, with an error
// naming the token, its file and how to generate a good one.
func TestWeakTokenRefused(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ name, secret, why string }{
		{"a word", "changeme\n", "about 0 bits"},
		{"one character", strings.Repeat("a", 64) + "\n", "only 1 distinct characters"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".token")
			if err := os.WriteFile(file, []byte(tt.secret), 0o600); err != nil {
				t.Fatal(err)
			}
			httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			cfg := fmt.Sprintf("http:\n  listen: %q\ngrpc:\n  listen: \"127.0.0.1:%d\"\nkafka:\n  embedded:\n    port: %d\nredis:\n  embedded:\n    port: %d\napi:\n  tokens: [{name: ops, token_file: %q, scopes: [alerts:read]}]\n",
				httpAddr, freePort(t), freePort(t), freePort(t), file)
			s := startServeConfig(t, "shrike serve with a weak token", cfg, httpAddr)
			select {
			case <-s.exited:
			case <-time.After(30 * time.Second):
				t.Fatal("serve still runs 30 s after starting with a weak token")
			}
			if code := s.cmd.ProcessState.ExitCode(); code != 2 {
				t.Errorf("serve exited with status %d, want 2", code)
			}
			log := s.log()
			want := `token "ops" in ` + file + ": too weak: "
			if !strings.Contains(log, want) || !strings.Contains(log, tt.why) || !strings.Contains(log, "openssl rand -hex 32") {
				t.Errorf("serve's error does not say %q, %q and how to generate a token:\n%s", want, tt.why, log)
			}
			if strings.Contains(log, "api listening") {
				t.Errorf("the API listened with a weak token:\n%s", log)
			}
		})
	}
}
