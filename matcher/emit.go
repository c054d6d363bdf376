package matcher

import (
	"slices"

	"github.com/shrike-cep/shrike/rules"
)

// emitMatch turns a completed (or, with timeout, timed-out) run into an
// alert.
func (p *Partition) emitMatch(pr *planRule, m *run, key string, timeout bool) {
	steps := make([]StepRecords, len(pr.auto.StepNames))
	for n := m.last; n != nil; n = n.prev {
		steps[n.step].Records = append(steps[n.step].Records, n.rec)
	}
	out := steps[:0]
	for i, s := range steps {
		if len(s.Records) == 0 {
			continue
		}
		slices.Reverse(s.Records)
		s.Step = pr.auto.StepNames[i]
		out = append(out, s)
	}
	p.emit(pr, m, key, out, m.last, timeout)
}

// emitSingle emits the alert of a single-event rule.
func (p *Partition) emitSingle(pr *planRule, r *Record) {
	p.emit(pr, nil, r.Key, []StepRecords{{Step: "event", Records: []*Record{r}}}, &node{rec: r, step: -1}, false)
}

// emit fills in the alert of a match (m, or nil for a single-event rule)
// and hands it to the Output.
func (p *Partition) emit(pr *planRule, m *run, key string, steps []StepRecords, last *node, timeout bool) {
	a := &Alert{
		Ruleset:     pr.ruleset.Name,
		Rule:        pr.rule.ID,
		RuleVersion: pr.rule.Version,
		Severity:    pr.rule.Severity,
		Key:         key,
		Labels:      pr.rule.Alert.Labels,
		DetectedAt:  p.opts.Clock(),
		Timeout:     timeout,
		Shadow:      pr.ruleset.Shadow,
		Steps:       steps,
	}
	first := true
	var lastEvent *rules.Event
	for _, s := range steps {
		for _, r := range s.Records {
			if first || r.Time < a.Start.UnixNano() {
				a.Start = unixTime(r.Time)
			}
			if first || r.Time > a.End.UnixNano() {
				a.End = unixTime(r.Time)
			}
			first = false
		}
	}
	if last != nil {
		lastEvent = last.rec.Event
	}
	a.Summary = p.summary(pr, key, last, lastEvent)
	a.ID = alertID(a.Ruleset, a.Rule, a.RuleVersion, key, timeout, a.Shadow, steps)
	p.stats.Alerts++
	p.perRule[pr.index].Alerts++
	if p.tr != nil {
		p.tr.alert(p, pr, m, a, p.trRec)
	}
	p.out.Alert(a)
}

func (p *Partition) summary(pr *planRule, key string, last *node, ev *rules.Event) string {
	if pr.rule.Summary != nil {
		s, err := pr.rule.Summary.EvalString(ev, &runVars{pr: pr, last: last})
		if err == nil {
			return s
		}
		p.perRule[pr.index].CELErrors++
	}
	if pr.rule.Description != "" {
		return pr.rule.Description + " (key " + key + ")"
	}
	return "rule " + pr.rule.ID + " matched key " + key
}
