package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shrike-cep/shrike/api/server"
	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/feed"
	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// alertJSON is an alert of the alerts topic whose one matched event is
// event, as written (not necessarily an event the engine would take).
func alertJSON(t *testing.T, id, event string) []byte {
	t.Helper()
	ev, err := rules.ParseEvent([]byte(`{"placeholder":0}`))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	a := &matcher.Alert{
		ID: id, Ruleset: "payments", Rule: "big", Severity: rules.SeverityHigh, Key: "acct-1",
		Start: at, End: at, DetectedAt: at,
		Steps: []matcher.StepRecords{{Step: "event", Records: []*matcher.Record{{Event: ev, Key: "acct-1"}}}},
	}
	return []byte(strings.Replace(string(a.AppendJSON(nil)), `{"placeholder":0}`, event, 1))
}

// TestAlertsSurviveUnconvertibleAlerts puts alerts on the alerts topic
// whose events the API could not convert as written (a repeated key, which
// protobuf's JSON refuses; a number beyond float64; invalid UTF-8) between
// good ones: open subscriptions, gRPC and REST, stay open and deliver the
// later alerts, and ListAlerts lists them. The repeated key is delivered
// in normal form (matcher.AppendEventJSON: the last value); the feed
// leaves out the others (rules.ErrBadValue), so nothing is skipped.
func TestAlertsSurviveUnconvertibleAlerts(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, envOptions{api: func(o *server.Options) { o.Registerer = reg }})
	grpcSub := e.subscribeGRPC(t, &shrikev1.SubscribeAlertsRequest{})
	restSub := e.subscribeREST(t, "")

	pub, err := feed.NewPublisher(context.Background(), feed.PublisherOptions{Brokers: e.brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	// One key: one partition, in this order.
	for _, a := range [][]byte{
		alertJSON(t, "good-1", `{"amount":1}`),
		alertJSON(t, "repeated-key", `{"amount":1,"amount":2}`),
		alertJSON(t, "out-of-range", `{"amount":1e999}`),
		alertJSON(t, "bad-utf8", "{\"note\":\"caf\xe9\"}"),
		alertJSON(t, "good-2", `{"amount":2}`),
	} {
		if err := pub.Publish(context.Background(), alertsTopic, []byte("acct-1"), a); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}

	for _, want := range []string{"good-1", "repeated-key", "good-2"} {
		ga := grpcSub.next(t)
		if got := ga.GetId(); got != want {
			t.Errorf("gRPC subscription: alert %s, want %s", got, want)
		}
		if want == "repeated-key" {
			if amount := ga.GetEvents()["event"].GetValues()[0].GetStructValue().GetFields()["amount"].GetNumberValue(); amount != 2 {
				t.Errorf("the repeated key's amount is %v, want the last value, 2", amount)
			}
		}
		if got := restSub.next(t)["id"]; got != want {
			t.Errorf("REST subscription: alert %v, want %s", got, want)
		}
	}
	resp, err := e.alerts().ListAlerts(e.ctx(t), &shrikev1.ListAlertsRequest{})
	if err != nil {
		t.Fatalf("ListAlerts: %v", err)
	}
	var listed []string
	for _, a := range resp.GetAlerts() {
		listed = append(listed, a.GetId())
	}
	if got, want := strings.Join(listed, " "), "good-2 repeated-key good-1"; got != want && got != "good-1 repeated-key good-2" {
		t.Errorf("ListAlerts lists %q, want %q", got, want)
	}
	if m := `shrike_api_alerts_skipped_total 0`; !strings.Contains(testkit.MetricsText(t, reg), m+"\n") {
		t.Errorf("metrics lack %s:\n%s", m, testkit.MetricsText(t, reg))
	}
}

// TestTestRulesetUnrepresentableEvents tests a ruleset on events with a
// number beyond float64 and invalid UTF-8: they are dead letters with
// their reasons, and the good events around them alert.
func TestTestRulesetUnrepresentableEvents(t *testing.T) {
	// A recording: a request's inline events are a proto string, which
	// cannot hold invalid UTF-8.
	recordings := t.TempDir()
	e := newEnv(t, envOptions{api: func(o *server.Options) { o.RecordingsDir = recordings }})
	events := `{"account_id":"a1","amount":150.0,"ts":"2026-11-20T10:00:01Z"}
{"account_id":"a1","amount":1e999,"ts":"2026-11-20T10:00:02Z"}
{"account_id":"a1","amount":200.0,"note":"caf` + "\xe9" + `","ts":"2026-11-20T10:00:03Z"}
{"account_id":"a1","amount":250.0,"ts":"2026-11-20T10:00:04Z"}
`
	if err := os.WriteFile(filepath.Join(recordings, "poison.jsonl"), []byte(events), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, err := e.rulesets().TestRuleset(e.ctx(t), &shrikev1.TestRulesetRequest{
		Ruleset: &shrikev1.TestRulesetRequest_Source{Source: paymentsSrc},
		Input:   &shrikev1.TestRulesetRequest_Recording{Recording: "poison.jsonl"},
	})
	if err != nil {
		t.Fatalf("TestRuleset: %v", err)
	}
	if got := len(resp.GetAlerts()); got != 2 {
		t.Errorf("%d alerts, want 2", got)
	}
	var dead []string
	for _, d := range resp.GetDeadLetters() {
		dead = append(dead, fmt.Sprintf("%d: %s", d.GetLine(), d.GetReason()))
	}
	want := []string{
		`2: invalid event: field "amount": number 1e999 out of range at byte 28: value cannot be represented`,
		`3: invalid event: invalid UTF-8 at byte 45: value cannot be represented`,
	}
	if diff := cmp.Diff(want, dead); diff != "" {
		t.Errorf("dead letters (-want +got):\n%s", diff)
	}
}
