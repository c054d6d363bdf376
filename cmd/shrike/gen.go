package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shrike-cep/shrike/internal/gen"
	"github.com/shrike-cep/shrike/rules"
)

// genFlags are the options of `shrike gen`.
type genFlags struct {
	scenario    string
	rate        float64
	keys        int
	duration    time.Duration
	seed        uint64
	events      int
	out         string
	start       string
	outOfOrder  float64
	maxLateness time.Duration
	patterns    []string
	noInject    bool
	quiet       bool
	kafka       []string
	topic       string
}

func newGenCmd(e env) *cobra.Command {
	var f genFlags
	cmd := &cobra.Command{
		Use:   "gen --scenario NAME [flags]",
		Short: "Generate a synthetic event stream with labelled attack and incident patterns",
		Long: `Gen writes a synthetic, realistic event stream as JSON lines on stdout (or
--out), for the example rulesets under rulesets/: ordinary traffic with
attack or incident patterns injected into it. Every injected event carries a
"scenario" field naming its pattern, so each alert a ruleset raises on the
stream can be traced back to what should have fired.

The output is a pure function of the flags: the same flags (--seed included)
give the same bytes. Event time starts at --start (default
2026-11-20T10:00:00Z) and advances at --rate events per second; the stream
ends after --events events or at --start + --duration, whichever comes
first (default: 10000 events). A summary goes to stderr: the patterns
injected, and the alerts to expect from the scenario's example ruleset
(rulesets/NAME.yaml, on the topic of the same name), rule by rule; an
absence rule alerts only once event time has passed its window.

With --kafka, the events are produced to a Kafka topic instead (--topic,
default the scenario's name, which is the topic of its example ruleset), as
fast as the brokers take them, each keyed by its natural key (account_id,
user_id or service); the summary then reports the throughput.
Keep --rate / --keys, the events per account or user and second, well below
0.05: busier accounts make rules such as velocity fire on ordinary traffic,
as real accounts that busy would.

Scenarios and the patterns they inject:
` + genScenarioList(),
		Example: `  shrike gen --scenario itops --duration 10m | shrike run --rules rulesets/itops.yaml -
  shrike gen --scenario payments --events 100000 --kafka 127.0.0.1:9092
  shrike gen --scenario payments --rate 50 --keys 5000 --events 100000 --seed 7 --out day.jsonl.gz
  shrike gen --scenario account_security --patterns mfa_fatigue --duration 1h -q > mfa.jsonl`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unexpected argument %q (gen takes flags only)", args[0])}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runGen(cmd.Context(), e, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.scenario, "scenario", "s", "", "the stream to generate: "+strings.Join(gen.Streams(), ", "))
	fl.Float64Var(&f.rate, "rate", 0, "events per second of event time (default 100, or 20 for itops)")
	fl.IntVar(&f.keys, "keys", 0, "distinct accounts, users or services (default 10000, or 8 for itops)")
	fl.DurationVar(&f.duration, "duration", 0, "end the stream this much event time after --start")
	fl.Uint64Var(&f.seed, "seed", 0, "random seed; the same seed gives the same stream")
	fl.IntVar(&f.events, "events", 0, "end the stream after this many events (default 10000 without --duration, else no limit)")
	fl.StringVarP(&f.out, "out", "o", "", "write to `FILE` instead of stdout (gzipped when it ends in .gz)")
	fl.StringVar(&f.start, "start", "", "event time of the first event, RFC 3339 or now (default 2026-11-20T10:00:00Z)")
	fl.Float64Var(&f.outOfOrder, "out-of-order", 0, "fraction of events (0..1) that arrive later than their event time says")
	fl.DurationVar(&f.maxLateness, "max-lateness", 0, "how far behind the newest event an out-of-order event arrives at most (default 1s)")
	fl.StringSliceVar(&f.patterns, "patterns", nil, "inject only these patterns (repeat or comma-separate; default all of the scenario's)")
	fl.BoolVar(&f.noInject, "no-inject", false, "ordinary traffic only: inject no pattern")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "do not print the summary")
	fl.StringSliceVar(&f.kafka, "kafka", nil, "produce to Kafka at these `BROKERS` (host:port, comma-separated) instead of writing lines")
	fl.StringVar(&f.topic, "topic", "", "with --kafka, the `TOPIC` to produce to (default: the scenario's name)")
	_ = cmd.MarkFlagRequired("scenario")
	return cmd
}

// genScenarioList describes every stream and its patterns for the help.
func genScenarioList() string {
	var b strings.Builder
	for _, s := range gen.Streams() {
		fmt.Fprintf(&b, "  %-17s %s\n", s, strings.Join(gen.Scenarios(s), ", "))
	}
	return b.String()
}

