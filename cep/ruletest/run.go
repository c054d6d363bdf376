package ruletest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// DefaultClock is the time alerts of a test are detected at: fixed, so
// that a test's alerts are the same on every run.
var DefaultClock = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// MaxDeadLetters bounds the dead-lettered events a TestResult describes
// one by one; the rest are counted.
const MaxDeadLetters = 20

// maxListed bounds the missing and unexpected alerts a report lists per
// test, so that a test over a large recording stays readable.
const maxListed = 50

// Options configure File.Run. Zero values are the documented defaults.
type Options struct {
	// Run selects the tests whose name it matches; nil runs them all.
	Run *regexp.Regexp
	// Clock stamps the alerts' detected_at. Default: always DefaultClock.
	Clock func() time.Time
	// MaxRunsPerKey caps each rule's partial matches per key. Default: the
	// matcher's.
	MaxRunsPerKey int
	// WrapEvents, when set, wraps the reader of each events file: `shrike
	// test` draws its progress bar through it. size is the file's size in
	// bytes (compressed for .gz). The wrapper must return the same bytes.
	WrapEvents func(name string, size int64, r io.Reader) io.Reader
	// Lists are the items of managed lists for the tests that give them
	// none (neither the test nor its file): `shrike test --list`. A
	// managed list given items nowhere is empty.
	Lists map[string][]string
}

// FileResult is the outcome of one test file.
type FileResult struct {
	// Path is the test file as given.
	Path string
	// LoadErr is set when the file could not be loaded; Tests is then
	// empty. A rules.ErrorList holds every problem with its position.
	LoadErr error
	// Tests are the selected tests' results in source order.
	Tests []*TestResult
	// Elapsed is the wall time the tests took.
	Elapsed time.Duration
}

// Failed counts the failed tests.
func (r *FileResult) Failed() int {
	n := 0
	for _, t := range r.Tests {
		if t.Failed() {
			n++
		}
	}
	return n
}

// OK reports whether the file loaded and every selected test passed.
func (r *FileResult) OK() bool { return r.LoadErr == nil && r.Failed() == 0 }

// TestResult is the outcome of one test.
type TestResult struct {
	Name string
	Pos  rules.Pos
	// Err is set when the test could not run (its events file could not be
	// read); the comparison is then empty.
	Err error
	// DeadLetters are the first MaxDeadLetters of the test's events that
	// could not be used; DeadLettered counts them all.
	DeadLetters  []DeadLetter
	DeadLettered int
	// Missing are the expected alerts no actual alert matched, each with
	// the closest actual alert of the same rule and key when there is one.
	Missing []*Miss
	// Unexpected are the compared alerts no expectation matched (a near
	// miss is reported with its Miss only).
	Unexpected []*Alert
	// Alerts counts the compared alerts: all alerts, or those of the rules
	// in the test's only list.
	Alerts int
	// Late counts events behind the watermark, not matched: a hint when a
	// test fails, not a failure.
	Late uint64
	// TooFarAhead are the first MaxDeadLetters events the test's
	// max_clock_skew refused, TooFarAheadCount counts them all. The test
	// asked for the guard, so they are reported, not a failure: its
	// expectations say whether the alerts came as without them.
	TooFarAhead      []DeadLetter
	TooFarAheadCount int
	// Elapsed is the wall time of the test.
	Elapsed time.Duration
}

// Failed reports whether the test failed.
func (r *TestResult) Failed() bool {
	return r.Err != nil || r.DeadLettered > 0 || len(r.Missing) > 0 || len(r.Unexpected) > 0
}

// DeadLetter is an event of a test that could not be used.
type DeadLetter struct {
	// Pos is where the event is: in the test file for inline events (with
	// Event its number), in the events file for recorded ones (Col 0).
	Pos    rules.Pos
	Event  int
	Reason string
}

// Miss is an expected alert that did not come.
type Miss struct {
	Expected *Expected
	// Closest is the unmatched alert of the same rule and key, if any: the
	// alert was probably meant, and Diffs say how it differs.
	Closest *Alert
	Diffs   []string
}

// Alert is an actual alert as a test compares it.
type Alert struct {
	Ruleset, Rule, Key string
	Severity           rules.Severity
	Summary            string
	Labels             map[string]string
	Timeout            bool
	Measures           []matcher.Measure
	Steps              []*AlertStep
}

// AlertStep are the events one step of an alert took.
type AlertStep struct {
	Step   string
	Events []*AlertEvent
}

// AlertEvent is one matched event: its number in the test and its JSON.
type AlertEvent struct {
	Line int64
	JSON []byte
	v    any // decoded on first comparison
}

func (e *AlertEvent) value() any {
	if e.v == nil {
		v, err := decodeJSON(e.JSON)
		if err != nil {
			v = struct{}{} // never equal to a matcher: the diff shows the JSON
		}
		e.v = v
	}
	return e.v
}

