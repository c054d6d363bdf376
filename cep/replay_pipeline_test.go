package cep

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/shrike-cep/shrike/rules"
)

// output is everything a replay produces, which must not depend on the
// mode.
type output struct {
	alerts, late, reports string
	sum                   Summary
}

// generatedRulesets are the shipped payments rules plus a second stream
// over the same events.
func generatedRulesets(t testing.TB) []*rules.Compiled {
	return []*rules.Compiled{
		loadFile(t, "../rulesets/payments.yaml"),
		load(t, "by-country.yaml", byCountryRules),
	}
}

// TestReplayModesAgree replays a generated stream with every kind of line
// through every mode, with separate outputs and with one writer for all
// three, and expects the sequential replay's bytes from each.
func TestReplayModesAgree(t *testing.T) {
	rs := generatedRulesets(t)
	n := 12000
	if testing.Short() {
		n = 3000
	}
	in := mixedInputs(t, n)
	run := func(t *testing.T, set func(*ReplayOptions), shared bool) output {
		t.Helper()
		var alerts, late, reports bytes.Buffer
		opts := ReplayOptions{
			Rulesets: rs, Inputs: replayInputs(t, in),
			Alerts: &alerts, Late: &late, Reports: &reports,
			MaxDeadLetterReports: 1000,
			Clock:                func() time.Time { return fixedNow },
		}
		if shared {
			opts.Late, opts.Reports = &alerts, &alerts
		}
		set(&opts)
		sum, err := Replay(context.Background(), opts)
		if err != nil {
			t.Fatalf("Replay: %v", err)
		}
		sum.Elapsed = 0
		return output{alerts: alerts.String(), late: late.String(), reports: reports.String(), sum: sum}
	}
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared-writer=%v", shared), func(t *testing.T) {
			want := run(t, modes[0].set, shared)
			// The input must exercise what it is meant to, or agreeing
			// proves little.
			s := want.sum
			if s.Alerts == 0 || s.Late == 0 || s.DeadLettered == 0 || s.Unrouted == 0 || s.Files != 2 {
				t.Fatalf("the generated input lacks alerts, late, dead-lettered or unrouted lines: %+v", s)
			}
			for _, m := range modes[1:] {
				t.Run(m.name, func(t *testing.T) {
					if d := diffOutput(want, run(t, m.set, shared)); d != "" {
						t.Errorf("differs from %s:\n%s", modes[0].name, d)
					}
				})
			}
		})
	}
}

// TestReplayLateSameLineNumber checks that a late line is written and
// counted even when the previous late line had the same number in another
// file.
func TestReplayLateSameLineNumber(t *testing.T) {
	c := load(t, "shop.yaml", shopRules)
	a := `{"id":1,"user":"u1","type":"cart","ts":10000}
{"id":2,"user":"u1","type":"cart","ts":1000}
`
	b := `{"id":3,"user":"u1","type":"cart","ts":20000}
{"id":4,"user":"u1","type":"cart","ts":2000}
`
	want := `{"id":2,"user":"u1","type":"cart","ts":1000}
{"id":4,"user":"u1","type":"cart","ts":2000}
`
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			opts := ReplayOptions{Rulesets: []*rules.Compiled{c}, Inputs: inputs("a.jsonl", a, "b.jsonl", b)}
			m.set(&opts)
			res, err := replay(t, opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, res.late); diff != "" {
				t.Errorf("late output (-want +got):\n%s", diff)
			}
			if res.sum.Late != 2 {
				t.Errorf("Late = %d, want 2", res.sum.Late)
			}
		})
	}
}

// shopLines returns n valid lines for shopRules, with "oops" (a
// dead-lettered line) at line bad, if bad > 0.
func shopLines(n, bad int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if i == bad {
			b.WriteString("oops\n")
			continue
		}
		typ := [...]string{"cart", "pay", "order", "view"}[i%4]
		fmt.Fprintf(&b, `{"id":%d,"user":"u%d","type":%q,"amount":%d,"ts":%d}`+"\n", i, i%50, typ, i%300, i*10)
	}
	return b.String()
}

// TestReplayCancelMidway cancels a replay from inside it and checks that it
// stops within a batch, with ctx's error and no goroutine left.
func TestReplayCancelMidway(t *testing.T) {
	c := load(t, "shop.yaml", shopRules)
	const lines, cancelAt = 20000, 3000
	in := inputs("x.jsonl", shopLines(lines, cancelAt))
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			opts := ReplayOptions{
				Rulesets: []*rules.Compiled{c}, Inputs: replayInputs(t, in), Alerts: io.Discard,
				OnDeadLetter: func(string, int64, error) { cancel() },
			}
			m.set(&opts)
			sum, err := Replay(ctx, opts)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			// The sequential replay looks at ctx every 1024 lines, the
			// pipelined one before every batch.
			if limit := uint64(cancelAt + max(1024, DefaultBatchLines)); sum.Lines < cancelAt || sum.Lines > limit {
				t.Errorf("Lines = %d, want %d..%d: the replay did not stop promptly", sum.Lines, cancelAt, limit)
			}
		})
	}
}

// failAfter is a writer that accepts n bytes, then fails.
type failAfter struct{ n int }

