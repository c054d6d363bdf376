package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newCheckCmd(e env) *cobra.Command {
	return &cobra.Command{
		Use:   "check RULESET...",
		Short: "Validate and compile rulesets",
		Long: `Check parses, validates and compiles each ruleset (a file, a comma-separated
list, or a directory of *.yaml files) exactly as the engine would.

Every problem of every file is printed on stderr as
file:line:col: rule "id": message, with the CEL caret snippet for expression
errors. Warnings (file:line:col: warning: rule "id": message) point at
something that loads but may not do what it seems to, such as an alert
summary that timeout alerts cannot evaluate; they do not fail the file.
Each good file gets one line on stdout. The exit status is 0 when all files
are good and 1 otherwise.`,
		Example: "  shrike check rulesets/payments.yaml\n  shrike check rulesets/",
		Args:    argsAtLeast(1, "ruleset argument"),
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := rulesetFiles(args)
			if err != nil {
				return err
			}
			results, ok := loadRulesets(files, e.stderr, nil)
			for _, r := range results {
				if r.compiled == nil {
					continue
				}
				n := len(r.compiled.Ruleset.Rules)
				noun := "rules"
				if n == 1 {
					noun = "rule"
				}
				disabled := ""
				if d := n - len(r.compiled.Rules); d > 0 {
					disabled = fmt.Sprintf(" (%d disabled)", d)
				}
				fmt.Fprintf(e.stdout, "%s: ok, %d %s%s\n", r.file, n, noun, disabled)
			}
			if !ok {
				return errReported
			}
			return nil
		},
	}
}
