package rules

import "sync"

// interner numbers strings for the life of the process, so that
// goroutines and rulesets that meet the same string agree on its number:
// the first gets 1, the next 2, and so on up to max; past it a new string
// gets 0 (none), which its callers take as "not numbered", costing speed
// only.
type interner struct {
	mu  sync.Mutex
	ids map[string]uint32
	max int
}

func (in *interner) id(s string) uint32 {
	in.mu.Lock()
	defer in.mu.Unlock()
	if id, ok := in.ids[s]; ok {
		return id
	}
	if len(in.ids) >= in.max {
		return 0
	}
	if in.ids == nil {
		in.ids = map[string]uint32{}
	}
	id := uint32(len(in.ids) + 1)
	in.ids[s] = id
	return id
}
