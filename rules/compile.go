package rules

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/overloads"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// Defaults of CompileOptions.
const (
	defaultCostLimit      = 100000
	defaultMaxSourceBytes = 1 << 20
	// DefaultMaxRules is CompileOptions.MaxRules when zero.
	DefaultMaxRules = 1000
)

func compileRuleset(ctx context.Context, rs *Ruleset, opts CompileOptions) (*Compiled, ErrorList) {
	return compileWith(ctx, rs, opts, false)
}

// compileWith can force runtime cost tracking on every expression, so that
// a benchmark can measure what the static check saves. It stops between
// rules once ctx ends; the caller reports ctx's error.
func compileWith(ctx context.Context, rs *Ruleset, opts CompileOptions, forceTracking bool) (*Compiled, ErrorList) {
	c := newCompiler(rs, opts)
	c.forceTracking = forceTracking
	if c.env == nil {
		return nil, c.list
	}
	out := &Compiled{Ruleset: rs, Source: rs.src, ManagedItems: c.store}
	if rs.Stream.Key != "" {
		out.Key = c.expr(c.env, exprSpec{src: rs.Stream.Key, pos: rs.Stream.KeyPos, what: "stream key", want: keyKinds, scope: exprScope{at: noSteps}})
	}
	if rs.Stream.Time != "" {
		out.Time = c.expr(c.env, exprSpec{src: rs.Stream.Time, pos: rs.Stream.TimePos, what: "stream time", want: timeKinds, scope: exprScope{at: noSteps}})
	}
	for _, r := range rs.Rules {
		if ctx.Err() != nil {
			return nil, c.list
		}
		c.rule = r.ID
		cr := c.compileRule(r)
		if r.Enabled && cr != nil {
			out.Rules = append(out.Rules, cr)
		}
	}
	c.rule = ""
	if len(c.warnings) > 0 {
		out.Warnings = c.warnings.sort()
	}
	return out, c.list
}

// newCompiler sets up the CEL environment of rs; on failure c.env is nil
// and c.list says why.
func newCompiler(rs *Ruleset, opts CompileOptions) *compiler {
	if opts.CostLimit == 0 {
		opts.CostLimit = defaultCostLimit
	}
	fillDefaults(rs)
	c := &compiler{rs: rs, opts: opts, store: opts.Lists}
	if c.store == nil {
		c.store = NewManagedLists()
	}
	p, err := newProvider(rs)
	if err != nil {
		c.add(rs.Pos, "%v", err)
		return c
	}
	c.evType = p.eventCELType()
	envOpts := append(providerOptions(p), envLibraries()...)
	envOpts = append(envOpts,
		cel.Variable("event", c.evType),
		cel.Variable("lists", cel.ObjectType(listsTypeName)))
	env, err := cel.NewEnv(envOpts...)
	if err != nil {
		c.add(rs.Pos, "cel environment: %v", err)
		return c
	}
	c.env = env
	c.lists = newListsValue(rs, c.store)
	return c
}

// Special values of exprSpec.at.
const (
	noSteps  = -2 // when, stream key and time: event only
	allSteps = -1 // summary: every step
)

type compiler struct {
	errs
	rs     *Ruleset
	opts   CompileOptions
	env    *cel.Env
	evType *types.Type
	lists  *listsValue
	store  *ManagedLists
	lines  [][]rune // the source split in lines, for snippets
	// forceTracking puts every expression under the runtime cost limit
	// (benchmarks only).
	forceTracking bool
}

// exprSpec says what an expression is and what it may see.
type exprSpec struct {
	src  string
	pos  Pos
	what string
	want []types.Kind // nil: any type
	// rule, leaves and scope: which of the rule's event steps the
	// expression sees (exprScope.sees).
	rule   *Rule
	leaves []eventStep
	scope  exprScope
	// steps are the step names declared as variables.
	steps []string
	// measures are the measure names declared as variables, by measure
	// index (empty for a name not declared); nil outside having and an
	// aggregate rule's summary.
	measures []string
	// part marks a conjunct of a larger expression: it is not split again.
	part bool
}

var (
	boolKinds   = []types.Kind{types.BoolKind}
	stringKinds = []types.Kind{types.StringKind}
	keyKinds    = []types.Kind{types.StringKind, types.IntKind, types.UintKind, types.DoubleKind, types.BoolKind}
	timeKinds   = []types.Kind{types.TimestampKind, types.IntKind, types.UintKind, types.DoubleKind, types.StringKind}
)

