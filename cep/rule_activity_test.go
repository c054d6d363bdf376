package cep

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// TestRuleActivity: the figures of Engine.RuleActivity count alerts as
// the workers produce them and suppressed alerts as the matcher's
// statistics gain them, every version of a rule together and a shadow
// apart; open partial matches are summed over the owned partitions, a
// partition forgotten when it goes; a reload that drops a rule drops its
// totals.
func TestRuleActivity(t *testing.T) {
	m, err := newMetrics(nil, func() bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	p0, p1 := m.forPartition("t", 0), m.forPartition("t", 1)
	big := matcher.RuleID{Ruleset: "pay", Rule: "big"}
	bigOld := big
	bigOld.Version = "v1"
	other := matcher.RuleID{Ruleset: "pay", Rule: "other"}

	p0.counters(big, false).tally.alerts.Add(1)
	p1.counters(big, false).tally.alerts.Add(1)
	p1.counters(bigOld, false).tally.alerts.Add(1)
	p0.counters(big, true).tally.alerts.Add(1)
	p0.countRules(map[matcher.RuleID]matcher.RuleStats{big: {Suppressed: 2}, bigOld: {Suppressed: 1}}, false)
	p0.countRules(map[matcher.RuleID]matcher.RuleStats{big: {Suppressed: 5}, bigOld: {Suppressed: 1}}, false)
	m.activity.setOpen(p0.tp, map[metricRule]int{activityRule(big, false): 3, activityRule(other, false): 1})
	m.activity.setOpen(p1.tp, map[metricRule]int{activityRule(big, false): 4})

	want := []RuleActivity{
		{Ruleset: "pay", Rule: "big", Alerts: 3, Suppressed: 6, OpenPartialMatches: 7},
		{Ruleset: "pay", Rule: "other", OpenPartialMatches: 1},
		{Ruleset: "pay", Rule: "big", Shadow: true, Alerts: 1},
	}
	if d := cmp.Diff(want, m.activity.snapshot()); d != "" {
		t.Errorf("activity (-want +got):\n%s", d)
	}

	p1.forget()
	want[0].OpenPartialMatches = 3
	if d := cmp.Diff(want, m.activity.snapshot()); d != "" {
		t.Errorf("activity after partition 1 went (-want +got):\n%s", d)
	}

	// A plan without the shadow and without rule other: their totals go.
	rs, err := rules.Load("pay.yaml", []byte(`ruleset: pay
stream: {topic: t, key: event.k, time: event.ts}
rules:
  - id: big
    when: event.amount > 100.0
`), rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m.activity.retire(&enginePlan{rulesets: []*rules.Compiled{rs}})
	p0.forget()
	want = []RuleActivity{{Ruleset: "pay", Rule: "big", Alerts: 3, Suppressed: 6}}
	if d := cmp.Diff(want, m.activity.snapshot()); d != "" {
		t.Errorf("activity after the reload (-want +got):\n%s", d)
	}
}
