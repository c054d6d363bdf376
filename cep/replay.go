package cep

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"strconv"
	"time"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// DefaultMaxDeadLetterReports is how many dead-lettered lines Replay
// describes one by one when ReplayOptions.MaxDeadLetterReports is zero.
const DefaultMaxDeadLetterReports = 20

// DefaultBatchLines is how many lines the decoding goroutine of a pipelined
// Replay hands to the matching goroutine at once when
// ReplayOptions.BatchLines is zero: enough that the hand-over costs next to
// nothing per line, few enough that both goroutines start working within a
// millisecond.
const DefaultBatchLines = 512

// Input is one recorded event file to replay.
type Input struct {
	// Name is the file name: reports use it as given, and a name ending in
	// .gz is gunzipped.
	Name string
	// Source names the recording in the positions of its events, and so in
	// alert ids. Default: the base name of Name, so that the ids of a
	// recording do not depend on the folder it is in or on how its path is
	// spelled.
	Source string
	// R supplies the file's bytes; nil opens the file Name.
	R io.Reader
}

// ReplayOptions configure Replay. Zero values are the documented defaults.
type ReplayOptions struct {
	// Rulesets are the compiled rulesets to run. Their names must differ.
	Rulesets []*rules.Compiled
	// Inputs are replayed in order, as one stream per rule: a later file
	// continues the event time of the earlier ones. kcat envelopes that
	// name a partition are the exception: each topic partition has its own
	// watermark and keys, across the files, as on Kafka.
	Inputs []Input
	// Alerts receives one JSON object per line per alert (docs/design.md#alerts).
	// Nil discards alerts (they are still counted).
	Alerts io.Writer
	// Late receives the original lines of late events, one per line. Nil
	// discards them (they are still counted).
	Late io.Writer
	// Reports receives one `file:line: reason` line for each of the first
	// MaxDeadLetterReports dead-lettered lines, then a line with the count
	// of the rest. Nil discards the reports.
	Reports io.Writer
	// MaxDeadLetterReports bounds the lines written to Reports. Default
	// DefaultMaxDeadLetterReports; negative means none.
	MaxDeadLetterReports int
	// MaxLineBytes is the longest line accepted. Default
	// DefaultMaxLineBytes.
	MaxLineBytes int
	// MaxRunsPerKey caps each rule's partial matches per key (see
	// matcher.Options). Default: the matcher's.
	MaxRunsPerKey int
	// Clock stamps the alerts' detected_at. Default time.Now.
	Clock func() time.Time
	// Logger receives the matcher's rare operational messages. Default:
	// discard.
	Logger *slog.Logger
	// OnAlert, when set, is also called with every alert as the matcher made
	// it, so that a caller needing the matched records' positions (rule unit
	// tests) does not have to parse JSON back. It must not modify the alert.
	OnAlert func(*matcher.Alert)
	// OnDeadLetter, when set, is called for every dead-lettered line, also
	// past MaxDeadLetterReports.
	OnDeadLetter func(file string, line int64, reason error)
	// MaxClockSkew, when positive, bounds how far ahead of the watermark of
	// its stream (or of its Kafka partition, for a kcat envelope that names
	// one) an event's time may be: an event further ahead is dead-lettered,
	// is not matched and does not move the watermark, as `shrike serve`
	// treats an event further ahead of the wall clock than the stream's
	// max_clock_skew. Before a partition's first event its watermark is
	// -∞ and bounds nothing. A recording whose events pause for longer
	// than the bound has its first event after the pause, and every one
	// after it, dead-lettered: the bound must exceed the longest quiet gap.
	// Zero: no bound.
	MaxClockSkew time.Duration
	// Sequential runs the whole replay on the calling goroutine instead of
	// decoding lines on a second goroutine ahead of the matcher. The results
	// are the same; it is there to measure the difference and for callers
	// that want no second goroutine.
	Sequential bool
	// BatchLines is how many lines a pipelined replay hands from the
	// decoding to the matching goroutine at once. Default
	// DefaultBatchLines.
	BatchLines int
	// Tracer, when set, follows one key through every Partition of the
	// replay (`shrike explain`); its events arrive on the calling
	// goroutine. Default: none.
	Tracer *matcher.Tracer

	// noDecodingGoroutine, for tests, keeps a pipelined replay's second
	// goroutine from decoding, so that the matching goroutine decodes
	// every batch itself.
	noDecodingGoroutine bool
}

