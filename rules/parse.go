package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/shrike-cep/shrike/internal/yamlnode"
)

// exprNode remembers how an expression was written in YAML, so that CEL
// error positions inside it map back to the file.
type exprNode struct {
	style yaml.Style
	line  int
	col   int
	// prefix is the scalar's text before the expression, when the
	// expression is part of a scalar (a measure's argument).
	prefix string
}

// Parse parses and validates a ruleset document. On failure the error is
// an ErrorList holding every problem found.
func Parse(filename string, src []byte) (*Ruleset, error) {
	rs, list := parse(filename, src, CompileOptions{})
	if rs != nil {
		list = append(list, validate(rs)...)
	}
	if err := list.err(); err != nil {
		return nil, err
	}
	return rs, nil
}

// parse reads the YAML into a Ruleset, reporting what the document itself
// gets wrong (syntax, unknown fields, types, durations). It returns the
// partial ruleset even with errors, so that later phases can report more,
// but nil over a limit of opts (source bytes, rules): such a source is
// refused before its rules are read or compiled, which is where its cost
// would be.
func parse(filename string, src []byte, opts CompileOptions) (*Ruleset, ErrorList) {
	p := &parser{file: filename, maxRules: opts.MaxRules}
	p.Walker.Report = func(n *yaml.Node, msg string) { p.add(p.pos(n), "%s", msg) }
	maxBytes := opts.MaxSourceBytes
	if maxBytes <= 0 {
		maxBytes = defaultMaxSourceBytes
	}
	if len(src) > maxBytes {
		p.add(Pos{File: filename}, "ruleset is %d bytes, over the limit of %d", len(src), maxBytes)
		return nil, p.list
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.add(Pos{File: filename, Line: 1, Col: 1}, "empty ruleset document")
		} else {
			line, msg := yamlnode.SyntaxError(src, err)
			p.add(Pos{File: filename, Line: max(line, 1), Col: 1}, "invalid YAML: %s", msg)
		}
		return nil, p.list
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.add(p.pos(&extra), "a ruleset file holds one YAML document")
	}
	rs := &Ruleset{
		Pos:       Pos{File: filename, Line: 1, Col: 1},
		Lists:     map[string][]any{},
		src:       src,
		exprNodes: map[Pos]exprNode{},
	}
	p.rs = rs
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	p.ruleset(root)
	if p.overLimit {
		return nil, p.list
	}
	return rs, p.list
}

// checkRuleCount refuses more than limit rules (DefaultMaxRules when 0).
func checkRuleCount(n, limit int, pos Pos) *Error {
	if limit <= 0 {
		limit = DefaultMaxRules
	}
	if n <= limit {
		return nil
	}
	return &Error{Pos: pos, Msg: fmt.Sprintf("ruleset has %d rules, over the limit of %d", n, limit)}
}

type parser struct {
	errs
	yamlnode.Walker
	file string
	rs   *Ruleset
	// maxRules is CompileOptions.MaxRules; overLimit says the rules list
	// is over it, and was not read.
	maxRules  int
	overLimit bool
	// srcLines is the source split in lines, for positions inside scalars.
	srcLines [][]rune
}

func (p *parser) pos(n *yaml.Node) Pos { return Pos{File: p.file, Line: n.Line, Col: n.Column} }

// pairs walks a mapping with free keys (schema, lists, labels), rejecting
// duplicate keys.
func (p *parser) pairs(n *yaml.Node, what string, f func(k, v *yaml.Node)) {
	n = p.Resolve(n)
	if n.Kind != yaml.MappingNode {
		p.add(p.pos(n), "%s must be a mapping, not %s", what, yamlnode.KindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content) && !p.Exhausted(); i += 2 {
		k, v := p.Resolve(n.Content[i]), p.Resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			p.add(p.pos(k), "%s keys must be strings", what)
			continue
		}
		if seen[k.Value] {
			p.add(p.pos(k), "duplicate key %q in %s", k.Value, what)
			continue
		}
		seen[k.Value] = true
		f(k, v)
	}
}