func (c *compiler) compileRule(r *Rule) *CompiledRule {
	cr := &CompiledRule{Rule: r}
	listsUsed := map[string]bool{}
	if r.When != "" {
		cr.When = c.expr(c.env, exprSpec{src: r.When, pos: r.WhenPos, what: "when", want: boolKinds, scope: exprScope{at: noSteps}})
		collectLists(cr.When, listsUsed)
	}
	leaves := eventStepsOf(r.Pattern)
	next := 0
	var compileSteps func(steps []*Step) ([]*CompiledStep, bool)
	compileSteps = func(steps []*Step) ([]*CompiledStep, bool) {
		out := make([]*CompiledStep, 0, len(steps))
		for _, s := range steps {
			cs := &CompiledStep{Step: s}
			sc := exprScope{at: next}
			if s.Group {
				lo := next
				inner, ok := compileSteps(s.Steps)
				if !ok {
					return nil, false
				}
				cs.Steps = inner
				sc = exprScope{at: lo, upto: next}
			} else {
				next++
			}
			if (s.Where != "" && !s.Group) || s.Until != "" {
				env, declared, err := c.stepEnv(leaves, sc)
				if err != nil {
					c.add(r.Pos, "cel environment: %v", err)
					return nil, false
				}
				if s.Where != "" && !s.Group {
					cs.Where = c.expr(env, exprSpec{src: s.Where, pos: s.WherePos, what: "where", want: boolKinds, rule: r, leaves: leaves, steps: declared, scope: sc})
					collectLists(cs.Where, listsUsed)
				}
				if s.Until != "" {
					cs.Until = c.expr(env, exprSpec{src: s.Until, pos: s.UntilPos, what: "until", want: boolKinds, rule: r, leaves: leaves, steps: declared, scope: sc})
					collectLists(cs.Until, listsUsed)
				}
			}
			out = append(out, cs)
		}
		return out, true
	}
	if r.Pattern != nil {
		steps, ok := compileSteps(r.Pattern)
		if !ok {
			return nil
		}
		cr.Steps = steps
	}
	if r.Aggregate != nil {
		if cr.Aggregate = c.compileAggregate(r, listsUsed); cr.Aggregate == nil {
			return nil
		}
	}
	if r.Alert.Summary != "" || (r.Alert.Suppress != nil && len(r.Alert.Suppress.By) > 0) {
		// The summary and suppress.by see the same: event (the last event
		// of the match) and the steps; in an aggregate rule, event (the
		// event that fired) and the measures.
		env, declared, err := c.stepEnv(leaves, exprScope{at: allSteps})
		var measures []string
		if err == nil && r.Aggregate != nil {
			env, measures, err = c.measureEnv(r.Aggregate)
		}
		if err != nil {
			c.add(r.Pos, "cel environment: %v", err)
			return nil
		}
		if r.Alert.Summary != "" {
			cr.Summary = c.expr(env, exprSpec{src: r.Alert.Summary, pos: r.Alert.SummaryPos, what: "alert summary", want: stringKinds, rule: r, leaves: leaves, steps: declared, measures: measures, scope: exprScope{at: allSteps}})
			collectLists(cr.Summary, listsUsed)
			c.checkTimeoutSummary(r, cr.Summary)
		}
		compileSuppressBy(r, cr, func(sp exprSpec) *Expr {
			sp.leaves, sp.steps, sp.measures, sp.scope = leaves, declared, measures, exprScope{at: allSteps}
			return c.expr(env, sp)
		}, listsUsed)
	}
	cr.Version = ruleVersion(c.rs, r, listsUsed)
	return cr
}

