package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestTestRulesetNormalEvents: events with a repeated key or a lone
// surrogate, which protobuf's JSON refuses as written, alert over REST in
// normal form (the last value; U+FFFD), with white space gone.
func TestTestRulesetNormalEvents(t *testing.T) {
	e := newEnv(t, envOptions{})
	events := strings.Join([]string{
		`{"account_id":"a1","amount":150.0,"amount":160.0,"ts":"2026-11-20T10:00:01Z"}`,
		`{"account_id":"a1","amount":170.0,"note":"x\ud800y","ts":"2026-11-20T10:00:02Z"}`,
		`{ "account_id" : "a1", "amount" : 180.0, "ts" : "2026-11-20T10:00:03Z" }`,
	}, "\n") + "\n"
	code, body := e.rest(t, "POST", "/v1/rulesets:test", map[string]any{"source": paymentsSrc, "events": events})
	if code != http.StatusOK {
		t.Fatalf("POST /v1/rulesets:test = %d %v", code, body)
	}
	alerts, _ := body["alerts"].([]any)
	if len(alerts) != 3 {
		t.Fatalf("%d alerts, want 3: %v", len(alerts), body)
	}
	var got []string
	for _, a := range alerts {
		evs := a.(map[string]any)["events"].(map[string]any)["event"].([]any)
		b, err := json.Marshal(evs[0])
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(b))
	}
	for i, want := range []string{`"amount":160`, `"note":"x` + "\uFFFD" + `y"`, `"amount":180`} {
		if !strings.Contains(got[i], want) {
			t.Errorf("alert %d embeds %s, want %s in it", i+1, got[i], want)
		}
	}
}
