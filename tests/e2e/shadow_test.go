package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// shadowRuleset is apiRuleset with the big rule's threshold at amount.
func shadowRuleset(amount int) string {
	return strings.Replace(apiRuleset("shadowed", "shadowed-events"), "event.amount > 1000.0", fmt.Sprintf("event.amount > %d.0", amount), 1)
}

// payment is an event of account for amount, now.
func payment(account string, amount float64) restEvent {
	return restEvent{Key: account, Value: map[string]any{
		"account": account, "amount": amount, "ts": time.Now().UTC().Format(time.RFC3339Nano),
	}}
}

// streamAlert is an alert of a REST subscription with the fields the
// shadow test reads.
type streamAlert struct {
	ID     string `json:"id"`
	Rule   string `json:"rule"`
	Key    string `json:"key"`
	Shadow bool   `json:"shadow"`
	Events map[string][]struct {
		Amount float64 `json:"amount"`
	} `json:"events"`
}

// decodeStreamAlert is restAlert with the fields the shadow test reads.
func decodeStreamAlert(t *testing.T, v json.RawMessage) streamAlert {
	t.Helper()
	_, raw := restAlert(t, v)
	var a streamAlert
	if err := json.Unmarshal(raw, &a); err != nil || a.ID == "" {
		t.Fatalf("REST stream alert %s: %v", raw, err)
	}
	return a
}

