package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/cep/diff"
)

// newRulesDiffCmd is the API client of DiffRulesets (POST
// /v1/rulesets:diff): `shrike diff` run by the server, on stored versions
// or a recording.
func newRulesDiffCmd(e env, f *clientFlags) *cobra.Command {
	var (
		file, against, againstFile, events, recording string
		version, againstVersion                       int64
		examples                                      int32
	)
	cmd := &cobra.Command{
		Use:   "diff [NAME] [--version N] (--against NAME2 [--against-version M] | --against-file FILE) (--events FILE | --recording PATH)",
		Short: "Compare on the server the alerts of two versions of a ruleset over events",
		Long: `Diff asks the server to compare the alerts of two versions of a ruleset over
the same events, as shrike diff does offline, in one replay. The old
version is the stored ruleset NAME (--version N for an earlier version) or
the local ruleset --file FILE; the new one the stored ruleset --against
NAME2 (--against-version M) or the local ruleset --against-file FILE. The
events are those of the local file --events (sent with the request) or of
a recording in the server's recordings folder (--recording).

The output is shrike diff's: a table of the rules with the alerts of both
versions, of the old one only and of the new one only, then examples of
the alerts that differ (their matched events: the server sends no
positions), or with -o json the response, the JSON of shrike diff --json.

Exit status: 0 when no rule differs, 1 when some rule differs, 2 for a bad
command line, 3 when the server refused the request or could not be
reached.`,
		Example: `  shrike rules diff payments --version 3 --against payments --recording payments/2026-11-20.jsonl
  shrike rules diff payments --against-file payments-new.yaml --events cases.jsonl -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &shrikev1.DiffRulesetsRequest{Examples: examples}
			var err error
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			if req.Old, err = rulesetRef("", name, file, version); err != nil {
				return diffFailedUnlessUsage(e, err)
			}
			if req.New, err = rulesetRef("against", against, againstFile, againstVersion); err != nil {
				return diffFailedUnlessUsage(e, err)
			}
			inline, rec, err := eventsInput(events, recording)
			switch {
			case err != nil:
				return diffFailedUnlessUsage(e, err)
			case rec != "":
				req.Input = &shrikev1.DiffRulesetsRequest_Recording{Recording: rec}
			default:
				req.Input = &shrikev1.DiffRulesetsRequest_Events{Events: inline}
			}
			if examples < 0 {
				return usageError{fmt.Errorf("--examples must not be negative, not %d", examples)}
			}
			f.resolve(cmd)
			if err := f.checkOutput(); err != nil {
				return err
			}
			conn, err := f.dial(e.stderr)
			if err != nil {
				return diffFailedUnlessUsage(e, err)
			}
			defer func() { _ = conn.Close() }()
			ctx, cancel := f.call(cmd.Context())
			defer cancel()
			resp, err := shrikev1.NewAnalysisServiceClient(conn).DiffRulesets(ctx, req)
			if err != nil {
				return diffFailed(e, f.rpcError("diff", err))
			}
			if f.output == "json" {
				err = diff.WriteResponseJSON(e.stdout, resp)
			} else {
				err = diff.WriteResponseText(e.stdout, resp)
			}
			if err != nil {
				return diffFailed(e, fmt.Errorf("writing output: %w", err))
			}
			if resp.GetDiffer() {
				return exitDiffer
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&file, "file", "", "the old version is the local ruleset `FILE` instead of a stored one")
	fl.Int64Var(&version, "version", 0, "the stored ruleset's version `N` (default: the current one)")
	fl.StringVar(&against, "against", "", "the new version is the stored ruleset `NAME2`")
	fl.Int64Var(&againstVersion, "against-version", 0, "the version `M` of --against (default: the current one)")
	fl.StringVar(&againstFile, "against-file", "", "the new version is the local ruleset `FILE`")
	fl.StringVar(&events, "events", "", "send the events of the local `FILE` (JSON lines or kcat -J envelopes)")
	fl.StringVar(&recording, "recording", "", "replay the server's recording `PATH` (relative to its recordings folder)")
	fl.Int32Var(&examples, "examples", 0, "example alerts per rule and kind (default 3; the server allows at most 20)")
	return cmd
}

// rulesetRef names one version of `shrike rules diff` (or the ruleset of
// `shrike rules explain`): a stored ruleset (name, version) or a local file
// sent as its source. flag is the prefix
// of the side's flags: "" for the old version, "against" for the new.
func rulesetRef(flag, name, file string, version int64) (*shrikev1.RulesetRef, error) {
	nameFlag, fileFlag, versionFlag := "NAME", "--file", "--version"
	if flag != "" {
		nameFlag, fileFlag, versionFlag = "--"+flag, "--"+flag+"-file", "--"+flag+"-version"
	}
	ref := &shrikev1.RulesetRef{Version: version}
	switch {
	case name != "" && file != "":
		return nil, usageError{fmt.Errorf("give %s or %s, not both", nameFlag, fileFlag)}
	case name != "":
		ref.Ruleset = &shrikev1.RulesetRef_Name{Name: name}
	case file != "":
		if version != 0 {
			return nil, usageError{fmt.Errorf("%s goes with a stored ruleset %s, not with %s", versionFlag, nameFlag, fileFlag)}
		}
		src, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("ruleset: %w", err)
		}
		ref.Ruleset = &shrikev1.RulesetRef_Source{Source: string(src)}
	default:
		return nil, usageError{fmt.Errorf("missing a version: a stored ruleset %s or %s FILE", nameFlag, fileFlag)}
	}
	return ref, nil
}

// eventsInput reads the events flags of `shrike rules explain` and `shrike
// rules diff`: the local file --events, whose lines go inline, or the
// server's recording --recording.
func eventsInput(events, recording string) (inline, rec string, err error) {
	switch {
	case events != "" && recording != "":
		return "", "", usageError{errors.New("give --events or --recording, not both")}
	case events != "":
		b, err := os.ReadFile(events)
		if err != nil {
			return "", "", fmt.Errorf("events: %w", err)
		}
		return string(b), "", nil
	case recording != "":
		return "", recording, nil
	}
	return "", "", usageError{errors.New("missing events: --events FILE or --recording PATH")}
}

// diffFailedUnlessUsage ends a diff that failed with exitDiffFailed, but
// for a mistake in the command line, which keeps its status 2.
func diffFailedUnlessUsage(e env, err error) error {
	var uerr usageError
	if errors.As(err, &uerr) {
		return err
	}
	return diffFailed(e, err)
}
