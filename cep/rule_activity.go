package cep

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/shrike-cep/shrike/matcher"
)

// RuleActivity is what one rule does on this engine, for the API's
// per-rule figures (registry.StatsPublisher sums them over the instances).
// A rule's versions count together, as in the per-rule metrics.
type RuleActivity struct {
	Ruleset, Rule string
	// Shadow is true for a rule of a shadow version, which counts apart
	// from the live rule of the same id.
	Shadow bool
	// Alerts counts the alerts the rule produced since the engine started,
	// timeout alerts included; Suppressed those its alert.suppress
	// dropped. Both only grow while the rule stays in the rulesets: a rule
	// removed by a reload starts again from 0 if it comes back.
	Alerts, Suppressed uint64
	// OpenPartialMatches counts the rule's partial matches open now in
	// the partitions this engine owns, of the keys in memory, as of each
	// partition's last checkpoint.
	OpenPartialMatches int
}

// ruleActivity keeps the engine's RuleActivity. Alerts are counted as
// they are produced, through a tally that the partition's per-rule
// counters resolve once (no lookup, no lock per alert); suppressed alerts
// and open partial matches come with the matcher's statistics at each
// observe.
type ruleActivity struct {
	mu      sync.Mutex
	tallies map[metricRule]*ruleTally // by rule, Version empty
	// open are the open partial matches of each owned partition, by rule,
	// as last observed.
	open map[topicPartition]map[metricRule]int
}

// ruleTally are one rule's running totals.
type ruleTally struct {
	alerts, suppressed atomic.Uint64
}

func newRuleActivity() *ruleActivity {
	return &ruleActivity{tallies: map[metricRule]*ruleTally{}, open: map[topicPartition]map[metricRule]int{}}
}

// activityRule is the key of a rule of any version.
func activityRule(id matcher.RuleID, shadow bool) metricRule {
	id.Version = ""
	return metricRule{id, shadow}
}

// tally returns the totals of the rule id of any version.
func (a *ruleActivity) tally(id matcher.RuleID, shadow bool) *ruleTally {
	key := activityRule(id, shadow)
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.tallies[key]
	if t == nil {
		t = &ruleTally{}
		a.tallies[key] = t
	}
	return t
}

// setOpen records the open partial matches of a partition's rules, from
// the matcher's per-rule statistics of its streams.
func (a *ruleActivity) setOpen(tp topicPartition, byRule map[metricRule]int) {
	a.mu.Lock()
	a.open[tp] = byRule
	a.mu.Unlock()
}

// forget drops a partition that is no longer this engine's: its partial
// matches are its next owner's to count.
func (a *ruleActivity) forget(tp topicPartition) {
	a.mu.Lock()
	delete(a.open, tp)
	a.mu.Unlock()
}

// retire drops the totals of the rules plan p does not have, as
// metrics.retire drops their series.
func (a *ruleActivity) retire(p *enginePlan) {
	keep := map[metricRule]bool{}
	for _, rs := range p.rulesets {
		for _, r := range rs.Rules {
			keep[metricRule{matcher.RuleID{Ruleset: rs.Name, Rule: r.ID}, rs.Shadow}] = true
		}
	}
	a.mu.Lock()
	maps.DeleteFunc(a.tallies, func(k metricRule, _ *ruleTally) bool { return !keep[k] })
	a.mu.Unlock()
}

// snapshot returns every rule's activity, sorted by ruleset, shadow and
// rule.
func (a *ruleActivity) snapshot() []RuleActivity {
	a.mu.Lock()
	byRule := make(map[metricRule]*RuleActivity, len(a.tallies))
	get := func(k metricRule) *RuleActivity {
		ra := byRule[k]
		if ra == nil {
			ra = &RuleActivity{Ruleset: k.Ruleset, Rule: k.Rule, Shadow: k.shadow}
			byRule[k] = ra
		}
		return ra
	}
	for k, t := range a.tallies {
		ra := get(k)
		ra.Alerts, ra.Suppressed = t.alerts.Load(), t.suppressed.Load()
	}
	for _, rules := range a.open {
		for k, n := range rules {
			get(k).OpenPartialMatches += n
		}
	}
	a.mu.Unlock()
	out := make([]RuleActivity, 0, len(byRule))
	for _, ra := range byRule {
		out = append(out, *ra)
	}
	slices.SortFunc(out, func(x, y RuleActivity) int {
		if c := strings.Compare(x.Ruleset, y.Ruleset); c != 0 {
			return c
		}
		if x.Shadow != y.Shadow {
			if x.Shadow {
				return 1
			}
			return -1
		}
		return strings.Compare(x.Rule, y.Rule)
	})
	return out
}

// RuleActivity returns what each rule does on this engine: alerts and
// suppressed alerts since it started, partial matches open now in the
// partitions it owns. Safe for concurrent use with Run.
func (e *Engine) RuleActivity() []RuleActivity { return e.metrics.activity.snapshot() }
