package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/shrike-cep/shrike/api/server"
	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/rules"
)

// TestTestRulesetIDs checks that a backtest's alert ids depend on the
// events and their source name only: inline events are named
// server.InlineEventsSource, so posting them twice, or replaying them as
// `shrike run --source events FILE` does, gives the same ids; a recording
// is named by its base name, wherever it lies, as `shrike run` names a
// file.
func TestTestRulesetIDs(t *testing.T) {
	events := `{"account_id":"a1","amount":150.0,"ts":"2026-11-20T10:00:01Z"}
{"account_id":"a2","amount":250.0,"ts":"2026-11-20T10:00:02Z"}
`
	recordings := t.TempDir()
	for _, p := range []string{"payments.jsonl", "day1/payments.jsonl"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(recordings, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(recordings, p), []byte(events), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t, envOptions{api: func(o *server.Options) { o.RecordingsDir = recordings }})
	test := func(in *shrikev1.TestRulesetRequest) []string {
		t.Helper()
		in.Ruleset = &shrikev1.TestRulesetRequest_Source{Source: paymentsSrc}
		resp, err := e.rulesets().TestRuleset(e.ctx(t), in)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, a := range resp.GetAlerts() {
			ids = append(ids, a.GetId())
		}
		return ids
	}
	// replay is what `shrike run --rules payments.yaml [--source NAME]
	// FILE` does with a copy of the events elsewhere.
	replay := func(source string) []string {
		t.Helper()
		rs, err := rules.Load("payments.yaml", []byte(paymentsSrc), rules.CompileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "payments.jsonl")
		if err := os.WriteFile(path, []byte(events), 0o644); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := cep.Replay(t.Context(), cep.ReplayOptions{
			Rulesets: []*rules.Compiled{rs},
			Inputs:   []cep.Input{{Name: path, Source: source}},
			Alerts:   &out,
		}); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for line := range strings.Lines(out.String()) {
			var a struct{ ID string }
			if err := json.Unmarshal([]byte(line), &a); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, a.ID)
		}
		return ids
	}

	inline := test(&shrikev1.TestRulesetRequest{Input: &shrikev1.TestRulesetRequest_Events{Events: events}})
	if len(inline) != 2 {
		t.Fatalf("%d alerts, want 2", len(inline))
	}
	same := func(what string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: ids %v, want %v", what, got, want)
		}
	}
	same("inline events posted again", test(&shrikev1.TestRulesetRequest{Input: &shrikev1.TestRulesetRequest_Events{Events: events}}), inline)
	same("shrike run --source "+server.InlineEventsSource, replay(server.InlineEventsSource), inline)

	recording := test(&shrikev1.TestRulesetRequest{Input: &shrikev1.TestRulesetRequest_Recording{Recording: "payments.jsonl"}})
	same("the recording in a subfolder", test(&shrikev1.TestRulesetRequest{Input: &shrikev1.TestRulesetRequest_Recording{Recording: "day1/payments.jsonl"}}), recording)
	same("shrike run of a copy of the recording", replay(""), recording)
	if slices.Equal(recording, inline) {
		t.Errorf("a recording named payments.jsonl and inline events have the same ids %v", inline)
	}
}

// TestTestRulesetRuleStats checks the per-rule counters of a backtest,
// over gRPC and over REST (whose JSON names them in snake_case and
// carries zeros): a suppressed alert counts in suppressed and not in
// alerts, a condition that fails counts a CEL error.
func TestTestRulesetRuleStats(t *testing.T) {
	e := newEnv(t, envOptions{})
	src := `ruleset: payments
stream:
  key: event.account_id
  time: event.ts
rules:
  - id: big
    when: event.amount > 100.0
    alert:
      suppress: {for: 1h}
  - id: odd
    when: event.nosuch == 1
`
	// a1's second and third big payments fall within the hour of its
	// first, the fourth at its end; a2's is its own key's first.
	events := strings.Join([]string{
		`{"account_id":"a1","amount":150.0,"ts":"2026-11-20T10:00:00Z"}`,
		`{"account_id":"a1","amount":200.0,"ts":"2026-11-20T10:00:01Z"}`,
		`{"account_id":"a2","amount":250.0,"ts":"2026-11-20T10:00:02Z"}`,
		`{"account_id":"a1","amount":300.0,"ts":"2026-11-20T10:59:59Z"}`,
		`{"account_id":"a1","amount":400.0,"ts":"2026-11-20T11:00:00Z"}`,
	}, "\n")
	resp, err := e.rulesets().TestRuleset(e.ctx(t), &shrikev1.TestRulesetRequest{
		Ruleset: &shrikev1.TestRulesetRequest_Source{Source: src},
		Input:   &shrikev1.TestRulesetRequest_Events{Events: events},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []*shrikev1.RuleStats{
		{Rule: "big", Alerts: 3, Suppressed: 2},
		{Rule: "odd", CelErrors: 5},
	}
	if diff := cmp.Diff(want, resp.GetRuleStats(), protocmp.Transform()); diff != "" {
		t.Errorf("rule stats (-want +got):\n%s", diff)
	}
	if got := resp.GetAlertCount(); got != 3 {
		t.Errorf("alert_count %d, want 3: suppressed alerts are not emitted", got)
	}

	code, body := e.rest(t, "POST", "/v1/rulesets:test", map[string]any{"source": src, "events": events})
	if code != http.StatusOK {
		t.Fatalf("POST /v1/rulesets:test: %d %v", code, body)
	}
	wantJSON := []any{
		map[string]any{"rule": "big", "alerts": "3", "suppressed": "2", "timeouts": "0", "dropped": "0", "cel_errors": "0"},
		map[string]any{"rule": "odd", "alerts": "0", "suppressed": "0", "timeouts": "0", "dropped": "0", "cel_errors": "5"},
	}
	if diff := cmp.Diff(wantJSON, body["rule_stats"]); diff != "" {
		t.Errorf("rule_stats in JSON (-want +got):\n%s", diff)
	}
}

// TestTestRulesetManagedLists checks that the API's test reads a managed
// list's items as the server holds them, as the engine matches with, and
// sees a change of them without recompiling anything.
func TestTestRulesetManagedLists(t *testing.T) {
	lists := rules.NewManagedLists()
	e := newEnv(t, envOptions{compile: rules.CompileOptions{Lists: lists}})
	src := `ruleset: payments
stream:
  key: event.account_id
  time: event.ts
lists:
  mules: {managed: true, type: string}
rules:
  - id: to-mule
    when: event.to in lists.mules
`
	events := `{"account_id":"a1","to":"m1","ts":"2026-11-20T10:00:00Z"}` + "\n" +
		`{"account_id":"a2","to":"m2","ts":"2026-11-20T10:00:01Z"}`
	count := func() int64 {
		t.Helper()
		resp, err := e.rulesets().TestRuleset(e.ctx(t), &shrikev1.TestRulesetRequest{
			Ruleset: &shrikev1.TestRulesetRequest_Source{Source: src},
			Input:   &shrikev1.TestRulesetRequest_Events{Events: events},
		})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetAlertCount()
	}
	if n := count(); n != 0 {
		t.Errorf("%d alerts with the list empty, want 0", n)
	}
	lists.Set("mules", []string{"m2"})
	if n := count(); n != 1 {
		t.Errorf("%d alerts with mules = [m2], want 1", n)
	}
}
