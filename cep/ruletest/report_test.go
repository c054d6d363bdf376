package ruletest

import (
	"bytes"
	"context"
	"encoding/xml"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// loadAndRun gives the results `shrike test` would for these files.
func loadAndRun(t *testing.T, paths ...string) []*FileResult {
	t.Helper()
	var results []*FileResult
	for _, p := range paths {
		f, err := Load(p)
		if err != nil {
			results = append(results, &FileResult{Path: p, LoadErr: err})
			continue
		}
		res, err := f.Run(context.Background(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, res)
	}
	return results
}

// TestReportGolden pins the whole report of a failing test file, a
// passing one and one that does not load.
func TestReportGolden(t *testing.T) {
	results := loadAndRun(t, "testdata/fail_test.yaml", "testdata/pass_test.yaml", "testdata/errors/refs_test.yaml")
	var buf bytes.Buffer
	if err := WriteReport(&buf, results, ReportOptions{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "\x1b[") {
		t.Error("report without Color holds ANSI escapes")
	}
	golden(t, "report.golden", buf.String())
}

func TestReportColor(t *testing.T) {
	results := loadAndRun(t, "testdata/fail_test.yaml", "testdata/pass_test.yaml")
	var buf bytes.Buffer
	if err := WriteReport(&buf, results, ReportOptions{Color: true}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		ansiRed + "FAILED:" + ansiReset,
		ansiGreen + "SUCCESS" + ansiReset,
		ansiRed + "missing:" + ansiReset,
		ansiYellow + "unexpected:" + ansiReset,
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("coloured report lacks %q", want)
		}
	}
}

// The JUnit schema's essentials, as CI systems read them.
type junitDoc struct {
	XMLName  xml.Name `xml:"testsuites"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Errors   int      `xml:"errors,attr"`
	Time     string   `xml:"time,attr"`
	Suites   []struct {
		Name     string `xml:"name,attr"`
		Tests    int    `xml:"tests,attr"`
		Failures int    `xml:"failures,attr"`
		Errors   int    `xml:"errors,attr"`
		Time     string `xml:"time,attr"`
		Cases    []struct {
			Name      string `xml:"name,attr"`
			Classname string `xml:"classname,attr"`
			Line      int    `xml:"line,attr"`
			Time      string `xml:"time,attr"`
			Failure   *struct {
				Message string `xml:"message,attr"`
				Text    string `xml:",chardata"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
				Text    string `xml:",chardata"`
			} `xml:"error"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func TestJUnit(t *testing.T) {
	results := loadAndRun(t, "testdata/fail_test.yaml", "testdata/pass_test.yaml", "testdata/errors/refs_test.yaml")
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, results); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), `<?xml version="1.0" encoding="UTF-8"?>`) {
		t.Errorf("no XML declaration:\n%s", buf.String())
	}
	var doc junitDoc
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("parse JUnit XML: %v\n%s", err, buf.String())
	}
	times := []string{doc.Time}

	type caseSummary struct {
		Name, Classname string
		Line            int
		Failure, Error  string // message attributes
	}
	type suiteSummary struct {
		Name                            string
		Tests, Failures, Errors, Ncases int
		Cases                           []caseSummary
	}
	var got []suiteSummary
	for _, s := range doc.Suites {
		ss := suiteSummary{Name: s.Name, Tests: s.Tests, Failures: s.Failures, Errors: s.Errors, Ncases: len(s.Cases)}
		times = append(times, s.Time)
		for _, c := range s.Cases {
			cs := caseSummary{Name: c.Name, Classname: c.Classname, Line: c.Line}
			times = append(times, c.Time)
			if c.Failure != nil {
				cs.Failure = c.Failure.Message
				if !strings.Contains(c.Failure.Text, "testdata/fail_test.yaml:") {
					t.Errorf("failure text of %q lacks the test's position:\n%s", c.Name, c.Failure.Text)
				}
			}
			if c.Error != nil {
				cs.Error = c.Error.Message
				if !strings.Contains(c.Error.Text, "refs_test.yaml:6:23:") {
					t.Errorf("error text lacks the load errors:\n%s", c.Error.Text)
				}
			}
			ss.Cases = append(ss.Cases, cs)
		}
		got = append(got, ss)
	}
	const fail, pass = "testdata/fail_test.yaml", "testdata/pass_test.yaml"
	want := []suiteSummary{
		{Name: fail, Tests: 6, Failures: 5, Ncases: 6, Cases: []caseSummary{
			{Name: "passes", Classname: fail, Line: 3},
			{Name: "wrong step events and severity", Classname: fail, Line: 9, Failure: "1 missing alert"},
			{Name: "missing and unexpected alerts", Classname: fail, Line: 23, Failure: "2 missing alerts, 2 unexpected alerts"},
			{Name: "expects silence but a cart is abandoned", Classname: fail, Line: 32, Failure: "1 unexpected alert"},
			{Name: "bad input is dead-lettered", Classname: fail, Line: 38, Failure: "2 dead-lettered events"},
			{Name: "a recorded file with a bad line", Classname: fail, Line: 46, Failure: "1 dead-lettered event"},
		}},
		{Name: pass, Tests: 5, Ncases: 5, Cases: []caseSummary{
			{Name: "a cart then a payment within a minute", Classname: pass, Line: 3},
			{Name: "a big order raises one alert with labels", Classname: pass, Line: 19},
			{Name: "a cart without payment is abandoned", Classname: pass, Line: 29},
			{Name: "nothing happens for views", Classname: pass, Line: 35},
			{Name: "recorded events", Classname: pass, Line: 40},
		}},
		{Name: "testdata/errors/refs_test.yaml", Tests: 1, Errors: 1, Ncases: 1, Cases: []caseSummary{
			{Name: "load testdata/errors/refs_test.yaml", Classname: "testdata/errors/refs_test.yaml", Error: "could not load the file"},
		}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("JUnit suites (-want +got):\n%s", diff)
	}
	if doc.Tests != 12 || doc.Failures != 5 || doc.Errors != 1 {
		t.Errorf("testsuites tests=%d failures=%d errors=%d, want 12, 5, 1", doc.Tests, doc.Failures, doc.Errors)
	}
	// Times are wall-clock: only their form is checked.
	for _, s := range times {
		if v, err := strconv.ParseFloat(s, 64); err != nil || v < 0 {
			t.Errorf("time attribute %q is not a number of seconds", s)
		}
	}
}