// checkTimeoutSummary warns when the summary of an on_timeout rule reads a
// step that a timed-out partial match may not have reached. Evaluating it
// on such a match fails (the step has no value), and the alert silently
// gets the default summary.
func (c *compiler) checkTimeoutSummary(r *Rule, summary *Expr) {
	if !r.Alert.OnTimeout || summary == nil || len(r.Pattern) == 0 {
		return
	}
	var lack []string
	first := mandatoryFirst(r.Pattern)
	for _, s := range EventSteps(r.Pattern) {
		// Every partial match holds the first step, unless it is optional
		// (then matches may start with a later one); any later step may be
		// the one it waited for when its window closed.
		if s.Not || s == first || !slices.Contains(summary.Steps, s.Name) {
			continue
		}
		lack = append(lack, strconv.Quote(s.Name))
	}
	if len(lack) == 0 {
		return
	}
	what := "step " + lack[0]
	if len(lack) > 1 {
		what = "steps " + strings.Join(lack, ", ")
	}
	c.warn(r.Alert.SummaryPos, "the summary reads %s, which a timeout alert may lack (its partial match timed out before reaching it): such an alert gets the default summary", what)
}

// eventStep is a step that takes events, with what the groups around it
// make of its CEL variable.
type eventStep struct {
	*Step
	// repeated: the step or a group around it loops, so the variable is a
	// list of events.
	repeated bool
	// maxEvents bounds the events the step can hold; -1 means unbounded.
	maxEvents int
}

// eventStepsOf lists a pattern's event steps in pattern order (as
// EventSteps) with their repetition.
func eventStepsOf(pattern []*Step) []eventStep {
	var out []eventStep
	var walk func(steps []*Step, repeated bool, factor int)
	walk = func(steps []*Step, repeated bool, factor int) {
		for _, s := range steps {
			f := factor
			switch {
			case f < 0 || s.Max < 0:
				f = -1
			default:
				f = min(f*s.Max, 1<<30)
			}
			if s.Group {
				walk(s.Steps, repeated || s.Looping(), f)
				continue
			}
			out = append(out, eventStep{Step: s, repeated: repeated || s.Looping(), maxEvents: f})
		}
	}
	walk(pattern, false, 1)
	return out
}

// mandatoryFirst returns the event step every match starts with, or nil
// when the first step (or a group around it) is optional.
func mandatoryFirst(pattern []*Step) *Step {
	for len(pattern) > 0 {
		s := pattern[0]
		if s.Optional || s.Not {
			return nil
		}
		if !s.Group {
			return s
		}
		pattern = s.Steps
	}
	return nil
}

// exprScope says which event steps an expression sees, by their index in
// pattern order. A step's where and until (at: its index) see the steps
// before it, and the step itself when it repeats (the events it took so
// far); a group's until (at: its first step, upto: after its last) sees
// the steps before the group and the group's own steps. noSteps sees none,
// allSteps every one.
type exprScope struct {
	at   int
	upto int
}

// sees reports whether event step j is visible, and whether it is the
// expression's own (a binding without events then means "none so far").
func (sc exprScope) sees(j int, repeated bool) (visible, self bool) {
	switch {
	case sc.at == noSteps:
		return false, false
	case sc.at == allSteps:
		return true, false
	case sc.upto > 0:
		return j < sc.upto, j >= sc.at
	case j < sc.at:
		return true, false
	case j == sc.at && repeated:
		return true, true
	}
	return false, false
}

// stepEnv returns the environment of an expression of scope sc: the base
// one plus the steps it may read. Steps it may not read stay undeclared,
// so that the checker reports every such reference (scoping included: a
// comprehension variable may shadow a step) and expr rewrites the message
// to say why.
func (c *compiler) stepEnv(leaves []eventStep, sc exprScope) (*cel.Env, []string, error) {
	var (
		vars     []cel.EnvOption
		declared []string
		seen     = map[string]bool{}
	)
	for j, s := range leaves {
		if !identRE.MatchString(s.Name) || reserved[s.Name] || seen[s.Name] {
			continue
		}
		seen[s.Name] = true
		if visible, _ := sc.sees(j, s.repeated); s.Not || !visible {
			continue
		}
		t := c.evType
		if s.repeated {
			t = types.NewListType(c.evType)
		}
		declared = append(declared, s.Name)
		vars = append(vars, cel.Variable(s.Name, t))
	}
	if len(vars) == 0 {
		return c.env, nil, nil
	}
	env, err := c.env.Extend(vars...)
	return env, declared, err
}

var undeclaredRE = regexp.MustCompile(`^undeclared reference to '([^']+)'`)

