package matcher

import "errors"

// RunGauge counts the open partial matches of several Partitions of one
// Program together, for a caller that runs them on one goroutine and wants
// their peak as a whole: the sum of the Partitions' own peaks overstates
// it, since they peak at different times, and the largest understates it. A
// replay of a recording of several Kafka partitions runs one Partition per
// partition and reports their peak this way. It is not safe for concurrent
// use.
type RunGauge struct {
	prog       *Program
	live, peak int
	rules      []gaugeRule // by the Program's rule index
}

type gaugeRule struct{ live, peak int }

// NewRunGauge returns a RunGauge for Partitions of prog.
func NewRunGauge(prog *Program) *RunGauge {
	return &RunGauge{prog: prog, rules: make([]gaugeRule, len(prog.rules))}
}

// Peak returns the most partial matches the Partitions held open together
// at any time.
func (g *RunGauge) Peak() int { return g.peak }

// RulePeaks returns, for each rule by its Stats.ByRule id, the most
// partial matches of the rule the Partitions held open together at any
// time.
func (g *RunGauge) RulePeaks() map[RuleID]int {
	m := make(map[RuleID]int, len(g.rules))
	for i, r := range g.rules {
		m[g.prog.rules[i].id()] = r.peak
	}
	return m
}

// count counts delta more open partial matches of rule without touching
// the peaks (see Partition.countLive).
func (g *RunGauge) count(rule, delta int) {
	g.live += delta
	if rule < len(g.rules) {
		g.rules[rule].live += delta
	}
}

// notePeak raises the peaks to the current counts.
func (g *RunGauge) notePeak(rule int) {
	g.peak = max(g.peak, g.live)
	if rule < len(g.rules) {
		r := &g.rules[rule]
		r.peak = max(r.peak, r.live)
	}
}

// ShareRuns makes p count its open partial matches in g too, from the ones
// it holds now on; p's own Stats do not change. p's peaks so far count as
// peaks of the whole, which is exact when p ran alone until then (as a
// replay's first Partition does until a second one starts). g must be of
// p's Program. p stops counting in g at SetProgram, whose rules differ.
func (p *Partition) ShareRuns(g *RunGauge) error {
	if g.prog != p.prog {
		return errors.New("share runs: the gauge is of another program")
	}
	if p.gauge == g {
		return nil
	}
	if p.gauge != nil {
		return errors.New("share runs: the partition counts in another gauge")
	}
	p.gauge = g
	g.live += p.liveRuns
	g.peak = max(g.peak, g.live, p.stats.PeakRuns)
	for i := range g.rules {
		rs := &p.perRule[i]
		r := &g.rules[i]
		r.live += rs.live
		r.peak = max(r.peak, r.live, rs.PeakRuns)
	}
	return nil
}
