package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// shrikeRun is what one replay produced.
type shrikeRun struct {
	// Alerts is Shrike's alert output, one JSON object per line, in emission
	// order: the bytes `shrike run` prints.
	Alerts []byte
	// Late counts events that arrived behind the watermark.
	Late int
}

// replayClock stamps detected_at: a fixed time keeps the output
// reproducible.
func replayClock() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }

// runShrike replays the generated event file against the generated ruleset
// through cep.Replay, the driver of `shrike run`, and returns its output. A
// panic inside Shrike becomes this case's error, so that it does not abort
// the other cases.
func runShrike(g *generated) (run *shrikeRun, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("shrike panicked: %v\n%s", r, debug.Stack())
		}
	}()
	compiled, err := rules.Load(rulesetFile, g.Ruleset, rules.CompileOptions{})
	if err != nil {
		return nil, fmt.Errorf("load ruleset: %w", err)
	}
	var alerts, reports bytes.Buffer
	sum, err := cep.Replay(context.Background(), cep.ReplayOptions{
		Rulesets: []*rules.Compiled{compiled},
		Inputs:   []cep.Input{{Name: eventsFile, R: bytes.NewReader(g.Events)}},
		Alerts:   &alerts,
		Reports:  &reports,
		Clock:    replayClock,
	})
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	// Every line is a well-formed event with a time: a dead-lettered line
	// means the replay path lost an event the Flink test matched.
	if sum.DeadLettered > 0 {
		return nil, fmt.Errorf("replay dead-lettered %d lines:\n%s", sum.DeadLettered, reports.String())
	}
	if sum.Events != uint64(len(g.Times)) {
		return nil, fmt.Errorf("replay took %d events, want %d", sum.Events, len(g.Times))
	}
	if err := sameTraced(compiled, g, alerts.Bytes()); err != nil {
		return nil, err
	}
	return &shrikeRun{Alerts: alerts.Bytes(), Late: int(sum.Late)}, nil
}

// sameTraced replays the case again with a matcher.Tracer on its key (the
// events carry none: every record has the empty key) and checks that
// tracing changed nothing: `shrike explain` must show what `shrike run`
// does.
func sameTraced(compiled *rules.Compiled, g *generated, want []byte) error {
	var alerts bytes.Buffer
	seen := 0
	tracer := matcher.NewTracer("", func(ev *matcher.TraceEvent) {
		if ev.Kind == matcher.TraceRecord || ev.Kind == matcher.TraceLate {
			seen++
		}
	})
	if _, err := cep.Replay(context.Background(), cep.ReplayOptions{
		Rulesets: []*rules.Compiled{compiled},
		Inputs:   []cep.Input{{Name: eventsFile, R: bytes.NewReader(g.Events)}},
		Alerts:   &alerts,
		Clock:    replayClock,
		Tracer:   tracer,
	}); err != nil {
		return fmt.Errorf("traced replay: %w", err)
	}
	if seen != len(g.Times) {
		return fmt.Errorf("the tracer saw %d records, want %d", seen, len(g.Times))
	}
	if !bytes.Equal(alerts.Bytes(), want) {
		return fmt.Errorf("tracing changed the alerts:\nuntraced:\n%s\ntraced:\n%s", want, alerts.Bytes())
	}
	return nil
}

// shrikeAlert is one alert of Shrike's output in Flink's terms.
type shrikeAlert struct {
	Timeout bool
	// Match has Flink step names and event ids, in the alert's own order.
	Match flinkMatch
	// Line is the alert as Shrike printed it, for failure messages.
	Line string
}

// decodeAlerts parses Shrike's alert lines and maps them back: steps to
// their Flink names, events to their ids.
func decodeAlerts(out []byte, g *generated) ([]shrikeAlert, error) {
	var alerts []shrikeAlert
	for i, line := range bytes.Split(out, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		a, err := decodeAlert(line, g)
		if err != nil {
			return nil, fmt.Errorf("alert line %d: %w: %s", i+1, err, line)
		}
		alerts = append(alerts, a)
	}
	return alerts, nil
}

func decodeAlert(line []byte, g *generated) (shrikeAlert, error) {
	var a struct {
		Ruleset string          `json:"ruleset"`
		Rule    string          `json:"rule"`
		Timeout bool            `json:"timeout"`
		Events  json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(line, &a); err != nil {
		return shrikeAlert{}, fmt.Errorf("decode alert: %w", err)
	}
	if a.Ruleset != rulesetName || a.Rule != ruleID {
		return shrikeAlert{}, fmt.Errorf("alert of %s/%s, want %s/%s", a.Ruleset, a.Rule, rulesetName, ruleID)
	}
	dec := json.NewDecoder(bytes.NewReader(a.Events))
	if err := expectDelim(dec, '{'); err != nil {
		return shrikeAlert{}, fmt.Errorf("events: %w", err)
	}
	var m flinkMatch
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return shrikeAlert{}, fmt.Errorf("events: %w", err)
		}
		step, _ := tok.(string)
		flink, ok := g.ToFlink[step]
		if !ok {
			return shrikeAlert{}, fmt.Errorf("events: unknown step %q", step)
		}
		var evs []struct {
			ID *int `json:"id"`
		}
		if err := dec.Decode(&evs); err != nil {
			return shrikeAlert{}, fmt.Errorf("events of step %q: %w", step, err)
		}
		s := stepIDs{Step: flink}
		for _, e := range evs {
			if e.ID == nil {
				return shrikeAlert{}, fmt.Errorf("events of step %q: an event without id", step)
			}
			s.IDs = append(s.IDs, *e.ID)
		}
		m = append(m, s)
	}
	if err := expectDelim(dec, '}'); err != nil {
		return shrikeAlert{}, fmt.Errorf("events: %w", err)
	}
	return shrikeAlert{Timeout: a.Timeout, Match: m, Line: string(line)}, nil
}
