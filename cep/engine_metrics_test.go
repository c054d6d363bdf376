package cep

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/matcher"
)

// TestPartitionMetricsRuleLabels: the per-rule counters are labelled with
// the rule's ruleset and id as they are, whatever characters they hold (a
// ruleset built in code is not held to the YAML's name pattern), and a
// draining version counts under its rule.
func TestPartitionMetricsRuleLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg, func() bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	pm := m.forPartition("t", 0)
	cur := matcher.RuleID{Ruleset: "team/pay", Rule: "pair@2"}
	old := cur
	old.Version = "v1"
	pm.countRules(map[matcher.RuleID]matcher.RuleStats{cur: {Timeouts: 2}, old: {Timeouts: 1, CELErrors: 4}})
	// Counted again, only what was gained since is added.
	pm.countRules(map[matcher.RuleID]matcher.RuleStats{cur: {Timeouts: 3}, old: {Timeouts: 1, CELErrors: 4}})
	pm.counters(cur).alerts.Inc()
	text := testkit.MetricsText(t, reg)
	for _, want := range []string{
		`shrike_engine_alerts_total{rule="pair@2",ruleset="team/pay"} 1`,
		`shrike_engine_timeouts_total{rule="pair@2",ruleset="team/pay"} 4`,
		`shrike_engine_cel_errors_total{rule="pair@2",ruleset="team/pay"} 4`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
	if n := strings.Count(text, "shrike_engine_timeouts_total{"); n != 1 {
		t.Errorf("%d timeouts series, want 1 (every version counts under its rule)", n)
	}
}
