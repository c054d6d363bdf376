package rules

// This file holds aggregate rules (`aggregate:`) from parsing to
// evaluation: the measures' syntax, their validation, the CEL environment
// of having and the summary, and how measure values reach an evaluation.

import (
	"fmt"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"go.yaml.in/yaml/v3"

	"github.com/shrike-cep/shrike/internal/yamlnode"
)

// MaxMeasures bounds the measures of one aggregate rule: each is compiled
// and kept per key, and the rule limit alone would not bound them.
const MaxMeasures = 64

// measureFuncs lists the measure functions in the order messages name
// them.
var measureFuncs = []MeasureFunc{Count, CountDistinct, Sum, Avg, Min, Max}

// measureFuncsText names the measure functions as they are written.
const measureFuncsText = "count(), count_distinct(x), sum(x), avg(x), min(x) or max(x)"

// Known reports whether f is one of the measure functions.
func (f MeasureFunc) Known() bool { return slices.Contains(measureFuncs, f) }

// ResultType is the CEL type of a measure of function f: int for count and
// count_distinct, double for the others (dyn for an unknown function).
func (f MeasureFunc) ResultType() *types.Type {
	switch f {
	case Count, CountDistinct:
		return types.IntType
	case Sum, Avg, Min, Max:
		return types.DoubleType
	}
	return types.DynType
}

// Argument types a measure function accepts: a number for the arithmetic
// ones, any value with a stable identity for count_distinct (dyn is
// accepted by every check, and its value is checked at run time).
var (
	numericKinds  = []types.Kind{types.IntKind, types.UintKind, types.DoubleKind}
	distinctKinds = []types.Kind{types.StringKind, types.IntKind, types.UintKind, types.DoubleKind, types.BoolKind, types.BytesKind, types.TimestampKind}
)

// aggregate reads an aggregate rule's body.
func (p *parser) aggregate(n *yaml.Node) *Aggregate {
	a := &Aggregate{Pos: p.pos(n), malformed: p.Resolve(n).Kind != yaml.MappingNode}
	p.Fields(n, "aggregate", map[string]func(k, v *yaml.Node){
		"where": func(k, v *yaml.Node) { a.Where, a.WherePos = p.expr(v, "where") },
		"window": func(k, v *yaml.Node) {
			a.Window = p.duration(v, "window")
			a.WindowPos = p.pos(v)
		},
		"tumbling": func(k, v *yaml.Node) { a.Tumbling = p.boolean(v, "tumbling") },
		"measures": func(k, v *yaml.Node) { p.measures(v, a) },
		"having":   func(k, v *yaml.Node) { a.Having, a.HavingPos = p.expr(v, "having") },
	})
	return a
}

// measures reads the `NAME: FUNC(ARG)` mapping in source order.
func (p *parser) measures(n *yaml.Node, a *Aggregate) {
	n = p.Resolve(n)
	a.measuresPos = p.pos(n)
	if n.Kind != yaml.MappingNode {
		p.add(p.pos(n), "measures must be a mapping of NAME: FUNC(ARG), not %s", yamlnode.KindName(n))
		return
	}
	a.Measures = []*Measure{} // present, possibly empty
	first := map[string]Pos{}
	for i := 0; i+1 < len(n.Content) && !p.Exhausted(); i += 2 {
		k, v := p.Resolve(n.Content[i]), p.Resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			p.add(p.pos(k), "measure names must be strings")
			continue
		}
		if at, dup := first[k.Value]; dup {
			p.add(p.pos(k), "duplicate measure name %q (first at %s)", k.Value, at)
			continue
		}
		first[k.Value] = p.pos(k)
		if m := p.measure(k, v); m != nil {
			a.Measures = append(a.Measures, m)
		}
	}
}

