package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// flinkCase is one entry of testdata/cases.json. Its fields, and the ruleset
// fields they become, are described in README.md here; fields not needed by the test are still decoded so that the strict
// decoder notices a format change.
type flinkCase struct {
	ID        string       `json:"id"`
	Source    string       `json:"source"`
	Steps     []flinkStep  `json:"steps"`
	WithinMS  *int64       `json:"within_ms"`
	Within    string       `json:"within_type"` // "", first_and_last, previous_and_current
	WithinFor string       `json:"within_step"` // step carrying a previous_and_current window
	Skip      string       `json:"skip"`
	Events    []flinkEvent `json:"events"`
	// ExpectedMatches lists the matches in emission order.
	ExpectedMatches []flinkMatch `json:"expected_matches"`
	// ExpectedMatchEmittedAt gives, per match, the id of the event at whose
	// processing Flink emitted it; nil means the final end-of-input advance.
	ExpectedMatchEmittedAt []*int `json:"expected_match_emitted_at"`
	// ExpectedTimeouts is nil when the Flink test does not inspect timed-out
	// partial matches: then nothing is known about them.
	ExpectedTimeouts          *[]flinkMatch `json:"expected_timeouts"`
	ExpectedTimeoutTimestamps []int64       `json:"expected_timeout_timestamps"`
	ExpectedTimeoutEmittedAt  []*int        `json:"expected_timeout_emitted_at"`
	MatchOrderSignificant     bool          `json:"match_order_significant"`
	Assertion                 string        `json:"assertion"`
	Notes                     string        `json:"notes"`
	CELExtensions             []string      `json:"cel_extensions"`
	// Harness is empty for NFA-level tests, else operator_event_time or
	// operator_processing_time.
	Harness    string `json:"harness"`
	Watermarks string `json:"watermarks"`

	// Raw is the case as written in the file.
	Raw json.RawMessage `json:"-"`
}

// Harnesses of cases.json.
const (
	harnessNFA            = ""
	harnessEventTime      = "operator_event_time"
	harnessProcessingTime = "operator_processing_time"
)

// Window types of cases.json.
const (
	withinFirstAndLast       = "first_and_last"
	withinPreviousAndCurrent = "previous_and_current"
)

// flinkStep is one step of a case's pattern, or a group of steps (Flink's
// GroupPattern: Pattern.begin(Pattern) / followedBy(Pattern) / next(Pattern)
// / followedByAny(Pattern)): Group names it (Flink's groups have no name of
// their own, the case gives one) and Steps holds its steps; the quantifier
// and contiguity fields then apply to the group.
type flinkStep struct {
	Name           string      `json:"name,omitempty"`
	Group          string      `json:"group,omitempty"`
	Steps          []flinkStep `json:"steps,omitempty"`
	Where          string      `json:"where"`
	Contiguity     string      `json:"contiguity"`
	Negated        bool        `json:"negated"`
	Min            int         `json:"min"`
	Max            *int        `json:"max"` // nil: unbounded
	Optional       bool        `json:"optional"`
	Greedy         bool        `json:"greedy"`
	LoopContiguity string      `json:"loop_contiguity"`
	Until          *string     `json:"until"`
}

// flinkEvent is one input record. The payload fields stay raw JSON so that
// the event file carries the numbers exactly as written: price 1.0 must stay
// a double for CEL (1 would decode as an int, and int + double is a CEL
// error).
type flinkEvent struct {
	ID      int             `json:"id"`
	FlinkID json.RawMessage `json:"flink_id"`
	Type    json.RawMessage `json:"type"`
	Name    json.RawMessage `json:"name,omitempty"`
	Price   json.RawMessage `json:"price,omitempty"`
	Volume  json.RawMessage `json:"volume,omitempty"`
	F0      json.RawMessage `json:"f0,omitempty"`
	F1      json.RawMessage `json:"f1,omitempty"`
	TS      *int64          `json:"ts"`
}

// stepIDs is the part of a match one step took: event ids in match order.
type stepIDs struct {
	Step string
	IDs  []int
}

// flinkMatch is a match as an ordered list of steps: the order of the keys is
// part of what testNFAResultKeyOrdering asserts, so a Go map would lose it.
type flinkMatch []stepIDs

// UnmarshalJSON decodes {"step": [ids…], …} keeping the key order.
func (m *flinkMatch) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	*m = (*m)[:0]
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("decode match: %w", err)
		}
		step, ok := tok.(string)
		if !ok {
			return fmt.Errorf("decode match: key %v is not a string", tok)
		}
		var ids []int
		if err := dec.Decode(&ids); err != nil {
			return fmt.Errorf("decode match step %q: %w", step, err)
		}
		*m = append(*m, stepIDs{Step: step, IDs: ids})
	}
	return expectDelim(dec, '}')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("decode: got %v, want %q", tok, want)
	}
	return nil
}

