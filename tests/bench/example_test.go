package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/rules"
)

// ruleFor names the payments rule that must catch a generator scenario: by
// the generator's convention, the rule id is the scenario name with dashes
// for underscores (account_takeover → account-takeover).
func ruleFor(scenario string) string {
	if scenario == "" {
		return ""
	}
	return strings.ReplaceAll(scenario, "_", "-")
}

type alertLine struct {
	Rule   string                       `json:"rule"`
	Key    string                       `json:"key"`
	Events map[string][]json.RawMessage `json:"events"`
}

type labelled struct {
	AccountID string `json:"account_id"`
	Scenario  string `json:"scenario"`
}

// TestPaymentsExample replays the shipped recording (the README's quick
// start) and checks that the alerts are exactly the injected scenarios:
// every scenario instance fires its rule for its account, every alert takes
// events of that scenario and of no other, and every rule fires.
func TestPaymentsExample(t *testing.T) {
	rs := paymentsRuleset(t)
	recording := filepath.Join("..", "..", "rulesets", "testdata", "payments.jsonl")
	var out bytes.Buffer
	sum, err := cep.Replay(context.Background(), cep.ReplayOptions{
		Rulesets: []*rules.Compiled{rs},
		Inputs:   []cep.Input{{Name: recording}},
		Alerts:   &out,
		Clock:    fixedClock,
	})
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if sum.DeadLettered != 0 || sum.Late != 0 {
		t.Errorf("%d dead-lettered and %d late lines, want none", sum.DeadLettered, sum.Late)
	}
	for _, r := range sum.Rules {
		if r.CELErrors != 0 {
			t.Errorf("rule %s: %d CEL errors, want none", r.Rule, r.CELErrors)
		}
	}

	type firing struct{ Rule, Key string }
	want := map[firing]bool{}
	data, err := os.ReadFile(recording)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var e labelled
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		if e.Scenario != "" {
			want[firing{ruleFor(e.Scenario), e.AccountID}] = true
		}
	}

	got := map[firing]bool{}
	sc = bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var a alertLine
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("alert %s: %v", sc.Bytes(), err)
		}
		got[firing{a.Rule, a.Key}] = true
		// An alert may also take ordinary events of the account (an
		// earlier login at home pairs with the far-away one just as well),
		// but it must take at least one event of the scenario.
		var ofScenario int
		for step, evs := range a.Events {
			for _, raw := range evs {
				var e labelled
				if err := json.Unmarshal(raw, &e); err != nil {
					t.Fatal(err)
				}
				if e.AccountID != a.Key {
					t.Errorf("rule %s key %s step %s took an event of account %s", a.Rule, a.Key, step, e.AccountID)
				}
				if e.Scenario != "" && ruleFor(e.Scenario) != a.Rule {
					t.Errorf("rule %s key %s step %s took an event of scenario %s", a.Rule, a.Key, step, e.Scenario)
				}
				if ruleFor(e.Scenario) == a.Rule {
					ofScenario++
				}
			}
		}
		if ofScenario == 0 {
			t.Errorf("rule %s key %s fired on ordinary events only: %s", a.Rule, a.Key, sc.Bytes())
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("alerts by (rule, key) (-injected +fired):\n%s", diff)
	}
	fired := map[string]bool{}
	for f := range got {
		fired[f.Rule] = true
	}
	for _, r := range rs.Rules {
		if !fired[r.ID] {
			t.Errorf("rule %s never fires on the recording", r.ID)
		}
	}
}