// scopeMsg explains why a step the checker did not know is out of reach.
func scopeMsg(sp exprSpec, msg string) string {
	m := undeclaredRE.FindStringSubmatch(msg)
	if m == nil || sp.rule == nil {
		return msg
	}
	if sp.rule.Aggregate != nil {
		return aggregateScopeMsg(sp, m[1], msg)
	}
	if g := FindStep(sp.rule.Pattern, m[1]); g != nil && g.Group {
		return fmt.Sprintf("%q is a group, not a step: a condition reads the group's steps by their own names", g.Name)
	}
	idx := slices.IndexFunc(sp.leaves, func(s eventStep) bool { return s.Name == m[1] })
	if idx < 0 {
		return msg
	}
	s := sp.leaves[idx]
	at := sp.scope.at
	switch {
	case s.Not:
		return fmt.Sprintf("step %q is a not step: it never holds an event", s.Name)
	case at >= 0 && idx > at:
		return fmt.Sprintf("step %q comes later in the pattern: a condition may only use earlier steps", s.Name)
	case at >= 0 && idx == at:
		return fmt.Sprintf("step %q cannot use its own name: only a looping step sees the events it accepted so far", s.Name)
	}
	return msg
}

// expr type-checks and plans one expression; on error it reports and
// returns nil.
func (c *compiler) expr(env *cel.Env, sp exprSpec) *Expr {
	ast, iss := env.Compile(sp.src)
	if iss.Err() != nil {
		for _, e := range iss.Errors() {
			c.celErr(sp, e.Location, scopeMsg(sp, e.Message))
		}
		return nil
	}
	x := &Expr{Source: sp.src, Pos: sp.pos}
	x.lists = c.lists
	steps := map[string]bool{}
	measures := map[string]bool{}
	native := ast.NativeRep()
	for _, ref := range native.ReferenceMap() {
		if len(ref.OverloadIDs) != 0 || ref.Value != nil {
			continue
		}
		if slices.Contains(sp.steps, ref.Name) {
			steps[ref.Name] = true
		}
		if slices.Contains(sp.measures, ref.Name) {
			measures[ref.Name] = true
		}
	}
	if out := ast.OutputType(); sp.want != nil && out.Kind() != types.DynKind && !slices.Contains(sp.want, out.Kind()) {
		c.celErr(sp, common.NewLocation(1, 0), fmt.Sprintf("%s must be %s, not %s", sp.what, kindsText(sp.want), out))
		return nil
	}
	// The cost limit is enforced statically where possible: runtime cost
	// tracking makes a typical predicate about 4x slower (see doc.go).
	est, err := env.EstimateCost(ast, sizeEstimator{leaves: sp.leaves, rs: c.rs})
	if err != nil {
		c.celErr(sp, common.NoLocation, fmt.Sprintf("estimating cost: %v", err))
		return nil
	}
	if est.Min > c.opts.CostLimit {
		c.celErr(sp, common.NewLocation(1, 0), fmt.Sprintf("%s costs at least %d, over the cost limit of %d", sp.what, est.Min, c.opts.CostLimit))
		return nil
	}
	popts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if est.Max > c.opts.CostLimit || c.forceTracking {
		popts = append(popts, cel.CostLimit(c.opts.CostLimit),
			cel.CostTrackerOptions(cost.OverloadTracker(overloads.InList, hashedInCost)))
		x.costTracked = true
	}
	prg, err := env.Program(ast, popts...)
	if err != nil {
		c.celErr(sp, common.NoLocation, err.Error())
		return nil
	}
	x.prg = prg
	for name := range steps {
		x.Steps = append(x.Steps, name)
		i := slices.IndexFunc(sp.leaves, func(s eventStep) bool { return s.Name == name })
		s := sp.leaves[i]
		_, self := sp.scope.sees(i, s.repeated)
		x.vars = append(x.vars, stepVar{name: name, looping: s.repeated, self: self})
	}
	sort.Strings(x.Steps)
	for i, name := range sp.measures {
		if name != "" && measures[name] {
			x.Measures = append(x.Measures, name)
			x.measures = append(x.measures, measureVar{name: name, index: i})
		}
	}
	sort.Strings(x.Measures)
	x.listNames = usedLists(native)
	for _, name := range x.listNames {
		if d := c.rs.ListDecls[name]; d != nil && d.Managed {
			x.readsManaged = true
		}
	}
	x.pool.New = func() any {
		a := &activation{x: x, lists: x.lists.shared}
		if x.readsManaged {
			a.lists = &listsView{v: x.lists, loaded: make([]*listContents, len(x.lists.managed))}
		}
		return a
	}
	x.fast = detectFast(native.Expr(), c.fieldKind)
	if x.fast == nil {
		x.steps = detectSteps(native.Expr(), x.vars, c.fieldKind)
	}
	if !sp.part {
		x.Conjuncts = c.conjuncts(env, sp, native)
	}
	return x
}

