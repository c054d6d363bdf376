package conformance

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	dumpDir = flag.String("shrike.dump", os.Getenv("SHRIKE_CONFORMANCE_DUMP"),
		"write each case's ruleset.yaml, events.jsonl, case.json and Shrike's alerts.jsonl to `DIR`/<case id>/ (env SHRIKE_CONFORMANCE_DUMP)")
	summaryFile = flag.String("shrike.summary", "",
		"write a Markdown table of the per-case results to `FILE`")
	extraCases = flag.String("shrike.cases", os.Getenv("SHRIKE_CONFORMANCE_CASES"),
		"also run the cases of `FILE` (same format as testdata/cases.json), e.g. a newer export of Flink's suite (env SHRIKE_CONFORMANCE_CASES)")
)

// casesFile is the copy of the shared case file this test reads.
var casesFile = filepath.Join("testdata", "cases.json")

// addedCasesFile holds cases of Flink's suite that the shared file lacks,
// in the same format: patterns Shrike accepts because Flink does.
var addedCasesFile = filepath.Join("testdata", "added-cases.json")

// groupCasesFile holds the cases of Flink's group patterns (GroupITCase,
// and GreedyITCase's group case), in the same format with groups in steps.
var groupCasesFile = filepath.Join("testdata", "group-cases.json")

// wantGroupCases is the number of cases in groupCasesFile.
const wantGroupCases = 19

// wantCases guards against losing cases: the file holds at least this many
// (a newer export of Flink's suite may hold more; they all run).
const wantCases = 96

// wantAddedCases is the number of cases in addedCasesFile.
const wantAddedCases = 5

// builtinCases loads the shared cases and the added ones, and checks that
// none is lost and no id appears in both.
func builtinCases() ([]*flinkCase, error) {
	cases, err := loadCases(casesFile)
	if err != nil {
		return nil, err
	}
	if len(cases) < wantCases {
		return nil, fmt.Errorf("%s holds %d cases, want at least %d", casesFile, len(cases), wantCases)
	}
	added, err := loadCases(addedCasesFile)
	if err != nil {
		return nil, err
	}
	if len(added) != wantAddedCases {
		return nil, fmt.Errorf("%s holds %d cases, want %d", addedCasesFile, len(added), wantAddedCases)
	}
	cases, err = appendCases(cases, added, addedCasesFile)
	if err != nil {
		return nil, err
	}
	groups, err := loadCases(groupCasesFile)
	if err != nil {
		return nil, err
	}
	if len(groups) != wantGroupCases {
		return nil, fmt.Errorf("%s holds %d cases, want %d", groupCasesFile, len(groups), wantGroupCases)
	}
	return appendCases(cases, groups, groupCasesFile)
}

// appendCases adds more cases, refusing an id that is already there.
func appendCases(cases, more []*flinkCase, from string) ([]*flinkCase, error) {
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.ID] = true
	}
	for _, c := range more {
		if seen[c.ID] {
			return nil, fmt.Errorf("%s: case %q is already loaded", from, c.ID)
		}
		seen[c.ID] = true
	}
	return append(cases, more...), nil
}