// Summary reports what a Replay did.
type Summary struct {
	Files int
	// Lines counts the non-blank lines read.
	Lines uint64
	// Events counts the lines decoded and offered to at least one stream.
	Events uint64
	// Unrouted counts envelope lines of topics no ruleset reads.
	Unrouted uint64
	// Late counts lines that arrived behind the watermark of a stream (or,
	// for kcat envelopes that name a partition, of their partition).
	Late uint64
	// DeadLettered counts lines that could not be used: undecodable, too
	// long, without a key or time, or too far ahead of the watermark
	// (MaxClockSkew). A line that one stream could not use while another
	// took it counts here and in Events.
	DeadLettered uint64
	// TooFarAhead counts the dead-lettered lines that were too far ahead
	// of the watermark (MaxClockSkew).
	TooFarAhead uint64
	// Alerts counts alerts written, timeout alerts included.
	Alerts uint64
	// Rules has one entry per enabled rule, rulesets in the order given and
	// rules in source order.
	Rules []RuleSummary
	// PeakRuns is the largest number of open partial matches, summed over
	// streams (exact when all rulesets share one stream): within a stream,
	// the partial matches of all its Kafka partitions count together.
	PeakRuns int
	// Elapsed is the wall time of the replay.
	Elapsed time.Duration
}

// EventsPerSecond is the replay's throughput.
func (s *Summary) EventsPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Events) / s.Elapsed.Seconds()
}

// RuleSummary are one rule's counters after a replay.
type RuleSummary struct {
	Ruleset, Rule string
	// Shadow marks a rule of a shadow version (rules.Compiled.Shadow),
	// counted apart from the live rule of the same name.
	Shadow bool
	// Alerts counts emitted alerts, timeout alerts included.
	Alerts uint64
	// Timeouts counts partial matches whose window closed, emitted or not.
	Timeouts uint64
	// Suppressed counts the alerts the rule's alert.suppress dropped (not
	// in Alerts).
	Suppressed uint64
	// Dropped counts partial matches dropped by MaxRunsPerKey.
	Dropped uint64
	// CELErrors counts evaluations that failed and so counted as false.
	CELErrors uint64
	// PeakRuns is the most partial matches the rule held open at once, in
	// all Kafka partitions together.
	PeakRuns int
}

// stream is the set of rulesets that see the same keyed, timed events: the
// same topic, key and time expressions and watermark delay. All its rules
// share one matcher.Program and one matcher.Partition, so each event is
// decoded once and each distinct condition evaluated once. Topic belongs to
// the identity because on Kafka every topic is consumed on its own; rules
// of one topic must never see another topic's records.
type stream struct {
	id        string // streamID of its rulesets
	topic     string // "" reads every topic
	key, time *rules.Expr
	rulesets  []*rules.Compiled
	prog      *matcher.Program
	part      *matcher.Partition

	// A replay pushes kcat envelopes that name a partition to a Partition
	// per lane (laneTable) instead of part: lanes[lane], created when the
	// lane's first record comes. laneParts are those Partitions in the
	// order they were created, which is the order of the lines and so
	// does not depend on the decoding goroutines. gauge counts the partial
	// matches of part and the lanes' Partitions together.
	lanes     []*matcher.Partition
	laneParts []*matcher.Partition
	gauge     *matcher.RunGauge
}

