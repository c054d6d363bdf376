package ruletest

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
)

// ReportOptions configure WriteReport.
type ReportOptions struct {
	// Color marks SUCCESS, FAILED and the diff headings with ANSI colours;
	// for terminals only.
	Color bool
}

const (
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiBold   = "\x1b[1m"
	ansiReset  = "\x1b[0m"
)

// WriteReport prints results the way `promtool test rules` does: per file
// "Unit Testing: FILE" then "  SUCCESS" or "  FAILED:" with, per failed
// test, its file:line and name and what went wrong; then one line of
// totals. A file that could not be loaded lists its errors as `shrike
// check` prints them, one file:line:col per line.
func WriteReport(w io.Writer, results []*FileResult, opts ReportOptions) error {
	bw := bufio.NewWriter(w)
	paint := func(code, s string) string {
		if !opts.Color {
			return s
		}
		return code + s + ansiReset
	}
	var tests, failed, unloaded int
	for _, r := range results {
		fmt.Fprintf(bw, "Unit Testing: %s\n", r.Path)
		tests += len(r.Tests)
		switch {
		case r.LoadErr != nil:
			unloaded++
			fmt.Fprintf(bw, "  %s could not load the file\n", paint(ansiRed, "FAILED:"))
			fmt.Fprintln(bw, r.LoadErr)
		case r.OK():
			if len(r.Tests) == 0 {
				fmt.Fprintln(bw, "  SUCCESS (no test selected)")
			} else {
				fmt.Fprintf(bw, "  %s\n", paint(ansiGreen, "SUCCESS"))
			}
		default:
			fmt.Fprintf(bw, "  %s\n", paint(ansiRed, "FAILED:"))
			for _, t := range r.Tests {
				if !t.Failed() {
					continue
				}
				failed++
				fmt.Fprintf(bw, "    %s\n", paint(ansiBold, fmt.Sprintf("%s:%d: %s", t.Pos.File, t.Pos.Line, t.Name)))
				for _, l := range failureLines(t) {
					heading := strings.HasSuffix(l, ":") && !strings.HasPrefix(l, " ")
					switch {
					case heading && l == "unexpected:":
						l = paint(ansiYellow, l)
					case heading:
						l = paint(ansiRed, l)
					}
					fmt.Fprintf(bw, "      %s\n", l)
				}
			}
		}
		fmt.Fprintln(bw)
	}
	fmt.Fprintf(bw, "%s in %s: %d passed, %d failed", plural(tests, "test"), plural(len(results), "file"), tests-failed, failed)
	if unloaded > 0 {
		fmt.Fprintf(bw, ", %s not loaded", plural(unloaded, "file"))
	}
	fmt.Fprintln(bw)
	return bw.Flush()
}

// failureLines describes a failed test, one line per item, sub-items
// indented: the body of a report entry and of a JUnit failure.
func failureLines(t *TestResult) []string {
	var out []string
	if t.Err != nil {
		out = append(out, "error: "+t.Err.Error())
	}
	if len(t.Missing) > 0 {
		out = append(out, "missing:")
		for i, m := range t.Missing {
			if i == maxListed {
				out = append(out, fmt.Sprintf("  ... and %d more", len(t.Missing)-i))
				break
			}
			out = append(out, "  "+formatExpected(m.Expected))
			if m.Closest != nil {
				out = append(out, "    closest: "+formatAlert(m.Closest))
				for _, d := range m.Diffs {
					out = append(out, "      "+d)
				}
			}
		}
	}
	if len(t.Unexpected) > 0 {
		out = append(out, "unexpected:")
		for i, a := range t.Unexpected {
			if i == maxListed {
				out = append(out, fmt.Sprintf("  ... and %d more", len(t.Unexpected)-i))
				break
			}
			out = append(out, "  "+formatAlert(a))
		}
	}
	if t.DeadLettered > 0 {
		out = append(out, "dead-lettered events (a test whose input was not read proves nothing):")
		out = append(out, deadLetterLines(t.DeadLetters, t.DeadLettered)...)
	}
	if t.TooFarAheadCount > 0 && t.Err == nil {
		out = append(out, "note: max_clock_skew refused these events:")
		out = append(out, deadLetterLines(t.TooFarAhead, t.TooFarAheadCount)...)
	}
	if t.Late > 0 && t.Err == nil {
		out = append(out, fmt.Sprintf("note: %s arrived behind the watermark and %s not matched",
			plural(int(t.Late), "event"), map[bool]string{true: "was", false: "were"}[t.Late == 1]))
	}
	return out
}

