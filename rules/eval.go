package rules

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/interpreter"
)

// activation binds event, lists and the step or measure variables of one
// evaluation.
// It resolves names with a switch and a short slice scan instead of a map,
// so that an evaluation allocates nothing for its variables.
type activation struct {
	x    *Expr
	ev   *Event
	vars Vars
	// lists is the expression's view of its lists: its own, reset per
	// evaluation, when it reads managed lists; else listsValue.shared.
	lists *listsView
}

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "event":
		if a.ev == nil {
			return nil, false
		}
		return a.ev, true
	case "lists":
		return a.lists, true
	}
	for _, sv := range a.x.vars {
		if sv.name != name {
			continue
		}
		var evs []*Event
		ok := false
		if a.vars != nil {
			evs, ok = a.vars.StepEvents(name)
		}
		if !sv.looping {
			if !ok || len(evs) == 0 {
				return nil, false
			}
			return evs[len(evs)-1], true
		}
		if !ok && !sv.self {
			return nil, false
		}
		return eventList(evs), true
	}
	for _, mv := range a.x.measures {
		if mv.name == name {
			return resolveMeasure(a.vars, mv)
		}
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }

// Eval evaluates the expression for ev with the given step variables. A
// CEL runtime error (a missing field, a failed conversion, the cost limit)
// is returned as err.
func (e *Expr) Eval(ev *Event, vars Vars) (ref.Val, error) {
	if e == nil || e.prg == nil {
		return nil, errors.New("eval: expression not compiled")
	}
	if e.fast != nil {
		v, err := e.fast.eval(ev)
		if err != nil {
			return nil, fmt.Errorf("eval %s: %w", e.Source, err)
		}
		return v, nil
	}
	if e.steps != nil {
		if v, ok := e.steps.eval(ev, vars); ok {
			return v, nil
		}
	}
	a := e.pool.Get().(*activation)
	a.ev, a.vars = ev, vars
	out, _, err := e.prg.Eval(a)
	a.ev, a.vars = nil, nil
	if e.readsManaged {
		a.lists.reset()
	}
	e.pool.Put(a)
	if err != nil {
		return nil, fmt.Errorf("eval %s: %w", e.Source, err)
	}
	return out, nil
}

// EvalBool evaluates a condition. A nil Expr (a step without where) is
// true. A non-bool result or a CEL error returns an error; callers count
// it and treat the condition as false.
func (e *Expr) EvalBool(ev *Event, vars Vars) (bool, error) {
	if e == nil {
		return true, nil
	}
	v, err := e.Eval(ev, vars)
	if err != nil {
		return false, err
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, fmt.Errorf("eval %s: result is %s, not bool", e.Source, v.Type().TypeName())
	}
	return bool(b), nil
}

// EvalString evaluates a string expression (an alert summary).
func (e *Expr) EvalString(ev *Event, vars Vars) (string, error) {
	v, err := e.Eval(ev, vars)
	if err != nil {
		return "", err
	}
	s, ok := v.(types.String)
	if !ok {
		return "", fmt.Errorf("eval %s: result is %s, not string", e.Source, v.Type().TypeName())
	}
	return string(s), nil
}

// EvalKey evaluates a key expression; strings, ints, uints, doubles and
// bools are formatted as strings (doubles in the shortest form that reads
// back the same).
func (e *Expr) EvalKey(ev *Event) (string, error) {
	if e.fast != nil {
		if k, ok := e.fast.key(ev); ok {
			return k, nil
		}
	}
	v, err := e.Eval(ev, nil)
	if err != nil {
		return "", err
	}
	switch v := v.(type) {
	case types.String:
		return string(v), nil
	case types.Int:
		return strconv.FormatInt(int64(v), 10), nil
	case types.Uint:
		return strconv.FormatUint(uint64(v), 10), nil
	case types.Double:
		return strconv.FormatFloat(float64(v), 'g', -1, 64), nil
	case types.Bool:
		return strconv.FormatBool(bool(v)), nil
	}
	return "", fmt.Errorf("eval key %s: result is %s, not a string or number", e.Source, v.Type().TypeName())
}

// EvalTime evaluates a time expression to Unix nanoseconds: a timestamp,
// an int, uint or double of epoch milliseconds, or an RFC 3339 string.
func (e *Expr) EvalTime(ev *Event) (int64, error) {
	if e.fast != nil {
		if t, ok := e.fast.time(ev); ok {
			return t, nil
		}
	}
	v, err := e.Eval(ev, nil)
	if err != nil {
		return 0, err
	}
	ns, err := timeValue(v)
	if err != nil {
		return 0, fmt.Errorf("eval time %s: %w", e.Source, err)
	}
	return ns, nil
}

// maxMillis keeps epoch milliseconds within int64 nanoseconds.
const maxMillis = math.MaxInt64 / int64(time.Millisecond)