// TestConformance runs every Flink case through the replay path of
// `shrike run` and compares the alerts with Flink's expectation. Select
// cases with -run 'Conformance/NFAITCase' or a full case id.
func TestConformance(t *testing.T) {
	cases, err := builtinCases()
	if err != nil {
		t.Fatal(err)
	}
	if *extraCases != "" {
		more, err := loadCases(*extraCases)
		if err != nil {
			t.Fatal(err)
		}
		if cases, err = appendCases(cases, more, *extraCases); err != nil {
			t.Fatal(err)
		}
	}
	var results []caseResult
	for _, c := range cases {
		var first string
		ok := t.Run(c.ID, func(t *testing.T) {
			first = runCase(t, c)
		})
		results = append(results, caseResult{c: c, ok: ok, first: first})
	}
	if *summaryFile != "" {
		if err := os.WriteFile(*summaryFile, summary(results), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// runCase converts, runs and compares one case. It returns the first line
// of its first problem for the summary.
func runCase(t *testing.T, c *flinkCase) string {
	g, err := convert(c)
	if err != nil {
		t.Fatalf("convert: %v", err)
	}
	dir := ""
	if *dumpDir != "" {
		dir = filepath.Join(*dumpDir, dirName(c.ID))
		if err := dump(dir, c, g); err != nil {
			t.Fatal(err)
		}
	}
	run, err := runShrike(g)
	if err != nil {
		t.Errorf("%v\nruleset:\n%s", err, g.Ruleset)
		return firstLine(err.Error())
	}
	if dir != "" {
		if err := os.WriteFile(filepath.Join(dir, "alerts.jsonl"), run.Alerts, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	alerts, err := decodeAlerts(run.Alerts, g)
	if err != nil {
		t.Fatal(err)
	}
	var problems []string
	switch {
	case run.Late > 0 && c.Harness == harnessEventTime:
		// The operator drops late elements as Shrike does, and the
		// watermarks are the same, so the same events are late in both.
		t.Logf("%d late events", run.Late)
	case run.Late > 0:
		problems = append(problems, fmt.Sprintf("%d events were late, but the Flink test matched every event", run.Late))
	}
	res := compare(c, g, alerts)
	for _, tol := range res.Tolerated {
		t.Logf("end-of-input alert the Flink test could not observe, accepted: %s", tol)
	}
	problems = append(problems, res.Problems...)
	if len(problems) == 0 {
		return ""
	}
	t.Errorf("%s\n%s\ntime: %s\nruleset:\n%s\nShrike's alerts:\n%s",
		strings.Join(problems, "\n"), caseDescription(c), g.TimeSource, g.Ruleset, alertLines(alerts))
	return firstLine(problems[0])
}

func caseDescription(c *flinkCase) string {
	s := "source: " + c.Source + "\nassertion: " + c.Assertion
	if c.Notes != "" {
		s += "\nnotes: " + c.Notes
	}
	return s
}

func alertLines(alerts []shrikeAlert) string {
	if len(alerts) == 0 {
		return "\t(none)"
	}
	var sb strings.Builder
	for _, a := range alerts {
		fmt.Fprintf(&sb, "\t%s %s\n", kind(a.Timeout), a.Match)
	}
	return strings.TrimRight(sb.String(), "\n")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// dirName makes a case id usable as a folder name ("[time=null]" has
// characters shells dislike).
func dirName(id string) string {
	return strings.Trim(unsafeChars.ReplaceAllString(id, "_"), "_")
}

// dump writes a case's generated files, so that `shrike run --rules
// DIR/ruleset.yaml DIR/events.jsonl` reproduces it by hand.
func dump(dir string, c *flinkCase, g *generated) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	caseJSON, err := caseJSON(c)
	if err != nil {
		return err
	}
	for name, b := range map[string][]byte{
		rulesetFile: g.Ruleset,
		eventsFile:  g.Events,
		"case.json": caseJSON,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("dump: %w", err)
		}
	}
	return nil
}

// caseResult is one case's outcome for the summary table.
type caseResult struct {
	c     *flinkCase
	ok    bool
	first string
}

// summary renders the results as the Markdown table of README.md.
func summary(results []caseResult) []byte {
	var sb strings.Builder
	pass := 0
	for _, r := range results {
		if r.ok {
			pass++
		}
	}
	fmt.Fprintf(&sb, "%d of %d cases pass.\n\n", pass, len(results))
	sb.WriteString("| case | harness | result | first problem |\n|---|---|---|---|\n")
	for _, r := range results {
		h := r.c.Harness
		if h == harnessNFA {
			h = "NFA"
		}
		res := "pass"
		if !r.ok {
			res = "FAIL"
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s |\n", r.c.ID, h, res,
			strings.ReplaceAll(r.first, "|", `\|`))
	}
	return []byte(sb.String())
}

// caseJSON returns the case as written in the case file, indented.
func caseJSON(c *flinkCase) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.Indent(&buf, c.Raw, "", "  "); err != nil {
		return nil, fmt.Errorf("dump case: %w", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}