// Replay runs recorded event files through the matcher exactly as the engine
// runs a Kafka partition, with one difference: time advances only with the
// events, and at the end of input the watermark moves to +∞ so that every
// window closes (docs/semantics.md). The lines of the files are one partition,
// except kcat envelopes that name a partition: those of each topic and
// partition are one, as `shrike serve` runs them, so that a dump that kcat
// wrote partition after partition replays as the live topic does. Lines
// that cannot be used are dead-lettered and the replay goes on. Replay
// returns an error only for what stops it: a bad option (two inputs of one
// source name among them), a file that cannot be opened or read, a write
// that fails, or ctx ending; the Summary then covers what was done.
//
// Unless opts.Sequential is set, lines are read and decoded into matcher
// records on a second goroutine, ahead of the matching on the calling one
// (see replay_pipeline.go). Everything the replay writes, and every call of
// OnAlert and OnDeadLetter, happens on the calling goroutine, in the order
// of the sequential replay; the second goroutine has ended when Replay
// returns.
func Replay(ctx context.Context, opts ReplayOptions) (Summary, error) {
	start := time.Now()
	r, err := newReplayer(opts)
	if err != nil {
		return Summary{}, err
	}
	// Two inputs of one name in positions could give two matches one id.
	named := make(map[string]string, len(opts.Inputs))
	for _, in := range opts.Inputs {
		src := in.source()
		if prev, ok := named[src]; ok {
			return Summary{}, fmt.Errorf("replay: %s and %s are both %q in alert ids: give them different sources (shrike run --source)", prev, in.Name, src)
		}
		named[src] = in.Name
		r.sources = append(r.sources, src)
	}
	readers := make([]*FileReader, 0, len(opts.Inputs))
	defer func() {
		for _, fr := range readers {
			_ = fr.Close()
		}
	}()
	// Open every file first: a missing file stops the replay before any
	// alert is written, rather than after a partial run.
	for _, in := range opts.Inputs {
		var fr *FileReader
		if in.R != nil {
			fr, err = NewFileReader(in.Name, in.R, opts.MaxLineBytes)
		} else {
			fr, err = OpenFile(in.Name, opts.MaxLineBytes)
		}
		if err != nil {
			return Summary{}, err
		}
		readers = append(readers, fr)
	}
	if opts.Sequential {
		err = r.runSequential(ctx, readers)
	} else {
		err = r.runPipelined(ctx, readers)
	}
	if err == nil {
		for _, s := range r.streams {
			s.part.Advance(math.MaxInt64)
			for _, p := range s.laneParts {
				p.Advance(math.MaxInt64)
			}
		}
	}
	// A write error that stopped the replay is also finish's: report it
	// once.
	if ferr := r.finish(); ferr != nil && !errors.Is(err, ferr) {
		err = errors.Join(err, ferr)
	}
	r.sum.Elapsed = time.Since(start)
	return r.sum, err
}

// replayer is the matching side of one Replay: it owns the partitions, the
// counters and the outputs, and runs on the calling goroutine only. It is
// the matcher.Output of every stream: results arrive synchronously inside
// Push and Advance.
type replayer struct {
	opts    ReplayOptions
	streams []*stream
	sum     Summary
	ruleIdx map[summaryKey]int // index into sum.Rules, by rule (no version)
	sources []string           // Input.source of each input
	lanes   laneTable          // shared by the decoders

	alerts, late, reports *bufio.Writer
	werr                  error // first write error

	// The line being pushed, so that Late can write it as read. Lines are
	// told apart by curSeq, their place in the replay, because line numbers
	// repeat from one file to the next.
	cur     []byte
	curRec  *matcher.Record
	curSeq  uint64
	lateSeq uint64 // curSeq of the line last written to the late sink
	scratch []byte

	// pool recycles the records of a replay of one stream (replay_recycle.go).
	pool *recordPool
}

