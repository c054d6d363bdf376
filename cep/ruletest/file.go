package ruletest

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/shrike-cep/shrike/internal/yamlnode"
	"github.com/shrike-cep/shrike/rules"
)

// File is one loaded rule unit-test file: its rulesets compiled, every
// reference in its tests checked.
type File struct {
	// Path is the file's name as given; positions and reports use it.
	Path string
	// Rulesets are the compiled rulesets the tests run, in the order listed.
	Rulesets []*rules.Compiled
	// Tests are the test cases in source order.
	Tests []*Test
	// Lists are the items of managed lists for every test of the file
	// (`lists:` at the top); a test's own replace them.
	Lists map[string]*ListItems

	// managed holds the managed lists the rulesets read; each test sets
	// them (setLists).
	managed *rules.ManagedLists
}

// Test is one test case: events in, alerts expected.
type Test struct {
	Name string
	// Pos is the position of the test's mapping in the file.
	Pos rules.Pos
	// Events are the inline events or records, in arrival order. A test
	// has Events or an EventsFile, not both.
	Events []*Event
	// EventsFile is the recorded event file, resolved against the test
	// file's folder: reports name it so, and alert ids by its base name.
	EventsFile    string
	EventsFilePos rules.Pos
	// Only restricts the comparison to these rules' alerts; empty compares
	// every alert.
	Only []RuleRef
	// Expect are the expected alerts; empty asserts that no alert comes.
	Expect []*Expected
	// MaxClockSkew, when positive, refuses events more than this ahead of
	// the watermark, as cep.ReplayOptions.MaxClockSkew does; zero: off.
	MaxClockSkew time.Duration
	// Lists are the items of managed lists for this test, replacing the
	// file's.
	Lists map[string]*ListItems
}

// Event is one event written in a test file.
type Event struct {
	Pos rules.Pos
	// JSON is the event object as the rules see it.
	JSON []byte
	// Record marks a Kafka record written as {key, value, topic, ts}. The
	// fields below are set only for records.
	Record bool
	// Topic is the record's topic: as written, else the topic every
	// ruleset of the file reads.
	Topic string
	// Key is the record key; HasKey is false when the record has none.
	Key    string
	HasKey bool
	// TimeMillis is the record timestamp in epoch milliseconds; HasTime is
	// false when the record has none.
	TimeMillis int64
	HasTime    bool
}

// RuleRef names one rule of the file's rulesets.
type RuleRef struct {
	// Ruleset is the ruleset's name; Load fills it in when the test file
	// gave only the rule id.
	Ruleset string
	Rule    string
	Pos     rules.Pos
}

// String formats the reference as ruleset/rule.
func (r RuleRef) String() string { return r.Ruleset + "/" + r.Rule }

// Expected is one alert a test expects. Unset optional fields match
// anything.
type Expected struct {
	Pos rules.Pos
	RuleRef
	// Key is the partition key; nil matches any key.
	Key *string
	// Severity is empty to match any.
	Severity rules.Severity
	// Labels must all be present with these values; others may be too.
	Labels map[string]string
	// Timeout is nil to match both matches and timeouts.
	Timeout *bool
	// Summary is nil to match any summary.
	Summary *string
	// Measures are measures of an aggregate rule's alert the alert must
	// hold with these values (others may be there too); nil checks none.
	Measures []ExpectedMeasure
	// Steps check the events of the named steps; nil checks no events.
	Steps []*ExpectedStep
}

// ExpectedMeasure is a measure an aggregate alert must hold: Value, or no
// value when None (`null`).
type ExpectedMeasure struct {
	Name  string
	Pos   rules.Pos
	Value float64
	None  bool
}

// ExpectedStep lists matchers for the events one step took, in order: the
// step must have taken exactly as many events as there are matchers.
type ExpectedStep struct {
	Step   string
	Pos    rules.Pos
	Events []*EventMatcher
}

