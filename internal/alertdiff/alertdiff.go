// Package alertdiff compares the alerts two versions of rulesets produced
// over the same events: `shrike diff` and DiffRulesets over a recording,
// and a shadow version against the live one on `shrike serve`.
//
// Two alerts are the same alert when they have the same ruleset, rule, key
// and timeout flag and matched the same events at the same steps. The id is
// not compared: it hashes the rule's version, which a change of the rule
// changes even where its matches stay the same. Matched events are compared
// by their JSON (whitespace aside), which is what an alert read back from
// Kafka holds; alerts compared must come from the same input, where equal
// events at equal steps of one key are the same match. Alerts are counted
// with their multiplicity: two equal alerts in one version and one in the
// other are one alert in both and one only in the first.
package alertdiff

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/shrike-cep/shrike/matcher"
)

// Side says which version produced an alert.
type Side int

// The two versions: Old is the one compared against (the live version of a
// shadow), New the candidate.
const (
	Old Side = iota
	New
)

// DefaultExamples is how many example alerts of each kind a Diff keeps per
// rule when Options.Examples is zero.
const DefaultExamples = 3

// retainFactor bounds the alerts a Diff holds while they have no equal in
// the other version: examples of "only in one version" are picked among
// them, so a few times the examples wanted is enough, and memory stays
// bounded however many alerts differ.
const retainFactor = 16

// Rule is the comparison of one rule's alerts.
type Rule struct {
	Ruleset, Rule string
	// InOld and InNew say whether the rule was declared in each version
	// (Declare); a rule that produced alerts counts as declared.
	InOld, InNew bool
	// Both counts the alerts both versions produced; OnlyOld and OnlyNew
	// those of one version only.
	Both, OnlyOld, OnlyNew int
	// Examples of each kind, in the order the alerts were added, at most
	// Options.Examples each.
	BothExamples, OnlyOldExamples, OnlyNewExamples []*matcher.Alert
}

// Differs reports whether some alert of the rule is in one version only.
func (r *Rule) Differs() bool { return r.OnlyOld > 0 || r.OnlyNew > 0 }

// Diff accumulates the alerts of both versions. It is not safe for
// concurrent use.
type Diff struct {
	examples int
	rules    map[ruleName]*ruleState
	order    []ruleName
}

type ruleName struct{ ruleset, rule string }

type ruleState struct {
	Rule
	// open holds, per signature, the alerts not yet paired with one of the
	// other version: positive counts are Old's, negative New's.
	open map[uint64]*openSig
	// held counts the alerts kept in open, per side, against the bound.
	held [2]int
	seq  uint64
}

type openSig struct {
	count  int // >0: Old alerts waiting; <0: New alerts waiting
	alerts []heldAlert
}

type heldAlert struct {
	a   *matcher.Alert
	seq uint64
}

// Options configure a Diff.
type Options struct {
	// Examples is how many example alerts of each kind to keep per rule.
	// Default DefaultExamples; negative keeps none.
	Examples int
}

// NewDiff returns an empty Diff.
func NewDiff(opts Options) *Diff {
	switch {
	case opts.Examples == 0:
		opts.Examples = DefaultExamples
	case opts.Examples < 0:
		opts.Examples = 0
	}
	return &Diff{examples: opts.Examples, rules: map[ruleName]*ruleState{}}
}

// Declare records that a version has the rule, so that a rule without
// alerts in either version is still reported, in the order declared.
func (d *Diff) Declare(side Side, ruleset, rule string) {
	rs := d.rule(ruleset, rule)
	if side == Old {
		rs.InOld = true
	} else {
		rs.InNew = true
	}
}

func (d *Diff) rule(ruleset, rule string) *ruleState {
	n := ruleName{ruleset, rule}
	rs := d.rules[n]
	if rs == nil {
		rs = &ruleState{Rule: Rule{Ruleset: ruleset, Rule: rule}, open: map[uint64]*openSig{}}
		d.rules[n] = rs
		d.order = append(d.order, n)
	}
	return rs
}

// Add counts one alert of a version. The Diff may keep a as an example: the
// caller must not change it afterwards.
func (d *Diff) Add(side Side, a *matcher.Alert) {
	rs := d.rule(a.Ruleset, a.Rule)
	if side == Old {
		rs.InOld = true
	} else {
		rs.InNew = true
	}
	sig := Signature(a)
	rs.seq++
	o := rs.open[sig]
	sign := 1
	if side == New {
		sign = -1
	}
	if o != nil && o.count*sign < 0 {
		// Pairs with an alert of the other version.
		rs.Both++
		if len(rs.BothExamples) < d.examples {
			rs.BothExamples = append(rs.BothExamples, a)
		}
		o.count += sign
		if len(o.alerts) > 0 {
			o.alerts = o.alerts[1:]
			rs.held[1-int(side)]--
		}
		if o.count == 0 {
			delete(rs.open, sig)
		}
		return
	}
	if o == nil {
		o = &openSig{}
		rs.open[sig] = o
	}
	o.count += sign
	if rs.held[side] < d.examples*retainFactor {
		o.alerts = append(o.alerts, heldAlert{a, rs.seq})
		rs.held[side]++
	}
}

// Rules returns the comparison per rule, in the order rules were first
// declared or seen.
func (d *Diff) Rules() []Rule {
	out := make([]Rule, 0, len(d.order))
	for _, n := range d.order {
		rs := d.rules[n]
		r := rs.Rule
		r.BothExamples = slices.Clone(r.BothExamples)
		var olds, news []heldAlert
		for _, o := range rs.open {
			if o.count > 0 {
				r.OnlyOld += o.count
				olds = append(olds, o.alerts...)
			} else {
				r.OnlyNew -= o.count
				news = append(news, o.alerts...)
			}
		}
		r.OnlyOldExamples = d.pick(olds)
		r.OnlyNewExamples = d.pick(news)
		out = append(out, r)
	}
	return out
}

// Differs reports whether some rule differs.
func (d *Diff) Differs() bool {
	for _, r := range d.Rules() {
		if r.Differs() {
			return true
		}
	}
	return false
}

// pick returns the first examples in the order the alerts were added.
func (d *Diff) pick(held []heldAlert) []*matcher.Alert {
	slices.SortFunc(held, func(a, b heldAlert) int { return int(a.seq - b.seq) })
	n := min(len(held), d.examples)
	out := make([]*matcher.Alert, n)
	for i := range n {
		out[i] = held[i].a
	}
	return out
}

// Signature is the identity under which two alerts are the same alert: a
// hash of the ruleset, rule, key, timeout flag and each step's name and
// matched events, the events as compact JSON.
func Signature(a *matcher.Alert) uint64 {
	h := xxhash.New()
	var n [8]byte
	str := func(s string) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		_, _ = h.Write(n[:])
		_, _ = h.WriteString(s)
	}
	str(a.Ruleset)
	str(a.Rule)
	str(a.Key)
	if a.Timeout {
		_, _ = h.WriteString("T")
	}
	var compact bytes.Buffer
	for _, s := range a.Steps {
		str(s.Step)
		binary.LittleEndian.PutUint64(n[:], uint64(len(s.Records)))
		_, _ = h.Write(n[:])
		for _, r := range s.Records {
			raw := r.Event.Raw()
			compact.Reset()
			if json.Compact(&compact, raw) == nil {
				raw = compact.Bytes()
			}
			binary.LittleEndian.PutUint64(n[:], uint64(len(raw)))
			_, _ = h.Write(n[:])
			_, _ = h.Write(raw)
		}
	}
	return h.Sum64()
}
