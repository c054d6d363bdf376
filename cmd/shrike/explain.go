package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shrike-cep/shrike/cep/explain"
	"github.com/shrike-cep/shrike/internal/gctune"
)

// explainFlags are the options of `shrike explain`.
type explainFlags struct {
	runFlags
	key        string
	rule       string
	json       bool
	maxEntries int
}

func newExplainCmd(e env) *cobra.Command {
	var f explainFlags
	cmd := &cobra.Command{
		Use:   "explain --rules RULESET... --key KEY [--rule ID] [--json] EVENTS...",
		Short: "Explain why rules did or did not fire for one key of a recording",
		Long: `Explain replays recorded event files through the rulesets with the matcher of
shrike run and traces one key: every other key runs as usual but is not
shown. For each of the key's records, in the order the matcher sees them,
and for each rule (or the one --rule names), it shows the step conditions
that held, failed or raised a CEL error (with the error), what became of
each partial match (started, took the record at a step, skipped it, or
ended and why: a within expired, strict contiguity broken, a not step
matched, pruned by the skip strategy, dropped by the per-key cap, timed out
with or without a timeout alert), records behind the watermark, and the
alerts. It ends with a verdict per rule: fired N times with the alert ids,
or did not fire, with the furthest a partial match got (step k of n, the
records it held), why it ended, and the step it still needed.

The text output is for people; --json writes one JSON object per line, the
entries documented in docs/explain.md, for tools. Event files are read as
shrike run reads them, and alert ids are the ids shrike run gives.

The exit status is 0 when the trace was written, whatever the verdicts, 1
when a ruleset is invalid or a file cannot be read, and 2 for a bad command
line (an unknown --rule among them).`,
		Example: `  shrike explain --rules rulesets/payments.yaml --key acct-0000042 rulesets/testdata/payments.jsonl
  shrike explain -r rulesets/payments.yaml --key k-late --rule account-takeover --json cases.jsonl`,
		Args: argsAtLeast(1, "events file argument"),
		RunE: func(cmd *cobra.Command, args []string) error {
			gctune.ForReplay()
			return runExplain(cmd, e, f, args)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVarP(&f.rules, "rules", "r", nil, "ruleset `FILE`s or directories (repeat the flag or separate with commas)")
	fl.StringVar(&f.key, "key", "", "the `KEY` to trace (the stream's key of its events)")
	fl.StringVar(&f.rule, "rule", "", "trace only this rule: its `ID`, or RULESET/ID")
	fl.BoolVar(&f.json, "json", false, "write JSON lines instead of text")
	fl.IntVar(&f.maxEntries, "max-entries", explain.DefaultMaxEntries, "most trace entries to write before the verdicts (0: no bound)")
	addReplayFlags(cmd, &f.runFlags)
	_ = cmd.MarkFlagRequired("rules")
	_ = cmd.MarkFlagRequired("key")
	return cmd
}

func runExplain(cmd *cobra.Command, e env, f explainFlags, args []string) error {
	if err := checkReplayFlags(f.runFlags, args); err != nil {
		return err
	}
	if f.key == "" {
		return usageError{errors.New("--key must not be empty")}
	}
	if f.maxEntries < 0 {
		return usageError{fmt.Errorf("--max-entries must not be negative, not %d", f.maxEntries)}
	}
	compiled, err := compileWithListFlags(e, f.rules, f.lists)
	if err != nil {
		return err
	}
	maxEntries := f.maxEntries
	if maxEntries == 0 {
		maxEntries = -1
	}
	res, err := explain.Run(cmd.Context(), explain.Options{
		Rulesets:      compiled,
		Inputs:        eventInputs(e, args, f.sources),
		Key:           f.key,
		Rule:          f.rule,
		MaxEntries:    maxEntries,
		MaxRunsPerKey: f.maxRunsPerKey,
		MaxLineBytes:  f.maxLineBytes,
		MaxClockSkew:  f.maxClockSkew,
		Clock:         e.clock,
	})
	if err != nil {
		if errors.Is(err, explain.ErrRule) {
			return usageError{fmt.Errorf("--rule: %w", err)}
		}
		return err
	}
	if f.json {
		return res.WriteJSON(e.stdout)
	}
	return res.WriteText(e.stdout)
}