// measure reads one measure. A value that is not FUNC(ARG) is reported
// here; the measure is still returned (malformed) so that having's
// references to it do not add errors of their own.
func (p *parser) measure(k, v *yaml.Node) *Measure {
	m := &Measure{Name: k.Value, Pos: p.pos(v), namePos: p.pos(k)}
	s, ok := p.Str(v, fmt.Sprintf("measure %q", m.Name))
	if !ok {
		m.malformed = true
		return m
	}
	call, ok := splitMeasureCall(s)
	if !ok {
		p.add(m.Pos, "measure %q must be a call of a measure function, %s, not %q", m.Name, measureFuncsText, cut(s, 64))
		m.malformed = true
		return m
	}
	m.Func = MeasureFunc(call.fn)
	m.ArgPos = m.Pos
	if call.args == 0 {
		return m
	}
	m.Arg = s[call.argStart:call.argEnd]
	node := exprNode{style: v.Style, line: v.Line, col: v.Column, prefix: s[:call.argStart]}
	if p.rs.src != nil {
		if p.srcLines == nil {
			p.srcLines = splitLines(p.rs.src)
		}
		prefix := []rune(node.prefix)
		full := append(prefix, []rune(m.Arg)...)
		if l, c, ok := align(p.srcLines, node, full, len(prefix)); ok {
			m.ArgPos = Pos{File: p.file, Line: l + 1, Col: c + 1}
		}
	}
	p.rs.exprNodes[m.ArgPos] = node
	if call.args > 1 {
		p.add(m.ArgPos, "measure %q: %s takes one argument, not %d", m.Name, m.Func, call.args)
		m.malformed = true
	}
	return m
}

// measureCall is the shape of a measure's value: FUNC(ARG), with the
// argument's bounds in the value and its number of top-level arguments.
type measureCall struct {
	fn               string
	argStart, argEnd int
	args             int
}

// splitMeasureCall splits `FUNC(ARG)`: an identifier, a parenthesis, and
// the text up to the parenthesis that closes it, which must end the value.
// CEL string literals inside the argument are skipped, so that a
// parenthesis or comma in a string counts for nothing.
func splitMeasureCall(s string) (measureCall, bool) {
	var c measureCall
	i := skipSpace(s, 0)
	start := i
	for i < len(s) && (isIdentByte(s[i]) && (i > start || s[i] < '0' || s[i] > '9')) {
		i++
	}
	if i == start {
		return c, false
	}
	c.fn = s[start:i]
	i = skipSpace(s, i)
	if i >= len(s) || s[i] != '(' {
		return c, false
	}
	open := i + 1
	depth, commas, closing := 0, 0, -1
	for i = open; i < len(s) && closing < 0; i++ {
		switch ch := s[i]; ch {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			if depth == 0 {
				if ch != ')' {
					return c, false
				}
				closing = i
				continue
			}
			depth--
		case ',':
			if depth == 0 {
				commas++
			}
		case '"', '\'':
			end, ok := skipCELString(s, i)
			if !ok {
				return c, false
			}
			i = end - 1
		}
	}
	if closing < 0 || skipSpace(s, closing+1) != len(s) {
		return c, false
	}
	c.argStart = skipSpace(s, open)
	c.argEnd = closing
	for c.argEnd > c.argStart && isSpace(s[c.argEnd-1]) {
		c.argEnd--
	}
	if c.argEnd > c.argStart {
		c.args = commas + 1
	}
	return c, true
}

// skipCELString returns the offset just past the CEL string literal that
// starts with the quote at s[i] (single, double or tripled; raw when an r
// prefix precedes it).
func skipCELString(s string, i int) (int, bool) {
	q := s[i]
	raw := i > 0 && (s[i-1] == 'r' || s[i-1] == 'R') && (i < 2 || !isIdentByte(s[i-2]) || s[i-2] == 'b' || s[i-2] == 'B')
	delim := string(q)
	if strings.HasPrefix(s[i:], strings.Repeat(string(q), 3)) {
		delim = strings.Repeat(string(q), 3)
	}
	for j := i + len(delim); j < len(s); j++ {
		if s[j] == '\\' && !raw {
			j++
			continue
		}
		if strings.HasPrefix(s[j:], delim) {
			return j + len(delim), true
		}
	}
	return 0, false
}

