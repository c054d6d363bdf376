package rules

import (
	"math"

	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// Conditions that relate the event to earlier steps of the partial match
// (`event.ip != fails[0].ip`, `event.card_id == first.card_id`,
// `distance_km(here.lat, here.lon, event.lat, event.lon) > 1000.0`) are
// evaluated once per open partial match and event, so on a busy key they
// dominate. The commonest shapes — a comparison of fields of the event and
// of step events with each other or with literals, and distance_km over
// such operands — are evaluated natively here.
//
// Exactness is kept by refusing rather than approximating: whenever an
// operand is unusual (an unbound step, a missing, null or undecodable
// field, an index out of range, values CEL cannot order, a NaN), eval
// reports !ok and the caller evaluates the expression through CEL, which
// then produces the value or the error.

// stepsPath evaluates `a OP b` natively, OP a comparison.
type stepsPath struct {
	op   fastOp // fastEq … fastGe
	a, b *operand
}

// operand is a literal, a field of the event or of a step's event, or a
// distance_km call over such operands.
type operand struct {
	lit ref.Val // a literal; nil otherwise
	// litNum is lit as a float64 when it is a number a float64 holds
	// exactly (compared with a distance without boxing).
	litNum   float64
	litIsNum bool

	ref  *fieldRef
	dist *[4]*operand
}

// fieldRef is `event.F`, `step.F` (a step taking one event: its last
// event, as CEL binds it) or `step[i].F` (a looping step).
type fieldRef struct {
	step    string // "" for event
	looping bool
	index   int
	field   string
	kind    kind
	hint    fieldHint
	// numKey names the field's number in an Event's preloaded numbers
	// (NumberLoader); set for distance_km operands only.
	numKey numberKey
}

// stepEventer is implemented by Vars that can hand out one event of a step
// without building the step's list; i < 0 asks for the last one.
type stepEventer interface {
	StepEvent(step string, i int) (*Event, bool)
}

// event returns the event r reads from, or nil when CEL would not bind it
// the way this path assumes (the caller then falls back to CEL).
func (r *fieldRef) event(ev *Event, vars Vars) *Event {
	if r.step == "" {
		return ev
	}
	if vars == nil {
		return nil
	}
	i := -1
	if r.looping {
		i = r.index
	}
	if se, ok := vars.(stepEventer); ok {
		e, _ := se.StepEvent(r.step, i)
		return e
	}
	evs, ok := vars.StepEvents(r.step)
	if !ok || len(evs) == 0 {
		return nil
	}
	if i < 0 {
		return evs[len(evs)-1]
	}
	if i >= len(evs) {
		return nil
	}
	return evs[i]
}

// value reads the field as CEL would, or reports !ok for anything but a
// present, non-null, decodable value. raw is the JSON text of the value.
func (r *fieldRef) value(ev *Event, vars Vars) (v ref.Val, raw []byte, ok bool) {
	e := r.event(ev, vars)
	if e == nil {
		return nil, nil, false
	}
	return r.valueOf(e)
}

// valueOf is value for the event the reference reads from.
func (r *fieldRef) valueOf(e *Event) (v ref.Val, raw []byte, ok bool) {
	f := e.findHinted(r.field, &r.hint)
	if f == nil {
		return nil, nil, false
	}
	raw = e.raw[f.v0:f.v1]
	if raw[0] == 'n' {
		return nil, nil, false
	}
	v = e.decode(f, r.kind)
	if types.IsError(v) {
		return nil, nil, false
	}
	return v, raw, true
}

// number evaluates an operand of distance_km.
func (o *operand) number(ev *Event, vars Vars) (float64, bool) {
	if o.ref == nil {
		return o.litNum, o.litIsNum
	}
	e := o.ref.event(ev, vars)
	if e == nil {
		return 0, false
	}
	if x, ok := e.preloaded(o.ref.numKey); ok {
		return x, true
	}
	v, _, ok := o.ref.valueOf(e)
	if !ok {
		return 0, false
	}
	return numberOf(v)
}

// distance evaluates a distance_km operand.
func (o *operand) distance(ev *Event, vars Vars) (float64, bool) {
	var c [4]float64
	for i, arg := range o.dist {
		f, ok := arg.number(ev, vars)
		if !ok {
			return 0, false
		}
		c[i] = f
	}
	d := haversine(c[0], c[1], c[2], c[3])
	return d, !math.IsNaN(d)
}

// eval returns the comparison's value, or !ok to have CEL evaluate it.
func (p *stepsPath) eval(ev *Event, vars Vars) (ref.Val, bool) {
	if p.a.dist != nil || p.b.dist != nil {
		return p.evalDistance(ev, vars)
	}
	va, rawA, ok := p.a.get(ev, vars)
	if !ok {
		return nil, false
	}
	vb, rawB, ok := p.b.get(ev, vars)
	if !ok {
		return nil, false
	}
	switch p.op {
	case fastEq, fastNe:
		// Plain JSON strings are equal exactly when their bytes are.
		if sa, ok := plainString(rawA); ok {
			if sb, ok := plainString(rawB); ok && isStringKind(p.a) && isStringKind(p.b) {
				return types.Bool((sa == sb) == (p.op == fastEq)), true
			}
		}
		eq, ok := types.Equal(va, vb).(types.Bool)
		if !ok {
			return nil, false
		}
		return types.Bool(bool(eq) == (p.op == fastEq)), true
	}
	if c, ok := compareSameKind(va, vb); ok {
		return types.Bool(ordered(p.op, c)), true
	}
	comparer, ok := va.(traits.Comparer)
	if !ok {
		return nil, false
	}
	c, ok := comparer.Compare(vb).(types.Int)
	if !ok {
		return nil, false
	}
	return types.Bool(ordered(p.op, int(c))), true
}

// isStringKind: the operand decodes a JSON string to a CEL string.
func isStringKind(o *operand) bool {
	return o.ref != nil && (o.ref.kind == kindString || o.ref.kind == kindNatural)
}

// get evaluates a literal or field operand; raw is nil for a literal.
func (o *operand) get(ev *Event, vars Vars) (ref.Val, []byte, bool) {
	if o.ref == nil {
		return o.lit, nil, true
	}
	return o.ref.value(ev, vars)
}

// evalDistance compares a distance with a number.
func (p *stepsPath) evalDistance(ev *Event, vars Vars) (ref.Val, bool) {
	x, y := p.a, p.b
	var dx, dy float64
	var ok bool
	if x.dist != nil {
		dx, ok = x.distance(ev, vars)
	} else {
		dx, ok = x.number(ev, vars)
	}
	if !ok {
		return nil, false
	}
	if y.dist != nil {
		dy, ok = y.distance(ev, vars)
	} else {
		dy, ok = y.number(ev, vars)
	}
	if !ok || math.IsNaN(dy) {
		return nil, false
	}
	c := 0
	switch {
	case dx < dy:
		c = -1
	case dx > dy:
		c = 1
	}
	if p.op == fastEq || p.op == fastNe {
		return types.Bool((c == 0) == (p.op == fastEq)), true
	}
	return types.Bool(ordered(p.op, c)), true
}

func ordered(op fastOp, c int) bool {
	switch op {
	case fastLt:
		return c < 0
	case fastLe:
		return c <= 0
	case fastGt:
		return c > 0
	}
	return c >= 0
}

// detectSteps recognises a comparison for stepsPath in a checked
// expression that reads steps; vars are the step variables it reads.
func detectSteps(e celast.Expr, vars []stepVar, fieldKind func(string) (kind, bool)) *stepsPath {
	if e.Kind() != celast.CallKind {
		return nil
	}
	call := e.AsCall()
	op, isCmp := fastOps[call.FunctionName()]
	if !isCmp && call.FunctionName() != operators.Equals {
		return nil
	}
	if len(call.Args()) != 2 {
		return nil
	}
	a := detectOperand(call.Args()[0], vars, fieldKind, true)
	b := detectOperand(call.Args()[1], vars, fieldKind, true)
	if a == nil || b == nil || (a.lit != nil && b.lit != nil) {
		return nil
	}
	// A distance compares with a number only.
	if (a.dist != nil && b.ref != nil) || (b.dist != nil && a.ref != nil) ||
		(a.dist != nil && b.lit != nil && !b.litIsNum) || (b.dist != nil && a.lit != nil && !a.litIsNum) {
		return nil
	}
	return &stepsPath{op: op, a: a, b: b}
}

// maxExactInt is the largest integer every smaller one of which a float64
// holds exactly.
const maxExactInt = 1 << 53

func detectOperand(e celast.Expr, vars []stepVar, fieldKind func(string) (kind, bool), top bool) *operand {
	switch e.Kind() {
	case celast.LiteralKind:
		lit := e.AsLiteral()
		o := &operand{lit: lit}
		switch n := lit.(type) {
		case types.Double:
			o.litNum, o.litIsNum = float64(n), !math.IsNaN(float64(n))
		case types.Int:
			o.litNum, o.litIsNum = float64(n), n > -maxExactInt && n < maxExactInt
		case types.Uint:
			o.litNum, o.litIsNum = float64(n), n < maxExactInt
		}
		return o
	case celast.SelectKind:
		r := detectFieldRef(e, vars, fieldKind)
		if r == nil {
			return nil
		}
		return &operand{ref: r}
	case celast.CallKind:
		call := e.AsCall()
		if !top || call.FunctionName() != "distance_km" || len(call.Args()) != 4 || call.IsMemberFunction() {
			return nil
		}
		var args [4]*operand
		for i, arg := range call.Args() {
			o := detectOperand(arg, vars, fieldKind, false)
			if o == nil || (o.lit != nil && !o.litIsNum) {
				return nil
			}
			if o.ref != nil {
				o.ref.numKey = newNumberKey(o.ref.field, o.ref.kind)
			}
			args[i] = o
		}
		return &operand{dist: &args}
	}
	return nil
}

// detectFieldRef recognises event.F, step.F and loopingStep[i].F.
func detectFieldRef(e celast.Expr, vars []stepVar, fieldKind func(string) (kind, bool)) *fieldRef {
	sel := e.AsSelect()
	if sel.IsTestOnly() {
		return nil
	}
	k, _ := fieldKind(sel.FieldName())
	r := &fieldRef{field: sel.FieldName(), kind: k}
	x := sel.Operand()
	switch x.Kind() {
	case celast.IdentKind:
		name := x.AsIdent()
		if name == "event" {
			return r
		}
		sv, ok := findStepVar(vars, name)
		if !ok || sv.looping {
			return nil
		}
		r.step = name
		return r
	case celast.CallKind:
		call := x.AsCall()
		if call.FunctionName() != operators.Index || len(call.Args()) != 2 {
			return nil
		}
		list, idx := call.Args()[0], call.Args()[1]
		if list.Kind() != celast.IdentKind || idx.Kind() != celast.LiteralKind {
			return nil
		}
		sv, ok := findStepVar(vars, list.AsIdent())
		i, isInt := idx.AsLiteral().(types.Int)
		if !ok || !sv.looping || !isInt || i < 0 || i > math.MaxInt32 {
			return nil
		}
		r.step, r.looping, r.index = sv.name, true, int(i)
		return r
	}
	return nil
}

func findStepVar(vars []stepVar, name string) (stepVar, bool) {
	for _, sv := range vars {
		if sv.name == name {
			return sv, true
		}
	}
	return stepVar{}, false
}