func newReplayer(opts ReplayOptions) (*replayer, error) {
	if opts.MaxDeadLetterReports == 0 {
		opts.MaxDeadLetterReports = DefaultMaxDeadLetterReports
	}
	if opts.BatchLines <= 0 {
		opts.BatchLines = DefaultBatchLines
	}
	r := &replayer{opts: opts, ruleIdx: map[summaryKey]int{}}
	if opts.Alerts != nil {
		r.alerts = bufio.NewWriterSize(opts.Alerts, 64<<10)
	}
	if opts.Late != nil {
		r.late = bufio.NewWriter(opts.Late)
	}
	if opts.Reports != nil {
		r.reports = bufio.NewWriter(opts.Reports)
	}
	streams, err := newStreams(opts.Rulesets)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	r.streams = streams
	if len(streams) == 1 && opts.Tracer == nil {
		r.pool = &recordPool{}
	}
	for _, rs := range opts.Rulesets {
		for _, cr := range rs.Rules {
			r.ruleIdx[summaryKey{matcher.RuleID{Ruleset: rs.Name, Rule: cr.ID}, rs.Shadow}] = len(r.sum.Rules)
			r.sum.Rules = append(r.sum.Rules, RuleSummary{Ruleset: rs.Name, Rule: cr.ID, Shadow: rs.Shadow})
		}
	}
	for _, s := range r.streams {
		if s.part, err = r.newPartition(s); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// recycle is the Partitions' Options.Recycle: the pool's, if the replay
// recycles its records.
func (r *replayer) recycle() func(*matcher.Record) {
	if r.pool == nil {
		return nil
	}
	return r.pool.recycle
}

func (r *replayer) newPartition(s *stream) (*matcher.Partition, error) {
	p, err := matcher.NewPartition(s.prog, r, matcher.Options{
		MaxOutOfOrderness: s.rulesets[0].Stream.MaxOutOfOrderness,
		MaxRunsPerKey:     r.opts.MaxRunsPerKey,
		Clock:             r.opts.Clock,
		Logger:            r.opts.Logger,
		Tracer:            r.opts.Tracer,
		NoCheckpoints:     true,
		Recycle:           r.recycle(),
		// Alert writes an alert out and keeps nothing of it, unless it
		// hands it to OnAlert.
		ReuseAlerts:        r.opts.OnAlert == nil,
		PoisonReusedAlerts: poisonRecycled,
	})
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	return p, nil
}

// lanePartition returns the stream's Partition for the lane, creating it
// for the lane's first record. The first lane Partition of a stream makes
// the stream count its partial matches in a gauge, which the stream's own
// Partition joins then: until then it ran alone.
func (r *replayer) lanePartition(s *stream, lane int32) (*matcher.Partition, error) {
	if int(lane) < len(s.lanes) && s.lanes[lane] != nil {
		return s.lanes[lane], nil
	}
	p, err := r.newPartition(s)
	if err != nil {
		return nil, err
	}
	if s.gauge == nil {
		s.gauge = matcher.NewRunGauge(s.prog)
		if err := s.part.ShareRuns(s.gauge); err != nil {
			return nil, fmt.Errorf("replay: %w", err)
		}
	}
	if err := p.ShareRuns(s.gauge); err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	if int(lane) >= len(s.lanes) {
		s.lanes = append(s.lanes, make([]*matcher.Partition, int(lane)+1-len(s.lanes))...)
	}
	s.lanes[lane] = p
	s.laneParts = append(s.laneParts, p)
	return p, nil
}

// source is the name of the input in positions: Source, else the base
// name of Name.
func (in *Input) source() string {
	if in.Source != "" || in.Name == "" {
		return in.Source
	}
	return filepath.Base(in.Name)
}

// newStreams groups rulesets into streams, in the order of their first
// ruleset, and plans each stream's matcher.Program. Replay and the Kafka
// engine both use it, so that they group rules alike.
func newStreams(rulesets []*rules.Compiled) ([]*stream, error) {
	if len(rulesets) == 0 {
		return nil, errors.New("no rulesets")
	}
	var streams []*stream
	byID := map[string]*stream{}
	// A ruleset and its shadow version share a name.
	type version struct {
		name   string
		shadow bool
	}
	names := map[version]bool{}
	for _, rs := range rulesets {
		if rs == nil || rs.Ruleset == nil {
			return nil, errors.New("nil ruleset")
		}
		name := version{rs.Name, rs.Shadow}
		if names[name] {
			if rs.Shadow {
				return nil, fmt.Errorf("shadow version of ruleset %q given twice", rs.Name)
			}
			return nil, fmt.Errorf("ruleset %q given twice", rs.Name)
		}
		names[name] = true
		id := streamID(rs)
		s := byID[id]
		if s == nil {
			// The first ruleset's compiled expressions serve the stream:
			// equal sources over the same event give equal results.
			s = &stream{id: id, topic: rs.Stream.Topic, key: rs.Key, time: rs.Time}
			byID[id] = s
			streams = append(streams, s)
		}
		s.rulesets = append(s.rulesets, rs)
	}
	for _, s := range streams {
		prog, err := matcher.NewProgram(s.rulesets)
		if err != nil {
			return nil, err
		}
		s.prog = prog
	}
	return streams, nil
}

// streamID identifies the stream a ruleset reads: rulesets with equal ids
// share a Partition. A shadow version's stream is another stream over the
// same records, so that its partial matches, caps and state (the engine's
// key namespace derives from the id) stay apart from the live ones.
func streamID(rs *rules.Compiled) string {
	src := func(e *rules.Expr) string {
		if e == nil {
			return ""
		}
		return e.Source
	}
	id := strconv.Quote(rs.Stream.Topic) + strconv.Quote(src(rs.Key)) +
		strconv.Quote(src(rs.Time)) + rs.Stream.MaxOutOfOrderness.String()
	if rs.Shadow {
		id = "shadow:" + id
	}
	return id
}

// shadow reports whether s runs shadow versions: a stream's rulesets are
// all shadow or all live, as streamID tells them apart.
func (s *stream) shadow() bool { return len(s.rulesets) > 0 && s.rulesets[0].Shadow }

func (r *replayer) deadLetter(name string, lineNo int64, reason error) {
	r.sum.DeadLettered++
	if errors.Is(reason, ErrClockSkew) {
		r.sum.TooFarAhead++
	}
	if r.opts.OnDeadLetter != nil {
		r.opts.OnDeadLetter(name, lineNo, reason)
	}
	if r.reports != nil && r.sum.DeadLettered <= uint64(max(r.opts.MaxDeadLetterReports, 0)) {
		r.scratch = fmt.Appendf(r.scratch[:0], "%s:%d: %v\n", name, lineNo, reason)
		r.write(r.reports, r.scratch)
	}
}

// Alert implements matcher.Output.
func (r *replayer) Alert(a *matcher.Alert) {
	r.sum.Alerts++
	if i, ok := r.ruleIdx[summaryKey{matcher.RuleID{Ruleset: a.Ruleset, Rule: a.Rule}, a.Shadow}]; ok {
		r.sum.Rules[i].Alerts++
	}
	if r.alerts != nil && r.werr == nil {
		// Encoded straight into the writer's buffer when it has room: an
		// alert is then copied once, as it is encoded.
		if r.alerts.Available() < minAlertRoom {
			if err := r.alerts.Flush(); err != nil {
				r.werr = fmt.Errorf("replay: write: %w", err)
			}
		}
		r.write(r.alerts, append(a.AppendJSON(r.alerts.AvailableBuffer()), '\n'))
	}
	if r.opts.OnAlert != nil {
		r.opts.OnAlert(a)
	}
}

// minAlertRoom is the room in the alerts' writer below which it is
// flushed before an alert is encoded into it: most alerts take less.
const minAlertRoom = 8 << 10

// Late implements matcher.Output. A record is late when it is pushed, so the
// line being pushed is the one to write as read; a line late in several
// streams is written and counted once.
func (r *replayer) Late(rec *matcher.Record) {
	line := rec.Event.Raw()
	if rec == r.curRec {
		if r.lateSeq == r.curSeq {
			return
		}
		r.lateSeq = r.curSeq
		line = r.cur
	}
	r.sum.Late++
	if r.late != nil {
		r.write(r.late, line)
		r.write(r.late, []byte{'\n'})
	}
}

func (r *replayer) write(w *bufio.Writer, b []byte) {
	if r.werr != nil {
		return
	}
	if _, err := w.Write(b); err != nil {
		r.werr = fmt.Errorf("replay: write: %w", err)
	}
}

// finish collects the streams' counters and flushes the outputs.
func (r *replayer) finish() error {
	for _, s := range r.streams {
		// A rule is of one stream: its counters are the sums over the
		// stream's Partitions, and its peak is the gauge's when the
		// stream has several.
		for _, p := range append([]*matcher.Partition{s.part}, s.laneParts...) {
			for id, rs := range p.Stats().ByRule {
				if i, ok := r.ruleIndex(s, id); ok {
					r.sum.Rules[i].Timeouts += rs.Timeouts
					r.sum.Rules[i].Suppressed += rs.Suppressed
					r.sum.Rules[i].Dropped += rs.Dropped
					r.sum.Rules[i].CELErrors += rs.CELErrors
				}
			}
		}
		if s.gauge == nil {
			st := s.part.Stats()
			r.sum.PeakRuns += st.PeakRuns
			for id, rs := range st.ByRule {
				if i, ok := r.ruleIndex(s, id); ok {
					r.sum.Rules[i].PeakRuns = rs.PeakRuns
				}
			}
			continue
		}
		r.sum.PeakRuns += s.gauge.Peak()
		for id, peak := range s.gauge.RulePeaks() {
			if i, ok := r.ruleIndex(s, id); ok {
				r.sum.Rules[i].PeakRuns = peak
			}
		}
	}
	if n := r.sum.DeadLettered; r.reports != nil && n > uint64(max(r.opts.MaxDeadLetterReports, 0)) {
		r.scratch = fmt.Appendf(r.scratch[:0], "%d more dead-lettered lines not shown\n", n-uint64(max(r.opts.MaxDeadLetterReports, 0)))
		r.write(r.reports, r.scratch)
	}
	for _, w := range []*bufio.Writer{r.alerts, r.late, r.reports} {
		if w != nil && r.werr == nil {
			if err := w.Flush(); err != nil {
				r.werr = fmt.Errorf("replay: write: %w", err)
			}
		}
	}
	return r.werr
}

// summaryKey is a rule of the summary: a shadow version's rules count
// apart from the live rules of the same names.
type summaryKey struct {
	matcher.RuleID
	shadow bool
}

// ruleIndex finds a rule of matcher.Stats.ByRule of stream s in the
// summary, which counts every version of a rule as the rule.
func (r *replayer) ruleIndex(s *stream, id matcher.RuleID) (int, bool) {
	id.Version = ""
	i, ok := r.ruleIdx[summaryKey{id, s.shadow()}]
	return i, ok
}