func (w *failAfter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		n := w.n
		w.n = 0
		return n, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

// TestReplayWriteErrorMidway checks that a failing writer stops every mode
// at the same line, with the same error, and leaves no goroutine.
func TestReplayWriteErrorMidway(t *testing.T) {
	rs := generatedRulesets(t)
	in := mixedInputs(t, 6000)
	var first Summary
	for i, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			opts := ReplayOptions{Rulesets: rs, Inputs: replayInputs(t, in), Late: &failAfter{n: 20000}}
			m.set(&opts)
			sum, err := Replay(context.Background(), opts)
			if err == nil || err.Error() != "replay: write: disk full" {
				t.Fatalf("err = %v, want replay: write: disk full", err)
			}
			sum.Elapsed = 0
			if sum.Files != 0 {
				t.Errorf("Files = %d, want 0: the replay went on after the error", sum.Files)
			}
			if i == 0 {
				first = sum
			} else if diff := cmp.Diff(first, sum); diff != "" {
				t.Errorf("summary differs from %s (-%s +%s):\n%s", modes[0].name, modes[0].name, m.name, diff)
			}
		})
	}
}

// TestReplayReadErrors checks that a file that fails to read stops every
// mode with the same error after the same output.
func TestReplayReadErrors(t *testing.T) {
	c := load(t, "shop.yaml", shopRules)
	text := shopLines(3000, 0)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	tests := []struct {
		name   string
		bad    func() Input // a new reader for each replay
		wantIs error
	}{
		{"truncated gzip", func() Input {
			return Input{Name: "x.jsonl.gz", R: bytes.NewReader(gz.Bytes()[:gz.Len()/2])}
		}, io.ErrUnexpectedEOF},
		{"reader error", func() Input {
			return Input{Name: "x.jsonl", R: io.MultiReader(strings.NewReader(text[:len(text)/2]), iotest.ErrReader(boom))}
		}, boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var first output
			var firstErr string
			for i, m := range modes {
				t.Run(m.name, func(t *testing.T) {
					defer goleak.VerifyNone(t)
					opts := ReplayOptions{Rulesets: []*rules.Compiled{c}, Inputs: append(inputs("ok.jsonl", text), tt.bad())}
					m.set(&opts)
					res, err := replay(t, opts)
					if !errors.Is(err, tt.wantIs) {
						t.Fatalf("err = %v, want errors.Is %v", err, tt.wantIs)
					}
					if res.sum.Files != 1 || res.sum.Lines <= 3000 {
						t.Errorf("Files = %d, Lines = %d: want the first file and part of the second replayed", res.sum.Files, res.sum.Lines)
					}
					if i == 0 {
						first, firstErr = res.output(), err.Error()
						return
					}
					if err.Error() != firstErr {
						t.Errorf("err = %q, want %q as %s", err, firstErr, modes[0].name)
					}
					if d := diffOutput(first, res.output()); d != "" {
						t.Errorf("differs from %s:\n%s", modes[0].name, d)
					}
				})
			}
		})
	}
}

// panicReader panics when read: a stand-in for a bug on the decoding side.
type panicReader struct{}

func (panicReader) Read([]byte) (int, error) { panic("reader exploded") }

// TestReplayDecoderPanic checks that a panic while decoding reaches the
// caller's goroutine, where it can be recovered, in every mode.
func TestReplayDecoderPanic(t *testing.T) {
	c := load(t, "shop.yaml", shopRules)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			opts := ReplayOptions{Rulesets: []*rules.Compiled{c}, Inputs: []Input{{Name: "x.jsonl", R: panicReader{}}}}
			m.set(&opts)
			got := func() (p any) {
				defer func() { p = recover() }()
				_, _ = Replay(context.Background(), opts)
				return nil
			}()
			if got == nil || !strings.Contains(fmt.Sprint(got), "reader exploded") {
				t.Errorf("recovered %v, want the reader's panic", got)
			}
		})
	}
}

// TestReplayPipelineAllocs checks that the hand-over between the goroutines
// allocates nothing per batch once running: with one line per batch, a
// pipelined replay allocates about what a sequential one does.
func TestReplayPipelineAllocs(t *testing.T) {
	c := load(t, "shop.yaml", shopRules)
	const lines = 4000
	in := inputs("x.jsonl", shopLines(lines, 0))
	allocs := func(set func(*ReplayOptions)) float64 {
		return testing.AllocsPerRun(2, func() {
			opts := ReplayOptions{Rulesets: []*rules.Compiled{c}, Inputs: replayInputs(t, in), Alerts: io.Discard}
			set(&opts)
			if _, err := Replay(context.Background(), opts); err != nil {
				t.Fatal(err)
			}
		})
	}
	seq := allocs(func(o *ReplayOptions) { o.Sequential = true })
	pipe := allocs(func(o *ReplayOptions) { o.BatchLines = 1 })
	// The margin covers the pipeline's set-up and the matcher's pooled
	// objects, which a garbage collection can empty; an allocation per batch
	// would add lines.
	if pipe > seq+lines/10 {
		t.Errorf("pipelined replay of %d lines, one per batch: %.0f allocations, sequential %.0f: the hand-over allocates", lines, pipe, seq)
	}
}

// TestRecordEventFitsItsSizeClass guards the memory of events being
// decoded and waiting in the reorder buffer: a record, its event and the
// event's fields are one allocation, and at 512 bytes it fills the
// 512-byte size class exactly; a field more would move every event to the
// 576-byte class.
func TestRecordEventFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(recordEvent{}); n > 512 {
		t.Fatalf("recordEvent is %d bytes, want at most 512", n)
	}
}
