package rules

import (
	"slices"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// distance_km over the fields of an event and of an earlier step
// (impossible travel) reads four numbers per open partial match and event,
// two of them from an event the partial match took long ago: a field
// lookup and a decode in memory that is no longer in any cache. A
// NumberLoader decodes those operands once per event, on the goroutine
// that parsed it, into a few slots of the Event; the native path reads
// them there and falls back to the field when a slot is empty.

// numberKey names a preloaded number: the field (an interned id) and the
// mode it was decoded in, since rulesets sharing an event may give a field
// different schema types. 0 means none.
type numberKey uint16

// numberKindBits is how many low bits of a numberKey hold the kind.
const numberKindBits = 4

// numberIDs numbers the fields numberKeys name: 4,095 per process, as
// many as the bits above the kind hold.
var numberIDs = interner{max: 1<<(16-numberKindBits) - 1}

// newNumberKey returns the key of field decoded as k, 0 when the key space
// is used up: the field is then not preloaded, which costs speed only.
func newNumberKey(field string, k kind) numberKey {
	id := numberIDs.id(field)
	if id == 0 {
		return 0
	}
	return numberKey(uint16(id)<<numberKindBits | uint16(k))
}

// preloaded returns the number stored under key.
func (e *Event) preloaded(key numberKey) (float64, bool) {
	if key == 0 {
		return 0, false
	}
	for i, k := range e.numKey {
		if numberKey(k) == key {
			return e.num[i], true
		}
	}
	return 0, false
}

// NumberLoader decodes ahead the numbers that natively evaluated
// distance_km operands read. It is safe for concurrent use; the Events it
// loads are not (see Event).
type NumberLoader struct {
	fields []*numberField
}

type numberField struct {
	name string
	kind kind
	key  numberKey
	hint fieldHint
}

// NewNumberLoader returns a loader of the numeric operands of exprs' native
// paths (at most as many as an Event has slots for: the rest are read when
// needed), nil when they have none.
func NewNumberLoader(exprs []*Expr) *NumberLoader {
	l := &NumberLoader{}
	add := func(r *fieldRef) {
		if r == nil || r.numKey == 0 || len(l.fields) == numSlots {
			return
		}
		for _, f := range l.fields {
			if f.key == r.numKey {
				return
			}
		}
		l.fields = append(l.fields, &numberField{name: r.field, kind: r.kind, key: r.numKey})
	}
	var visit func(e *Expr)
	visit = func(e *Expr) {
		if e == nil {
			return
		}
		for _, c := range e.Conjuncts {
			visit(c)
		}
		if e.steps == nil {
			return
		}
		for _, o := range []*operand{e.steps.a, e.steps.b} {
			if o.dist == nil {
				continue
			}
			for _, arg := range o.dist {
				add(arg.ref)
			}
		}
	}
	for _, e := range exprs {
		visit(e)
	}
	if len(l.fields) == 0 {
		return nil
	}
	return l
}

// Load decodes the loader's fields of ev into its number slots, each that
// is present and a number as the native path would read it. Fields that
// are missing, null or not numbers are left to be read when needed, so
// that the path falls back to CEL for them as it would without a loader.
func (l *NumberLoader) Load(ev *Event) {
	if l == nil {
		return
	}
	n := 0
	for _, nf := range l.fields {
		f := ev.findHinted(nf.name, &nf.hint)
		if f == nil {
			continue
		}
		x, ok := decodeNumber(ev.raw[f.v0:f.v1], nf.kind)
		if !ok {
			continue
		}
		ev.numKey[n], ev.num[n] = uint16(nf.key), x
		n++
	}
}

// decodeNumber decodes b in mode k as distance_km takes it, without boxing
// the common numbers.
func decodeNumber(b []byte, k kind) (float64, bool) {
	if x, ok := plainNumber(b, k); ok {
		return x, true
	}
	if k == kindDouble && isNum(b[0]) {
		return parseFloat(b)
	}
	return numberOf(decodeAs(b, k))
}

// plainNumber decodes the common numbers, a JSON number of at most 15
// digits read without a schema type or as a double, exactly as CEL
// decodes it and without a CEL value: an int or a double to CEL, the same
// float64 here, sign of zero included. ok is false for anything else.
func plainNumber(b []byte, k kind) (float64, bool) {
	if (k != kindNatural && k != kindDouble) || !isNum(b[0]) {
		return 0, false
	}
	x, ok := parseShortDecimal(b)
	if x == 0 && k == kindNatural && !slices.Contains(b, '.') {
		x = 0 // the int 0: "-0" is no -0.0
	}
	return x, ok
}

// numberOf is a decoded value as distance_km takes it: its int and double
// overloads are the only ones.
func numberOf(v ref.Val) (float64, bool) {
	switch n := v.(type) {
	case types.Int:
		return float64(n), true
	case types.Double:
		return float64(n), true
	}
	return 0, false
}