// expr reads a CEL expression and remembers its YAML form.
func (p *parser) expr(n *yaml.Node, what string) (string, Pos) {
	s, ok := p.Str(n, what)
	pos := p.pos(n)
	if !ok {
		return "", pos
	}
	if strings.TrimSpace(s) == "" {
		p.add(pos, "%s is empty", what)
		return "", pos
	}
	p.rs.exprNodes[pos] = exprNode{style: n.Style, line: n.Line, col: n.Column}
	return s, pos
}

// boolean reads a YAML boolean; a wrong value is reported and reads false.
func (p *parser) boolean(n *yaml.Node, what string) bool {
	b, _ := p.Bool(n, what)
	return b
}

func (p *parser) duration(n *yaml.Node, what string) time.Duration {
	s, ok := p.Str(n, what)
	if !ok {
		return 0
	}
	d, err := ParseDuration(s)
	if err != nil {
		p.add(p.pos(n), "%s: %v", what, err)
		return 0
	}
	if d <= 0 {
		p.add(p.pos(n), "%s must be positive, not %s", what, s)
		return 0
	}
	return d
}

var (
	identRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	timesRE   = regexp.MustCompile(`^\s*(\d+)\s*(\.\.\s*(\d*))?\s*$`)
	durUnitRE = regexp.MustCompile(`([0-9.]+)d`)
)

// FormatDuration writes d as a ruleset or configuration takes it, without
// Go's zero units: 10m rather than 10m0s, 1h rather than 1h0m0s, 0s for
// zero.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ParseDuration parses a Go duration ("1h30m", "1.5s", "500ms") that may
// also use d for days of 24 hours ("2d", "1d12h").
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	var days float64
	if m := durUnitRE.FindStringSubmatchIndex(s); m != nil && strings.Count(s, "d") == 1 {
		// Only a leading day count: "1d12h".
		if m[0] != 0 && !(m[0] == 1 && (s[0] == '-' || s[0] == '+')) {
			return 0, fmt.Errorf("invalid duration %q", orig)
		}
		f, err := strconv.ParseFloat(s[m[2]:m[3]], 64)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", orig)
		}
		days = f
		if s[0] == '-' {
			days = -days
		}
		rest := s[m[1]:]
		s = ""
		if rest != "" {
			if strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "+") {
				return 0, fmt.Errorf("invalid duration %q", orig)
			}
			s = rest
			if days < 0 {
				s = "-" + rest
			}
		}
	}
	var d time.Duration
	if s != "" {
		var err error
		d, err = time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q (use Go syntax such as 90s, 10m, 1h30m or 2d)", orig)
		}
	}
	total := float64(d) + days*float64(24*time.Hour)
	if total > float64(1<<63-1) || total < -float64(1<<63) {
		return 0, fmt.Errorf("duration %q out of range", orig)
	}
	return d + time.Duration(days*float64(24*time.Hour)), nil
}

func (p *parser) ruleset(n *yaml.Node) {
	rs := p.rs
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" || n.Kind == 0 {
		p.add(Pos{File: p.file, Line: 1, Col: 1}, "empty ruleset document")
		return
	}
	var sawName, sawRules bool
	p.Fields(n, "ruleset", map[string]func(k, v *yaml.Node){
		"ruleset": func(k, v *yaml.Node) {
			sawName = true
			if s, ok := p.Str(v, "ruleset name"); ok {
				if !nameRE.MatchString(s) {
					p.add(p.pos(v), "ruleset name %q must start with a letter or digit and hold only letters, digits, '_', '.' and '-'", s)
				}
				rs.Name = s
			}
		},
		"description": func(k, v *yaml.Node) {
			rs.Description, _ = p.Str(v, "description")
		},
		"stream": func(k, v *yaml.Node) { p.stream(v) },
		"schema": func(k, v *yaml.Node) { p.schema(v) },
		"lists":  func(k, v *yaml.Node) { p.lists(v) },
		"rules": func(k, v *yaml.Node) {
			sawRules = true
			p.rules(v)
		},
	})
	if n.Kind == yaml.MappingNode {
		if !sawName {
			p.add(p.pos(n), "missing field \"ruleset\" (the ruleset's name)")
		}
		if !sawRules {
			p.add(p.pos(n), "missing field \"rules\"")
		}
	}
}