func skipSpace(s string, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

func isIdentByte(b byte) bool {
	return b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

// validateAggregate checks an aggregate rule's body and the rule options
// that do not apply to it.
func validateAggregate(e *errs, r *Rule) {
	a := r.Aggregate
	if r.Within != 0 {
		e.add(orPos(r.withinPos, r.Pos), "within applies to pattern rules only: an aggregate rule's span of time is its window")
	}
	if r.Skip.Kind != "" && r.Skip.Kind != SkipNone || r.Skip.Pos.Line != 0 {
		e.add(orPos(r.Skip.Pos, r.Pos), "skip applies to pattern rules only: an aggregate rule has no partial matches to discard")
	}
	if r.Alert.OnTimeout {
		e.add(orPos(r.onTimeoutPos, r.Pos), "on_timeout applies to pattern rules only: an aggregate rule has no partial matches to time out")
	}
	if a.malformed {
		return
	}
	pos := orPos(a.Pos, r.Pos)
	switch {
	case a.Window < 0:
		e.add(orPos(a.WindowPos, pos), "window must be positive")
	case a.Window == 0 && a.WindowPos.Line == 0: // a bad window was already reported
		e.add(pos, "aggregate needs a window: the span of event time its measures cover, such as 10m")
	}
	if a.Having == "" && a.HavingPos.Line == 0 { // an empty having was already reported
		e.add(pos, "aggregate needs having: the condition over its measures that fires the rule, such as count >= 5")
	}
	switch {
	case len(a.Measures) == 0 && a.measuresPos.Line != 0 && a.Measures == nil:
		// measures was not a mapping, and was reported.
	case len(a.Measures) == 0:
		e.add(orPos(a.measuresPos, pos), "aggregate needs measures: a mapping of NAME: FUNC(ARG) with FUNC one of %s", measureFuncsText)
	case len(a.Measures) > MaxMeasures:
		e.add(pos, "aggregate has %d measures, over the limit of %d", len(a.Measures), MaxMeasures)
	}
	seen := map[string]*Measure{}
	for _, m := range a.Measures {
		namePos := orPos(m.namePos, orPos(m.Pos, pos))
		switch {
		case !identRE.MatchString(m.Name):
			e.add(namePos, "measure name %q is not a CEL identifier (letters, digits and _, not starting with a digit)", m.Name)
		case reserved[m.Name]:
			e.add(namePos, "measure name %q is reserved", m.Name)
		case seen[m.Name] != nil:
			e.add(namePos, "duplicate measure name %q (first at %s)", m.Name, orPos(seen[m.Name].namePos, seen[m.Name].Pos))
		default:
			seen[m.Name] = m
		}
		if m.malformed {
			continue // reported by the parser
		}
		mpos := orPos(m.Pos, pos)
		switch {
		case !m.Func.Known():
			e.add(mpos, "measure %q: unknown function %q (want %s)", m.Name, m.Func, measureFuncsText)
		case m.Func == Count && m.Arg != "":
			e.add(orPos(m.ArgPos, mpos), "measure %q: count takes no argument: it counts the events that pass where (count_distinct(x) counts distinct values)", m.Name)
		case m.Func != Count && strings.TrimSpace(m.Arg) == "":
			e.add(mpos, "measure %q: %s takes one argument, the value to read from each event: %s(event.FIELD)", m.Name, m.Func, m.Func)
		}
	}
}

// compileAggregate compiles an aggregate rule's where, measure arguments
// and having; it returns nil when its environment cannot be built.
func (c *compiler) compileAggregate(r *Rule, listsUsed map[string]bool) *CompiledAggregate {
	a := r.Aggregate
	ca := &CompiledAggregate{Aggregate: a, Args: make([]*Expr, len(a.Measures))}
	if a.Where != "" {
		ca.Where = c.expr(c.env, exprSpec{src: a.Where, pos: a.WherePos, what: "where", want: boolKinds, rule: r, scope: exprScope{at: noSteps}})
		collectLists(ca.Where, listsUsed)
	}
	for i, m := range a.Measures {
		if m.Arg == "" || m.malformed || !m.Func.Known() || m.Func == Count {
			continue
		}
		want := numericKinds
		if m.Func == CountDistinct {
			want = distinctKinds
		}
		what := fmt.Sprintf("the argument of %s in measure %q", m.Func, m.Name)
		ca.Args[i] = c.expr(c.env, exprSpec{src: m.Arg, pos: m.ArgPos, what: what, want: want, rule: r, scope: exprScope{at: noSteps}})
		collectLists(ca.Args[i], listsUsed)
	}
	env, declared, err := c.measureEnv(a)
	if err != nil {
		c.add(r.Pos, "cel environment: %v", err)
		return nil
	}
	if a.Having != "" {
		ca.Having = c.expr(env, exprSpec{src: a.Having, pos: a.HavingPos, what: "having", want: boolKinds, rule: r, scope: exprScope{at: noSteps}, measures: declared})
		collectLists(ca.Having, listsUsed)
	}
	return ca
}

// measureEnv returns the environment of the expressions that read an
// aggregate rule's measures (having, the summary): the base one plus one
// variable per measure, typed by its function. declared[i] is measure i's
// variable name, empty for a name that validation rejects.
func (c *compiler) measureEnv(a *Aggregate) (*cel.Env, []string, error) {
	var vars []cel.EnvOption
	declared := make([]string, len(a.Measures))
	seen := map[string]bool{}
	for i, m := range a.Measures {
		if !identRE.MatchString(m.Name) || reserved[m.Name] || seen[m.Name] {
			continue
		}
		seen[m.Name] = true
		declared[i] = m.Name
		t := m.Func.ResultType()
		if m.malformed {
			t = types.DynType
		}
		vars = append(vars, cel.Variable(m.Name, t))
	}
	if len(vars) == 0 {
		return c.env, declared, nil
	}
	env, err := c.env.Extend(vars...)
	return env, declared, err
}

// aggregateScopeMsg explains an undeclared reference in an aggregate
// rule's expression: a measure read where only event is visible, or a
// name that is no measure.
func aggregateScopeMsg(sp exprSpec, name, msg string) string {
	a := sp.rule.Aggregate
	isMeasure := slices.ContainsFunc(a.Measures, func(m *Measure) bool { return m.Name == name })
	switch {
	case isMeasure && sp.measures == nil:
		return fmt.Sprintf("measure %q is not visible in %s: where and the measures' arguments see event and lists; having and the summary see the measures", name, sp.what)
	case !isMeasure && sp.measures != nil:
		var names []string
		for _, n := range sp.measures {
			if n != "" {
				names = append(names, n)
			}
		}
		if len(names) > 0 {
			return fmt.Sprintf("%s (the measures are %s)", msg, strings.Join(names, ", "))
		}
	}
	return msg
}

// measureVar is a measure variable an expression reads: its name and its
// index in Aggregate.Measures.
type measureVar struct {
	name  string
	index int
}

// resolveMeasure gives the value of measure mv from vars (a MeasureVars):
// an int becomes a CEL int, a float64 a CEL double; a ref.Val is passed
// on as it is. Without a value the variable is unbound, which fails the
// evaluation.
func resolveMeasure(vars Vars, mv measureVar) (any, bool) {
	mvars, ok := vars.(MeasureVars)
	if !ok {
		return nil, false
	}
	v, ok := mvars.Measure(mv.index)
	if !ok {
		return nil, false
	}
	switch v := v.(type) {
	case int:
		return types.Int(v), true
	case int64:
		return types.Int(v), true
	case float64:
		return types.Double(v), true
	case ref.Val:
		return v, true
	}
	return nil, false
}

// writeAggregate renders an aggregate rule's body for ruleVersion.
func writeAggregate(w func(k string, v any), a *Aggregate) {
	w("aggregate.where", a.Where)
	w("aggregate.window", int64(a.Window))
	w("aggregate.tumbling", a.Tumbling)
	for _, m := range a.Measures {
		w("measure", m.Name)
		w("measure.func", m.Func)
		w("measure.arg", m.Arg)
	}
	w("aggregate.having", a.Having)
}
