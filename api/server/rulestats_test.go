package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/registry"
)

// statsSrc alerts on a big amount (big) and holds a partial match open
// for every huge amount until a second one comes (pair).
const statsSrc = `ruleset: payments
stream:
  topic: payments
  key: event.account_id
  time: event.ts
  max_out_of_orderness: 0s
rules:
  - id: big
    severity: high
    when: event.amount > 100.0
  - id: pair
    severity: high
    within: 1h
    pattern:
      - step: first
        where: event.amount > 1000.0
      - step: second
        where: event.amount > 1000.0
  - id: off
    enabled: false
    when: "true"
`

// TestGetRulesetStats runs an engine whose figures are published as
// serve publishes them, beside a second instance's published figures: an
// alert the engine produced is counted once it fired, open partial
// matches come from the engine's matcher, and the two instances are
// summed; a shadow's rules are listed apart.
func TestGetRulesetStats(t *testing.T) {
	e := newEnv(t, envOptions{tokens: tokens})
	e.token = "writer-7507a84de02d4003977593f783f43ca6"
	e.put(t, "payments", statsSrc)
	eng := startEngine(t, e.brokers, statsSrc)
	engine, err := registry.NewStatsPublisher(registry.StatsPublisherOptions{
		Registry: e.registry, Instance: "engine",
		Gather: func() []registry.RuleCounts { return ruleCounts(eng.RuleActivity()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	other, err := registry.NewStatsPublisher(registry.StatsPublisherOptions{
		Registry: e.registry, Instance: "other",
		Gather: func() []registry.RuleCounts {
			return []registry.RuleCounts{
				{Ruleset: "payments", Rule: "big", Alerts: 2, Suppressed: 1, OpenPartialMatches: 0},
				{Ruleset: "payments", Rule: "pair", OpenPartialMatches: 3},
				{Ruleset: "payments", Rule: "gone", Alerts: 9}, // not of the current version
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Publish(e.ctx(t)); err != nil {
		t.Fatal(err)
	}

	// Before the engine published: the other instance's figures.
	e.token = "reader-2666b541a9ca9cfc00f5a5121c23732a"
	code, body := e.rest(t, "GET", "/v1/rulesets/payments/stats", nil)
	if code != http.StatusOK {
		t.Fatalf("GET stats: %d %v", code, body)
	}
	gathered, _ := body["gather_time"].(string)
	if _, err := time.Parse(time.RFC3339Nano, gathered); err != nil {
		t.Errorf("gather_time %q: %v", body["gather_time"], err)
	}
	delete(body, "gather_time")
	want := map[string]any{
		"name": "payments", "version": "1", "has_shadow": false, "instances": float64(1),
		"rules": []any{
			map[string]any{"rule": "big", "shadow": false, "enabled": true, "alerts_last_hour": "2", "suppressed_last_hour": "1", "open_partial_matches": "0"},
			map[string]any{"rule": "pair", "shadow": false, "enabled": true, "alerts_last_hour": "0", "suppressed_last_hour": "0", "open_partial_matches": "3"},
			map[string]any{"rule": "off", "shadow": false, "enabled": false, "alerts_last_hour": "0", "suppressed_last_hour": "0", "open_partial_matches": "0"},
		},
	}
	if d := cmp.Diff(want, body); d != "" {
		t.Errorf("stats of one instance (-want +got):\n%s", d)
	}

	// a1's 5000 alerts on big once the next event of its partition
	// arrives, and opens a partial match of pair.
	e.token = "producer-a3b2e981e03a5e96c3f98b3599f43419"
	e.publish(t, "a1", 5000, 10)
	e.token = "reader-2666b541a9ca9cfc00f5a5121c23732a"
	rulesets := e.rulesets()
	var got *shrikev1.RulesetStats
	deadline := time.Now().Add(wait)
	for {
		if err := engine.Publish(e.ctx(t)); err != nil {
			t.Fatal(err)
		}
		got, err = rulesets.GetRulesetStats(e.ctx(t), &shrikev1.GetRulesetStatsRequest{Name: "payments"})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetRules()[0].GetAlertsLastHour() == 3 && got.GetRules()[1].GetOpenPartialMatches() == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the engine's alert and partial match never counted: %v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	wantRules := []*shrikev1.RuleActivity{
		{Rule: "big", Enabled: true, AlertsLastHour: 3, SuppressedLastHour: 1},
		{Rule: "pair", Enabled: true, OpenPartialMatches: 4},
		{Rule: "off"},
	}
	if d := cmp.Diff(wantRules, got.GetRules(), protocmp.Transform()); d != "" || got.GetInstances() != 2 || got.GetGatherTime() == nil {
		t.Errorf("stats of two instances (-want +got):\n%s\n%v", d, got)
	}

	// A shadow's rules follow, marked.
	e.token = "writer-7507a84de02d4003977593f783f43ca6"
	if _, err := shrikev1.NewShadowServiceClient(e.conn).PutShadow(e.ctx(t), &shrikev1.PutShadowRequest{Name: "payments", Source: paymentsSrc}); err != nil {
		t.Fatal(err)
	}
	got, err = rulesets.GetRulesetStats(e.ctx(t), &shrikev1.GetRulesetStatsRequest{Name: "payments"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range got.GetRules() {
		if r.GetShadow() {
			ids = append(ids, r.GetRule())
		}
	}
	if !got.GetHasShadow() || !cmp.Equal(ids, []string{"big", "off"}) || len(got.GetRules()) != 5 {
		t.Errorf("with a shadow: %v", got)
	}

	for _, tc := range []struct{ path, want string }{
		{"/v1/rulesets/nope/stats", "404 RULESET_NOT_FOUND"},
		{"/v1/rulesets/-bad/stats", "400 INVALID_REQUEST"},
	} {
		code, body := e.rest(t, "GET", tc.path, nil)
		if got := restStatus(code, body); !strings.HasPrefix(got, tc.want) {
			t.Errorf("GET %s: %s, want %s", tc.path, got, tc.want)
		}
	}
	e.put(t, "gone", `ruleset: gone
stream: {topic: payments, key: event.k}
rules:
  - id: r
    when: "true"
`)
	if _, err := rulesets.DeleteRuleset(e.ctx(t), &shrikev1.DeleteRulesetRequest{Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rulesets.GetRulesetStats(e.ctx(t), &shrikev1.GetRulesetStatsRequest{Name: "gone"}); statusOf(err) != "NotFound RULESET_NOT_FOUND" {
		t.Errorf("stats of a deleted ruleset: %s", statusOf(err))
	}
	e.token = "watcher-d15effcb07db80c20f9f3aaa07df3aec"
	if _, err := rulesets.GetRulesetStats(e.ctx(t), &shrikev1.GetRulesetStatsRequest{Name: "payments"}); statusOf(err) != "PermissionDenied SCOPE_MISSING" {
		t.Errorf("stats without rules:read: %s", statusOf(err))
	}
}

// ruleCounts converts the engine's figures as serve does.
func ruleCounts(acts []cep.RuleActivity) []registry.RuleCounts {
	out := make([]registry.RuleCounts, len(acts))
	for i, a := range acts {
		out[i] = registry.RuleCounts{
			Ruleset: a.Ruleset, Rule: a.Rule, Shadow: a.Shadow,
			Alerts: a.Alerts, Suppressed: a.Suppressed, OpenPartialMatches: a.OpenPartialMatches,
		}
	}
	return out
}