// Run runs the file's selected tests, one after another, each on its own
// replay. The error is for what stops the whole file (ctx ending); a test
// that cannot run has its TestResult.Err set instead.
func (f *File) Run(ctx context.Context, opts Options) (*FileResult, error) {
	start := time.Now()
	res := &FileResult{Path: f.Path}
	for _, t := range f.Tests {
		if opts.Run != nil && !opts.Run.MatchString(t.Name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("run tests: %w", err)
		}
		tr := f.runTest(ctx, t, opts)
		if errors.Is(tr.Err, context.Canceled) || errors.Is(tr.Err, context.DeadlineExceeded) {
			return res, fmt.Errorf("run tests: %w", tr.Err)
		}
		res.Tests = append(res.Tests, tr)
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

func (f *File) runTest(ctx context.Context, t *Test, opts Options) *TestResult {
	start := time.Now()
	tr := &TestResult{Name: t.Name, Pos: t.Pos}
	defer func() { tr.Elapsed = time.Since(start) }()

	f.setLists(t, opts)
	in, closeIn, err := f.input(t, opts)
	if err != nil {
		tr.Err = err
		return tr
	}
	defer closeIn()
	clock := opts.Clock
	if clock == nil {
		clock = func() time.Time { return DefaultClock }
	}
	var actual []*Alert
	sum, err := cep.Replay(ctx, cep.ReplayOptions{
		Rulesets:      f.Rulesets,
		Inputs:        []cep.Input{in},
		MaxRunsPerKey: opts.MaxRunsPerKey,
		MaxClockSkew:  t.MaxClockSkew,
		Clock:         clock,
		OnAlert:       func(a *matcher.Alert) { actual = append(actual, newAlert(a)) },
		OnDeadLetter: func(file string, line int64, reason error) {
			if errors.Is(reason, cep.ErrClockSkew) {
				if tr.TooFarAheadCount++; len(tr.TooFarAhead) < MaxDeadLetters {
					tr.TooFarAhead = append(tr.TooFarAhead, f.deadLetter(t, file, line, reason))
				}
				return
			}
			// A broken recording can hold millions of bad lines: keep the
			// first, count the rest.
			if tr.DeadLettered++; len(tr.DeadLetters) < MaxDeadLetters {
				tr.DeadLetters = append(tr.DeadLetters, f.deadLetter(t, file, line, reason))
			}
		},
	})
	if err != nil {
		tr.Err = err
		return tr
	}
	tr.Late = sum.Late
	compare(tr, t, actual)
	return tr
}

// input builds the test's one replay input: the events file, or the inline
// events as JSON lines, line i holding event i so that positions are event
// numbers.
func (f *File) input(t *Test, opts Options) (cep.Input, func(), error) {
	if t.EventsFile != "" {
		fh, err := os.Open(t.EventsFile)
		if err != nil {
			return cep.Input{}, nil, fmt.Errorf("open events: %w", err)
		}
		var r io.Reader = fh
		if opts.WrapEvents != nil {
			size := int64(-1)
			if fi, err := fh.Stat(); err == nil {
				size = fi.Size()
			}
			r = opts.WrapEvents(t.EventsFile, size, fh)
		}
		return cep.Input{Name: t.EventsFile, R: r}, func() { _ = fh.Close() }, nil
	}
	var buf bytes.Buffer
	for _, ev := range t.Events {
		if !ev.Record {
			buf.Write(ev.JSON)
			buf.WriteByte('\n')
			continue
		}
		// A record is written as a kcat -J envelope, the form recorded
		// Kafka traffic takes, so Replay keys and times it the same way.
		buf.WriteString(`{"topic":`)
		buf.Write(appendJSONString(nil, ev.Topic))
		if ev.HasKey {
			buf.WriteString(`,"key":`)
			buf.Write(appendJSONString(nil, ev.Key))
		}
		if ev.HasTime {
			buf.WriteString(`,"ts":`)
			buf.WriteString(strconv.FormatInt(ev.TimeMillis, 10))
		}
		buf.WriteString(`,"payload":`)
		payload, _ := json.Marshal(string(ev.JSON))
		buf.Write(payload)
		buf.WriteString("}\n")
	}
	// The name only reaches alert ids, by its base name (Input.Source):
	// the test's position keeps it apart from other tests and from any
	// events file.
	name := fmt.Sprintf("%s:%d", f.Path, t.Pos.Line)
	return cep.Input{Name: name, R: &buf}, func() {}, nil
}

func (f *File) deadLetter(t *Test, file string, line int64, reason error) DeadLetter {
	if t.EventsFile != "" || line < 1 || line > int64(len(t.Events)) {
		return DeadLetter{Pos: rules.Pos{File: file, Line: int(line)}, Reason: reason.Error()}
	}
	return DeadLetter{Pos: t.Events[line-1].Pos, Event: int(line), Reason: reason.Error()}
}

// newAlert keeps what a comparison needs of a matcher alert. The event
// bytes are shared with the matcher, which never reuses them.
func newAlert(a *matcher.Alert) *Alert {
	out := &Alert{
		Ruleset: a.Ruleset, Rule: a.Rule, Key: a.Key,
		Severity: a.Severity, Summary: a.Summary, Labels: a.Labels, Timeout: a.Timeout,
		Measures: slices.Clone(a.Measures),
	}
	for _, s := range a.Steps {
		st := &AlertStep{Step: s.Step}
		for _, r := range s.Records {
			st.Events = append(st.Events, &AlertEvent{Line: r.Pos.Offset, JSON: r.Event.Raw()})
		}
		out.Steps = append(out.Steps, st)
	}
	return out
}
