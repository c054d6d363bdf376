package matcher

import (
	"slices"

	"github.com/shrike-cep/shrike/rules"
)

// emitMatch turns a completed (or, with timeout, timed-out) run into an
// alert.
func (p *Partition) emitMatch(pr *planRule, m *run, key string, timeout bool) {
	steps := make([]StepRecords, len(pr.auto.StepNames))
	var lastEvent *rules.Event
	for n := m.last; n != nil; n = n.prev {
		rec := p.record(n.ev, key)
		if n == m.last {
			lastEvent = rec.Event
		}
		steps[n.step].Records = append(steps[n.step].Records, rec)
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
	p.emit(pr, m, key, out, m.last, lastEvent, timeout)
}

// emitSingle emits the alert of a single-event rule.
func (p *Partition) emitSingle(pr *planRule, r *Record) {
	p.emit(pr, nil, r.Key, []StepRecords{{Step: "event", Records: []*Record{r}}}, nil, r.Event, false)
}

// emit fills in the alert of a match (m, or nil for a single-event rule)
// and hands it to the Output. last is the match's newest node (nil for a
// single-event rule) and lastEvent its event, `event` in the summary.
func (p *Partition) emit(pr *planRule, m *run, key string, steps []StepRecords, last *node, lastEvent *rules.Event, timeout bool) {
	// The alert may point into the record being processed (its key, a
	// single-event rule's record): that record is not recycled.
	p.handedOut = true
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
		p.views.reset()
		s, err := pr.rule.Summary.EvalString(ev, &runVars{pr: pr, last: last, views: &p.views})
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
