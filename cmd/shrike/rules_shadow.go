package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
)

// Exit statuses of `shrike rules shadow diff`, those of diff(1), so that a
// script can tell a difference from a failure to compare.
const (
	exitShadowDiffers exitStatus = 1
	exitShadowTrouble exitStatus = 2
)

// maxShadowExamples is the server's bound on --examples
// (api/server.MaxShadowDiffExamples).
const maxShadowExamples = 20

func newRulesShadowCmd(e env, f *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "shadow",
		Short: "Run a candidate version of a ruleset beside the live one, compare, promote",
		Long: `Shadow manages the shadow of a ruleset: a candidate version that every instance
runs beside the live version, on the same events, with partial matches of
its own. Its alerts go to the shadow alerts topic, never to the alerts topic
or to subscriptions that do not ask for them, so that it changes nothing
for the alerts' consumers. diff compares its alerts with the live version's
since it started; promote makes it the live version (a new version in the
ruleset's history, run as any change is); delete drops it.

A ruleset has one shadow at most: push replaces it, and the comparison
starts again. Deleting the ruleset deletes its shadow. The token needs
rules:write to change shadows, rules:read to read them, and alerts:read for
diff.`,
		Example: `  shrike rules shadow push payments payments-v2.yaml
  shrike rules shadow diff payments
  shrike rules shadow promote payments`,
	}
	cmd.AddCommand(
		newShadowPushCmd(e, f),
		newShadowGetCmd(e, f),
		newShadowDiffCmd(e, f),
		newShadowPromoteCmd(e, f),
		newShadowDeleteCmd(e, f),
	)
	return cmd
}

// shadowClients connects to the server for one command and returns the
// shadow client, the ruleset client on the same connection, and a function
// that closes the connection.
func shadowClients(cmd *cobra.Command, e env, f *clientFlags, outputs ...string) (shrikev1.ShadowServiceClient, shrikev1.RulesetServiceClient, func(), error) {
	f.resolve(cmd)
	if err := f.checkOutput(outputs...); err != nil {
		return nil, nil, nil, err
	}
	conn, err := f.dial(e.stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	return shrikev1.NewShadowServiceClient(conn), shrikev1.NewRulesetServiceClient(conn), func() { _ = conn.Close() }, nil
}

func newShadowPushCmd(e env, f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "push NAME FILE",
		Short: "Run the ruleset FILE as the shadow of the live ruleset NAME",
		Long: `Push uploads FILE as the shadow of the live ruleset NAME, replacing its shadow if
it has one (pushing the same source again changes nothing). The server
compiles it completely first, as for shrike rules push, and the file's
` + "`ruleset:`" + ` must be NAME. A refused file's problems are printed on stderr as
shrike check prints them; the exit status is then 1.`,
		Example: "  shrike rules shadow push payments payments-v2.yaml",
		Args:    argsExactly(2, "ruleset name and file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, file := args[0], args[1]
			src, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			c, rc, done, err := shadowClients(cmd, e, f)
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := f.call(cmd.Context())
			defer cancel()
			sh, err := c.PutShadow(ctx, &shrikev1.PutShadowRequest{Name: name, Source: string(src)})
			if err != nil {
				if fatalRPC(err) {
					return f.rpcError("push shadow "+file, err)
				}
				printPushError(cmd.Context(), e.stderr, rc, f, file, src, err)
				return errReported
			}
			if f.output == "json" {
				return writeJSONLine(e.stdout, sh)
			}
			fmt.Fprintf(e.stdout, "%s: shadow of ruleset %s (live version %d), %s, started %s\n",
				file, sh.GetName(), sh.GetLiveVersion(), countRules(len(sh.GetRules())), formatTime(sh.GetStartTime()))
			return nil
		},
	}
}

func newShadowGetCmd(e env, f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show the shadow of a ruleset",
		Long: `Get shows the shadow of ruleset NAME: the live version it was pushed beside,
when it started, and its rules; with -o yaml its source exactly as pushed,
with -o json the whole record.`,
		Example: "  shrike rules shadow get payments\n  shrike rules shadow get payments -o yaml > candidate.yaml",
		Args:    argsExactly(1, "ruleset name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, done, err := shadowClients(cmd, e, f, "table", "json", "yaml")
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := f.call(cmd.Context())
			defer cancel()
			sh, err := c.GetShadow(ctx, &shrikev1.GetShadowRequest{Name: args[0]})
			if err != nil {
				return f.rpcError("get the shadow of ruleset "+args[0], err)
			}
			switch f.output {
			case "json":
				return writeJSONLine(e.stdout, sh)
			case "yaml":
				_, err := io.WriteString(e.stdout, sh.GetSource())
				return err
			}
			t := newTable(e.stdout)
			t.printf("Name:\t%s\n", sh.GetName())
			t.printf("Live version:\t%d\n", sh.GetLiveVersion())
			t.printf("Started:\t%s\n", formatTime(sh.GetStartTime()))
			if err := t.flush(); err != nil {
				return err
			}
			return writeRules(e.stdout, sh.GetRules())
		},
	}
}

// writeRules prints a table of rules, after a blank line; nothing for
// none.
func writeRules(w *output, rules []*shrikev1.Rule) error {
	if len(rules) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t := newTable(w)
	t.printf("RULE\tSEVERITY\tENABLED\tSTEPS\tVERSION\n")
	for _, r := range rules {
		enabled := "yes"
		if !r.GetEnabled() {
			enabled = "no"
		}
		steps := "-"
		if s := r.GetSteps(); len(s) > 0 {
			steps = strings.Join(s, ",")
		}
		t.printf("%s\t%s\t%s\t%s\t%s\n", r.GetId(), r.GetSeverity(), enabled, steps, orDash(r.GetVersion()))
	}
	return t.flush()
}

