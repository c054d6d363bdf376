package matcher

import "slices"

// SetProgram replaces the partition's rules while it runs (hot reload,
// docs/design.md#hot-reload), without losing a partial match:
//   - a rule whose name and version are unchanged keeps its partial matches
//     and carries on as if nothing happened;
//   - a rule whose version changed starts new matches under the new
//     version at once, while the old version's partial matches finish or
//     time out under the old version (they drain; the old version starts
//     nothing new);
//   - a rule no longer present has its partial matches dropped.
//
// The buffered records, the watermark and the counters of unchanged rules
// stay. The Partition leaves its RunGauge (ShareRuns), which counts by the
// old Program's rules.
func (p *Partition) SetProgram(next *Program) {
	if next == p.prog {
		return
	}
	p.gauge = nil
	// Rules map to their successors one by one: group states become the
	// members' own first.
	for ks := range p.allStates() {
		p.splitGroups(ks)
	}
	byName := next.byName()
	var draining []*planRule
	slots := next.slots
	// Old rules map to their successors; draining copies get indexes after
	// the new Program's rules and cache slots after its conditions.
	mapped := make(map[*planRule]*planRule, len(p.rules))
	oldStats := make(map[*planRule]RuleStats, len(p.rules))
	for i, old := range p.rules {
		oldStats[old] = p.perRule[i]
		cur := byName[old.name]
		switch {
		case cur != nil && cur.auto != nil && old.auto != nil && cur.rule.Version == old.rule.Version && !old.draining:
			mapped[old] = cur
		case cur != nil && cur.auto == nil && old.auto == nil && cur.rule.Version == old.rule.Version:
			mapped[old] = cur
		case old.auto != nil && cur != nil && p.liveOf(i) > 0:
			d := *old
			d.draining = true
			d.group = nil
			d.index = len(next.rules) + len(draining)
			d.slotBase = slots
			slots += old.program.slots
			draining = append(draining, &d)
			mapped[old] = &d
		}
	}
	rules := append(append([]*planRule(nil), next.rules...), draining...)
	perRule := make([]RuleStats, len(rules))
	for old, cur := range mapped {
		perRule[cur.index] = oldStats[old]
	}
	for ks := range p.allStates() {
		kept := ks.rules[:0]
		ks.mask = 0
		for _, rk := range ks.rules {
			cur := mapped[rk.rule]
			if cur == nil {
				p.liveRuns -= len(rk.runs)
				p.markDirty(ks)
				continue
			}
			if cur.auto != rk.rule.auto {
				// The same rule, compiled again: the same states by id.
				for _, r := range rk.runs {
					r.state = cur.auto.States[r.state.ID]
				}
				for _, r := range rk.heldRuns() {
					r.state = cur.auto.States[r.state.ID]
				}
			}
			rk.rule = cur
			kept = append(kept, rk)
			ks.mask |= ruleBit(cur)
		}
		clear(ks.rules[len(kept):])
		ks.rules = kept
		slices.SortStableFunc(ks.rules, func(a, b *ruleKey) int { return a.rule.index - b.rule.index })
	}
	for ks := range p.allStates() {
		if len(ks.rules) == 0 {
			ks.dead = true
			p.keys.remove(ks)
		}
	}
	p.prog, p.rules, p.perRule = next, rules, perRule
	p.groupVary = nil // by the old Program's groups
	if slots > len(p.cacheGen) {
		p.cacheGen = make([]uint32, slots)
		p.cacheVal = make([]bool, slots)
		p.gen = 1
	}
}

// liveOf counts the open partial matches of the rule at index i, held
// matches included.
func (p *Partition) liveOf(i int) int {
	return p.perRule[i].live + p.heldOf(p.rules[i])
}

func (p *Partition) heldOf(pr *planRule) int {
	n := 0
	for ks := range p.allStates() {
		if rk := ks.find(pr); rk != nil {
			n += len(rk.heldRuns())
		}
	}
	return n
}