// EventMatcher matches one event of an alert: by its number in the test,
// by a subset of its fields, or both. An empty matcher ({}) matches any
// event.
type EventMatcher struct {
	Pos rules.Pos
	// Line is the event's number in the test (the 1-based index of an
	// inline event or record, the line of an events file); 0 matches any.
	Line int64
	// Fields is a JSON object whose members the event must hold with equal
	// values (objects compared as subsets, numbers by value); nil checks no
	// field.
	Fields []byte
	fields map[string]any
}

// Load reads, validates and loads a test file: its own format, its
// rulesets (compiled once for all its tests), and every reference from
// its tests into them. Problems in the test file and in its rulesets come
// back together as a rules.ErrorList sorted by file and position;
// errors.Is(err, rules.ErrInvalid) tells them from a file that could not
// be read.
func Load(path string) (*File, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read test file: %w", err)
	}
	return LoadSource(path, src)
}

// LoadSource is Load with the test file's content given; rulesets and
// events files are still found relative to path.
func LoadSource(path string, src []byte) (*File, error) {
	p := &parser{file: path}
	p.Walker = yamlnode.Walker{ListFields: true, Report: func(n *yaml.Node, msg string) { p.add(p.pos(n), "%s", msg) }}
	f, refs := p.parse(src)
	if f == nil {
		return nil, p.err()
	}
	dir := filepath.Dir(path)
	f.managed = rules.NewManagedLists()
	names := map[string]rules.Pos{}
	loaded := true
	for _, ref := range refs {
		rp := ref.path
		if !filepath.IsAbs(rp) {
			rp = filepath.Join(dir, rp)
		}
		rsrc, err := os.ReadFile(rp)
		if err != nil {
			p.add(ref.pos, "ruleset %s: %v", ref.path, unwrapPathError(err))
			loaded = false
			continue
		}
		c, err := rules.Load(rp, rsrc, rules.CompileOptions{Lists: f.managed})
		if err != nil {
			var list rules.ErrorList
			if errors.As(err, &list) {
				p.list = append(p.list, list...)
			} else {
				p.add(ref.pos, "ruleset %s: %v", ref.path, err)
			}
			loaded = false
			continue
		}
		if prev, dup := names[c.Name]; dup {
			p.add(ref.pos, "ruleset %q is already listed at %d:%d", c.Name, prev.Line, prev.Col)
			loaded = false
			continue
		}
		names[c.Name] = ref.pos
		f.Rulesets = append(f.Rulesets, c)
	}
	for _, t := range f.Tests {
		if t.EventsFile == "" {
			continue
		}
		if !filepath.IsAbs(t.EventsFile) {
			t.EventsFile = filepath.Join(dir, t.EventsFile)
		}
		if fi, err := os.Stat(t.EventsFile); err != nil {
			p.add(t.EventsFilePos, "%s: events file: %v", testLabel(t), unwrapPathError(err))
		} else if fi.IsDir() {
			p.add(t.EventsFilePos, "%s: events file %s is a directory", testLabel(t), t.EventsFile)
		}
	}
	// References into rulesets are only checked against a complete set:
	// a rule of a ruleset that failed to load is not "unknown".
	if loaded {
		p.resolve(f)
		declared := declaredLists(f.Rulesets)
		p.checkLists(declared, "", f.Lists)
		for _, t := range f.Tests {
			p.checkLists(declared, testLabel(t)+": ", t.Lists)
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return f, nil
}

// unwrapPathError drops the operation of an *os.PathError, which repeats
// what the message already says.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

type rulesetRef struct {
	path string
	pos  rules.Pos
}

type parser struct {
	file string
	list rules.ErrorList
	yamlnode.Walker
}

func (p *parser) add(pos rules.Pos, format string, args ...any) {
	p.list = append(p.list, &rules.Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// err returns the problems sorted by file and position, nil when none.
func (p *parser) err() error {
	if len(p.list) == 0 {
		return nil
	}
	slices.SortStableFunc(p.list, func(a, b *rules.Error) int {
		return cmp.Or(cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
	return slices.CompactFunc(p.list, func(a, b *rules.Error) bool {
		return a.Pos == b.Pos && a.Rule == b.Rule && a.Msg == b.Msg
	})
}

func (p *parser) pos(n *yaml.Node) rules.Pos {
	return rules.Pos{File: p.file, Line: n.Line, Col: n.Column}
}

func (p *parser) parse(src []byte) (*File, []rulesetRef) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&doc); err != nil {
		pos := rules.Pos{File: p.file, Line: 1, Col: 1}
		if errors.Is(err, io.EOF) {
			p.add(pos, "empty test file")
			return nil, nil
		}
		line, msg := yamlnode.SyntaxError(src, err)
		pos.Line = max(line, 1)
		p.add(pos, "invalid YAML: %s", msg)
		return nil, nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.add(p.pos(&extra), "a test file holds one YAML document")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == 0 || root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		p.add(rules.Pos{File: p.file, Line: 1, Col: 1}, "empty test file")
		return nil, nil
	}
	f := &File{Path: p.file}
	var refs []rulesetRef
	var sawRulesets, sawTests bool
	p.Fields(root, "test file", map[string]func(k, v *yaml.Node){
		"rulesets": func(k, v *yaml.Node) {
			sawRulesets = true
			refs = p.rulesets(v)
		},
		"tests": func(k, v *yaml.Node) {
			sawTests = true
			f.Tests = p.tests(v)
		},
		"lists": func(k, v *yaml.Node) { f.Lists = p.lists(v) },
	})
	if root.Kind == yaml.MappingNode {
		if !sawRulesets {
			p.add(p.pos(root), "missing field \"rulesets\" (the ruleset files to test, relative to this file)")
		}
		if !sawTests {
			p.add(p.pos(root), "missing field \"tests\"")
		}
	}
	return f, refs
}

func (p *parser) nonEmpty(n *yaml.Node, what string) (string, bool) {
	s, ok := p.Str(n, what)
	if ok && strings.TrimSpace(s) == "" {
		p.add(p.pos(n), "%s is empty", what)
		return "", false
	}
	return s, ok
}

// rulesets reads the ruleset paths: a list of strings, or one string.
func (p *parser) rulesets(n *yaml.Node) []rulesetRef {
	n = p.Resolve(n)
	var refs []rulesetRef
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		if s, ok := p.nonEmpty(n, "ruleset path"); ok {
			refs = append(refs, rulesetRef{s, p.pos(n)})
		}
		return refs
	}
	if !p.Seq(n, "rulesets", func(_ int, it *yaml.Node) {
		if s, ok := p.nonEmpty(it, "ruleset path"); ok {
			refs = append(refs, rulesetRef{s, p.pos(it)})
		}
	}) {
		return nil
	}
	if len(n.Content) == 0 {
		p.add(p.pos(n), "rulesets is empty: name at least one ruleset file")
	}
	return refs
}

func (p *parser) tests(n *yaml.Node) []*Test {
	var tests []*Test
	names := map[string]rules.Pos{}
	ok := p.Seq(n, "tests", func(_ int, it *yaml.Node) {
		t := p.test(it)
		if t == nil {
			return
		}
		if prev, dup := names[t.Name]; dup && t.Name != "" {
			p.add(t.Pos, "%s: the name is already used at %d:%d (names select tests and label reports)", testLabel(t), prev.Line, prev.Col)
		}
		names[t.Name] = t.Pos
		tests = append(tests, t)
	})
	if ok && len(p.Resolve(n).Content) == 0 {
		p.add(p.pos(n), "tests is empty")
	}
	return tests
}

func (p *parser) test(n *yaml.Node) *Test {
	t := &Test{Pos: p.pos(n)}
	var sawName, sawEvents, sawExpect bool
	var sources []string
	p.Fields(n, "test", map[string]func(k, v *yaml.Node){
		"name": func(k, v *yaml.Node) {
			sawName = true
			t.Name, _ = p.nonEmpty(v, "test name")
		},
		"events": func(k, v *yaml.Node) {
			sawEvents = true
			sources = append(sources, "events")
			t.Events = append(t.Events, p.events(v, "events", false)...)
		},
		"records": func(k, v *yaml.Node) {
			sawEvents = true
			sources = append(sources, "records")
			t.Events = append(t.Events, p.events(v, "records", true)...)
		},
		"events_file": func(k, v *yaml.Node) {
			sawEvents = true
			sources = append(sources, "events_file")
			t.EventsFile, _ = p.nonEmpty(v, "events_file")
			t.EventsFilePos = p.pos(v)
		},
		"max_clock_skew": func(k, v *yaml.Node) {
			s, ok := p.Str(v, "max_clock_skew")
			if !ok {
				return
			}
			d, err := rules.ParseDuration(s)
			switch {
			case err != nil:
				p.add(p.pos(v), "max_clock_skew: %v", err)
			case d < 0:
				p.add(p.pos(v), "max_clock_skew must not be negative, not %s (0s: off)", s)
			default:
				t.MaxClockSkew = d
			}
		},
		"lists": func(k, v *yaml.Node) { t.Lists = p.lists(v) },
		"only": func(k, v *yaml.Node) {
			p.Seq(v, "only", func(_ int, it *yaml.Node) {
				if s, ok := p.nonEmpty(it, "only entry"); ok {
					t.Only = append(t.Only, parseRuleRef(s, p.pos(it)))
				}
			})
		},
		"expect": func(k, v *yaml.Node) {
			sawExpect = true
			p.Seq(v, "expect", func(_ int, it *yaml.Node) {
				if e := p.expected(it); e != nil {
					t.Expect = append(t.Expect, e)
				}
			})
		},
	})
	if n.Kind != yaml.MappingNode {
		return nil
	}
	label := testLabel(t)
	if !sawName {
		p.add(t.Pos, "test: missing field \"name\"")
	}
	if !sawEvents {
		p.add(t.Pos, "%s: missing events: give events, records or events_file", label)
	}
	if len(sources) > 1 {
		p.add(t.Pos, "%s: give only one of %s", label, strings.Join(sources, ", "))
	}
	if !sawExpect {
		p.add(t.Pos, "%s: missing field \"expect\" (write expect: [] to assert that no alert comes)", label)
	}
	return t
}

// parseRuleRef reads "rule" or "ruleset/rule".
func parseRuleRef(s string, pos rules.Pos) RuleRef {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return RuleRef{Ruleset: s[:i], Rule: s[i+1:], Pos: pos}
	}
	return RuleRef{Rule: s, Pos: pos}
}

// events reads inline events (objects) or records ({key, value, topic,
// ts}).
func (p *parser) events(n *yaml.Node, what string, records bool) []*Event {
	var out []*Event
	p.Seq(n, what, func(i int, it *yaml.Node) {
		ev := &Event{Pos: p.pos(it), Record: records}
		if !records {
			if it.Kind != yaml.MappingNode {
				p.add(ev.Pos, "event %d must be a mapping (an event object), not %s", i+1, yamlnode.KindName(it))
				return
			}
			ev.JSON = p.toJSON(nil, it)
			out = append(out, ev)
			return
		}
		var sawValue bool
		p.Fields(it, "record", map[string]func(k, v *yaml.Node){
			"key": func(k, v *yaml.Node) {
				if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
					return // a null key is a record without key
				}
				ev.Key, ev.HasKey = p.Str(v, "record key")
			},
			"value": func(k, v *yaml.Node) {
				sawValue = true
				if v.Kind != yaml.MappingNode {
					p.add(p.pos(v), "record value must be a mapping (an event object), not %s", yamlnode.KindName(v))
					return
				}
				ev.JSON = p.toJSON(nil, v)
			},
			"topic": func(k, v *yaml.Node) { ev.Topic, _ = p.nonEmpty(v, "record topic") },
			"ts":    func(k, v *yaml.Node) { ev.TimeMillis, ev.HasTime = p.recordTime(v) },
		})
		if it.Kind == yaml.MappingNode && !sawValue {
			p.add(ev.Pos, "record %d: missing field \"value\" (the event object)", i+1)
		}
		out = append(out, ev)
	})
	return out
}

// recordTime reads a record timestamp: epoch milliseconds, or an RFC 3339
// time for readability.
func (p *parser) recordTime(n *yaml.Node) (int64, bool) {
	if n.Kind == yaml.ScalarNode {
		switch n.Tag {
		case "!!int":
			ms, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
			if err != nil || ms < 0 {
				p.add(p.pos(n), "record ts %s must be epoch milliseconds >= 0", n.Value)
				return 0, false
			}
			return ms, true
		case "!!str", "!!timestamp":
			t, err := time.Parse(time.RFC3339Nano, n.Value)
			if err != nil || t.UnixMilli() < 0 {
				p.add(p.pos(n), "record ts %q must be epoch milliseconds or an RFC 3339 time after 1970", n.Value)
				return 0, false
			}
			return t.UnixMilli(), true
		}
	}
	p.add(p.pos(n), "record ts must be epoch milliseconds or an RFC 3339 time, not %s", yamlnode.KindName(n))
	return 0, false
}

func (p *parser) expected(n *yaml.Node) *Expected {
	e := &Expected{Pos: p.pos(n)}
	var sawRule bool
	var ruleset string
	p.Fields(n, "expected alert", map[string]func(k, v *yaml.Node){
		"ruleset": func(k, v *yaml.Node) { ruleset, _ = p.nonEmpty(v, "ruleset") },
		"rule": func(k, v *yaml.Node) {
			sawRule = true
			if s, ok := p.nonEmpty(v, "rule"); ok {
				e.RuleRef = parseRuleRef(s, p.pos(v))
			}
		},
		"key": func(k, v *yaml.Node) {
			if s, ok := p.Str(v, "key"); ok {
				e.Key = &s
			}
		},
		"severity": func(k, v *yaml.Node) {
			s, ok := p.Str(v, "severity")
			if !ok {
				return
			}
			switch sev := rules.Severity(s); sev {
			case rules.SeverityInfo, rules.SeverityLow, rules.SeverityMedium, rules.SeverityHigh, rules.SeverityCritical:
				e.Severity = sev
			default:
				p.add(p.pos(v), "unknown severity %q (want info, low, medium, high or critical)", s)
			}
		},
		"labels": func(k, v *yaml.Node) {
			if v.Kind != yaml.MappingNode {
				p.add(p.pos(v), "labels must be a mapping, not %s", yamlnode.KindName(v))
				return
			}
			e.Labels = map[string]string{}
			for i := 0; i+1 < len(v.Content); i += 2 {
				lk, lv := p.Resolve(v.Content[i]), p.Resolve(v.Content[i+1])
				name, ok1 := p.Str(lk, "label name")
				val, ok2 := p.Str(lv, "label value")
				if !ok1 || !ok2 {
					continue
				}
				if _, dup := e.Labels[name]; dup {
					p.add(p.pos(lk), "duplicate label %q", name)
				}
				e.Labels[name] = val
			}
		},
		"timeout": func(k, v *yaml.Node) {
			if b, ok := p.Bool(v, "timeout"); ok {
				e.Timeout = &b
			}
		},
		"summary": func(k, v *yaml.Node) {
			if s, ok := p.Str(v, "summary"); ok {
				e.Summary = &s
			}
		},
		"measures": func(k, v *yaml.Node) {
			p.measures(v, e)
		},
		"events": func(k, v *yaml.Node) {
			e.Steps = []*ExpectedStep{}
			p.steps(v, e)
		},
	})
	if n.Kind != yaml.MappingNode {
		return nil
	}
	if !sawRule {
		p.add(e.Pos, "expected alert: missing field \"rule\"")
	}
	switch {
	case ruleset == "":
	case e.Ruleset == "":
		e.Ruleset = ruleset
	case e.Ruleset != ruleset:
		p.add(e.RuleRef.Pos, "rule %s is not in ruleset %q given beside it", e.RuleRef.String(), ruleset)
	}
	return e
}

// measures reads an expectation's `measures: {NAME: NUMBER | null}`.
func (p *parser) measures(n *yaml.Node, e *Expected) {
	n = p.Resolve(n)
	if n.Kind != yaml.MappingNode {
		p.add(p.pos(n), "expected measures must be a mapping of measure names to numbers, not %s", yamlnode.KindName(n))
		return
	}
	e.Measures = []ExpectedMeasure{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := p.Resolve(n.Content[i]), p.Resolve(n.Content[i+1])
		name, ok := p.nonEmpty(k, "measure name")
		if !ok {
			continue
		}
		if slices.ContainsFunc(e.Measures, func(m ExpectedMeasure) bool { return m.Name == name }) {
			p.add(p.pos(k), "duplicate measure %q", name)
			continue
		}
		m := ExpectedMeasure{Name: name, Pos: p.pos(k)}
		switch {
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
			m.None = true
		case v.Kind == yaml.ScalarNode && (v.Tag == "!!int" || v.Tag == "!!float"):
			f, err := strconv.ParseFloat(strings.ReplaceAll(v.Value, "_", ""), 64)
			if err != nil {
				p.add(p.pos(v), "measure %q: %q is not a number", name, v.Value)
				continue
			}
			m.Value = f
		default:
			p.add(p.pos(v), "measure %q must be a number or null, not %s", name, yamlnode.KindName(v))
			continue
		}
		e.Measures = append(e.Measures, m)
	}
}

func (p *parser) steps(n *yaml.Node, e *Expected) {
	n = p.Resolve(n)
	if n.Kind != yaml.MappingNode {
		p.add(p.pos(n), "expected events must be a mapping of step names to lists of event matchers, not %s", yamlnode.KindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := p.Resolve(n.Content[i]), p.Resolve(n.Content[i+1])
		name, ok := p.nonEmpty(k, "step name")
		if !ok {
			continue
		}
		if seen[name] {
			p.add(p.pos(k), "duplicate step %q", name)
			continue
		}
		seen[name] = true
		st := &ExpectedStep{Step: name, Pos: p.pos(k)}
		p.Seq(v, fmt.Sprintf("events of step %q", name), func(_ int, it *yaml.Node) {
			if m := p.matcher(it); m != nil {
				st.Events = append(st.Events, m)
			}
		})
		e.Steps = append(e.Steps, st)
	}
}

// matcher reads an event matcher: a mapping of fields, where the key line
// (an integer) is the event's number in the test rather than a field.
func (p *parser) matcher(n *yaml.Node) *EventMatcher {
	if n.Kind != yaml.MappingNode {
		p.add(p.pos(n), "an event matcher must be a mapping ({line: N} or fields to compare), not %s", yamlnode.KindName(n))
		return nil
	}
	m := &EventMatcher{Pos: p.pos(n)}
	fields := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := p.Resolve(n.Content[i]), p.Resolve(n.Content[i+1])
		if k.Kind == yaml.ScalarNode && k.Value == "line" {
			if v.Kind != yaml.ScalarNode || v.Tag != "!!int" {
				p.add(p.pos(v), "line must be the event's number in the test (an integer >= 1), not %s", yamlnode.KindName(v))
				continue
			}
			line, err := strconv.ParseInt(v.Value, 10, 64)
			if err != nil || line < 1 {
				p.add(p.pos(v), "line must be the event's number in the test (an integer >= 1), not %s", v.Value)
				continue
			}
			m.Line = line
			continue
		}
		fields.Content = append(fields.Content, k, v)
	}
	if len(fields.Content) > 0 {
		m.Fields = p.toJSON(nil, fields)
		v, err := decodeJSON(m.Fields)
		if obj, ok := v.(map[string]any); ok && err == nil {
			m.fields = obj
		} else {
			// toJSON reported the problem already.
			m.Fields = nil
		}
	}
	return m
}

// resolve checks every rule and step a test names against the loaded
// rulesets, fills in the rulesets of unqualified references and the
// default topic of records.
func (p *parser) resolve(f *File) {
	topics := map[string]bool{}
	var topicList []string
	for _, rs := range f.Rulesets {
		if !topics[rs.Stream.Topic] {
			topics[rs.Stream.Topic] = true
			topicList = append(topicList, strconv.Quote(rs.Stream.Topic))
		}
	}
	for _, t := range f.Tests {
		for i, ev := range t.Events {
			if !ev.Record {
				continue
			}
			switch {
			case ev.Topic == "" && len(topics) == 1:
				ev.Topic = f.Rulesets[0].Stream.Topic
			case ev.Topic == "":
				p.add(ev.Pos, "%s: record %d: give its topic: the rulesets read topics %s", testLabel(t), i+1, strings.Join(topicList, ", "))
			case !topics[ev.Topic] && !topics[""]:
				p.add(ev.Pos, "%s: record %d: no ruleset reads topic %q (they read %s)", testLabel(t), i+1, ev.Topic, strings.Join(topicList, ", "))
			}
		}
		only := map[RuleRef]bool{}
		for i := range t.Only {
			if p.findRule(f, t, &t.Only[i]) != nil {
				only[RuleRef{Ruleset: t.Only[i].Ruleset, Rule: t.Only[i].Rule}] = true
			}
		}
		for _, e := range t.Expect {
			r := p.findRule(f, t, &e.RuleRef)
			if r == nil {
				continue
			}
			if !r.Enabled {
				p.add(e.RuleRef.Pos, "%s: rule %q is disabled: it raises no alerts", testLabel(t), e.RuleRef.String())
			}
			if len(only) > 0 && !only[RuleRef{Ruleset: e.Ruleset, Rule: e.Rule}] {
				p.add(e.RuleRef.Pos, "%s: rule %q is not in this test's only list, so its alerts are not compared", testLabel(t), e.RuleRef.String())
			}
			p.checkSteps(t, e, r)
			p.checkMeasures(t, e, r)
		}
	}
}

// findRule resolves ref in f's rulesets, qualifying it in place.
func (p *parser) findRule(f *File, t *Test, ref *RuleRef) *rules.Rule {
	if ref.Rule == "" {
		return nil
	}
	var found []*rules.Rule
	var in []string
	for _, rs := range f.Rulesets {
		if ref.Ruleset != "" && rs.Name != ref.Ruleset {
			continue
		}
		for _, r := range rs.Ruleset.Rules {
			if r.ID == ref.Rule {
				found = append(found, r)
				in = append(in, rs.Name)
			}
		}
	}
	switch len(found) {
	case 1:
		ref.Ruleset = in[0]
		return found[0]
	case 0:
		switch {
		case ref.Ruleset == "":
		case slices.ContainsFunc(f.Rulesets, func(c *rules.Compiled) bool { return c.Name == ref.Ruleset }):
			p.add(ref.Pos, "%s: ruleset %q has no rule %q", testLabel(t), ref.Ruleset, ref.Rule)
			return nil
		default:
			p.add(ref.Pos, "%s: no ruleset %q among %s", testLabel(t), ref.Ruleset, rulesetNames(f))
			return nil
		}
		p.add(ref.Pos, "%s: no rule %q in %s", testLabel(t), ref.Rule, rulesetNames(f))
	default:
		p.add(ref.Pos, "%s: rule %q is in several rulesets (%s): write ruleset/rule or give ruleset", testLabel(t), ref.Rule, strings.Join(in, ", "))
	}
	return nil
}

func rulesetNames(f *File) string {
	names := make([]string, len(f.Rulesets))
	for i, rs := range f.Rulesets {
		names[i] = strconv.Quote(rs.Name)
	}
	if len(names) == 1 {
		return "ruleset " + names[0]
	}
	return "rulesets " + strings.Join(names, ", ")
}

// withGroupCounts returns step as the counts of its events see it: the
// groups around it multiply its minimum and maximum (a maximum of -1 stays
// unbounded) and make it optional when one of them is.
func withGroupCounts(pattern []*rules.Step, step *rules.Step) *rules.Step {
	for _, g := range pattern {
		if !g.Group || rules.FindStep(g.Steps, step.Name) != step {
			continue
		}
		inner := withGroupCounts(g.Steps, step)
		out := *inner
		out.Min = inner.Min * g.Min
		out.Optional = inner.Optional || g.Optional
		switch {
		case inner.Max < 0 || g.Max < 0:
			out.Max = -1
		default:
			out.Max = inner.Max * g.Max
		}
		return &out
	}
	return step
}

// checkMeasures checks that the measures an expectation lists are the
// rule's.
func (p *parser) checkMeasures(t *Test, e *Expected, r *rules.Rule) {
	if len(e.Measures) == 0 {
		return
	}
	if r.Aggregate == nil {
		p.add(e.Measures[0].Pos, "%s: rule %q is not an aggregate rule: its alerts have no measures", testLabel(t), e.RuleRef.String())
		return
	}
	names := make([]string, len(r.Aggregate.Measures))
	for i, m := range r.Aggregate.Measures {
		names[i] = m.Name
	}
	for _, m := range e.Measures {
		if !slices.Contains(names, m.Name) {
			p.add(m.Pos, "%s: rule %q has no measure %q (measures: %s)", testLabel(t), e.RuleRef.String(), m.Name, strings.Join(names, ", "))
		}
	}
}

// checkSteps checks that the steps an expectation lists exist, can take
// that many events, and that inline event numbers exist.
func (p *parser) checkSteps(t *Test, e *Expected, r *rules.Rule) {
	for _, st := range e.Steps {
		var step *rules.Step
		if r.When != "" || r.Aggregate != nil {
			if st.Step != "event" {
				p.add(st.Pos, "%s: rule %q is %s rule: its one step is \"event\", not %q", testLabel(t), e.RuleRef.String(), ruleKind(r), st.Step)
				continue
			}
			step = &rules.Step{Name: "event", Min: 1, Max: 1}
		} else {
			if g := rules.FindStep(r.Pattern, st.Step); g != nil && g.Group {
				p.add(st.Pos, "%s: %q is a group of rule %q: list the events under the names of its steps", testLabel(t), st.Step, e.RuleRef.String())
				continue
			}
			events := rules.EventSteps(r.Pattern)
			i := slices.IndexFunc(events, func(s *rules.Step) bool { return s.Name == st.Step })
			if i < 0 {
				names := make([]string, len(events))
				for j, s := range events {
					names[j] = s.Name
				}
				p.add(st.Pos, "%s: rule %q has no step %q (steps: %s)", testLabel(t), e.RuleRef.String(), st.Step, strings.Join(names, ", "))
				continue
			}
			step = withGroupCounts(r.Pattern, events[i])
		}
		n := len(st.Events)
		switch {
		case step.Not:
			p.add(st.Pos, "%s: step %q is a not step: it never takes events", testLabel(t), st.Step)
		case n == 0 && !step.Optional && step.Min > 0:
			p.add(st.Pos, "%s: step %q takes at least %s: list a matcher ({} for any event) per event", testLabel(t), st.Step, plural(step.Min, "event"))
		case n > 0 && n < step.Min:
			p.add(st.Pos, "%s: step %q takes at least %s, %s given", testLabel(t), st.Step, plural(step.Min, "event"), plural(n, "matcher"))
		case step.Max >= 0 && n > step.Max:
			p.add(st.Pos, "%s: step %q takes at most %s, %s given", testLabel(t), st.Step, plural(step.Max, "event"), plural(n, "matcher"))
		}
		if t.EventsFile != "" {
			continue
		}
		for _, m := range st.Events {
			if m.Line > int64(len(t.Events)) {
				p.add(m.Pos, "%s: line %d: the test has %s", testLabel(t), m.Line, plural(len(t.Events), "event"))
			}
		}
	}
}

// testLabel names a test in an error; a test without a name is reported
// at its position alone.
func testLabel(t *Test) string {
	if t.Name == "" {
		return "test"
	}
	return fmt.Sprintf("test %q", t.Name)
}

// ruleKind names the kind of a rule whose alerts hold one event, with
// its article.
func ruleKind(r *rules.Rule) string {
	if r.Aggregate != nil {
		return "an aggregate"
	}
	return "a single-event"
}