func timeValue(v ref.Val) (int64, error) {
	switch v := v.(type) {
	case types.Timestamp:
		return v.UnixNano(), nil
	case types.Int:
		if int64(v) > maxMillis || int64(v) < -maxMillis {
			return 0, fmt.Errorf("epoch milliseconds %d out of range", int64(v))
		}
		return int64(v) * int64(time.Millisecond), nil
	case types.Uint:
		if uint64(v) > uint64(maxMillis) {
			return 0, fmt.Errorf("epoch milliseconds %d out of range", uint64(v))
		}
		return int64(v) * int64(time.Millisecond), nil
	case types.Double:
		f := float64(v)
		if math.IsNaN(f) || math.Abs(f) > float64(maxMillis) {
			return 0, fmt.Errorf("epoch milliseconds %v out of range", f)
		}
		return msToNanos(f), nil
	case types.String:
		t, err := time.Parse(time.RFC3339Nano, string(v))
		if err != nil {
			return 0, fmt.Errorf("%q is not an RFC 3339 time", string(v))
		}
		return t.UnixNano(), nil
	}
	return 0, fmt.Errorf("result is %s, not a timestamp, epoch milliseconds or RFC 3339 string", v.Type().TypeName())
}

// eventList is the CEL value of a looping step: its events in match order,
// without copying them.
type eventList []*Event

var _ traits.Lister = eventList(nil)

// ConvertToNative implements ref.Val.
func (l eventList) ConvertToNative(t reflect.Type) (any, error) {
	if t == reflect.TypeOf([]*Event(nil)) {
		return []*Event(l), nil
	}
	out := make([]any, len(l))
	for i, ev := range l {
		v, err := ev.ConvertToNative(reflect.TypeOf(map[string]any(nil)))
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	if reflect.TypeOf(out).AssignableTo(t) {
		return out, nil
	}
	return nil, fmt.Errorf("type conversion error from list of events to '%v'", t)
}

// ConvertToType implements ref.Val.
func (l eventList) ConvertToType(t ref.Type) ref.Val {
	switch t {
	case types.ListType:
		return l
	case types.TypeType:
		return types.ListType
	}
	return types.NewErr("type conversion error from list to '%s'", t.TypeName())
}

// Equal implements ref.Val.
func (l eventList) Equal(other ref.Val) ref.Val {
	o, ok := other.(traits.Lister)
	if !ok || o.Size() != types.Int(len(l)) {
		return types.False
	}
	for i, ev := range l {
		if ev.Equal(o.Get(types.Int(i))) != types.True {
			return types.False
		}
	}
	return types.True
}

// Type implements ref.Val.
func (l eventList) Type() ref.Type { return types.ListType }

// Value implements ref.Val.
func (l eventList) Value() any { return []*Event(l) }

// Add implements traits.Adder.
func (l eventList) Add(other ref.Val) ref.Val {
	o, ok := other.(traits.Lister)
	if !ok {
		return types.MaybeNoSuchOverloadErr(other)
	}
	vals := make([]ref.Val, 0, len(l))
	for _, ev := range l {
		vals = append(vals, ev)
	}
	for it := o.Iterator(); it.HasNext() == types.True; {
		vals = append(vals, it.Next())
	}
	return types.NewRefValList(types.DefaultTypeAdapter, vals)
}

// Contains implements traits.Container.
func (l eventList) Contains(v ref.Val) ref.Val {
	for _, ev := range l {
		if ev.Equal(v) == types.True {
			return types.True
		}
	}
	return types.False
}

// Get implements traits.Indexer.
func (l eventList) Get(index ref.Val) ref.Val {
	i, ok := index.(types.Int)
	if !ok {
		if d, isD := index.(types.Double); isD && float64(d) == math.Trunc(float64(d)) {
			i, ok = types.Int(d), true
		} else if u, isU := index.(types.Uint); isU && u <= math.MaxInt64 {
			i, ok = types.Int(u), true
		}
	}
	if !ok {
		return types.MaybeNoSuchOverloadErr(index)
	}
	if i < 0 || int(i) >= len(l) {
		return types.NewErr("index out of range: %d", int64(i))
	}
	return l[i]
}

// Iterator implements traits.Iterable.
func (l eventList) Iterator() traits.Iterator { return &listIter{l: l} }

// Size implements traits.Sizer.
func (l eventList) Size() ref.Val { return types.Int(len(l)) }

type listIter struct {
	l eventList
	i int
}

// ConvertToNative implements ref.Val.
func (it *listIter) ConvertToNative(reflect.Type) (any, error) {
	return nil, errors.New("iterator cannot be converted")
}

// ConvertToType implements ref.Val.
func (it *listIter) ConvertToType(ref.Type) ref.Val {
	return types.NewErr("iterator cannot be converted")
}

// Equal implements ref.Val.
func (it *listIter) Equal(ref.Val) ref.Val { return types.False }

// Type implements ref.Val.
func (it *listIter) Type() ref.Type { return types.IteratorType }

// Value implements ref.Val.
func (it *listIter) Value() any { return it }

// HasNext implements traits.Iterator.
func (it *listIter) HasNext() ref.Val { return types.Bool(it.i < len(it.l)) }

// Next implements traits.Iterator.
func (it *listIter) Next() ref.Val {
	if it.i >= len(it.l) {
		return nil
	}
	ev := it.l[it.i]
	it.i++
	return ev
}