func (p *parser) stream(n *yaml.Node) {
	st := &p.rs.Stream
	p.Fields(n, "stream", map[string]func(k, v *yaml.Node){
		"topic": func(k, v *yaml.Node) { st.Topic, _ = p.Str(v, "stream topic") },
		"key":   func(k, v *yaml.Node) { st.Key, st.KeyPos = p.expr(v, "stream key") },
		"time":  func(k, v *yaml.Node) { st.Time, st.TimePos = p.expr(v, "stream time") },
		"max_out_of_orderness": func(k, v *yaml.Node) {
			st.MaxOutOfOrderness = p.nonNegDuration(v, "max_out_of_orderness")
		},
		"idle_timeout": func(k, v *yaml.Node) { st.IdleTimeout = p.duration(v, "idle_timeout") },
		"max_clock_skew": func(k, v *yaml.Node) {
			// Zero in the model is "not set"; a written 0s turns the bound off.
			if st.MaxClockSkew = p.nonNegDuration(v, "max_clock_skew"); st.MaxClockSkew == 0 {
				st.MaxClockSkew = NoMaxClockSkew
			}
		},
	})
}

// nonNegDuration reads a duration that may be 0.
func (p *parser) nonNegDuration(n *yaml.Node, what string) time.Duration {
	s, ok := p.Str(n, what)
	if !ok {
		return 0
	}
	d, err := ParseDuration(s)
	if err != nil {
		p.add(p.pos(n), "%s: %v", what, err)
		return 0
	}
	if d < 0 {
		p.add(p.pos(n), "%s must not be negative, not %s", what, s)
		return 0
	}
	return d
}

func (p *parser) schema(n *yaml.Node) {
	p.pairs(n, "schema", func(k, v *yaml.Node) {
		if !identRE.MatchString(k.Value) {
			p.add(p.pos(k), "schema field %q is not a CEL identifier", k.Value)
		}
		t, ok := p.Str(v, "schema type")
		if !ok {
			return
		}
		if _, ok := schemaTypes[t]; !ok {
			p.add(p.pos(v), "unknown schema type %q for field %q (want one of %s)", t, k.Value, strings.Join(schemaTypeNames(), ", "))
		}
		p.rs.Schema = append(p.rs.Schema, SchemaField{Name: k.Value, Type: t, Pos: p.pos(k)})
	})
}

