package rules

import (
	"errors"
	"fmt"

	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	celparser "cel.dev/cel-go/parser"
)

// The commonest expressions are a field read (stream keys and times:
// `event.account_id`), a bool field (`event.success`, `!event.success`) and
// a field compared with a literal (`event.type == "login"`, the
// discriminator nearly every condition starts with). Those shapes are
// recognised after type-checking and evaluated natively, with exactly
// CEL's result: about 30 ns instead of 300–500 ns through the interpreter,
// which is what makes "rules whose first step cannot match the event cost
// next to nothing" true.

type fastOp uint8

const (
	fastField fastOp = iota // event.F
	fastNot                 // !event.F
	fastEq                  // event.F == lit
	fastNe                  // event.F != lit
	fastLt                  // event.F < lit
	fastLe                  // event.F <= lit
	fastGt                  // event.F > lit
	fastGe                  // event.F >= lit
)

// flipped gives the operator with its operands swapped (lit < event.F is
// event.F > lit).
var flipped = map[fastOp]fastOp{fastEq: fastEq, fastNe: fastNe, fastLt: fastGt, fastLe: fastGe, fastGt: fastLt, fastGe: fastLe}

var fastOps = map[string]fastOp{
	operators.Equals: fastEq, operators.NotEquals: fastNe,
	operators.Less: fastLt, operators.LessEquals: fastLe,
	operators.Greater: fastGt, operators.GreaterEquals: fastGe,
}

// fastPath evaluates one recognised shape.
type fastPath struct {
	op    fastOp
	field string
	kind  kind
	// schema: the field is typed, so a null value is an error (as the
	// schema's field accessor reports it) rather than a null.
	schema bool
	lit    ref.Val
}

var errNotBool = errors.New("no such overload: operand of ! is not a bool")

func (f *fastPath) eval(ev *Event) (ref.Val, error) {
	if ev == nil {
		return nil, errors.New("no such attribute: event")
	}
	fl := ev.find(f.field)
	if fl == nil {
		return nil, fmt.Errorf("no such key: %s", f.field)
	}
	v := ev.decode(fl, f.kind)
	switch v := v.(type) {
	case *types.Err:
		return nil, fmt.Errorf("field %s: %w", f.field, v)
	case types.Null:
		if f.schema {
			return nil, fmt.Errorf("field %s is null", f.field)
		}
	}
	switch f.op {
	case fastNot:
		b, ok := v.(types.Bool)
		if !ok {
			return nil, errNotBool
		}
		return !b, nil
	case fastEq:
		return types.Equal(v, f.lit), nil
	case fastNe:
		if eq, ok := types.Equal(v, f.lit).(types.Bool); ok {
			return !eq, nil
		}
		return types.False, nil
	case fastLt, fastLe, fastGt, fastGe:
		cmp, ok := v.(traits.Comparer)
		if !ok {
			return nil, fmt.Errorf("no such overload: %s has no ordering", v.Type().TypeName())
		}
		c, ok := cmp.Compare(f.lit).(types.Int)
		if !ok {
			return nil, fmt.Errorf("no such overload: comparing %s with %s", v.Type().TypeName(), f.lit.Type().TypeName())
		}
		switch f.op {
		case fastLt:
			return types.Bool(c < 0), nil
		case fastLe:
			return types.Bool(c <= 0), nil
		case fastGt:
			return types.Bool(c > 0), nil
		}
		return types.Bool(c >= 0), nil
	}
	return v, nil
}

// detectFast recognises a fast shape in a checked expression; fieldKind
// says how the ruleset decodes a field (and whether a schema types it).
func detectFast(e celast.Expr, fieldKind func(string) (kind, bool)) *fastPath {
	field := func(e celast.Expr) (string, bool) {
		if e.Kind() != celast.SelectKind {
			return "", false
		}
		sel := e.AsSelect()
		op := sel.Operand()
		if sel.IsTestOnly() || op.Kind() != celast.IdentKind || op.AsIdent() != "event" {
			return "", false
		}
		return sel.FieldName(), true
	}
	mk := func(op fastOp, name string, lit ref.Val) *fastPath {
		k, schema := fieldKind(name)
		return &fastPath{op: op, field: name, kind: k, schema: schema, lit: lit}
	}
	if name, ok := field(e); ok {
		return mk(fastField, name, nil)
	}
	if e.Kind() != celast.CallKind {
		return nil
	}
	call := e.AsCall()
	args := call.Args()
	switch fn := call.FunctionName(); {
	case fn == operators.LogicalNot && len(args) == 1:
		if name, ok := field(args[0]); ok {
			return mk(fastNot, name, nil)
		}
	case fastOps[fn] != 0 || fn == operators.Equals:
		if len(args) != 2 {
			return nil
		}
		op := fastOps[fn]
		for i := range 2 {
			name, ok := field(args[i])
			if lit := args[1-i]; ok && lit.Kind() == celast.LiteralKind {
				if i == 1 {
					op = flipped[op]
				}
				return mk(op, name, lit.AsLiteral())
			}
		}
	}
	return nil
}

// conjuncts flattens a top-level chain of && into its operands, as source
// text: each becomes an expression of its own, so that the event-only ones
// are evaluated once per event and can rule out the rest.
func conjuncts(a *celast.AST) []string {
	var ops []celast.Expr
	var walk func(e celast.Expr)
	walk = func(e celast.Expr) {
		if e.Kind() == celast.CallKind && e.AsCall().FunctionName() == operators.LogicalAnd {
			for _, arg := range e.AsCall().Args() {
				walk(arg)
			}
			return
		}
		ops = append(ops, e)
	}
	walk(a.Expr())
	if len(ops) < 2 {
		return nil
	}
	srcs := make([]string, len(ops))
	for i, op := range ops {
		s, err := celparser.Unparse(op, a.SourceInfo())
		if err != nil {
			return nil
		}
		srcs[i] = s
	}
	return srcs
}