// conjuncts compiles the operands of a top-level && chain as expressions of
// their own, ordered for evaluation: event-only natively evaluated ones
// first (the cheap discriminators), then other event-only ones, then those
// that read steps. CEL's && is commutative (false wins over an error), so
// the order never changes the outcome.
func (c *compiler) conjuncts(env *cel.Env, sp exprSpec, a *celast.AST) []*Expr {
	srcs := conjuncts(a)
	if srcs == nil {
		return nil
	}
	errsBefore := len(c.list)
	parts := make([]*Expr, 0, len(srcs))
	for _, src := range srcs {
		sub := sp
		sub.src, sub.part = src, true
		x := c.expr(env, sub)
		if x == nil {
			// Cannot happen for a checked expression; never report it.
			c.list = c.list[:errsBefore]
			return nil
		}
		parts = append(parts, x)
	}
	rank := func(x *Expr) int {
		switch {
		case len(x.Steps) > 0 || len(x.Measures) > 0:
			return 2
		case x.fast == nil:
			return 1
		}
		return 0
	}
	slices.SortStableFunc(parts, func(a, b *Expr) int { return rank(a) - rank(b) })
	return parts
}

// fieldKind says how event field name decodes: as its schema type, or with
// the natural JSON mapping when the ruleset has no schema.
func (c *compiler) fieldKind(name string) (kind, bool) {
	for _, f := range c.rs.Schema {
		if f.Name == name {
			if st, ok := schemaTypes[f.Type]; ok {
				return st.k, true
			}
		}
	}
	return kindNatural, false
}

func kindsText(ks []types.Kind) string {
	names := map[types.Kind]string{
		types.BoolKind: "bool", types.StringKind: "string", types.IntKind: "int",
		types.UintKind: "uint", types.DoubleKind: "double", types.TimestampKind: "timestamp",
		types.BytesKind: "bytes",
	}
	parts := make([]string, len(ks))
	for i, k := range ks {
		parts[i] = names[k]
	}
	article := "a "
	if strings.HasPrefix(parts[0], "int") || strings.HasPrefix(parts[0], "uint") {
		article = "an "
	}
	if len(parts) == 1 {
		return article + parts[0] + " expression"
	}
	return article + strings.Join(parts[:len(parts)-1], ", ") + " or " + parts[len(parts)-1]
}

// celErr reports a CEL error at its position inside the YAML file, with
// the caret snippet.
func (c *compiler) celErr(sp exprSpec, loc common.Location, msg string) {
	line, col := 1, 0
	if loc != nil && loc.Line() > 0 {
		line, col = loc.Line(), max(loc.Column(), 0)
	}
	pos, snippet := c.mapPos(sp, line, col)
	c.list = append(c.list, &Error{Pos: pos, Rule: c.rule, Msg: msg, Snippet: snippet})
}

// usedLists returns the names of lists.NAME selections in an expression.
func usedLists(a *celast.AST) []string {
	var names []string
	sels := celast.MatchDescendants(celast.NavigateAST(a), celast.KindMatcher(celast.SelectKind))
	for _, s := range sels {
		sel := s.AsSelect()
		if op := sel.Operand(); op.Kind() == celast.IdentKind && op.AsIdent() == "lists" {
			names = append(names, sel.FieldName())
		}
	}
	sort.Strings(names)
	return slices.Compact(names)
}

func collectLists(x *Expr, into map[string]bool) {
	if x == nil {
		return
	}
	for _, n := range x.listNames {
		into[n] = true
	}
}

// stepVar is a step variable an expression reads.
type stepVar struct {
	name    string
	looping bool
	// self: the expression belongs to this (looping) step, so an empty
	// binding means "nothing accepted yet" rather than unbound.
	self bool
}