// TestShadowCurl runs a candidate with a higher threshold in shadow beside
// the live version on serve, driven with curl: the live stream carries only
// live alerts and the shadow stream only shadow ones; shadow:diff shows the
// alerts both produced and those only the live version produced; after
// shadow:promote the new threshold is live and the promotion is a version
// in the history.
func TestShadowCurl(t *testing.T) {
	requireAPIClients(t)
	s := startAPIServe(t, apiServeOptions{})
	if r := s.putRuleset(t, "", "shadowed", shadowRuleset(1000)); r.code != http.StatusOK {
		t.Fatalf("PUT /v1/rulesets/shadowed = %d %s", r.code, r.body)
	}
	put := func(source string) curlResult {
		body, err := json.Marshal(map[string]string{"source": source})
		if err != nil {
			t.Fatal(err)
		}
		return curl(t, "-X", "PUT", "-H", "Content-Type: application/json", "--data-binary", string(body), s.url("/v1/rulesets/shadowed/shadow"))
	}
	if r := put("ruleset: shadowed\nstream: {topic: x}\nrules:\n  - id: broken\n    when: event.amount >\n"); r.code != http.StatusBadRequest || !strings.Contains(r.body, "RULESET_INVALID") {
		t.Errorf("PUT of a bad shadow = %d %s, want 400 RULESET_INVALID", r.code, r.body)
	}
	if r := curl(t, "-X", "PUT", "-H", "Content-Type: application/json", "--data-binary", `{"source":"x"}`, s.url("/v1/rulesets/nosuch/shadow")); r.code != http.StatusNotFound {
		t.Errorf("PUT of a shadow of no ruleset = %d %s, want 404", r.code, r.body)
	}
	if r := put(shadowRuleset(3000)); r.code != http.StatusOK {
		t.Fatalf("PUT /v1/rulesets/shadowed/shadow = %d %s", r.code, r.body)
	}
	if r := curl(t, s.url("/v1/rulesets/shadowed/shadow")); r.code != http.StatusOK || !strings.Contains(r.body, `"live_version":"1"`) {
		t.Errorf("GET /v1/rulesets/shadowed/shadow = %d %s, want 200 with live_version 1", r.code, r.body)
	}

	live := startJSONStream(t, "curl -N live", nil, "curl", "-sS", "-N", s.url("/v1/alerts:subscribe?ruleset=shadowed"))
	shadow := startJSONStream(t, "curl -N shadow", nil, "curl", "-sS", "-N", s.url("/v1/alerts:subscribe?ruleset=shadowed&shadow=true"))
	publish := func(evs ...restEvent) {
		t.Helper()
		if r := s.publish(t, "", "shadowed-events", evs...); r.code != http.StatusOK {
			t.Fatalf("POST /v1/events:publish = %d %s", r.code, r.body)
		}
	}
	// The shadow runs once every instance reloaded: big payments until
	// its first alert comes.
	first, _ := firstAlert(t, func(account string) { publish(payment(account, 5000)) }, shadow.next)
	if a := decodeStreamAlert(t, first); !a.Shadow {
		t.Errorf("alert on the shadow stream without shadow: true: %s", first)
	}
	// Now one payment both versions alert on and one only the live one
	// does, for one account: in one partition, in this order.
	publish(payment("acct-both-and-live", 5000), payment("acct-both-and-live", 2000))

	var liveAmounts []float64
	for len(liveAmounts) < 2 {
		v, ok := live.next(20 * time.Second)
		if !ok {
			t.Fatalf("the live alerts of acct-both-and-live did not come (got %v)", liveAmounts)
		}
		a := decodeStreamAlert(t, v)
		if a.Shadow {
			t.Errorf("a shadow alert on the live stream: %s", v)
		}
		if a.Key == "acct-both-and-live" {
			liveAmounts = append(liveAmounts, a.Events["event"][0].Amount)
		}
	}
	for {
		v, ok := shadow.next(20 * time.Second)
		if !ok {
			t.Fatal("the shadow alert of acct-both-and-live did not come")
		}
		a := decodeStreamAlert(t, v)
		if !a.Shadow {
			t.Errorf("a live alert on the shadow stream: %s", v)
		}
		if a.Key != "acct-both-and-live" {
			continue
		}
		if amount := a.Events["event"][0].Amount; amount != 5000 {
			t.Errorf("the shadow alerted on the payment of %v, want only the one of 5000", amount)
		}
		break
	}

	// shadow:diff reads both alerts topics: the alerts of the payments of
	// 5000 are in both, the one of 2000 only in the live version's.
	var diff struct {
		Name   string `json:"name"`
		Differ bool   `json:"differ"`
		Rules  []struct {
			Rule            string        `json:"rule"`
			Both            string        `json:"both"` // int64: a JSON string
			OnlyOld         string        `json:"only_old"`
			OnlyNew         string        `json:"only_new"`
			OnlyOldExamples []streamAlert `json:"only_old_examples"`
		} `json:"rules"`
	}
	r := curl(t, s.url("/v1/rulesets/shadowed/shadow:diff?examples=20"))
	if r.code != http.StatusOK {
		t.Fatalf("GET /v1/rulesets/shadowed/shadow:diff = %d %s", r.code, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), &diff); err != nil {
		t.Fatalf("shadow:diff: %v\n%s", err, r.body)
	}
	if !diff.Differ || len(diff.Rules) != 1 || diff.Rules[0].Rule != "big" {
		t.Fatalf("shadow:diff = %s, want rule big differing", r.body)
	}
	big := diff.Rules[0]
	if big.Both == "" || big.Both == "0" || big.OnlyOld == "" || big.OnlyOld == "0" || (big.OnlyNew != "" && big.OnlyNew != "0") {
		t.Errorf("shadow:diff of big: both %q, only live %q, only shadow %q: want some in both, some only live, none only shadow\n%s", big.Both, big.OnlyOld, big.OnlyNew, r.body)
	}
	var smallOnlyLive bool
	for _, a := range big.OnlyOldExamples {
		if a.Key == "acct-both-and-live" && a.Events["event"][0].Amount == 2000 {
			smallOnlyLive = true
		}
	}
	if !smallOnlyLive {
		t.Errorf("shadow:diff's only-live examples lack the payment of 2000 by acct-both-and-live:\n%s", r.body)
	}

	// Promoted, the candidate is version 2, and the shadow is gone.
	r = curl(t, "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", "{}", s.url("/v1/rulesets/shadowed/shadow:promote"))
	if r.code != http.StatusOK || !strings.Contains(r.body, `"version":"2"`) {
		t.Fatalf("POST shadow:promote = %d %s, want 200 and version 2", r.code, r.body)
	}
	if r := curl(t, s.url("/v1/rulesets/shadowed/versions")); r.code != http.StatusOK || !strings.Contains(r.body, `"version":"2"`) {
		t.Errorf("GET /v1/rulesets/shadowed/versions = %d %s, want version 2 in the history", r.code, r.body)
	}
	if r := curl(t, s.url("/v1/rulesets/shadowed/shadow")); r.code != http.StatusNotFound {
		t.Errorf("GET of the shadow after promote = %d %s, want 404", r.code, r.body)
	}
	if r := curl(t, "-X", "DELETE", s.url("/v1/rulesets/shadowed/shadow")); r.code != http.StatusNotFound {
		t.Errorf("DELETE of no shadow = %d %s, want 404", r.code, r.body)
	}
	// The new threshold is live: of a payment of 2000 and one of 5000 by
	// the same account, in this order, only the second alerts. Until every
	// instance switched, payments go on.
	for i := 0; ; i++ {
		if i == 20 {
			t.Fatal("the promoted threshold did not go live")
		}
		account := fmt.Sprintf("acct-promoted-%d", i)
		publish(payment(account, 2000), payment(account, 5000))
		v, ok := live.next(20 * time.Second)
		for ok && decodeStreamAlert(t, v).Key != account {
			v, ok = live.next(20 * time.Second)
		}
		if !ok {
			t.Fatalf("no live alert for %s", account)
		}
		if decodeStreamAlert(t, v).Events["event"][0].Amount == 5000 {
			break // the payment of 2000 did not alert: version 2 runs
		}
	}
}
