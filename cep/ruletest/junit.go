package ruletest

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// JUnit XML as CI systems read it (the Jenkins/Surefire schema): one
// testsuite per test file, one testcase per test. Only the common subset
// is written, which GitLab, GitHub reporters and Jenkins all accept.
type (
	junitSuites struct {
		XMLName  xml.Name     `xml:"testsuites"`
		Name     string       `xml:"name,attr"`
		Tests    int          `xml:"tests,attr"`
		Failures int          `xml:"failures,attr"`
		Errors   int          `xml:"errors,attr"`
		Time     string       `xml:"time,attr"`
		Suites   []junitSuite `xml:"testsuite"`
	}
	junitSuite struct {
		Name     string      `xml:"name,attr"`
		Tests    int         `xml:"tests,attr"`
		Failures int         `xml:"failures,attr"`
		Errors   int         `xml:"errors,attr"`
		Skipped  int         `xml:"skipped,attr"`
		Time     string      `xml:"time,attr"`
		File     string      `xml:"file,attr,omitempty"`
		Cases    []junitCase `xml:"testcase"`
	}
	junitCase struct {
		Name      string        `xml:"name,attr"`
		Classname string        `xml:"classname,attr"`
		File      string        `xml:"file,attr,omitempty"`
		Line      int           `xml:"line,attr,omitempty"`
		Time      string        `xml:"time,attr"`
		Failure   *junitProblem `xml:"failure"`
		Error     *junitProblem `xml:"error"`
	}
	junitProblem struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		Text    string `xml:",chardata"`
	}
)

// WriteJUnit writes results as JUnit XML: <testsuites> holding a
// <testsuite> per test file and a <testcase> per selected test, with
// counts and times (seconds). A failed test has a <failure> whose message
// is its gist and whose text is the report's diff. A file that could not
// be loaded is a suite with one <testcase> carrying an <error> with the
// load errors, so that CI shows it rather than an empty suite.
func WriteJUnit(w io.Writer, results []*FileResult) error {
	doc := junitSuites{Name: "shrike test"}
	var total time.Duration
	for _, r := range results {
		s := junitSuite{Name: r.Path, File: r.Path, Time: seconds(r.Elapsed)}
		total += r.Elapsed
		if r.LoadErr != nil {
			s.Tests, s.Errors = 1, 1
			s.Cases = append(s.Cases, junitCase{
				Name: "load " + r.Path, Classname: r.Path, File: r.Path, Time: seconds(0),
				Error: &junitProblem{Message: "could not load the file", Type: "LoadError", Text: r.LoadErr.Error()},
			})
		}
		for _, t := range r.Tests {
			c := junitCase{Name: t.Name, Classname: r.Path, File: t.Pos.File, Line: t.Pos.Line, Time: seconds(t.Elapsed)}
			s.Tests++
			if t.Failed() {
				s.Failures++
				typ := "AlertMismatch"
				switch {
				case t.Err != nil:
					typ = "RunError"
				case len(t.Missing)+len(t.Unexpected) == 0:
					typ = "DeadLettered"
				}
				c.Failure = &junitProblem{
					Message: failureMessage(t),
					Type:    typ,
					Text:    fmt.Sprintf("%s:%d: %s\n%s\n", t.Pos.File, t.Pos.Line, t.Name, strings.Join(failureLines(t), "\n")),
				}
			}
			s.Cases = append(s.Cases, c)
		}
		doc.Tests += s.Tests
		doc.Failures += s.Failures
		doc.Errors += s.Errors
		doc.Suites = append(doc.Suites, s)
	}
	doc.Time = seconds(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	return nil
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
