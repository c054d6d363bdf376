package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shrike-cep/shrike/nfa/draw"
	"github.com/shrike-cep/shrike/rules"
)

// drawFlags are the options of `shrike draw`.
type drawFlags struct {
	rules  []string
	rule   string
	format string
}

func newDrawCmd(e env) *cobra.Command {
	var f drawFlags
	cmd := &cobra.Command{
		Use:   "draw --rules RULESET... --rule ID [--format svg|json]",
		Short: "Draw a pattern rule's automaton as SVG (or its states and edges as JSON)",
		Long: `Draw compiles the rulesets and writes the automaton the matcher runs for one
pattern rule, the picture the console shows and the API's GetRuleAutomaton
returns: a self-contained SVG document, states left to right from the start
state, each edge labelled with its action (take, ignore, proceed) and its
condition, the final state double-bordered, a not step's stop state red,
windows written in the states and the caption.

--format json writes the graph instead: the rule's window, its start state,
the states (id, name, kind, start, group, window) and the edges (from, to,
action, condition), the fields of the API's automaton.

A when rule has no automaton (its condition is evaluated on each event
alone), nor has an aggregate rule; asking for one is an error that lists
the pattern rules. The exit status is 0 when the picture was written, 1
when a ruleset is invalid, a file cannot be read or the automaton is too
large to draw, and 2 for a bad command line (a --rule that names no pattern
rule among them).`,
		Example: `  shrike draw --rules rulesets/payments.yaml --rule account-takeover > account-takeover.svg
  shrike draw -r rulesets/ --rule payments/card-testing --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDraw(e, f)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVarP(&f.rules, "rules", "r", nil, "ruleset `FILE`s or directories (repeat the flag or separate with commas)")
	fl.StringVar(&f.rule, "rule", "", "the pattern rule to draw: its `ID`, or RULESET/ID")
	fl.StringVar(&f.format, "format", "svg", "`svg` (the picture) or json (its states and edges)")
	_ = cmd.MarkFlagRequired("rules")
	_ = cmd.MarkFlagRequired("rule")
	return cmd
}

func runDraw(e env, f drawFlags) error {
	if f.format != "svg" && f.format != "json" {
		return usageError{fmt.Errorf("--format must be svg or json, not %q", f.format)}
	}
	if f.rule == "" {
		return usageError{errors.New("--rule must not be empty")}
	}
	compiled, err := compileRulesetFlags(e, f.rules, rules.NewManagedLists())
	if err != nil {
		return err
	}
	rs, id, err := pickRuleset(compiled, f.rule)
	if err != nil {
		return usageError{fmt.Errorf("--rule: %w", err)}
	}
	g, svg, err := draw.Rule(rs, id)
	switch {
	case errors.Is(err, draw.ErrNoAutomaton):
		return usageError{fmt.Errorf("--rule: %w", err)}
	case err != nil:
		return err
	}
	if f.format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(g)
	}
	_, err = e.stdout.Write(svg)
	return err
}

// pickRuleset finds the ruleset spec's rule is in: spec is a rule id or
// RULESET/ID, and disabled rules count, so that draw.Rule says why such a
// rule has no automaton. A spec no ruleset holds goes to the only ruleset,
// when there is one, for draw.Rule's error listing its pattern rules.
func pickRuleset(compiled []*rules.Compiled, spec string) (*rules.Compiled, string, error) {
	var picked []*rules.Compiled
	var id string
	for _, rs := range compiled {
		for _, r := range rs.Ruleset.Rules {
			if spec == r.ID || spec == rs.Name+"/"+r.ID {
				picked = append(picked, rs)
				id = r.ID
				break
			}
		}
	}
	switch {
	case len(picked) == 1:
		return picked[0], id, nil
	case len(picked) > 1:
		return nil, "", fmt.Errorf("rule %q is in several rulesets: name it as ruleset/rule", spec)
	case len(compiled) == 1:
		return compiled[0], spec, nil
	}
	names := make([]string, len(compiled))
	for i, rs := range compiled {
		names[i] = fmt.Sprintf("%q", rs.Name)
	}
	return nil, "", fmt.Errorf("no rule %q in the rulesets %s", spec, strings.Join(names, ", "))
}
