package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shrike-cep/shrike/cep/diff"
	"github.com/shrike-cep/shrike/internal/gctune"
	"github.com/shrike-cep/shrike/rules"
)

// Exit statuses of `shrike diff` (2 is a bad command line, as for every
// command): 1 means the versions differ, so a failure needs a status of
// its own, 3 as for `shrike test`'s files that do not load.
const (
	exitDiffer     exitStatus = 1
	exitDiffFailed exitStatus = 3
)

// diffFlags are the options of `shrike diff`.
type diffFlags struct {
	runFlags
	against  []string
	json     bool
	examples int
}

func newDiffCmd(e env) *cobra.Command {
	var f diffFlags
	cmd := &cobra.Command{
		Use:   "diff --rules OLD... --against NEW... [--json] [--examples N] EVENTS...",
		Short: "Compare the alerts of two versions of rulesets over recorded events",
		Long: `Diff replays recorded event files once through two versions of rulesets, the
old ones (--rules, usually the ones that run) and the new ones (--against,
the candidates), and compares their alerts rule by rule. A ruleset of
--against is compared with the ruleset of the same name in --rules; a rule
or ruleset only one side has is all alerts of that side.

Two alerts are the same alert when they have the same ruleset, rule, key
and timeout flag and matched the same events at the same steps. Ids are not
compared: they hash the rule's version, which any change of the rule
changes. For each rule the output counts the alerts of both versions, of
the old one only (the change removes them) and of the new one only (the
change adds them), then shows, for each rule that differs, the first
--examples alerts of each version only: id, key, start and the matched
events' positions (step@file:line). Ids are those shrike run gives each
version alone.

The text output is for people; --json writes one JSON object, the API's
DiffRulesetsResponse (POST /v1/rulesets:diff), with the example alerts as
shrike run prints them. Event files are read as shrike run reads them.

The events are read and decoded once for both versions, which run as
separate streams, as a shadow version runs beside the live one: each keeps
partial matches, caps and watermark of its own.

Exit status: 0 when no rule differs, 1 when some rule differs, 2 for a bad
command line, 3 when a ruleset is invalid, a file cannot be read or the
output cannot be written.`,
		Example: `  shrike diff --rules rulesets/payments.yaml --against payments-new.yaml rulesets/testdata/payments.jsonl
  shrike diff -r rulesets/ --against candidate/ --json --examples 10 day1.jsonl.gz day2.jsonl.gz
  shrike diff -r payments.yaml --against payments-new.yaml cases.jsonl && echo "no alert changes"`,
		Args: argsAtLeast(1, "events file argument"),
		RunE: func(cmd *cobra.Command, args []string) error {
			gctune.ForReplay()
			return runDiff(cmd, e, f, args)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVarP(&f.rules, "rules", "r", nil, "the old ruleset `FILE`s or directories (repeat the flag or separate with commas)")
	fl.StringSliceVar(&f.against, "against", nil, "the new ruleset `FILE`s or directories to compare with --rules")
	fl.BoolVar(&f.json, "json", false, "write one JSON object instead of text")
	fl.IntVar(&f.examples, "examples", diff.DefaultExamples, "example alerts to show per rule and kind (0: none)")
	addReplayFlags(cmd, &f.runFlags)
	_ = cmd.MarkFlagRequired("rules")
	_ = cmd.MarkFlagRequired("against")
	return cmd
}

func runDiff(cmd *cobra.Command, e env, f diffFlags, args []string) error {
	if err := checkReplayFlags(f.runFlags, args); err != nil {
		return err
	}
	if f.examples < 0 {
		return usageError{fmt.Errorf("--examples must not be negative, not %d (0: none)", f.examples)}
	}
	lists, err := readListFlags(f.lists)
	if err != nil {
		return diffFailed(e, err)
	}
	// Both sides read the same managed lists: a difference is the rules'.
	store := rules.NewManagedLists()
	old, err := compileRulesetFlags(e, f.rules, store)
	if err != nil {
		return diffFailed(e, fmt.Errorf("--rules: %w", err))
	}
	candidates, err := compileRulesetFlags(e, f.against, store)
	if err != nil {
		return diffFailed(e, fmt.Errorf("--against: %w", err))
	}
	if err := setListFlags(store, lists, old, candidates); err != nil {
		return diffFailed(e, err)
	}
	examples := f.examples
	if examples == 0 {
		examples = -1 // none; diff.Options reads 0 as the default
	}
	res, err := diff.Run(cmd.Context(), diff.Options{
		Old:           old,
		New:           candidates,
		Inputs:        eventInputs(e, args, f.sources),
		Examples:      examples,
		MaxRunsPerKey: f.maxRunsPerKey,
		MaxLineBytes:  f.maxLineBytes,
		MaxClockSkew:  f.maxClockSkew,
		Clock:         e.clock,
	})
	if err != nil {
		return diffFailed(e, err)
	}
	if f.json {
		err = res.WriteJSON(e.stdout)
	} else {
		err = res.WriteText(e.stdout)
	}
	if err != nil {
		return diffFailed(e, fmt.Errorf("writing output: %w", err))
	}
	if res.Differs {
		return exitDiffer
	}
	return nil
}

// diffFailed reports a failure of `shrike diff` on stderr, unless it was
// reported already, and ends with exitDiffFailed: status 1 means "the
// versions differ".
func diffFailed(e env, err error) error {
	if !errors.Is(err, errReported) {
		fmt.Fprintf(e.stderr, "shrike: %v\n", err)
	}
	return exitDiffFailed
}
