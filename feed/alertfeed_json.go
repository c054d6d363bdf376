package feed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// alertJSON is the alert JSON of docs/design.md#alerts as matcher.Alert.AppendJSON
// writes it; events are decoded apart to keep the steps' order.
type alertJSON struct {
	ID          string            `json:"id"`
	Ruleset     string            `json:"ruleset"`
	Rule        string            `json:"rule"`
	RuleVersion string            `json:"rule_version"`
	Severity    string            `json:"severity"`
	Key         string            `json:"key"`
	Summary     string            `json:"summary"`
	Labels      map[string]string `json:"labels"`
	Start       time.Time         `json:"start"`
	End         time.Time         `json:"end"`
	DetectedAt  time.Time         `json:"detected_at"`
	Timeout     bool              `json:"timeout"`
	Shadow      bool              `json:"shadow"`
	Events      json.RawMessage   `json:"events"`
	Truncated   []string          `json:"truncated"`
	Measures    json.RawMessage   `json:"measures"`
	Window      *struct {
		Start time.Time `json:"start"`
		End   time.Time `json:"end"`
	} `json:"window"`
}

// ParseAlert decodes one alert JSON object (docs/design.md#alerts), as the engine
// writes it to the alerts topic and `shrike run` prints it, back into a
// matcher.Alert. Steps keep the order of the JSON; each step's records
// hold the events' original bytes and the alert's key, with no time or
// position (the JSON has none), so the id is taken as written, not
// recomputed. Unknown fields are ignored, so that alerts of a later
// version still decode.
func ParseAlert(raw []byte) (*matcher.Alert, error) {
	var j alertJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, fmt.Errorf("parse alert: %w", err)
	}
	if j.ID == "" || j.Ruleset == "" || j.Rule == "" {
		return nil, errors.New("parse alert: no id, ruleset or rule")
	}
	a := &matcher.Alert{
		ID:          j.ID,
		Ruleset:     j.Ruleset,
		Rule:        j.Rule,
		RuleVersion: j.RuleVersion,
		Severity:    rules.Severity(j.Severity),
		Key:         j.Key,
		Summary:     j.Summary,
		Labels:      j.Labels,
		Start:       j.Start,
		End:         j.End,
		DetectedAt:  j.DetectedAt,
		Timeout:     j.Timeout,
		Shadow:      j.Shadow,
		Truncated:   j.Truncated,
	}
	if j.Window != nil {
		a.WindowStart, a.WindowEnd = j.Window.Start, j.Window.End
	}
	ms, err := parseMeasures(j.Measures)
	if err != nil {
		return nil, fmt.Errorf("parse alert %s: %w", j.ID, err)
	}
	a.Measures = ms
	steps, err := parseAlertEvents(j.Events, j.Key)
	if err != nil {
		return nil, fmt.Errorf("parse alert %s: %w", j.ID, err)
	}
	a.Steps = steps
	return a, nil
}

// parseMeasures decodes an aggregate alert's "measures" object in the
// object's order: integers as counts, null as no value.
func parseMeasures(raw json.RawMessage) ([]matcher.Measure, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("measures: not an object")
	}
	var out []matcher.Measure
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("measures: %w", err)
		}
		name, _ := t.(string)
		v, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("measures: %s: %w", name, err)
		}
		m := matcher.Measure{Name: name}
		switch x := v.(type) {
		case nil:
			m.None = true
		case json.Number:
			f, err := x.Float64()
			if err != nil {
				return nil, fmt.Errorf("measures: %s: %w", name, err)
			}
			m.Value = f
			_, intErr := x.Int64()
			m.Int = intErr == nil
		default:
			return nil, fmt.Errorf("measures: %s: not a number", name)
		}
		out = append(out, m)
	}
	return out, nil
}

// parseAlertEvents decodes the "events" object, step by step in the
// object's order.
func parseAlertEvents(raw json.RawMessage, key string) ([]matcher.StepRecords, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("events: not an object")
	}
	var steps []matcher.StepRecords
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("events: %w", err)
		}
		step, _ := t.(string)
		var evs []json.RawMessage
		if err := dec.Decode(&evs); err != nil {
			return nil, fmt.Errorf("events: step %q: %w", step, err)
		}
		sr := matcher.StepRecords{Step: step, Records: make([]*matcher.Record, len(evs))}
		for i, ev := range evs {
			e, err := rules.ParseEvent(bytes.Clone(ev))
			if err != nil {
				return nil, fmt.Errorf("events: step %q: event %d: %w", step, i, err)
			}
			sr.Records[i] = &matcher.Record{Event: e, Key: key}
		}
		steps = append(steps, sr)
	}
	if _, err := dec.Token(); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("events: %w", err)
	}
	return steps, nil
}
