package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/shrike-cep/shrike/cep"
)

// isTerminal reports whether w is a terminal. Progress bars and colours
// are for people: a pipe, a file or a CI log gets neither. Tests replace
// it to see the bar drawn.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress is a progress bar over the bytes of recorded event files, drawn
// on a terminal. It is fed by the readers it wraps, once per buffer the
// file source fills (64 KiB), never per event, so the replay's hot loop
// does not know it exists. A nil *progress draws nothing; every method
// accepts it, so callers need not check.
type progress struct {
	// mu serialises the bar: Replay reads (and so feeds the bar) on a
	// goroutine of its own while report lines are written on the caller's,
	// and a report line must not land in the middle of a redraw.
	mu    sync.Mutex
	bar   *progressbar.ProgressBar
	start time.Time
	// lines counts the newlines of plain files read so far: an estimate
	// of events, as a recorded file has one event per line. Gzipped files
	// are counted in compressed bytes only (the gunzipping happens inside
	// the replay), so they add no lines.
	lines     int64
	described time.Time
	now       func() time.Time
}

// progressMinBytes is how big an events file of `shrike test` must be to
// get a bar: small files are done before a bar could be read.
const progressMinBytes = 4 << 20

// newProgress starts a bar on w for total bytes (-1 when unknown, as for
// stdin) when w is a terminal, else returns nil.
func newProgress(w io.Writer, total int64, what string) *progress {
	if !isTerminal(underlying(w)) {
		return nil
	}
	if total == 0 {
		total = -1
	}
	p := &progress{start: time.Now(), now: time.Now}
	p.bar = progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		// Drawn at once, so that a slow start (stdin, a cold disk) shows.
		progressbar.OptionSetRenderBlankState(true),
		// No spinner goroutine: the bar is drawn only from Read, on the
		// replay's goroutine, so that clearing it before a report line
		// cannot race with a redraw.
		progressbar.OptionSetSpinnerChangeInterval(0),
	)
	return p
}

// reader counts r's bytes into the bar (and its newlines when countLines).
func (p *progress) reader(r io.Reader, countLines bool) io.Reader {
	if p == nil {
		return r
	}
	return &progressReader{r: r, p: p, lines: countLines}
}

type progressReader struct {
	r     io.Reader
	p     *progress
	lines bool
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	if n > 0 {
		var lines int64
		if pr.lines {
			lines = int64(bytes.Count(b[:n], []byte{'\n'}))
		}
		pr.p.add(n, lines)
	}
	return n, err
}

// add moves the bar by n bytes. The events/s estimate waits for a second
// of reading: the reader runs one buffer ahead of the matcher, which only
// evens out over time.
func (p *progress) add(n int, lines int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines += lines
	now := p.now()
	if elapsed := now.Sub(p.start); p.lines > 0 && elapsed >= time.Second && now.Sub(p.described) >= 500*time.Millisecond {
		p.described = now
		p.bar.Describe(fmt.Sprintf("replaying, %.0f events/s", float64(p.lines)/elapsed.Seconds()))
	}
	_ = p.bar.Add(n)
}

// writer returns w for lines that share the terminal with the bar: each
// write first clears the bar, which the next read redraws below it.
func (p *progress) writer(w io.Writer) io.Writer {
	if p == nil {
		return w
	}
	return writerFunc(func(b []byte) (int, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		_ = p.bar.Clear()
		return w.Write(b)
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// finish removes the bar.
func (p *progress) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.bar.Finish()
	_ = p.bar.Clear()
}

// openWithProgress opens the replay's inputs behind one bar over their
// total size when w is a terminal. Otherwise the inputs are returned
// as they are, for Replay to open. The cleanup closes what was opened.
func openWithProgress(w io.Writer, inputs []cep.Input) ([]cep.Input, *progress, func(), error) {
	noop := func() {}
	if !isTerminal(underlying(w)) {
		return inputs, nil, noop, nil
	}
	var files []*os.File
	cleanup := func() {
		for _, f := range files {
			_ = f.Close()
		}
	}
	out := make([]cep.Input, len(inputs))
	total := int64(0)
	for i, in := range inputs {
		out[i] = in
		if in.R != nil {
			total = -1 // stdin: no size to show a fraction of
			continue
		}
		f, err := os.Open(in.Name)
		if err != nil {
			cleanup()
			return nil, nil, noop, fmt.Errorf("open events: %w", err)
		}
		files = append(files, f)
		out[i].R = f
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && total >= 0 {
			total += fi.Size()
		} else {
			total = -1
		}
	}
	p := newProgress(w, total, "replaying")
	for i := range out {
		out[i].R = p.reader(out[i].R, !strings.HasSuffix(out[i].Name, ".gz"))
	}
	return out, p, cleanup, nil
}

// writeSummary prints the table a person reads after `shrike run`: per
// rule its alerts, alerts suppressed (alert.suppress), timeouts, dropped
// partial matches and CEL errors, then the replay's totals. Columns are aligned with text/tabwriter.
func writeSummary(w *output, s *cep.Summary, lateFile string) error {
	t := newTable(w)
	t.printf("RULE\tALERTS\tSUPPRESSED\tTIMEOUTS\tDROPPED\tCEL ERRORS\tPEAK PARTIAL MATCHES\n")
	var suppressed, timeouts, dropped, celErrors uint64
	for _, r := range s.Rules {
		t.printf("%s/%s\t%d\t%d\t%d\t%d\t%d\t%d\n", r.Ruleset, r.Rule, r.Alerts, r.Suppressed, r.Timeouts, r.Dropped, r.CELErrors, r.PeakRuns)
		suppressed += r.Suppressed
		timeouts += r.Timeouts
		dropped += r.Dropped
		celErrors += r.CELErrors
	}
	t.printf("total\t%d\t%d\t%d\t%d\t%d\t%d\n", s.Alerts, suppressed, timeouts, dropped, celErrors, s.PeakRuns)
	if err := t.flush(); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	fmt.Fprintln(w)
	t = newTable(w)
	t.printf("events\t%d from %s\n", s.Events, plural(uint64(s.Files), "file", "files"))
	late := fmt.Sprint(s.Late)
	if lateFile != "" {
		late += " (written to " + lateFile + ")"
	}
	t.printf("late\t%s\n", late)
	if s.TooFarAhead > 0 {
		t.printf("dead-lettered\t%d (%d too far ahead of the watermark)\n", s.DeadLettered, s.TooFarAhead)
	} else {
		t.printf("dead-lettered\t%d\n", s.DeadLettered)
	}
	if s.Unrouted > 0 {
		t.printf("other topics\t%s skipped\n", plural(s.Unrouted, "line", "lines"))
	}
	t.printf("peak partial matches\t%d\n", s.PeakRuns)
	t.printf("elapsed\t%v\n", roundDuration(s.Elapsed))
	t.printf("events/s\t%.0f\n", s.EventsPerSecond())
	if err := t.flush(); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}