func runGen(ctx context.Context, e env, f genFlags) error {
	if !slices.Contains(gen.Streams(), f.scenario) {
		return usageError{fmt.Errorf("unknown scenario %q (known: %s)", f.scenario, strings.Join(gen.Streams(), ", "))}
	}
	// The library calls patterns scenarios, after the events' "scenario"
	// field; on the command line --scenario is the stream, so say pattern.
	known := gen.Scenarios(f.scenario)
	for _, p := range f.patterns {
		if !slices.Contains(known, p) {
			return usageError{fmt.Errorf("unknown pattern %q for scenario %s (known: %s)", p, f.scenario, strings.Join(known, ", "))}
		}
	}
	opts := gen.Options{
		Stream:      f.scenario,
		Seed:        f.seed,
		Events:      f.events,
		Duration:    f.duration,
		Keys:        f.keys,
		Rate:        f.rate,
		OutOfOrder:  f.outOfOrder,
		MaxLateness: f.maxLateness,
		Scenarios:   f.patterns,
	}
	// Zero means "the default" to gen.Options; a zero typed on the command
	// line means something else, or nothing.
	if f.events < 0 || f.keys < 0 || f.rate < 0 || f.duration < 0 || f.maxLateness < 0 {
		return usageError{errors.New("--events, --keys, --rate, --duration and --max-lateness must not be negative")}
	}
	if f.noInject {
		opts.FraudRate, opts.IncidentEvery = -1, -1
	}
	switch f.start {
	case "":
	case "now":
		// Live traffic for `shrike serve`: event time near the wall clock.
		opts.Start = e.clock().UTC().Truncate(time.Second)
	default:
		t, err := time.Parse(time.RFC3339Nano, f.start)
		if err != nil {
			return usageError{fmt.Errorf("--start: %w", err)}
		}
		opts.Start = t
	}
	if len(f.kafka) > 0 && f.out != "" {
		return usageError{errors.New("--kafka and --out exclude each other")}
	}
	if f.topic != "" && len(f.kafka) == 0 {
		return usageError{errors.New("--topic needs --kafka")}
	}
	g, err := gen.New(opts)
	if err != nil {
		if errors.Is(err, gen.ErrBadOptions) {
			return usageError{err}
		}
		return err
	}
	if len(f.kafka) > 0 {
		return genToKafka(ctx, e, g, f)
	}

	var w io.Writer = e.stdout
	var file *os.File
	var zw *gzip.Writer
	if f.out != "" && f.out != "-" {
		if file, err = os.Create(f.out); err != nil {
			return fmt.Errorf("gen: %w", err)
		}
		w = file
		if strings.HasSuffix(f.out, ".gz") {
			zw = gzip.NewWriter(file)
			w = zw
		}
	}
	written, err := writeEvents(ctx, g, w)
	if err == nil && zw != nil {
		err = zw.Close()
	}
	if file != nil {
		// Closed on every path; a close error after a good write can mean
		// lost data, so it is the error then.
		if cerr := file.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	if !f.quiet {
		dest := "stdout"
		if f.out != "" && f.out != "-" {
			dest = f.out
		}
		printGenSummary(e.stderr, g, written, dest)
	}
	return nil
}

// writeEvents writes g's events as lines to w, checking ctx now and then
// so that an interrupt stops an endless --duration stream.
func writeEvents(ctx context.Context, g *gen.Generator, w io.Writer) (int, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	n := 0
	for {
		line, ok := g.Next()
		if !ok {
			break
		}
		if _, err := bw.Write(line); err != nil {
			return n, err
		}
		if err := bw.WriteByte('\n'); err != nil {
			return n, err
		}
		n++
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				_ = bw.Flush()
				return n, err
			}
		}
	}
	return n, bw.Flush()
}

// printGenSummary tells a person what the stream holds: how many events,
// which event-time span, and how many instances of each pattern.
func printGenSummary(w *output, g *gen.Generator, written int, dest string) {
	o := g.Options()
	fmt.Fprintf(w, "%d %s events to %s (seed %d, %d keys, %g events/s from %s)\n",
		written, o.Stream, dest, o.Seed, o.Keys, o.Rate, o.Start.UTC().Format(time.RFC3339))
	inj := g.Injected()
	var parts, expect []string
	for _, name := range gen.Scenarios(o.Stream) {
		n := inj[name]
		if n == 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %d", name, n))
		// Which rule must fire, and when: an absence rule only once event
		// time has passed its window, which under serve with --start now
		// is that much wall-clock time later.
		e := fmt.Sprintf("%s %d", gen.Rule(name), n)
		if win := gen.AbsenceWindow(name); win > 0 {
			e += fmt.Sprintf(" (absence: each alerts once event time is %s past its first event)", rules.FormatDuration(win))
		}
		expect = append(expect, e)
	}
	if len(parts) == 0 {
		fmt.Fprintln(w, "injected: none")
		return
	}
	fmt.Fprintf(w, "injected: %s\n", strings.Join(parts, ", "))
	fmt.Fprintf(w, "alerts to expect from ruleset %s (rulesets/%s.yaml, topic %s): %s\n", o.Stream, o.Stream, o.Stream, strings.Join(expect, ", "))
}