func schemaTypeNames() []string {
	names := make([]string, 0, len(schemaTypes))
	for n := range schemaTypes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (p *parser) lists(n *yaml.Node) {
	p.pairs(n, "lists", func(k, v *yaml.Node) {
		if !identRE.MatchString(k.Value) {
			p.add(p.pos(k), "list name %q is not a CEL identifier", k.Value)
		}
		if v.Kind == yaml.MappingNode {
			p.typedList(k, v)
			return
		}
		if v.Kind != yaml.SequenceNode {
			p.add(p.pos(v), "list %q must be a list of items, or a mapping such as {managed: true, type: string}, not %s", k.Value, yamlnode.KindName(v))
			return
		}
		items := make([]any, 0, len(v.Content))
		for _, it := range v.Content {
			it = p.Resolve(it)
			if x, ok := p.scalar(it); ok {
				items = append(items, x)
			} else {
				p.add(p.pos(it), "list %q items must be strings, numbers or booleans, not %s", k.Value, yamlnode.KindName(it))
			}
		}
		p.rs.Lists[k.Value] = items
	})
}

// typedList reads a list in the mapping form: {type: string|cidr,
// managed: true} or {type: …, items: […]}.
func (p *parser) typedList(k, v *yaml.Node) {
	name := k.Value
	d := &ListDecl{Name: name, Type: ListString, Pos: p.pos(k)}
	var itemsNode, typeNode, managedNode *yaml.Node
	p.Fields(v, "list "+strconv.Quote(name), map[string]func(k, v *yaml.Node){
		"managed": func(_, v *yaml.Node) {
			managedNode = v
			d.Managed = p.boolean(v, "managed")
		},
		"type": func(_, v *yaml.Node) {
			typeNode = v
			if t, ok := p.Str(v, "list type"); ok {
				d.Type = ListType(t)
			}
		},
		"items": func(_, v *yaml.Node) { itemsNode = v },
	})
	if !slices.Contains(ListTypes(), d.Type) {
		p.add(p.pos(typeNode), "list %q: unknown type %q (want string or cidr)", name, d.Type)
		return
	}
	switch {
	case d.Managed && itemsNode != nil:
		p.add(p.pos(itemsNode), "list %q is managed: its items are not in the ruleset but set through the API (PUT /v1/lists/%s), or offline with --list or a test file's lists", name, name)
		return
	case !d.Managed && itemsNode == nil:
		if managedNode == nil || managedNode.Tag == "!!bool" {
			p.add(p.pos(v), "list %q: give its items, or declare it managed: true", name)
		}
		return
	}
	if p.rs.ListDecls == nil {
		p.rs.ListDecls = map[string]*ListDecl{}
	}
	p.rs.ListDecls[name] = d
	if d.Managed {
		return
	}
	itemsNode = p.Resolve(itemsNode)
	if itemsNode.Kind != yaml.SequenceNode {
		p.add(p.pos(itemsNode), "list %q items must be a list, not %s", name, yamlnode.KindName(itemsNode))
		return
	}
	if len(itemsNode.Content) > MaxListItems {
		p.add(p.pos(itemsNode), "list %q has %d items, over the limit of %d", name, len(itemsNode.Content), MaxListItems)
		return
	}
	items := make([]any, 0, len(itemsNode.Content))
	for i, it := range itemsNode.Content {
		it = p.Resolve(it)
		if it.Kind != yaml.ScalarNode || it.Tag == "!!null" {
			p.add(p.pos(it), "list %q item %d must be a string, not %s", name, i, yamlnode.KindName(it))
			continue
		}
		c, err := CanonicalListItem(d.Type, it.Value)
		if err != nil {
			p.add(p.pos(it), "list %q item %d %s: %v", name, i, strconv.Quote(cut(it.Value, 64)), err)
			continue
		}
		items = append(items, c)
	}
	p.rs.Lists[name] = items
}

// scalar converts a YAML scalar to string, int64, float64 or bool.
func (p *parser) scalar(n *yaml.Node) (any, bool) {
	if n.Kind != yaml.ScalarNode {
		return nil, false
	}
	switch n.Tag {
	case "!!str":
		return n.Value, true
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return i, true
		}
		// Larger than int64: keep the digits.
		return n.Value, true
	case "!!float":
		var f float64
		if err := n.Decode(&f); err == nil {
			return f, true
		}
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err == nil {
			return b, true
		}
	}
	return nil, false
}

func (p *parser) rules(n *yaml.Node) {
	n = p.Resolve(n)
	if n.Kind != yaml.SequenceNode {
		p.add(p.pos(n), "rules must be a list, not %s", yamlnode.KindName(n))
		return
	}
	if e := checkRuleCount(len(n.Content), p.maxRules, p.pos(n)); e != nil {
		p.list = append(p.list, e)
		p.overLimit = true
		return
	}
	for _, rn := range n.Content {
		rn = p.Resolve(rn)
		if p.Exhausted() {
			return
		}
		p.rule(rn)
	}
}

