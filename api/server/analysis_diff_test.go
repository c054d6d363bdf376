package server_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/api/server"
	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// paymentsHigherSrc is paymentsSrc with the threshold of rule big raised
// from 100 to 200.
var paymentsHigherSrc = strings.Replace(paymentsSrc, "event.amount > 100.0", "event.amount > 200.0", 1)

// diffEvents give big three alerts at 100 and one at 200.
const diffEvents = `{"account_id":"a1","amount":150.0,"ts":"2026-11-20T10:00:01Z"}
{"account_id":"a2","amount":250.0,"ts":"2026-11-20T10:00:02Z"}
{"account_id":"a1","amount":120.0,"ts":"2026-11-20T10:00:03Z"}
{"account_id":"a3","amount":50.0,"ts":"2026-11-20T10:00:04Z"}
{"account_id":"a1","amount":199.0,"ts":"2026-11-20T10:00:05Z"}
`

func (e *env) analysis() shrikev1.AnalysisServiceClient {
	return shrikev1.NewAnalysisServiceClient(e.conn)
}

// replayIDs are the ids `shrike run --source events` gives the rule big
// of src over diffEvents.
func replayIDs(t *testing.T, src string) []string {
	t.Helper()
	rs, err := rules.Load("payments.yaml", []byte(src), rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	if _, err := cep.Replay(t.Context(), cep.ReplayOptions{
		Rulesets: []*rules.Compiled{rs},
		Inputs:   []cep.Input{{Name: "x", Source: server.InlineEventsSource, R: strings.NewReader(diffEvents)}},
		OnAlert:  func(a *matcher.Alert) { ids = append(ids, a.ID) },
	}); err != nil {
		t.Fatal(err)
	}
	return ids
}

func alertIDs(alerts []*shrikev1.Alert) []string {
	out := make([]string, len(alerts))
	for i, a := range alerts {
		out[i] = a.GetId()
	}
	return out
}

// TestDiffRulesets compares inline and stored versions over inline
// events: the raised threshold's removed alerts are only old, with the
// ids of `shrike run --source events`; the REST form carries the same.
func TestDiffRulesets(t *testing.T) {
	e := newEnv(t, envOptions{})
	oldIDs, newIDs := replayIDs(t, paymentsSrc), replayIDs(t, paymentsHigherSrc)
	if len(oldIDs) != 4 || len(newIDs) != 1 {
		t.Fatalf("the replays gave %d and %d alerts, want 4 and 1", len(oldIDs), len(newIDs))
	}
	check := func(t *testing.T, resp *shrikev1.DiffRulesetsResponse) {
		t.Helper()
		if !resp.GetDiffer() || resp.GetLines() != 5 || resp.GetEvents() != 5 || len(resp.GetRules()) != 1 {
			t.Fatalf("response: %v", resp)
		}
		r := resp.GetRules()[0]
		if r.GetRuleset() != "payments" || r.GetRule() != "big" || r.GetBoth() != 1 || r.GetOnlyOld() != 3 || r.GetOnlyNew() != 0 || !r.GetInOld() || !r.GetInNew() {
			t.Errorf("rule: %v", r)
		}
		// 250 is alerted by both; the other three by the old version only.
		if diff := cmp.Diff([]string{oldIDs[0], oldIDs[2], oldIDs[3]}, alertIDs(r.GetOnlyOldExamples())); diff != "" {
			t.Errorf("only-old examples (-old run's ids +got):\n%s", diff)
		}
		if both := alertIDs(r.GetBothExamples()); len(both) != 1 || !slices.Contains([]string{oldIDs[1], newIDs[0]}, both[0]) {
			t.Errorf("both examples %v, want the alert of 250 of one run (%s or %s)", both, oldIDs[1], newIDs[0])
		}
		for _, a := range r.GetBothExamples() {
			if a.GetShadow() {
				t.Errorf("example %s is marked shadow", a.GetId())
			}
		}
	}

	t.Run("inline", func(t *testing.T) {
		resp, err := e.analysis().DiffRulesets(e.ctx(t), &shrikev1.DiffRulesetsRequest{
			Old:   &shrikev1.RulesetRef{Ruleset: &shrikev1.RulesetRef_Source{Source: paymentsSrc}},
			New:   &shrikev1.RulesetRef{Ruleset: &shrikev1.RulesetRef_Source{Source: paymentsHigherSrc}},
			Input: &shrikev1.DiffRulesetsRequest_Events{Events: diffEvents},
		})
		if err != nil {
			t.Fatal(err)
		}
		check(t, resp)
	})

	e.put(t, "payments", paymentsSrc)
	e.put(t, "payments", paymentsHigherSrc)
	t.Run("stored versions", func(t *testing.T) {
		resp, err := e.analysis().DiffRulesets(e.ctx(t), &shrikev1.DiffRulesetsRequest{
			Old:   &shrikev1.RulesetRef{Ruleset: &shrikev1.RulesetRef_Name{Name: "payments"}, Version: 1},
			New:   &shrikev1.RulesetRef{Ruleset: &shrikev1.RulesetRef_Name{Name: "payments"}},
			Input: &shrikev1.DiffRulesetsRequest_Events{Events: diffEvents},
		})
		if err != nil {
			t.Fatal(err)
		}
		check(t, resp)
	})

	t.Run("same version", func(t *testing.T) {
		resp, err := e.analysis().DiffRulesets(e.ctx(t), &shrikev1.DiffRulesetsRequest{
			Old:      &shrikev1.RulesetRef{Ruleset: &shrikev1.RulesetRef_Name{Name: "payments"}, Version: 1},
			New:      &shrikev1.RulesetRef{Ruleset: &shrikev1.RulesetRef_Source{Source: paymentsSrc}},
			Input:    &shrikev1.DiffRulesetsRequest_Events{Events: diffEvents},
			Examples: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		r := resp.GetRules()[0]
		if resp.GetDiffer() || r.GetBoth() != 4 || r.GetOnlyOld() != 0 || len(r.GetBothExamples()) != 1 {
			t.Errorf("response: %v", resp)
		}
	})

	t.Run("REST", func(t *testing.T) {
		code, body := e.rest(t, http.MethodPost, "/v1/rulesets:diff", map[string]any{
			"old":    map[string]any{"name": "payments", "version": 1},
			"new":    map[string]any{"name": "payments"},
			"events": diffEvents,
		})
		if code != http.StatusOK {
			t.Fatalf("status %d: %v", code, body)
		}
		rs, _ := body["rules"].([]any)
		if differ, _ := body["differ"].(bool); !differ || len(rs) != 1 {
			t.Fatalf("body: %v", body)
		}
		r, _ := rs[0].(map[string]any)
		want := map[string]any{"ruleset": "payments", "rule": "big", "both": "1", "only_old": "3", "only_new": "0", "in_old": true, "in_new": true}
		for k, v := range want {
			if r[k] != v {
				t.Errorf("%s = %v, want %v", k, r[k], v)
			}
		}
	})
}

// TestDiffRulesetsErrors: each bad request names its field.
func TestDiffRulesetsErrors(t *testing.T) {
	e := newEnv(t, envOptions{})
	src := func(s string) *shrikev1.RulesetRef {
		return &shrikev1.RulesetRef{Ruleset: &shrikev1.RulesetRef_Source{Source: s}}
	}
	events := &shrikev1.DiffRulesetsRequest_Events{Events: diffEvents}
	invalid := "ruleset: payments\nrules:\n  - id: r\n    when: event.amount >\n"
	tests := []struct {
		name string
		req  *shrikev1.DiffRulesetsRequest
		want string
	}{
		{
			"no old", &shrikev1.DiffRulesetsRequest{New: src(paymentsSrc), Input: events},
			"InvalidArgument INVALID_REQUEST [old: required",
		},
		{
			"no new", &shrikev1.DiffRulesetsRequest{Old: src(paymentsSrc), Input: events},
			"InvalidArgument INVALID_REQUEST [new: required",
		},
		{
			"invalid new", &shrikev1.DiffRulesetsRequest{Old: src(paymentsSrc), New: src(invalid), Input: events},
			"InvalidArgument RULESET_INVALID [new.source: 4:",
		},
		{
			"invalid old", &shrikev1.DiffRulesetsRequest{Old: src(invalid), New: src(paymentsSrc), Input: events},
			"InvalidArgument RULESET_INVALID [old.source: 4:",
		},
		{
			"source with a version", &shrikev1.DiffRulesetsRequest{Old: src(paymentsSrc), New: &shrikev1.RulesetRef{Ruleset: &shrikev1.RulesetRef_Source{Source: paymentsSrc}, Version: 2}, Input: events},
			"InvalidArgument INVALID_REQUEST [new.version: goes with name",
		},
		{
			"negative version", &shrikev1.DiffRulesetsRequest{Old: &shrikev1.RulesetRef{Ruleset: &shrikev1.RulesetRef_Name{Name: "payments"}, Version: -1}, New: src(paymentsSrc), Input: events},
			"InvalidArgument INVALID_REQUEST [old.version: must not be negative",
		},
		{
			"unknown stored ruleset", &shrikev1.DiffRulesetsRequest{Old: src(paymentsSrc), New: &shrikev1.RulesetRef{Ruleset: &shrikev1.RulesetRef_Name{Name: "nosuch"}}, Input: events},
			"NotFound RULESET_NOT_FOUND",
		},
		{
			"no events", &shrikev1.DiffRulesetsRequest{Old: src(paymentsSrc), New: src(paymentsSrc)},
			"InvalidArgument INVALID_REQUEST [input: give events",
		},
		{
			"recording without a recordings folder", &shrikev1.DiffRulesetsRequest{Old: src(paymentsSrc), New: src(paymentsSrc), Input: &shrikev1.DiffRulesetsRequest_Recording{Recording: "x.jsonl"}},
			"FailedPrecondition RECORDINGS_DISABLED",
		},
		{
			"too many examples", &shrikev1.DiffRulesetsRequest{Old: src(paymentsSrc), New: src(paymentsSrc), Input: events, Examples: server.MaxDiffExamples + 1},
			"InvalidArgument INVALID_REQUEST [examples: at most 20, not 21]",
		},
		{
			"negative examples", &shrikev1.DiffRulesetsRequest{Old: src(paymentsSrc), New: src(paymentsSrc), Input: events, Examples: -1},
			"InvalidArgument INVALID_REQUEST [examples: must not be negative",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.analysis().DiffRulesets(e.ctx(t), tt.req)
			if got := statusOf(err); err == nil || !strings.HasPrefix(got, tt.want) {
				t.Fatalf("got %s (%v), want %s…", got, err, tt.want)
			}
		})
	}
	// The message says which version does not compile, for clients that
	// print only the message.
	_, err := e.analysis().DiffRulesets(context.Background(), tests[2].req)
	if err == nil || !strings.Contains(err.Error(), "new.source: invalid ruleset") {
		t.Errorf("invalid new: %v", err)
	}
}