// String renders the match compactly, steps in their order and ids in
// theirs, e.g. "start:1 middle:2,3 end:4". Diffs compare these strings, so
// both the step assignment and the order inside a step are compared.
func (m flinkMatch) String() string {
	var sb strings.Builder
	for i, s := range m {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(s.Step)
		sb.WriteByte(':')
		for j, id := range s.IDs {
			if j > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(strconv.Itoa(id))
		}
	}
	if len(m) == 0 {
		return "(empty)"
	}
	return sb.String()
}

// ids returns every event id of the match.
func (m flinkMatch) ids() []int {
	var out []int
	for _, s := range m {
		out = append(out, s.IDs...)
	}
	return out
}

// loadCases reads and checks the case file. It is strict about unknown
// fields so that a newer case file with fields this test ignores fails
// loudly instead of being half understood.
func loadCases(path string) ([]*flinkCase, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load cases: %w", err)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(b, &raws); err != nil {
		return nil, fmt.Errorf("load cases %s: %w", path, err)
	}
	cases := make([]*flinkCase, 0, len(raws))
	seen := map[string]bool{}
	for i, raw := range raws {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		c := &flinkCase{Raw: raw}
		if err := dec.Decode(c); err != nil {
			return nil, fmt.Errorf("load cases %s: case %d: %w", path, i+1, err)
		}
		cases = append(cases, c)
		if err := c.check(); err != nil {
			return nil, fmt.Errorf("load cases %s: case %q: %w", path, c.ID, err)
		}
		if seen[c.ID] {
			return nil, fmt.Errorf("load cases %s: duplicate case id %q", path, c.ID)
		}
		seen[c.ID] = true
	}
	return cases, nil
}

// check verifies the invariants the converter and comparator rely on.
func (c *flinkCase) check() error {
	if len(c.Steps) == 0 {
		return fmt.Errorf("no steps")
	}
	for i, e := range c.Events {
		if e.ID != i+1 {
			return fmt.Errorf("event %d has id %d, want ids 1..n in feed order", i+1, e.ID)
		}
	}
	if len(c.ExpectedMatchEmittedAt) != len(c.ExpectedMatches) {
		return fmt.Errorf("%d emission points for %d matches", len(c.ExpectedMatchEmittedAt), len(c.ExpectedMatches))
	}
	if c.ExpectedTimeouts != nil && c.ExpectedTimeoutEmittedAt != nil &&
		len(c.ExpectedTimeoutEmittedAt) != len(*c.ExpectedTimeouts) {
		return fmt.Errorf("%d timeout emission points for %d timeouts", len(c.ExpectedTimeoutEmittedAt), len(*c.ExpectedTimeouts))
	}
	switch c.Harness {
	case harnessNFA, harnessEventTime, harnessProcessingTime:
	default:
		return fmt.Errorf("unknown harness %q", c.Harness)
	}
	switch c.Within {
	case "", withinFirstAndLast:
	case withinPreviousAndCurrent:
		if c.stepIndex(c.WithinFor) < 0 {
			return fmt.Errorf("within_step %q is not a step", c.WithinFor)
		}
	default:
		return fmt.Errorf("unknown within_type %q", c.Within)
	}
	for _, m := range c.ExpectedMatches {
		for _, s := range m {
			if c.stepIndex(s.Step) < 0 {
				return fmt.Errorf("expected match names unknown step %q", s.Step)
			}
		}
	}
	return nil
}

// stepIndex returns the index of the Flink step name among the steps that
// take events (eventSteps), or -1.
func (c *flinkCase) stepIndex(name string) int {
	for i, s := range c.eventSteps() {
		if s.Name == name {
			return i
		}
	}
	return -1
}

// eventSteps lists the case's steps in pattern order, the steps of groups
// in place of the groups: the steps a match names.
func (c *flinkCase) eventSteps() []flinkStep {
	var out []flinkStep
	var walk func(steps []flinkStep)
	walk = func(steps []flinkStep) {
		for _, s := range steps {
			if s.Group != "" {
				walk(s.Steps)
				continue
			}
			out = append(out, s)
		}
	}
	walk(c.Steps)
	return out
}

// perStepWindow reports whether the case's window is Flink's
// WithinType.PREVIOUS_AND_CURRENT, which Shrike writes as a step's within.
func (c *flinkCase) perStepWindow() bool {
	return c.WithinMS != nil && c.Within == withinPreviousAndCurrent
}

// endsWithNot reports whether the pattern ends in a negated step (notNext
// or notFollowedBy at the end).
func (c *flinkCase) endsWithNot() bool {
	return c.Steps[len(c.Steps)-1].Negated
}
