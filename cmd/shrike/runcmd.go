package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/internal/gctune"
	"github.com/shrike-cep/shrike/rules"
)

// runFlags are the options of `shrike run`.
type runFlags struct {
	rules         []string
	late          string
	maxRunsPerKey int
	maxLineBytes  int
	quiet         bool
	sources       []string
	maxClockSkew  time.Duration
	lists         []string
}

func newRunCmd(e env) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run --rules RULESET... [flags] EVENTS...",
		Short: "Replay recorded events through rulesets and print the alerts",
		Long: `Run replays recorded event files through the rulesets with the same matcher
the engine runs on Kafka, and prints every alert as one JSON object per line
on stdout.

Event files hold JSON lines (one event object per line), gzipped when the
name ends in .gz, or kcat -J envelope lines, whose payload is the event and
whose topic must be the ruleset's stream topic. "-" reads stdin. Files are
replayed in order as one stream with one watermark, except envelopes that
name a partition (kcat -J writes it): each topic partition keeps its own
watermark, as shrike serve keeps one per partition, so a dump that kcat
wrote partition after partition replays as the live topic does. At the end
all windows close, so absence and timeout alerts are emitted.

Lines that cannot be decoded, keyed or timed are reported on stderr as
file:line: reason, counted and skipped; late events (behind the watermark)
are not matched, are counted and, with --late, written to a file. When 1% or
more of the events are late, a warning on stderr says what to do. A summary
goes to stderr.

--max-clock-skew DUR guards the replay against events stamped in the
future, as shrike serve does with each stream's max_clock_skew: an event
whose time is more than DUR ahead of its partition's watermark is reported
on stderr as file:line: clock skew: ..., counted as dead-lettered, not
matched, and does not move the watermark. The first event of a partition
has no watermark to compare with and is always taken. DUR must exceed the
longest pause in the recording, or the first event after a longer pause,
and every one after it, is refused. Off by default.

The exit status is 0 when the replay ran, even with skipped
lines, and 1 when a ruleset is invalid or a file cannot be opened or read.

Alert ids hash the matched events' positions: the file's base name and the
line number. The same recording gives the same ids from any folder and
however its path is spelled; stdin is named "stdin". --source NAME, once per
file, names a recording otherwise: the API's POST /v1/rulesets:test names
inline events "events", so --source events gives the ids it gives. Two files
of one name are refused, since their ids could collide.`,
		Example: `  shrike run --rules rulesets/payments.yaml rulesets/testdata/payments.jsonl
  shrike run --rules rulesets/ --late late.jsonl day1.jsonl.gz day2.jsonl.gz
  kcat -b localhost:9092 -C -t payments -J -e | shrike run -r payments.yaml -
  shrike run -r payments.yaml --source payments-2026-11-20.jsonl /tmp/x.jsonl
  shrike run -r payments.yaml --max-clock-skew 1h suspicious.jsonl`,
		Args: argsAtLeast(1, "events file argument"),
		RunE: func(cmd *cobra.Command, args []string) error {
			gctune.ForReplay()
			return runReplay(cmd, e, f, args)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVarP(&f.rules, "rules", "r", nil, "ruleset `FILE`s or directories (repeat the flag or separate with commas)")
	fl.StringVar(&f.late, "late", "", "write the lines of late events to `FILE`")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "do not print the summary")
	addReplayFlags(cmd, &f)
	_ = cmd.MarkFlagRequired("rules")
	return cmd
}

// addReplayFlags adds the flags of the replay that `shrike run`, `shrike
// explain` and `shrike diff` share.
func addReplayFlags(cmd *cobra.Command, f *runFlags) {
	fl := cmd.Flags()
	fl.IntVar(&f.maxRunsPerKey, "max-runs-per-key", 0, "cap on one rule's partial matches per key, the oldest dropped, and on an aggregate rule's events kept as they are per key, the oldest summarized (default 10000)")
	fl.IntVar(&f.maxLineBytes, "max-line-bytes", cep.DefaultMaxLineBytes, "longest line accepted; longer lines are reported and skipped")
	fl.DurationVar(&f.maxClockSkew, "max-clock-skew", 0, "dead-letter events more than `DUR` ahead of the watermark (0: off)")
	fl.StringArrayVar(&f.lists, "list", nil, listFlagHelp)
	fl.StringArrayVar(&f.sources, "source", nil, "`NAME` of the recording in positions and alert ids, instead of the file's base name; once per events file, in order")
}

// checkReplayFlags checks the replay flags `shrike run` shares with
// `shrike explain` and `shrike diff`.
func checkReplayFlags(f runFlags, args []string) error {
	if f.maxRunsPerKey < 0 || f.maxLineBytes <= 0 {
		return usageError{errors.New("--max-runs-per-key must be >= 0 and --max-line-bytes > 0")}
	}
	if f.maxClockSkew < 0 {
		return usageError{fmt.Errorf("--max-clock-skew must not be negative, not %s (0: off)", f.maxClockSkew)}
	}
	if len(f.sources) > 0 && len(f.sources) != len(args) {
		return usageError{fmt.Errorf("--source: give one name per events file (%s, %s)",
			plural(uint64(len(args)), "file", "files"), plural(uint64(len(f.sources)), "name", "names"))}
	}
	if i := slices.Index(f.sources, ""); i >= 0 {
		return usageError{fmt.Errorf("--source: the name of %s is empty", args[i])}
	}
	return nil
}

