package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/cep/explain"
)

// newRulesExplainCmd is the API client of ExplainRuleset (POST
// /v1/rulesets:explain): `shrike explain` run by the server, on a stored
// ruleset or recording.
func newRulesExplainCmd(e env, f *clientFlags) *cobra.Command {
	var (
		file, events, recording, key, rule string
		version                            int64
	)
	cmd := &cobra.Command{
		Use:   "explain [NAME] --key KEY [--rule ID] (--events FILE | --recording PATH)",
		Short: "Explain on the server why a ruleset's rules did or did not fire for one key",
		Long: `Explain asks the server to trace one key through a ruleset, as shrike explain
does offline: the stored ruleset NAME (--version N for an earlier version),
or the local ruleset --file FILE; the events of the local file --events
(sent with the request) or of a recording in the server's recordings
folder (--recording). The output is shrike explain's: text, or with -o json
its JSON lines. The server bounds the entries (the verdicts always come).`,
		Example: `  shrike rules explain payments --key acct-42 --recording payments/2026-11-20.jsonl
  shrike rules explain --file payments.yaml --key k-late --rule account-takeover --events cases.jsonl -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &shrikev1.ExplainRulesetRequest{Key: key, Rule: rule}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			var err error
			if req.Ruleset, err = rulesetRef("", name, file, version); err != nil {
				return err
			}
			inline, rec, err := eventsInput(events, recording)
			switch {
			case err != nil:
				return err
			case rec != "":
				req.Input = &shrikev1.ExplainRulesetRequest_Recording{Recording: rec}
			default:
				req.Input = &shrikev1.ExplainRulesetRequest_Events{Events: inline}
			}
			if key == "" {
				return usageError{errors.New("--key must not be empty")}
			}
			f.resolve(cmd)
			if err := f.checkOutput(); err != nil {
				return err
			}
			conn, err := f.dial(e.stderr)
			if err != nil {
				return err
			}
			defer func() { _ = conn.Close() }()
			ctx, cancel := f.call(cmd.Context())
			defer cancel()
			resp, err := shrikev1.NewAnalysisServiceClient(conn).ExplainRuleset(ctx, req)
			if err != nil {
				return f.rpcError("explain", err)
			}
			res, err := explainResult(key, resp)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return res.WriteJSON(e.stdout)
			}
			return res.WriteText(e.stdout)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&file, "file", "", "explain the local ruleset `FILE` instead of a stored one")
	fl.Int64Var(&version, "version", 0, "the stored ruleset's version `N` (default: the current one)")
	fl.StringVar(&events, "events", "", "send the events of the local `FILE` (JSON lines or kcat -J envelopes)")
	fl.StringVar(&recording, "recording", "", "replay the server's recording `PATH` (relative to its recordings folder)")
	fl.StringVar(&key, "key", "", "the `KEY` to trace")
	fl.StringVar(&rule, "rule", "", "trace only this rule `ID`")
	_ = cmd.MarkFlagRequired("key")
	return cmd
}

// explainResult reads the response's entries back into a trace, for the
// renderers of `shrike explain`.
func explainResult(key string, resp *shrikev1.ExplainRulesetResponse) (*explain.Result, error) {
	res := &explain.Result{Key: key, Truncated: resp.GetTruncated()}
	for i, s := range resp.GetEntries() {
		b, err := protojson.Marshal(s)
		if err != nil {
			return nil, fmt.Errorf("explain: entry %d: %w", i, err)
		}
		var e explain.Entry
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, fmt.Errorf("explain: entry %d: %w", i, err)
		}
		res.Entries = append(res.Entries, e)
	}
	return res, nil
}
