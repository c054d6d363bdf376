package matcher

import "github.com/shrike-cep/shrike/nfa"

// Most records leave most partial matches as they are: a card
// authorisation, for the login an impossible-travel match waits for, or
// for the transfers a velocity match counts. Stepping such a record through
// the automaton finds only the ignore edge each match's state loops on, for
// every open match of every rule of the key. leavesAsIs tells that from the
// conditions Program.Prepare evaluated instead, once per state rather than
// per match, and step is skipped; records it cannot decide that way (a
// condition that reads the partial match, like here.lat, or one Prepare did
// not evaluate) are stepped as before.

// leavesAsIs reports whether stepping r would leave the rule's state for
// the key as it is: no run from the start state, every run kept unchanged,
// nothing to emit or release, no condition left to evaluate (so no CEL
// error to count either).
func (p *Partition) leavesAsIs(pr *planRule, rk *ruleKey, r *Record) bool {
	// Held matches are released by advanceTime, just before, when they can
	// be; with runs unchanged step would release none. Skipping only keys
	// that hold none keeps that reasoning out of the shortcut.
	if r.pre.prog != pr.program || len(rk.heldRuns()) > 0 || len(rk.runs) > p.opts.MaxRunsPerKey {
		return false
	}
	if !pr.draining {
		if bit := ruleBit(pr); bit == 0 || r.pre.mayStart&bit != 0 {
			if !decidesQuiet(pr.auto.Start, true, &r.pre) {
				return false
			}
		}
	}
	// Runs of a rule are in few states: decide each state once.
	var decided [4]*nfa.State
	n := 0
	for _, run := range rk.runs {
		st := run.state
		seen := false
		for _, d := range decided[:n] {
			if d == st {
				seen = true
				break
			}
		}
		if seen {
			continue
		}
		if !decidesQuiet(st, false, &r.pre) {
			return false
		}
		if n < len(decided) {
			decided[n] = st
			n++
		}
	}
	return true
}

// decidesQuiet reports whether the prepared conditions decide that a run
// in state st stays as it is (Partition.nextRuns returns it alone): of the
// edges decisionGraph would collect, the one ignore edge back to st. The
// start state, which keeps no ignored run, stays as it is when no take
// edge holds.
func decidesQuiet(st *nfa.State, start bool, pre *prepared) bool {
	ignored := 0
	return walkQuiet(st, st, start, pre, &ignored) && (start || ignored == 1)
}

// walkQuiet decides the edges of s, reached from st by proceed edges that
// hold (s == st first), counting in ignored the ignore edges back to st.
func walkQuiet(s, st *nfa.State, start bool, pre *prepared, ignored *int) bool {
	for _, e := range s.Edges {
		holds, ok := pre.decide(e.Cond)
		if !ok {
			return false
		}
		if !holds {
			continue
		}
		switch e.Action {
		case nfa.Proceed:
			if !walkQuiet(e.Target, st, start, pre, ignored) {
				return false
			}
		case nfa.Take:
			return false
		case nfa.Ignore:
			if !start {
				if e.Target != st {
					return false
				}
				*ignored++
			}
		}
	}
	return true
}

// decide evaluates c from the values Prepare kept, in the order
// Partition.cond evaluates it: ok is false when that needs a condition
// Prepare did not evaluate (cond would evaluate it, and might count an
// error).
func (pre *prepared) decide(c *nfa.Cond) (holds, ok bool) {
	switch c.Op {
	case nfa.OpTrue:
		return true, true
	case nfa.OpNot:
		v, ok := pre.decide(c.X)
		return !v, ok
	case nfa.OpAnd:
		x, ok := pre.decide(c.X)
		if !ok || !x {
			return false, ok
		}
		return pre.decide(c.Y)
	}
	if c.Slot < 0 || c.Slot >= 64 {
		return false, false
	}
	bit := uint64(1) << c.Slot
	if pre.known&bit == 0 {
		return false, false
	}
	return pre.val&bit != 0, true
}
