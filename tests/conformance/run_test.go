package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"runtime/debug"
	"time"

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
// the way `shrike run` does. A panic inside Shrike becomes this case's
// error, so that it does not abort the other cases.
//
// TODO(conformance): switch to cep.Replay as soon as it lands, so that the
// test goes through the very code of `shrike run`; until then this drives
// rules.Load and one matcher.Partition the way the replay driver is
// specified to (one partition, record key "", time from the stream's time
// expression, positions file+line, watermark +inf at the end).
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
	prog, err := matcher.NewProgram([]*rules.Compiled{compiled})
	if err != nil {
		return nil, fmt.Errorf("build program: %w", err)
	}
	out := &collector{}
	part, err := matcher.NewPartition(prog, out, matcher.Options{
		MaxOutOfOrderness: compiled.Stream.MaxOutOfOrderness,
		Clock:             replayClock,
	})
	if err != nil {
		return nil, fmt.Errorf("new partition: %w", err)
	}
	for i, line := range bytes.SplitAfter(g.Events, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		// ParseEvent keeps the slice and partial matches keep the event:
		// give it its own copy.
		ev, err := rules.ParseEvent(bytes.Clone(line))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", eventsFile, i+1, err)
		}
		if compiled.Time == nil {
			return nil, fmt.Errorf("ruleset has no time expression")
		}
		ts, err := compiled.Time.EvalTime(ev)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: event time: %w", eventsFile, i+1, err)
		}
		key := ""
		if compiled.Key != nil {
			if key, err = compiled.Key.EvalKey(ev); err != nil {
				return nil, fmt.Errorf("%s:%d: key: %w", eventsFile, i+1, err)
			}
		}
		part.Push(&matcher.Record{
			Event: ev,
			Key:   key,
			Time:  ts,
			Pos:   matcher.Position{Source: eventsFile, Offset: int64(i + 1)},
		})
	}
	part.Advance(math.MaxInt64)
	return &shrikeRun{Alerts: out.buf.Bytes(), Late: out.late}, nil
}

// collector is the matcher.Output of runShrike: it prints alerts as
// `shrike run` does and counts late records.
type collector struct {
	buf  bytes.Buffer
	late int
}

func (c *collector) Alert(a *matcher.Alert) {
	c.buf.Write(a.AppendJSON(nil))
	c.buf.WriteByte('\n')
}

func (c *collector) Late(*matcher.Record) { c.late++ }

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