func (p *parser) rule(n *yaml.Node) {
	r := &Rule{Severity: SeverityMedium, Enabled: true, Skip: Skip{Kind: SkipNone}, Pos: p.pos(n)}
	if n.Kind == yaml.MappingNode {
		// Find the id first so that every error in the rule names it.
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "id" {
				if v := p.Resolve(n.Content[i+1]); v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
					r.ID = v.Value
				}
			}
		}
	}
	p.errs.rule = r.ID
	defer func() { p.errs.rule = "" }()
	p.Fields(n, "rule", map[string]func(k, v *yaml.Node){
		"id": func(k, v *yaml.Node) {
			if s, ok := p.Str(v, "rule id"); ok && !nameRE.MatchString(s) {
				p.add(p.pos(v), "rule id %q must start with a letter or digit and hold only letters, digits, '_', '.' and '-'", s)
			}
		},
		"description": func(k, v *yaml.Node) { r.Description, _ = p.Str(v, "description") },
		"severity": func(k, v *yaml.Node) {
			s, ok := p.Str(v, "severity")
			if !ok {
				return
			}
			switch Severity(s) {
			case SeverityInfo, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical:
				r.Severity = Severity(s)
			default:
				p.add(p.pos(v), "unknown severity %q (want info, low, medium, high or critical)", s)
			}
		},
		"enabled": func(k, v *yaml.Node) { r.Enabled = p.boolean(v, "enabled") },
		"when":    func(k, v *yaml.Node) { r.When, r.WhenPos = p.expr(v, "when") },
		"pattern": func(k, v *yaml.Node) {
			r.patternPos = p.pos(v)
			if v.Kind != yaml.SequenceNode {
				p.add(p.pos(v), "pattern must be a list of steps, not %s", yamlnode.KindName(v))
				return
			}
			r.Pattern = []*Step{} // present, possibly empty
			for _, sn := range v.Content {
				if s := p.step(p.Resolve(sn)); s != nil {
					r.Pattern = append(r.Pattern, s)
				}
			}
		},
		"within": func(k, v *yaml.Node) {
			r.Within = p.duration(v, "within")
			r.withinPos = p.pos(v)
		},
		"aggregate": func(k, v *yaml.Node) { r.Aggregate = p.aggregate(v) },
		"skip":      func(k, v *yaml.Node) { p.skip(v, &r.Skip) },
		"alert":     func(k, v *yaml.Node) { p.alert(v, r) },
	})
	p.rs.Rules = append(p.rs.Rules, r)
}

func (p *parser) skip(n *yaml.Node, sk *Skip) {
	sk.Pos = p.pos(n)
	switch n.Kind {
	case yaml.ScalarNode:
		switch k := SkipKind(n.Value); k {
		case SkipNone, SkipToNext, SkipPastLastEvent:
			sk.Kind = k
		case SkipToFirst, SkipToLast:
			p.add(p.pos(n), "skip %s needs a step: write skip: {%s: STEP}", k, k)
		default:
			p.add(p.pos(n), "unknown skip strategy %q (want none, to_next, past_last_event, {to_first: STEP} or {to_last: STEP})", n.Value)
		}
	case yaml.MappingNode:
		if len(n.Content) != 2 {
			p.add(p.pos(n), "skip must be one of none, to_next, past_last_event, {to_first: STEP} or {to_last: STEP}")
			return
		}
		k, v := p.Resolve(n.Content[0]), p.Resolve(n.Content[1])
		switch kind := SkipKind(k.Value); kind {
		case SkipToFirst, SkipToLast:
			sk.Kind = kind
			sk.Step, _ = p.Str(v, "skip step")
			sk.Pos = p.pos(v)
		default:
			p.add(p.pos(k), "unknown skip strategy %q (a mapping takes to_first or to_last)", k.Value)
		}
	default:
		p.add(p.pos(n), "skip must be a string or a mapping, not %s", yamlnode.KindName(n))
	}
}

func (p *parser) alert(n *yaml.Node, r *Rule) {
	a := &r.Alert
	p.Fields(n, "alert", map[string]func(k, v *yaml.Node){
		"summary": func(k, v *yaml.Node) { a.Summary, a.SummaryPos = p.expr(v, "alert summary") },
		"labels": func(k, v *yaml.Node) {
			a.Labels = map[string]string{}
			p.pairs(v, "labels", func(k, v *yaml.Node) {
				if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
					p.add(p.pos(v), "label %q must be a string, not %s (quote it)", k.Value, yamlnode.KindName(v))
					return
				}
				a.Labels[k.Value] = v.Value
			})
		},
		"on_timeout": func(k, v *yaml.Node) {
			a.OnTimeout = p.boolean(v, "on_timeout")
			r.onTimeoutPos = p.pos(v)
		},
		"suppress": func(k, v *yaml.Node) { p.suppress(v, a) },
	})
}

