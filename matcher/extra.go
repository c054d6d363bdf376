package matcher

// ruleExtra is the state of one rule for one key that most keys never
// have: completed matches a skip strategy holds back, an aggregate rule's
// window, the alerts a rule suppresses. It hangs off ruleKey by a pointer,
// nil while all of it is empty.
type ruleExtra struct {
	// held are completed matches a skip strategy keeps until no earlier
	// partial match is open (and absence matches, released the same way).
	held []*run
	// agg is an aggregate rule's window.
	agg *aggState
	// sup are the rule's alert suppression entries for the key
	// (suppress.go), and supNext the earliest expiry among them still to
	// come when they last changed.
	sup     []suppression
	supNext int64
}

// empty reports whether x holds nothing; a nil x is empty.
func (x *ruleExtra) empty() bool {
	return x == nil || (len(x.held) == 0 && len(x.sup) == 0 && (x.agg == nil || x.agg.empty()))
}

// heldRuns returns the held matches.
func (rk *ruleKey) heldRuns() []*run {
	if rk.x == nil {
		return nil
	}
	return rk.x.held
}

// setHeld makes held the held matches, dropping the extra state once it
// is all empty.
func (rk *ruleKey) setHeld(held []*run) {
	if rk.x == nil {
		if len(held) == 0 {
			return
		}
		rk.x = new(ruleExtra)
	}
	rk.x.held = held
	if rk.x.empty() {
		rk.x = nil
	}
}