func newShadowDiffCmd(e env, f *clientFlags) *cobra.Command {
	var examples int
	cmd := &cobra.Command{
		Use:   "diff NAME [--examples N]",
		Short: "Compare the alerts of a ruleset's shadow with the live version's",
		Long: `Diff compares, rule by rule, the alerts the live version and the shadow of
ruleset NAME produced since the shadow started, over the whole cluster: two
alerts are the same when they have the same rule, key and timeout flag and
matched the same events. The table counts the alerts of both, of the live
version only and of the shadow only, and shows a few of those that differ
(--examples, 3 by default, at most 20); -o json prints the whole comparison
with its example alerts as one JSON object.

The exit status is 0 when the versions agree, 1 when some rule differs and
2 when they could not be compared, as diff(1) has it.`,
		Example: "  shrike rules shadow diff payments\n  shrike rules shadow diff payments --examples 10 -o json | jq '.rules[] | select(.only_new != \"0\")'",
		Args:    argsExactly(1, "ruleset name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if examples < 0 || examples > maxShadowExamples {
				return usageError{fmt.Errorf("--examples %d: want 1 to %d, or 0 for the server's default", examples, maxShadowExamples)}
			}
			c, _, done, err := shadowClients(cmd, e, f)
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := f.call(cmd.Context())
			defer cancel()
			d, err := c.GetShadowDiff(ctx, &shrikev1.GetShadowDiffRequest{Name: args[0], Examples: int32(examples)})
			if err != nil {
				fmt.Fprintf(e.stderr, "shrike: %v\n", f.rpcError("compare the shadow of ruleset "+args[0], err))
				return exitShadowTrouble
			}
			if f.output == "json" {
				err = writeJSONLine(e.stdout, d)
			} else {
				err = writeShadowDiff(e.stdout, d)
			}
			switch {
			case err != nil:
				return err
			case d.GetDiffer():
				return exitShadowDiffers
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&examples, "examples", 0, "show up to `N` example alerts of each kind per rule (default: the server's, 3)")
	return cmd
}

// writeShadowDiff prints a shadow diff for a person: a line saying whether
// the versions agree, a table of the rules, then the example alerts of
// each rule that differs.
func writeShadowDiff(w *output, d *shrikev1.ShadowDiff) error {
	verdict := "the shadow and the live version agree"
	if d.GetDiffer() {
		verdict = "the shadow and the live version differ"
	}
	fmt.Fprintf(w, "ruleset %s since %s: %s\n", d.GetName(), formatTime(d.GetStartTime()), verdict)
	if len(d.GetRules()) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t := newTable(w)
	t.printf("RULE\tIN LIVE\tIN SHADOW\tBOTH\tONLY LIVE\tONLY SHADOW\n")
	for _, r := range d.GetRules() {
		t.printf("%s\t%s\t%s\t%d\t%d\t%d\n", r.GetRule(), yesNo(r.GetInOld()), yesNo(r.GetInNew()), r.GetBoth(), r.GetOnlyOld(), r.GetOnlyNew())
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, r := range d.GetRules() {
		for _, kind := range []struct {
			what   string
			alerts []*shrikev1.Alert
		}{{"only live", r.GetOnlyOldExamples()}, {"only shadow", r.GetOnlyNewExamples()}} {
			if len(kind.alerts) == 0 {
				continue
			}
			fmt.Fprintf(w, "\n%s, %s:\n", r.GetRule(), kind.what)
			for _, a := range kind.alerts {
				fmt.Fprintf(w, "  %-20s  %-12s  %s\n", formatTime(a.GetEnd()), orDash(a.GetKey()), alertSummary(a))
			}
		}
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func newShadowPromoteCmd(e env, f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "promote NAME",
		Short: "Make the shadow of a ruleset its live version",
		Long: `Promote stores the shadow's source as the next version of ruleset NAME and drops
the shadow, in one step. Every instance then runs the new version as it runs
any change (shrike rules push): rules whose definition did not change keep
their partial matches; changed rules let the old version's partial matches
finish; the shadow's own partial matches are dropped.`,
		Example: "  shrike rules shadow diff payments && shrike rules shadow promote payments",
		Args:    argsExactly(1, "ruleset name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, done, err := shadowClients(cmd, e, f)
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := f.call(cmd.Context())
			defer cancel()
			rs, err := c.PromoteShadow(ctx, &shrikev1.PromoteShadowRequest{Name: args[0]})
			if err != nil {
				return f.rpcError("promote the shadow of ruleset "+args[0], err)
			}
			if f.output == "json" {
				return writeJSONLine(e.stdout, rs)
			}
			fmt.Fprintf(e.stdout, "ruleset %s version %d: the source of its shadow, %s\n", rs.GetName(), rs.GetVersion(), countRules(len(rs.GetRules())))
			return nil
		},
	}
}

func newShadowDeleteCmd(e env, f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Stop and drop the shadow of a ruleset; the live version runs on",
		Args:  argsExactly(1, "ruleset name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, done, err := shadowClients(cmd, e, f)
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := f.call(cmd.Context())
			defer cancel()
			if _, err := c.DeleteShadow(ctx, &shrikev1.DeleteShadowRequest{Name: args[0]}); err != nil {
				return f.rpcError("delete the shadow of ruleset "+args[0], err)
			}
			if f.output == "table" {
				fmt.Fprintf(e.stdout, "shadow of ruleset %s deleted\n", args[0])
			}
			return nil
		},
	}
}