// eventInputs names the events files of a replay: "-" is stdin, and
// sources, when given, name the recordings in positions.
func eventInputs(e env, args, sources []string) []cep.Input {
	inputs := make([]cep.Input, len(args))
	for i, a := range args {
		inputs[i] = cep.Input{Name: a}
		if a == "-" {
			inputs[i] = cep.Input{Name: "stdin", R: e.stdin}
		}
		if len(sources) > 0 {
			inputs[i].Source = sources[i]
		}
	}
	return inputs
}

// compileRulesetFlags loads the rulesets --rules names, reporting every
// error on stderr (errReported then). They read their managed lists from
// store (setListFlags fills it once every ruleset is loaded).
func compileRulesetFlags(e env, paths []string, store *rules.ManagedLists) ([]*rules.Compiled, error) {
	files, err := rulesetFiles(paths)
	if err != nil {
		return nil, err
	}
	results, ok := loadRulesets(files, e.stderr, store)
	if !ok {
		return nil, errReported
	}
	compiled := make([]*rules.Compiled, len(results))
	for i, r := range results {
		compiled[i] = r.compiled
	}
	return compiled, nil
}

// compileWithListFlags loads the rulesets --rules names with the items of
// the --list files in their managed lists, checked against what the
// rulesets declare.
func compileWithListFlags(e env, rulesPaths, listSpecs []string) ([]*rules.Compiled, error) {
	lists, err := readListFlags(listSpecs)
	if err != nil {
		return nil, err
	}
	store := rules.NewManagedLists()
	compiled, err := compileRulesetFlags(e, rulesPaths, store)
	if err != nil {
		return nil, err
	}
	if err := setListFlags(store, lists, compiled); err != nil {
		return nil, err
	}
	return compiled, nil
}

func runReplay(cmd *cobra.Command, e env, f runFlags, args []string) error {
	if err := checkReplayFlags(f, args); err != nil {
		return err
	}
	compiled, err := compileWithListFlags(e, f.rules, f.lists)
	if err != nil {
		return err
	}
	inputs, bar, closeInputs, err := openWithProgress(e.stderr, eventInputs(e, args, f.sources))
	if err != nil {
		return err
	}
	defer closeInputs()
	opts := cep.ReplayOptions{
		Rulesets:      compiled,
		Inputs:        inputs,
		Alerts:        e.stdout,
		Reports:       bar.writer(e.stderr),
		MaxLineBytes:  f.maxLineBytes,
		MaxRunsPerKey: f.maxRunsPerKey,
		MaxClockSkew:  f.maxClockSkew,
		Clock:         e.clock,
	}
	if f.late != "" {
		lf, err := os.Create(f.late)
		if err != nil {
			return fmt.Errorf("late file: %w", err)
		}
		defer func() {
			// On the early returns; after a good replay the file is closed,
			// and its error reported, below.
			_ = lf.Close()
		}()
		opts.Late = lf
	}
	sum, err := cep.Replay(cmd.Context(), opts)
	bar.finish()
	if err != nil {
		return err
	}
	warnLate(e.stderr, &sum, compiled)
	warnTooFarAhead(e.stderr, &sum, f.maxClockSkew)
	if opts.Late != nil {
		if err := opts.Late.(*os.File).Close(); err != nil {
			return fmt.Errorf("late file: %w", err)
		}
	}
	if !f.quiet {
		return writeSummary(e.stderr, &sum, f.late)
	}
	return nil
}

// lateShareToWarn is the share of late events from which `shrike run`
// warns. Events in time order have none late, and nor do events out of
// order by less than max_out_of_orderness: late events mean the input and
// the stream settings disagree. At 1% the rules miss one event in a
// hundred, and a sequence rule loses every match that needed one, which
// changes the alert counts a backtest is read for; a few stragglers in a
// large recording stay below it.
const lateShareToWarn = 0.01

// warnLate warns when lateShareToWarn or more of the replayed events were
// late, with what to do about it.
func warnLate(w *output, s *cep.Summary, rulesets []*rules.Compiled) {
	if s.Events == 0 || float64(s.Late) < lateShareToWarn*float64(s.Events) {
		return
	}
	var delays []string
	for _, rs := range rulesets {
		delays = append(delays, fmt.Sprintf("%s in %s", rs.Stream.MaxOutOfOrderness, rs.Name))
	}
	fmt.Fprintf(w, `shrike: warning: %d of %d events (%.1f%%) were late, behind the watermark, and were not matched: alerts are missing.
  Sort the events by event time, or raise stream.max_out_of_orderness (%s).
  For a Kafka dump, keep kcat -J envelopes with their "partition" field: each partition then keeps its own watermark.
  --late FILE writes the late lines.
`, s.Late, s.Events, 100*float64(s.Late)/float64(s.Events), strings.Join(delays, ", "))
}

// warnTooFarAhead warns when more than one event, and lateShareToWarn or
// more of them, were refused by --max-clock-skew: a stray future timestamp
// is what the bound is for, many refused events mean a pause in the
// recording longer than the bound (every event after it is refused).
func warnTooFarAhead(w *output, s *cep.Summary, bound time.Duration) {
	n := s.TooFarAhead
	if n < 2 || float64(n) < lateShareToWarn*float64(s.Events+n) {
		return
	}
	fmt.Fprintf(w, `shrike: warning: %d events were more than --max-clock-skew %s ahead of the watermark and were not matched.
  If the recording pauses for longer than that, raise --max-clock-skew above the longest pause.
`, n, bound)
}

func plural(n uint64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// roundDuration keeps three or so significant digits, so that short and
// long replays both read well.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}