// deadLetterLines lists events that were not used, indented, and how many
// more there were than listed.
func deadLetterLines(listed []DeadLetter, n int) []string {
	var out []string
	for _, d := range listed {
		if d.Event > 0 {
			out = append(out, fmt.Sprintf("  %s: event %d: %s", d.Pos, d.Event, d.Reason))
		} else {
			// A line of an events file has no column.
			out = append(out, fmt.Sprintf("  %s:%d: %s", d.Pos.File, d.Pos.Line, d.Reason))
		}
	}
	if more := n - len(listed); more > 0 {
		out = append(out, fmt.Sprintf("  ... and %d more", more))
	}
	return out
}

// failureMessage is the one-line gist of a failed test.
func failureMessage(t *TestResult) string {
	var parts []string
	if t.Err != nil {
		parts = append(parts, "could not run")
	}
	if n := len(t.Missing); n > 0 {
		parts = append(parts, plural(n, "missing alert"))
	}
	if n := len(t.Unexpected); n > 0 {
		parts = append(parts, plural(n, "unexpected alert"))
	}
	if n := t.DeadLettered; n > 0 {
		parts = append(parts, plural(n, "dead-lettered event"))
	}
	return strings.Join(parts, ", ")
}

// formatExpected writes an expectation on one line: the rule, then only
// the fields the test set, then per step its matchers (#N for an event
// number, the JSON of the fields).
func formatExpected(e *Expected) string {
	var b strings.Builder
	b.WriteString(e.RuleRef.String())
	if e.Key != nil {
		b.WriteString(" key=" + quoteIfNeeded(*e.Key))
	}
	if e.Severity != "" {
		b.WriteString(" severity=" + string(e.Severity))
	}
	if e.Labels != nil {
		b.WriteString(" labels=" + sortedLabels(e.Labels))
	}
	if e.Timeout != nil {
		b.WriteString(" timeout=" + strconv.FormatBool(*e.Timeout))
	}
	if e.Summary != nil {
		b.WriteString(" summary=" + strconv.Quote(*e.Summary))
	}
	for _, m := range e.Measures {
		b.WriteString(" " + m.Name + "=" + expectedMeasureText(m))
	}
	for _, st := range e.Steps {
		parts := make([]string, len(st.Events))
		for i, m := range st.Events {
			var s string
			if m.Line != 0 {
				s = fmt.Sprintf("#%d", m.Line)
			}
			switch {
			case m.Fields != nil:
				s += string(m.Fields)
			case s == "":
				s = "{}"
			}
			parts[i] = s
		}
		fmt.Fprintf(&b, " %s=[%s]", st.Step, strings.Join(parts, " "))
	}
	return b.String()
}

// formatAlert writes an actual alert on one line: rule, key, and per step
// the numbers of the events it took.
func formatAlert(a *Alert) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s key=%s", a.Ruleset, a.Rule, quoteIfNeeded(a.Key))
	if a.Timeout {
		b.WriteString(" timeout=true")
	}
	for _, s := range a.Steps {
		fmt.Fprintf(&b, " %s=%s", s.Step, eventNumbers(s.Events))
	}
	return b.String()
}

// quoteIfNeeded quotes a key that would not read as one word.
func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || !unicode.IsPrint(r) || r == '"' || r == '='
	}) {
		return strconv.Quote(s)
	}
	return s
}
