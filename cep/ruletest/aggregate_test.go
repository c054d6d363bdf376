package ruletest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const spreeRuleset = `ruleset: cards
stream:
  topic: payments
  key: event.account
  time: event.ts
rules:
  - id: spree
    severity: high
    aggregate:
      where: event.type == "card_auth"
      window: 10m
      measures:
        cards: count_distinct(event.card)
        spent: sum(event.amount)
        least: min(event.amount)
      having: cards >= 3
`

// runSpree runs a test file of one test (body, under "tests:") against
// spreeRuleset.
func runSpree(t *testing.T, body string) (*TestResult, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cards.yaml"), []byte(spreeRuleset), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := LoadSource(filepath.Join(dir, "cards_test.yaml"), []byte("rulesets: [cards.yaml]\ntests:\n"+body))
	if err != nil {
		return nil, err
	}
	res, err := f.Run(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Tests[0], nil
}

const spreeEvents = `
  - name: t
    events:
      - {type: card_auth, account: a1, card: c1, amount: 10, ts: "2026-11-20T10:00:00Z"}
      - {type: card_auth, account: a1, card: c2, amount: 20.5, ts: "2026-11-20T10:01:00Z"}
      - {type: card_auth, account: a1, card: c3, amount: 5, ts: "2026-11-20T10:02:00Z"}
`

func TestRunAggregateMeasures(t *testing.T) {
	for _, tt := range []struct {
		name, expect string
		failed       bool
		diff         string
	}{
		{"measures match", `[{rule: spree, key: a1, measures: {cards: 3, spent: 35.5, least: 5}, events: {event: [{line: 3}]}}]`, false, ""},
		{"a measure differs", `[{rule: spree, key: a1, measures: {cards: 3, spent: 36}}]`, true, "measure spent: want 36, got 35.5"},
		{"null is not a value", `[{rule: spree, key: a1, measures: {least: null}}]`, true, "measure least: want null, got 5"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := runSpree(t, spreeEvents+"    expect: "+tt.expect+"\n")
			if err != nil {
				t.Fatal(err)
			}
			if tr.Failed() != tt.failed {
				t.Fatalf("failed = %v, want %v: %+v", tr.Failed(), tt.failed, outcomeOf(tr))
			}
			if tt.diff != "" && !strings.Contains(strings.Join(outcomeOf(tr).Missing, "\n"), tt.diff) {
				t.Errorf("missing %q in %q", tt.diff, outcomeOf(tr).Missing)
			}
		})
	}
}

func TestAggregateExpectationErrors(t *testing.T) {
	for _, tt := range []struct{ expect, want string }{
		{`[{rule: spree, measures: {carts: 3}}]`, `rule "cards/spree" has no measure "carts" (measures: cards, spent, least)`},
		{`[{rule: spree, measures: {cards: many}}]`, `measure "cards" must be a number or null, not a string`},
		{`[{rule: spree, events: {first: [{}]}}]`, `rule "cards/spree" is an aggregate rule: its one step is "event", not "first"`},
	} {
		_, err := runSpree(t, spreeEvents+"    expect: "+tt.expect+"\n")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("expect %s: error %v, want it to contain %q", tt.expect, err, tt.want)
		}
	}
}
