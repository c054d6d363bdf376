package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// generated is one case converted into Shrike's inputs, plus what the
// comparison needs to map Shrike's alerts back into Flink's terms.
type generated struct {
	// Ruleset is the ruleset YAML document (one rule, id ruleID).
	Ruleset []byte
	// Events is the recorded event file: one JSON object per line, in feed
	// order.
	Events []byte
	// ToFlink maps Shrike step names back to Flink step names.
	ToFlink map[string]string
	// Times is the event time in epoch ms that Shrike sees, by id-1.
	Times []int64
	// Rank is the position of each event (by id-1) in the order Shrike
	// matches them: event time, ties in arrival order. Emission points are
	// compared on this scale; len(Times) stands for the end of input.
	Rank []int
	// TimeSource says how Times was chosen, for failure messages.
	TimeSource string
}

// Names of what the converter generates.
const (
	rulesetName = "flink-conformance"
	ruleID      = "flink"
	rulesetFile = "ruleset.yaml"
	eventsFile  = "events.jsonl"
)

// watermarkLag reads the lag N of an event-time operator test's watermark,
// described in its `watermarks` field as "after each event: ts - N; …".
var watermarkLag = regexp.MustCompile(`ts\s*-\s*(\d+)`)

// outOfOrderness reproduces an event-time operator test's watermark. The
// test emits a watermark of ts-N after every element and Flink releases the
// elements with ts <= watermark; Shrike's watermark is max event time minus
// max_out_of_orderness and releases the events with time < watermark. On
// integer milliseconds, ts <= max-N is ts < max-(N-1).
func outOfOrderness(c *flinkCase) (string, error) {
	m := watermarkLag.FindStringSubmatch(c.Watermarks)
	if m == nil {
		return "", fmt.Errorf("event-time operator test without a watermark of the form \"ts - N\": %q", c.Watermarks)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n < 1 {
		return "", fmt.Errorf("watermark %q: need a lag of at least 1 ms", c.Watermarks)
	}
	return fmt.Sprintf("%dms", n-1), nil
}

// celReserved holds the names a step may not have: CEL's literals and
// reserved words, and the variables Shrike itself binds.
var celReserved = map[string]bool{
	"true": true, "false": true, "null": true, "in": true,
	"as": true, "break": true, "const": true, "continue": true, "else": true,
	"for": true, "function": true, "if": true, "import": true, "let": true,
	"loop": true, "package": true, "namespace": true, "return": true,
	"var": true, "void": true, "while": true,
	"event": true, "lists": true,
}

var celIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// yamlRuleset and the types below mirror the ruleset language
// (docs/language.md); field order is the order a person would write.
type yamlRuleset struct {
	Ruleset     string     `yaml:"ruleset"`
	Description string     `yaml:"description,omitempty"`
	Stream      yamlStream `yaml:"stream"`
	Rules       []yamlRule `yaml:"rules"`
}

type yamlStream struct {
	Topic             string `yaml:"topic,omitempty"`
	Time              string `yaml:"time"`
	MaxOutOfOrderness string `yaml:"max_out_of_orderness,omitempty"`
}

type yamlRule struct {
	ID          string     `yaml:"id"`
	Description string     `yaml:"description,omitempty"`
	Within      string     `yaml:"within,omitempty"`
	Pattern     []yamlStep `yaml:"pattern"`
	Skip        any        `yaml:"skip,omitempty"`
	Alert       *yamlAlert `yaml:"alert,omitempty"`
}

type yamlStep struct {
	Step       string     `yaml:"step,omitempty"`
	Group      string     `yaml:"group,omitempty"`
	Where      string     `yaml:"where,omitempty"`
	Contiguity string     `yaml:"contiguity,omitempty"`
	Times      any        `yaml:"times,omitempty"` // int N, or "N..M" / "N.."
	Optional   bool       `yaml:"optional,omitempty"`
	Greedy     bool       `yaml:"greedy,omitempty"`
	Loop       string     `yaml:"loop,omitempty"`
	Until      string     `yaml:"until,omitempty"`
	Not        bool       `yaml:"not,omitempty"`
	Within     string     `yaml:"within,omitempty"`
	Steps      []yamlStep `yaml:"steps,omitempty"`
}

type yamlAlert struct {
	OnTimeout bool `yaml:"on_timeout"`
}

// eventLine is one line of the event file. The fields are the case's own,
// in a fixed order, with ts replaced by the time Shrike should use.
type eventLine struct {
	ID      int             `json:"id"`
	FlinkID json.RawMessage `json:"flink_id"`
	Type    json.RawMessage `json:"type"`
	Name    json.RawMessage `json:"name,omitempty"`
	Price   json.RawMessage `json:"price,omitempty"`
	Volume  json.RawMessage `json:"volume,omitempty"`
	F0      json.RawMessage `json:"f0,omitempty"`
	F1      json.RawMessage `json:"f1,omitempty"`
	TS      int64           `json:"ts"`
}

// convert turns a case into a ruleset and an event file.
func convert(c *flinkCase) (*generated, error) {
	g := &generated{ToFlink: map[string]string{}}
	toShrike, err := stepNames(c)
	if err != nil {
		return nil, err
	}
	for f, s := range toShrike {
		g.ToFlink[s] = f
	}

	g.Times, g.TimeSource, err = eventTimes(c)
	if err != nil {
		return nil, err
	}
	g.Rank = ranks(g.Times)

	rule := yamlRule{
		ID:          ruleID,
		Description: c.ID,
	}
	rule.Pattern, err = convertSteps(c.Steps, toShrike)
	if err != nil {
		return nil, err
	}
	if c.WithinMS != nil {
		w := fmt.Sprintf("%dms", *c.WithinMS)
		if c.perStepWindow() {
			i := slices.IndexFunc(c.Steps, func(s flinkStep) bool { return s.Name == c.WithinFor })
			if i < 0 {
				return nil, fmt.Errorf("within_step %q is not a step outside groups", c.WithinFor)
			}
			rule.Pattern[i].Within = w
		} else {
			rule.Within = w
		}
	}
	rule.Skip, err = convertSkip(c.Skip, toShrike)
	if err != nil {
		return nil, err
	}
	if c.ExpectedTimeouts != nil {
		rule.Alert = &yamlAlert{OnTimeout: true}
	}

	rs := yamlRuleset{
		Ruleset:     rulesetName,
		Description: c.Source,
		Stream:      yamlStream{Topic: "flink", Time: "event.ts"},
		Rules:       []yamlRule{rule},
	}
	if c.Harness == harnessEventTime {
		if rs.Stream.MaxOutOfOrderness, err = outOfOrderness(c); err != nil {
			return nil, err
		}
		g.TimeSource += ", max_out_of_orderness " + rs.Stream.MaxOutOfOrderness
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(rs); err != nil {
		return nil, fmt.Errorf("encode ruleset: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode ruleset: %w", err)
	}
	g.Ruleset = buf.Bytes()

	var ev bytes.Buffer
	for i, e := range c.Events {
		b, err := json.Marshal(eventLine{
			ID: e.ID, FlinkID: e.FlinkID, Type: e.Type, Name: e.Name, Price: javaDouble(e.Price),
			Volume: javaDouble(e.Volume), F0: e.F0, F1: e.F1, TS: g.Times[i],
		})
		if err != nil {
			return nil, fmt.Errorf("encode event %d: %w", e.ID, err)
		}
		ev.Write(b)
		ev.WriteByte('\n')
	}
	g.Events = ev.Bytes()
	return g, nil
}

// stepNames maps each Flink step name to the Shrike step name: itself when
// it is a usable CEL identifier, else "step<index>". Flink names are free
// text ("b*", "not c", "middle-first"), so none that needs renaming can
// appear inside a CEL expression; a reserved word that is an identifier
// could, and is refused rather than rewritten by guesswork.
func stepNames(c *flinkCase) (map[string]string, error) {
	out := map[string]string{}
	used := map[string]bool{}
	steps := c.eventSteps()
	var groups func(steps []flinkStep) error
	groups = func(steps []flinkStep) error {
		for _, s := range steps {
			if s.Group == "" {
				continue
			}
			if !celIdent.MatchString(s.Group) || celReserved[s.Group] || used[s.Group] {
				return fmt.Errorf("group name %q is not a usable, unique CEL identifier", s.Group)
			}
			used[s.Group] = true
			if err := groups(s.Steps); err != nil {
				return err
			}
		}
		return nil
	}
	if err := groups(c.Steps); err != nil {
		return nil, err
	}
	for _, s := range steps {
		if celIdent.MatchString(s.Name) && !celReserved[s.Name] {
			if used[s.Name] {
				return nil, fmt.Errorf("step %q has the name of a group", s.Name)
			}
			used[s.Name] = true
		}
	}
	for i, s := range steps {
		if _, dup := out[s.Name]; dup {
			return nil, fmt.Errorf("duplicate step name %q", s.Name)
		}
		if celIdent.MatchString(s.Name) && !celReserved[s.Name] {
			out[s.Name] = s.Name
			continue
		}
		if celIdent.MatchString(s.Name) && referenced(c, s.Name) {
			return nil, fmt.Errorf("step %q is a reserved word and is referenced by a condition", s.Name)
		}
		name := fmt.Sprintf("step%d", i)
		if used[name] {
			return nil, fmt.Errorf("renaming step %q: %q is taken", s.Name, name)
		}
		used[name] = true
		out[s.Name] = name
	}
	return out, nil
}

// referenced reports whether name occurs as a word in any condition,
// groups' until included.
func referenced(c *flinkCase, name string) bool {
	re := regexp.MustCompile(`\b` + regexp.QuoteMeta(name) + `\b`)
	var walk func(steps []flinkStep) bool
	walk = func(steps []flinkStep) bool {
		for _, s := range steps {
			if re.MatchString(s.Where) || (s.Until != nil && re.MatchString(*s.Until)) || walk(s.Steps) {
				return true
			}
		}
		return false
	}
	return walk(c.Steps)
}

// convertSteps maps a sequence of Flink steps (the pattern, or a group's
// steps) to pattern steps, groups to groups.
func convertSteps(steps []flinkStep, toShrike map[string]string) ([]yamlStep, error) {
	out := make([]yamlStep, 0, len(steps))
	for i, s := range steps {
		name := toShrike[s.Name]
		if s.Group != "" {
			name = s.Group
		}
		ys, err := convertStep(i, s, name)
		if err != nil {
			return nil, fmt.Errorf("step %q: %w", name, err)
		}
		if s.Group != "" {
			ys.Step, ys.Group = "", s.Group
			if ys.Where != "" || ys.Not || ys.Greedy {
				return nil, fmt.Errorf("group %q: a group has no where, negation or greed", s.Group)
			}
			if ys.Steps, err = convertSteps(s.Steps, toShrike); err != nil {
				return nil, fmt.Errorf("group %q: %w", s.Group, err)
			}
		}
		out = append(out, ys)
	}
	return out, nil
}

// convertStep maps one Flink step to a pattern step (README "Mapping to the
// ruleset language").
func convertStep(i int, s flinkStep, name string) (yamlStep, error) {
	ys := yamlStep{Step: name, Where: s.Where, Greedy: s.Greedy, Not: s.Negated}
	if s.Until != nil {
		ys.Until = *s.Until
	}
	// The first step has no previous step, so Shrike rejects a contiguity
	// there; Flink's begin() has none either.
	if i > 0 {
		switch s.Contiguity {
		case "strict", "relaxed", "any":
			ys.Contiguity = s.Contiguity
		default:
			return ys, fmt.Errorf("unknown contiguity %q", s.Contiguity)
		}
	}
	lo, optional := s.Min, s.Optional
	if lo == 0 {
		// times(0, n) is times(1, n).optional().
		lo, optional = 1, true
	}
	ys.Optional = optional
	switch {
	case lo < 0 || (s.Max != nil && *s.Max < lo):
		return ys, fmt.Errorf("bad quantifier min %d max %v", s.Min, s.Max)
	case s.Max == nil:
		ys.Times = fmt.Sprintf("%d..", lo)
	case *s.Max == 1:
		// A plain step: no times.
	case *s.Max == lo:
		ys.Times = lo
	default:
		ys.Times = fmt.Sprintf("%d..%d", lo, *s.Max)
	}
	// loop_contiguity only matters for a looping step, and Shrike rejects it
	// on a singleton.
	if s.Max == nil || *s.Max != 1 {
		switch s.LoopContiguity {
		case "strict", "relaxed", "any":
			ys.Loop = s.LoopContiguity
		default:
			return ys, fmt.Errorf("unknown loop contiguity %q", s.LoopContiguity)
		}
	}
	return ys, nil
}

// convertSkip maps a case's skip strategy to the ruleset's: a plain string,
// or a one-key mapping {to_first: STEP} / {to_last: STEP}.
func convertSkip(skip string, toShrike map[string]string) (any, error) {
	switch skip {
	case "no_skip":
		return "none", nil
	case "skip_to_next":
		return "to_next", nil
	case "skip_past_last_event":
		return "past_last_event", nil
	}
	kind, step, ok := strings.Cut(skip, ":")
	if !ok {
		return nil, fmt.Errorf("unknown skip strategy %q", skip)
	}
	name, known := toShrike[step]
	if !known {
		return nil, fmt.Errorf("skip strategy %q names an unknown step", skip)
	}
	switch kind {
	case "skip_to_first":
		return map[string]string{"to_first": name}, nil
	case "skip_to_last":
		return map[string]string{"to_last": name}, nil
	}
	return nil, fmt.Errorf("unknown skip strategy %q", skip)
}

// eventTimes chooses the event time (epoch ms) of each event, by id-1, so
// that Shrike's event-time order is the order the Flink test fed its NFA.
func eventTimes(c *flinkCase) ([]int64, string, error) {
	n := len(c.Events)
	times := make([]int64, n)
	nulls := 0
	for i, e := range c.Events {
		if e.TS == nil {
			nulls++
		} else {
			times[i] = *e.TS
		}
	}
	feedPosition := func() []int64 {
		for i := range times {
			times[i] = int64(i + 1)
		}
		return times
	}
	switch {
	case c.Harness == harnessProcessingTime:
		// Processing time: the operator sees the elements in source order.
		return feedPosition(), "feed position (processing-time operator test)", nil
	case nulls == n:
		// Records without a timestamp: only the feed order mattered.
		return feedPosition(), "feed position (records without timestamp)", nil
	case nulls > 0:
		return nil, "", fmt.Errorf("%d of %d events have no timestamp: cannot order them", nulls, n)
	case c.Harness == harnessEventTime:
		// The operator sorts by timestamp itself, as Shrike does.
		return times, "ts (event-time operator test)", nil
	}
	// NFA-level: the test fed the records in feed order whatever their
	// timestamps, so the timestamps only work as event times if they do not
	// go backwards.
	if slices.IsSorted(times) {
		return times, "ts (NFA-level test, timestamps in feed order)", nil
	}
	if c.WithinMS == nil {
		// Without a window the NFA never looked at the timestamps.
		return feedPosition(), "feed position (NFA-level test, non-monotonic timestamps, no window)", nil
	}
	return nil, "", fmt.Errorf("NFA-level test with a window feeds non-monotonic timestamps: no event-time order reproduces it")
}

// ranks returns each event's position in Shrike's matching order: by time,
// ties in arrival (id) order.
func ranks(times []int64) []int {
	order := make([]int, len(times))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case times[a] < times[b]:
			return -1
		case times[a] > times[b]:
			return 1
		}
		return 0
	})
	rank := make([]int, len(times))
	for r, i := range order {
		rank[i] = r
	}
	return rank
}

// javaDouble writes a number of a Java double field (price, volume) with a
// decimal point. Shrike decodes 1 as an int and 1.0 as a double, and CEL
// has no int + double, so an integral price written without a point would
// break the iterative sums that Flink computes in doubles.
func javaDouble(raw json.RawMessage) json.RawMessage {
	s := string(raw)
	if s == "" || strings.ContainsAny(s, `.eE"ntf`) {
		return raw // empty, already a double, or not a number
	}
	return json.RawMessage(s + ".0")
}
