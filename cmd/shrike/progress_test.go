package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/cep"
)

// progressFixture writes a ruleset and an events file of n lines.
func progressFixture(t *testing.T, n int) (rules, events string) {
	t.Helper()
	dir := t.TempDir()
	rules = filepath.Join(dir, "shop.yaml")
	events = filepath.Join(dir, "events.jsonl")
	if err := os.WriteFile(rules, []byte("ruleset: shop\nrules:\n  - id: big\n    when: event.type == \"order\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for range n {
		b.WriteString(`{"type":"order","amount":1}` + "\n")
	}
	// A bad line, so that a dead-letter report shares the terminal.
	b.WriteString("not json\n")
	if err := os.WriteFile(events, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return rules, events
}

// fakeTerminal makes isTerminal true for w alone, for the test's duration.
func fakeTerminal(t *testing.T, w io.Writer) {
	t.Helper()
	prev := isTerminal
	isTerminal = func(x io.Writer) bool { return x == w }
	t.Cleanup(func() { isTerminal = prev })
}

// TestProgressNeverOffTerminal runs `shrike run` with stderr a pipe and a
// buffer, as in CI: the summary comes, the bar never does.
func TestProgressNeverOffTerminal(t *testing.T) {
	rules, events := progressFixture(t, 50)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pr.Close() })
	read := make(chan string)
	go func() {
		b, _ := io.ReadAll(pr)
		read <- string(b)
	}()
	var buf bytes.Buffer
	tests := []struct {
		name   string
		stderr io.Writer
		got    func() string
	}{
		{"pipe", pw, func() string { _ = pw.Close(); return <-read }},
		{"buffer", &buf, buf.String},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := env{stdin: strings.NewReader(""), stdout: newOutput(io.Discard), stderr: newOutput(tt.stderr), clock: func() time.Time { return testNow }}
			if code := run(context.Background(), []string{"run", "--rules", rules, events}, e); code != 0 {
				t.Fatalf("exit status %d", code)
			}
			got := tt.got()
			if !strings.Contains(got, "RULE") || !strings.Contains(got, "events                50 from 1 file") {
				t.Errorf("no summary table on stderr:\n%s", got)
			}
			if strings.ContainsAny(got, "\r\x1b") || strings.Contains(got, "replaying") {
				t.Errorf("progress bar drawn on a %s:\n%q", tt.name, got)
			}
		})
	}
}

// TestProgressOnTerminal draws the bar on a (fake) terminal: it shows,
// is cleared before the summary, and counts every byte and line read.
func TestProgressOnTerminal(t *testing.T) {
	rules, events := progressFixture(t, 50)
	var stderr bytes.Buffer
	fakeTerminal(t, &stderr)
	e := env{stdin: strings.NewReader(""), stdout: newOutput(io.Discard), stderr: newOutput(&stderr), clock: func() time.Time { return testNow }}
	if code := run(context.Background(), []string{"run", "--rules", rules, events}, e); code != 0 {
		t.Fatalf("exit status %d:\n%s", code, stderr.String())
	}
	out := stderr.String()
	bar := strings.Index(out, "replaying")
	report := strings.Index(out, events+":51: invalid event")
	table := strings.Index(out, "RULE")
	if bar < 0 || report < bar || table < report || !strings.Contains(out[bar:report], "\r") {
		t.Errorf("want the bar, cleared with \\r, the dead-letter report, then the table:\n%q", out)
	}
	if !strings.HasSuffix(out[:report], "\r") {
		t.Errorf("the report does not start a cleared line:\n%q", out)
	}
}

func TestProgressCounts(t *testing.T) {
	_, events := progressFixture(t, 40)
	fi, err := os.Stat(events)
	if err != nil {
		t.Fatal(err)
	}
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	plain, _ := os.ReadFile(events)
	_, _ = zw.Write(plain)
	_ = zw.Close()
	gz := events + ".gz"
	if err := os.WriteFile(gz, zipped.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		file      string
		wantBytes int64
		wantLines int64
	}{
		{"plain: bytes and lines", events, fi.Size(), 41},
		// Replay gunzips behind the reader: the bar sees compressed bytes.
		{"gzip: compressed bytes, no lines", gz, int64(zipped.Len()), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			fakeTerminal(t, &stderr)
			in, p, closeIn, err := openWithProgress(&stderr, []cep.Input{{Name: tt.file}})
			if err != nil {
				t.Fatal(err)
			}
			defer closeIn()
			if p == nil || in[0].R == nil {
				t.Fatal("no progress on a terminal")
			}
			if _, err := io.Copy(io.Discard, in[0].R); err != nil {
				t.Fatal(err)
			}
			if got := int64(p.bar.State().CurrentNum); got != tt.wantBytes {
				t.Errorf("bar at %d bytes, want %d", got, tt.wantBytes)
			}
			if p.lines != tt.wantLines {
				t.Errorf("%d lines counted, want %d", p.lines, tt.wantLines)
			}
			if total := p.bar.GetMax64(); total != tt.wantBytes {
				t.Errorf("bar total %d, want the file size %d", total, tt.wantBytes)
			}
			p.finish()
		})
	}
}

func TestOpenWithProgressOffTerminal(t *testing.T) {
	in := []cep.Input{{Name: "a.jsonl"}, {Name: "stdin", R: strings.NewReader("")}}
	got, p, closeIn, err := openWithProgress(&bytes.Buffer{}, in)
	if err != nil {
		t.Fatal(err)
	}
	closeIn()
	if p != nil {
		t.Error("progress bar off a terminal")
	}
	// Untouched: Replay opens the files itself, as without the bar.
	if got[0].R != nil || got[1].R != in[1].R {
		t.Errorf("inputs changed off a terminal: %+v", got)
	}
	// A nil *progress is inert.
	if r := p.reader(in[1].R, true); r != in[1].R {
		t.Error("nil progress wrapped a reader")
	}
	var buf bytes.Buffer
	if w := p.writer(&buf); w != io.Writer(&buf) {
		t.Error("nil progress wrapped a writer")
	}
	p.finish()
}

func TestWriteSummary(t *testing.T) {
	s := &cep.Summary{
		Files: 2, Events: 2000, Late: 3, DeadLettered: 1, Unrouted: 4, Alerts: 7, PeakRuns: 42,
		Elapsed: 1500 * time.Millisecond,
		Rules: []cep.RuleSummary{
			{Ruleset: "payments", Rule: "account-takeover", Alerts: 2, Timeouts: 5, PeakRuns: 40},
			{Ruleset: "payments", Rule: "velocity", Alerts: 5, Suppressed: 6, Dropped: 1, CELErrors: 9, PeakRuns: 3},
		},
	}
	var buf bytes.Buffer
	if err := writeSummary(newOutput(&buf), s, "late.jsonl"); err != nil {
		t.Fatal(err)
	}
	want := `RULE                       ALERTS  SUPPRESSED  TIMEOUTS  DROPPED  CEL ERRORS  PEAK PARTIAL MATCHES
payments/account-takeover  2       0           5         0        0           40
payments/velocity          5       6           0         1        9           3
total                      7       6           5         1        9           42

events                2000 from 2 files
late                  3 (written to late.jsonl)
dead-lettered         1
other topics          4 lines skipped
peak partial matches  42
elapsed               1.5s
events/s              1333
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
}