func (p *parser) step(n *yaml.Node) *Step {
	s := &Step{Min: 1, Max: 1, Contiguity: Relaxed, Loop: Relaxed, Pos: p.pos(n)}
	if n.Kind != yaml.MappingNode {
		p.add(p.pos(n), "a pattern step must be a mapping, not %s", yamlnode.KindName(n))
		return nil
	}
	set := map[string]Pos{}
	p.Fields(n, "step", map[string]func(k, v *yaml.Node){
		"step": func(k, v *yaml.Node) {
			s.Name, _ = p.Str(v, "step name")
			s.namePos = p.pos(v)
			set["step"] = p.pos(k)
		},
		"group": func(k, v *yaml.Node) {
			s.Name, _ = p.Str(v, "group name")
			s.namePos = p.pos(v)
			s.Group = true
			set["group"] = p.pos(k)
		},
		"steps": func(k, v *yaml.Node) {
			set["steps"] = p.pos(k)
			if v.Kind != yaml.SequenceNode {
				p.add(p.pos(v), "steps must be a list of steps, not %s", yamlnode.KindName(v))
				return
			}
			s.Steps = []*Step{}
			for _, sn := range v.Content {
				if inner := p.step(p.Resolve(sn)); inner != nil {
					s.Steps = append(s.Steps, inner)
				}
			}
		},
		"where": func(k, v *yaml.Node) {
			s.Where, s.WherePos = p.expr(v, "where")
			set["where"] = p.pos(k)
		},
		"contiguity": func(k, v *yaml.Node) {
			s.Contiguity = p.contiguity(v, "contiguity")
			set["contiguity"] = p.pos(k)
		},
		"times": func(k, v *yaml.Node) {
			p.times(v, s)
			set["times"] = p.pos(k)
		},
		"optional": func(k, v *yaml.Node) {
			if p.boolean(v, "optional") {
				s.Optional = true
				set["optional"] = p.pos(k)
			}
		},
		"greedy": func(k, v *yaml.Node) {
			if p.boolean(v, "greedy") {
				s.Greedy = true
				set["greedy"] = p.pos(k)
			}
		},
		"loop": func(k, v *yaml.Node) {
			s.Loop = p.contiguity(v, "loop")
			set["loop"] = p.pos(k)
		},
		"until": func(k, v *yaml.Node) {
			s.Until, s.UntilPos = p.expr(v, "until")
			set["until"] = p.pos(k)
		},
		"not": func(k, v *yaml.Node) {
			s.Not = p.boolean(v, "not")
			set["not"] = p.pos(k)
		},
		"within": func(k, v *yaml.Node) {
			s.Within = p.duration(v, "step within")
			set["within"] = p.pos(k)
		},
	})
	s.set = set
	return s
}

func (p *parser) contiguity(n *yaml.Node, what string) Contiguity {
	s, ok := p.Str(n, what)
	if !ok {
		return Relaxed
	}
	switch c := Contiguity(s); c {
	case Strict, Relaxed, Any:
		return c
	}
	p.add(p.pos(n), "unknown %s %q (want strict, relaxed or any)", what, s)
	return Relaxed
}

// times reads N, N..M or N.. into Min/Max. A minimum of 0 means the step
// may be skipped: it becomes Optional with a minimum of 1, as Flink's
// times(0, n) does.
func (p *parser) times(n *yaml.Node, s *Step) {
	v, ok := p.Str(n, "times")
	if !ok {
		return
	}
	m := timesRE.FindStringSubmatch(v)
	if m == nil {
		p.add(p.pos(n), "times must be N, N..M or N.. with N and M non-negative integers, not %q", v)
		return
	}
	lo, err1 := strconv.Atoi(m[1])
	hi := lo
	var err2 error
	switch {
	case m[2] == "":
	case m[3] == "":
		hi = -1
	default:
		hi, err2 = strconv.Atoi(m[3])
	}
	if err := errors.Join(err1, err2); err != nil || lo > 1<<20 || hi > 1<<20 {
		p.add(p.pos(n), "times %q is too large", v)
		return
	}
	switch {
	case hi == 0:
		p.add(p.pos(n), "times %q allows no event at all", v)
		return
	case hi > 0 && lo > hi:
		p.add(p.pos(n), "times %q has a minimum above its maximum", v)
		return
	}
	if lo == 0 {
		s.Optional = true
		lo = 1
	}
	s.Min, s.Max = lo, hi
}