// exprRuntime holds what evaluation needs; it is embedded in Expr.
type exprRuntime struct {
	prg  cel.Program
	vars []stepVar
	// measures are the measure variables the expression reads, resolved
	// through MeasureVars.
	measures  []measureVar
	lists     *listsValue
	listNames []string
	// readsManaged: the expression reads a managed list, so each
	// evaluation reads its contents once (listsView).
	readsManaged bool
	// costTracked: the static cost estimate could not prove the expression
	// within the limit, so it runs under cel.CostLimit.
	costTracked bool
	// fast evaluates the expression natively when it has a shape fast.go
	// recognises; nil otherwise.
	fast *fastPath
	// steps evaluates natively a comparison that reads step events, when
	// fast_steps.go recognises it; nil otherwise.
	steps *stepsPath
	// pool recycles activations: Expr is shared by all partition workers,
	// and a fresh activation per evaluation would be garbage per event.
	pool sync.Pool
}

// fillDefaults gives fields a Ruleset built in code left zero their
// documented defaults, as Parse does: severity medium, skip none,
// contiguity and loop relaxed, and a plain step (Min=Max=1) for a step
// whose Min and Max are both zero.
func fillDefaults(rs *Ruleset) {
	for _, r := range rs.Rules {
		if r.Severity == "" {
			r.Severity = SeverityMedium
		}
		if r.Skip.Kind == "" {
			r.Skip.Kind = SkipNone
		}
		fillStepDefaults(r.Pattern)
	}
}

func fillStepDefaults(steps []*Step) {
	for _, s := range steps {
		if s.Contiguity == "" {
			s.Contiguity = Relaxed
		}
		if s.Loop == "" {
			s.Loop = Relaxed
		}
		if s.Min == 0 && s.Max == 0 {
			s.Min, s.Max = 1, 1
		}
		fillStepDefaults(s.Steps)
	}
}

// maxFieldSize is the size the cost estimate assumes for an event's
// strings, bytes, lists and maps: events are a few hundred bytes, and
// larger ones only make linear operations (==, contains) proportionally
// slower.
const maxFieldSize = 64 << 10

// sizeEstimator tells cel's cost estimator how large inputs can be: event
// fields up to maxFieldSize, a ruleset list its actual length, a looping
// step its maximum count when it has one. An unbounded step list stays
// unknown, which leaves comprehensions over it to the runtime limit.
type sizeEstimator struct {
	leaves []eventStep
	rs     *Ruleset
}

// EstimateSize implements cost.Estimator.
func (e sizeEstimator) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	p := n.Path()
	if len(p) == 0 {
		return nil
	}
	if p[0] == "lists" {
		if len(p) == 2 {
			if d := e.rs.ListDecls[p[1]]; d != nil && d.Managed {
				return &cost.SizeEstimate{Min: 0, Max: MaxListItems}
			}
			if l, ok := e.rs.Lists[p[1]]; ok {
				return &cost.SizeEstimate{Min: uint64(len(l)), Max: uint64(len(l))}
			}
		}
		return nil
	}
	if len(p) == 1 {
		for _, s := range e.leaves {
			if s.Name == p[0] && s.repeated {
				if s.maxEvents > 0 {
					return &cost.SizeEstimate{Min: 0, Max: uint64(s.maxEvents)}
				}
				return nil
			}
		}
	}
	if len(p) >= 2 {
		return &cost.SizeEstimate{Min: 0, Max: maxFieldSize}
	}
	return nil
}

// EstimateCallCost implements cost.Estimator: `x in lists.NAME` of a
// typed or managed list is a hash lookup (hashedInCost); other calls cost
// what cel-go says.
func (e sizeEstimator) EstimateCallCost(function, overloadID string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	if overloadID != overloads.InList || len(args) != 2 {
		return nil
	}
	p := args[1].Path()
	if len(p) != 2 || p[0] != "lists" || e.rs.ListDecls[p[1]] == nil {
		return nil
	}
	return cost.NewCallEstimate(cost.Estimate{Min: 1, Max: hashedInCostUnits}, nil)
}

// hashedInCostUnits is what `in` over a hashed list costs: one hash probe
// per prefix length of a cidr list at most.
const hashedInCostUnits = 129

// hashedInCost is the runtime cost of `in` over a hashed list (nil: the
// standard cost, the list's size).
func hashedInCost(args []ref.Val, _ ref.Val) *uint64 {
	if len(args) == 2 && hashedList(args[1]) {
		c := uint64(hashedInCostUnits)
		return &c
	}
	return nil
}
