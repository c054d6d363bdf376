package explain

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes the trace as JSON lines, one Entry per line, the
// verdicts last.
func (r *Result) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := range r.Entries {
		if err := enc.Encode(&r.Entries[i]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// printf writes to a buffered writer, which keeps the first error for its
// Flush to return: the writes need no check of their own.
func printf(w io.Writer, format string, args ...any) {
	_, _ = fmt.Fprintf(w, format, args...)
}

// maxTextEvent is how much of an event's JSON a text trace shows.
const maxTextEvent = 120

// WriteText writes the trace for people: one aligned line per entry (time,
// position, rule, what happened), then the verdicts.
func (r *Result) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	printf(bw, "key %s: %d records matched", r.Key, r.records())
	if r.Summary.Late > 0 {
		printf(bw, " (%d late records in the whole input)", r.Summary.Late)
	}
	printf(bw, "\n\n")
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	printf(tw, "TIME\tPOSITION\tRULE\tWHAT\n")
	var verdicts []Entry
	for _, e := range r.Entries {
		if e.Type == TypeVerdict {
			verdicts = append(verdicts, e)
			continue
		}
		t := e.Time
		if t == "" {
			t = e.At
		}
		printf(tw, "%s\t%s\t%s\t%s\n", dash(t), dash(e.Position), dash(e.Rule), describe(e))
	}
	switch {
	case r.Omitted > 0:
		printf(tw, "\t\t\t… %d more entries left out (--max-entries)\n", r.Omitted)
	case r.Truncated:
		printf(tw, "\t\t\t… more entries left out (the server's bound)\n")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printf(bw, "\nverdicts\n")
	tw = tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	for _, v := range verdicts {
		printf(tw, "  %s/%s\t%s\n", v.Ruleset, v.Rule, verdictText(v))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}

func (r *Result) records() int {
	for _, e := range r.Entries {
		if e.Type == TypeVerdict && e.RecordsOfKey != nil {
			return *e.RecordsOfKey
		}
	}
	n := 0
	for _, e := range r.Entries {
		if e.Type == TypeEvent {
			n++
		}
	}
	return n
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runName(run int) string {
	if run == 0 {
		return "a new match"
	}
	return "run #" + strconv.Itoa(run)
}

func of(index, steps int) string {
	if steps == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d of %d)", index, steps)
}

// describe says what an entry reports, in one line.
func describe(e Entry) string {
	switch e.Type {
	case TypeEvent:
		ev := e.Event
		if len(ev) > maxTextEvent || e.EventCut {
			ev = ev[:min(len(ev), maxTextEvent)] + "…"
		}
		return "record " + ev
	case TypeLate:
		return "late: behind the watermark " + e.Watermark + ", not matched"
	case TypeCondition:
		where := "step " + e.Step
		switch {
		case e.Role == "until":
			where += " until"
		case e.Role == "when":
			where = "when"
		case e.Step == "":
			where = e.Role // an aggregate rule's where
		}
		res := e.Result
		if e.Error != "" {
			res = "error: " + e.Error
		}
		if e.Step == "" && e.Role == "where" {
			return fmt.Sprintf("%s: %s → %s", where, e.Condition, res) // an aggregate's: no match
		}
		return fmt.Sprintf("%s: %s → %s, for %s", where, e.Condition, res, runName(e.Run))
	case TypeRun:
		return describeRun(e)
	case TypeAlert:
		what := "alert "
		if e.Timeout {
			what = "timeout alert "
		}
		s := what + e.AlertID
		if e.Run > 0 {
			s += " from " + runName(e.Run)
		}
		return s
	case TypeAggregate:
		res := e.Result
		if e.Error != "" {
			res = "error: " + e.Error
		}
		n := 0
		if e.Counted != nil {
			n = *e.Counted
		}
		return fmt.Sprintf("counted: %d in window %s..%s, %s; having %s → %s", n, e.WindowStart, e.WindowEnd, measuresText(e.Measures), e.Condition, res)
	case TypeSuppressed:
		s := "alert"
		if e.Run > 0 {
			s += " from " + runName(e.Run)
		}
		s += " suppressed until " + e.Until
		if e.SuppressedBy != "" {
			s += " (after alert " + e.SuppressedBy + ")"
		}
		return s
	}
	return e.Type
}

func describeRun(e Entry) string {
	name := runName(e.Run)
	if e.From > 0 {
		name += " (split from run #" + strconv.Itoa(e.From) + ")"
	}
	waits := ""
	if e.NextStep != "" {
		waits = "; waits at " + e.NextStep
	}
	switch e.Action {
	case "started":
		return fmt.Sprintf("%s started at step %s%s%s", name, e.Step, of(e.StepIndex, e.Steps), waits)
	case "took":
		return fmt.Sprintf("%s took it at step %s%s%s", name, e.Step, of(e.StepIndex, e.Steps), waits)
	case "ignored":
		return fmt.Sprintf("%s skipped it%s", name, waits)
	case "completed":
		return fmt.Sprintf("%s completed%s: a match", name, of(e.StepIndex, e.Steps))
	}
	return name + " ended: " + endText(e.Reason, e.Window, e.WindowOf, e.Since, e.Deadline, e.At, e.NegatedStep, e.NextStep)
}

// endText says why a partial match ended.
func endText(reason, window, windowOf, since, deadline, at, negated, next string) string {
	switch reason {
	case "window_expired", "timed_out":
		s := fmt.Sprintf("the %s's within %s expired (", windowOf, window)
		if since != "" {
			s += "since " + since + ", "
		}
		if at == "" {
			s += "deadline " + deadline + ", noticed at the end of the input)"
		} else {
			s += fmt.Sprintf("deadline %s, noticed at %s)", deadline, at)
		}
		if reason == "timed_out" {
			s += "; a timeout alert follows"
		}
		return s
	case "contiguity_broken":
		return "strict contiguity broken: the record does not fit step " + next + ", which allows nothing in between"
	case "negation":
		return "the not step " + negated + " matched"
	case "skip_pruned":
		return "pruned by the rule's skip strategy after an earlier match"
	case "cap_dropped":
		return "dropped by the cap on partial matches per key (the oldest go first)"
	case ReasonOpen:
		return "still open at the end of the input"
	case "completed":
		return "completed, but no alert of its own (pruned or held)"
	}
	return reason
}

func verdictText(v Entry) string {
	if v.Verdict == VerdictFired {
		n := 0
		if v.Fired != nil {
			n = *v.Fired
		}
		times := "times"
		if n == 1 {
			times = "time"
		}
		s := fmt.Sprintf("fired %d %s: %s", n, times, strings.Join(v.AlertIDs, ", "))
		if v.Suppressed > 0 {
			s += fmt.Sprintf("; %d more suppressed (alert.suppress)", v.Suppressed)
		}
		return s
	}
	if v.Counted != nil {
		if *v.Counted == 0 {
			return "did not fire: no record counted (where)"
		}
		return fmt.Sprintf("did not fire: having held at none of %d counted records; last %s", *v.Counted, measuresText(v.Measures))
	}
	f := v.Furthest
	if f == nil {
		if v.UnmetStep != "" {
			return "did not fire: no partial match started; unmet step " + v.UnmetStep
		}
		return "did not fire: its condition never held"
	}
	var pos []string
	for _, h := range f.Events {
		pos = append(pos, h.Step+"@"+h.Position)
	}
	s := fmt.Sprintf("did not fire: furthest was run #%d, at step %s%s holding %s; ended: %s",
		f.Run, f.Step, of(f.StepIndex, f.Steps), strings.Join(pos, " "),
		endText(f.Reason, f.Window, f.WindowOf, "", f.Deadline, f.At, f.NegatedStep, f.NextStep))
	if v.UnmetStep != "" {
		s += "; unmet step " + v.UnmetStep
	}
	return s
}

// measuresText writes measures as name=value, sorted by name.
func measuresText(ms map[string]*float64) string {
	names := make([]string, 0, len(ms))
	for n := range ms {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		v := "null"
		if ms[n] != nil {
			v = strconv.FormatFloat(*ms[n], 'g', -1, 64)
		}
		parts[i] = n + "=" + v
	}
	return strings.Join(parts, " ")
}
