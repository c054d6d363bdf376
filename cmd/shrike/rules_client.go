package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/rules"
)

// reasonRulesetInvalid is the ErrorInfo reason of a ruleset source that does
// not compile (api/README.md).
const reasonRulesetInvalid = "RULESET_INVALID"

func newRulesCmd(e env) *cobra.Command {
	f := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Manage the rulesets of a running shrike serve (API client)",
		Long: `Rules talks to the gRPC API of shrike serve (--server, default ` + defaultServer + `)
to upload, inspect, delete and roll back the rulesets of its registry. Every
instance sharing the registry runs a change within a second; a ruleset that
does not compile is refused and the running version stays.

The token (--token or ` + tokenEnv + `) needs the scope rules:write to change rulesets
and rules:read to read them. Output is a table for a person, or with -o json
one JSON object per line.`,
		Example: `  shrike rules push rulesets/payments.yaml
  shrike rules list
  shrike rules get payments -o yaml > payments.yaml
  shrike rules versions payments
  shrike rules rollback payments --version 2`,
	}
	addClientFlags(cmd, f)
	cmd.AddCommand(
		newRulesPushCmd(e, f),
		newRulesGetCmd(e, f),
		newRulesListCmd(e, f),
		newRulesDeleteCmd(e, f),
		newRulesVersionsCmd(e, f),
		newRulesRollbackCmd(e, f),
		newRulesExplainCmd(e, f),
		newRulesDiffCmd(e, f),
		newRulesShadowCmd(e, f),
	)
	return cmd
}

// apiClient connects to the server for one command and returns the
// service's client (made by newClient) and a function that closes the
// connection.
func apiClient[C any](cmd *cobra.Command, e env, f *clientFlags, newClient func(grpc.ClientConnInterface) C, outputs ...string) (C, func(), error) {
	var none C
	f.resolve(cmd)
	if err := f.checkOutput(outputs...); err != nil {
		return none, nil, err
	}
	conn, err := f.dial(e.stderr)
	if err != nil {
		return none, nil, err
	}
	return newClient(conn), func() { _ = conn.Close() }, nil
}

// rulesClient is apiClient of the ruleset service.
func rulesClient(cmd *cobra.Command, e env, f *clientFlags, outputs ...string) (shrikev1.RulesetServiceClient, func(), error) {
	return apiClient(cmd, e, f, shrikev1.NewRulesetServiceClient, outputs...)
}

// call bounds one request by --timeout.
func (f *clientFlags) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, f.timeout)
}

func argsExactly(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		switch {
		case len(args) < n:
			return usageError{fmt.Errorf("missing %s", what)}
		case len(args) > n:
			return usageError{fmt.Errorf("unexpected argument %q", args[n])}
		}
		return nil
	}
}

func newRulesPushCmd(e env, f *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "push FILE...",
		Short: "Upload rulesets: each file becomes the next version of its ruleset",
		Long: `Push uploads each ruleset file (a file, a comma-separated list, or a directory
of *.yaml files, *_test.yaml left out) to the server, which compiles it
completely before it replaces the running version, under the name its
` + "`ruleset:`" + ` field gives.

The server refuses a ruleset that does not compile, and one without
stream.topic (serve reads its events from that topic; shrike check and run
take it). A refused ruleset keeps its running version; every problem is
printed on stderr as file:line:col: rule "id": message, with the CEL caret
snippet, as shrike check prints it. The other files are still pushed. The
exit status is 0 when every file was stored and 1 otherwise.`,
		Example: "  shrike rules push rulesets/payments.yaml\n  shrike rules push rulesets/ --server shrike.internal:9090 --tls",
		Args:    argsAtLeast(1, "ruleset file argument"),
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := rulesetFiles(args)
			if err != nil {
				return err
			}
			c, done, err := rulesClient(cmd, e, f)
			if err != nil {
				return err
			}
			defer done()
			ok := true
			for _, file := range files {
				src, err := os.ReadFile(file)
				if err != nil {
					fmt.Fprintf(e.stderr, "shrike: %v\n", err)
					ok = false
					continue
				}
				rsName := pushName(file, src)
				ctx, cancel := f.call(cmd.Context())
				rs, err := c.PutRuleset(ctx, &shrikev1.PutRulesetRequest{Name: rsName, Source: string(src)})
				cancel()
				if err != nil {
					if fatalRPC(err) {
						// The next file would fail the same way.
						return f.rpcError("push "+file, err)
					}
					printPushError(cmd.Context(), e.stderr, c, f, file, src, err)
					ok = false
					continue
				}
				if f.output == "json" {
					if err := writeJSONLine(e.stdout, rs); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintf(e.stdout, "%s: ruleset %s version %d, %s\n", file, rs.GetName(), rs.GetVersion(), countRules(len(rs.GetRules())))
			}
			if !ok {
				return errReported
			}
			return nil
		},
	}
	return cmd
}

// pushName is the name a file is pushed under: its `ruleset:` field. A
// source without one, or that is not YAML, goes to the server all the same,
// under the file's base name, so that the server's error (a missing field,
// a syntax error) comes back with its position.
func pushName(file string, src []byte) string {
	var doc struct {
		Ruleset string `yaml:"ruleset"`
	}
	if err := yaml.Unmarshal(src, &doc); err == nil && doc.Ruleset != "" {
		return doc.Ruleset
	}
	base := filepath.Base(file)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// fatalRPC reports an error that is about the connection or the token, not
// about the request: pushing further files would only repeat it.
func fatalRPC(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Unauthenticated, codes.PermissionDenied, codes.DeadlineExceeded, codes.Canceled:
		return true
	}
	return false
}

// printPushError prints why the server refused a file. For a ruleset that
// does not compile, ValidateRuleset gives every error with its CEL caret
// snippet (PutRuleset's field violations leave it out), which is printed
// as `shrike check` does; should that call fail, the field violations are
// printed with the file name in front.
func printPushError(ctx context.Context, w *output, c shrikev1.RulesetServiceClient, f *clientFlags, file string, src []byte, err error) {
	st := status.Convert(err)
	if st.Code() == codes.InvalidArgument && errorInfo(st).GetReason() == reasonRulesetInvalid {
		vctx, cancel := f.call(ctx)
		v, verr := c.ValidateRuleset(vctx, &shrikev1.ValidateRulesetRequest{Source: string(src)})
		cancel()
		if verr == nil && !v.GetValid() && len(v.GetErrors()) > 0 {
			for _, re := range v.GetErrors() {
				fmt.Fprintln(w, rulesetError(file, re).Error())
			}
			return
		}
		if vs := fieldViolations(st); len(vs) > 0 {
			for _, fv := range vs {
				fmt.Fprintln(w, prefixFile(file, fv.GetDescription()))
			}
			return
		}
	}
	fmt.Fprintf(w, "shrike: %v\n", f.rpcError(file, err))
}

// rulesetError is an error of the API in the form of rules.Error, so that
// it prints exactly as shrike check prints a local one.
func rulesetError(file string, re *shrikev1.RulesetError) *rules.Error {
	pos := rules.Pos{File: file, Line: int(re.GetLine()), Col: int(re.GetColumn())}
	if pos.Line == 0 {
		pos.Col = 0
	}
	return &rules.Error{Pos: pos, Rule: re.GetRule(), Msg: re.GetMessage(), Snippet: re.GetSnippet()}
}

// prefixFile puts the file name before a field violation's description,
// which starts with `line:col: ` when the error has a position.
func prefixFile(file, desc string) string {
	if line, rest, ok := strings.Cut(desc, ":"); ok {
		if _, err := strconv.Atoi(line); err == nil {
			return file + ":" + line + ":" + rest
		}
	}
	return file + ": " + desc
}

func countRules(n int) string {
	if n == 1 {
		return "1 rule"
	}
	return strconv.Itoa(n) + " rules"
}

func newRulesGetCmd(e env, f *clientFlags) *cobra.Command {
	var version int64
	cmd := &cobra.Command{
		Use:   "get NAME [--version N]",
		Short: "Show a ruleset: its current version or an earlier one",
		Long: `Get shows a ruleset's version, topic, times and rules, or with -o yaml its source
exactly as uploaded, or with -o json the whole record.`,
		Example: "  shrike rules get payments\n  shrike rules get payments --version 2 -o yaml > payments.yaml",
		Args:    argsExactly(1, "ruleset name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if version < 0 {
				return usageError{fmt.Errorf("--version %d: versions start at 1", version)}
			}
			c, done, err := rulesClient(cmd, e, f, "table", "json", "yaml")
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := f.call(cmd.Context())
			defer cancel()
			rs, err := c.GetRuleset(ctx, &shrikev1.GetRulesetRequest{Name: args[0], Version: version})
			if err != nil {
				return f.rpcError("get ruleset "+args[0], err)
			}
			switch f.output {
			case "json":
				return writeJSONLine(e.stdout, rs)
			case "yaml":
				_, err := io.WriteString(e.stdout, rs.GetSource())
				return err
			}
			return writeRuleset(e.stdout, rs)
		},
	}
	cmd.Flags().Int64Var(&version, "version", 0, "show version `N` rather than the current one")
	return cmd
}

// writeRuleset prints a ruleset for a person: its record, then a table of
// its rules.
func writeRuleset(w *output, rs *shrikev1.Ruleset) error {
	t := newTable(w)
	t.printf("Name:\t%s\n", rs.GetName())
	t.printf("Version:\t%d\n", rs.GetVersion())
	if d := rs.GetDescription(); d != "" {
		t.printf("Description:\t%s\n", d)
	}
	t.printf("Topic:\t%s\n", orDash(rs.GetTopic()))
	t.printf("Created:\t%s\n", formatTime(rs.GetCreateTime()))
	t.printf("Updated:\t%s\n", formatTime(rs.GetUpdateTime()))
	if err := t.flush(); err != nil {
		return err
	}
	return writeRules(w, rs.GetRules())
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newRulesListCmd(e env, f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the rulesets of the registry with their current versions",
		Example: "  shrike rules list\n  shrike rules list -o json | jq -r .name",
		Args:    argsExactly(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, done, err := rulesClient(cmd, e, f)
			if err != nil {
				return err
			}
			defer done()
			var all []*shrikev1.Ruleset
			req := &shrikev1.ListRulesetsRequest{}
			for {
				ctx, cancel := f.call(cmd.Context())
				resp, err := c.ListRulesets(ctx, req)
				cancel()
				if err != nil {
					return f.rpcError("list rulesets", err)
				}
				all = append(all, resp.GetRulesets()...)
				if resp.GetNextPageToken() == "" {
					break
				}
				req.PageToken = resp.GetNextPageToken()
			}
			if f.output == "json" {
				for _, rs := range all {
					if err := writeJSONLine(e.stdout, rs); err != nil {
						return err
					}
				}
				return nil
			}
			if len(all) == 0 {
				fmt.Fprintln(e.stderr, "no rulesets")
				return nil
			}
			t := newTable(e.stdout)
			t.printf("NAME\tVERSION\tTOPIC\tRULES\tUPDATED\n")
			for _, rs := range all {
				t.printf("%s\t%d\t%s\t%d\t%s\n", rs.GetName(), rs.GetVersion(), orDash(rs.GetTopic()), len(rs.GetRules()), formatTime(rs.GetUpdateTime()))
			}
			return t.flush()
		},
	}
}

func newRulesDeleteCmd(e env, f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a ruleset: every instance stops its rules and drops their partial matches",
		Args:  argsExactly(1, "ruleset name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := rulesClient(cmd, e, f)
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := f.call(cmd.Context())
			defer cancel()
			if _, err := c.DeleteRuleset(ctx, &shrikev1.DeleteRulesetRequest{Name: args[0]}); err != nil {
				return f.rpcError("delete ruleset "+args[0], err)
			}
			if f.output == "table" {
				fmt.Fprintf(e.stdout, "ruleset %s deleted\n", args[0])
			}
			return nil
		},
	}
}

func newRulesVersionsCmd(e env, f *clientFlags) *cobra.Command {
	var (
		limit  int
		source bool
	)
	cmd := &cobra.Command{
		Use:   "versions NAME [--limit N] [--source]",
		Short: "List the stored versions of a ruleset, newest first, deletions included",
		Long: `Versions lists the versions the registry keeps of a ruleset (the newest
rules.max_versions of the server, 100 by default), newest first, a page at a
time. Without --source the server sends no sources: shrike rules get NAME
--version N prints one.`,
		Example: "  shrike rules versions payments\n  shrike rules versions payments --limit 5 --source -o json\n  shrike rules rollback payments --version 2",
		Args:    argsExactly(1, "ruleset name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return usageError{fmt.Errorf("--limit %d: want a number of versions, or 0 for all", limit)}
			}
			c, done, err := rulesClient(cmd, e, f)
			if err != nil {
				return err
			}
			defer done()
			var all []*shrikev1.RulesetVersion
			req := &shrikev1.ListRulesetVersionsRequest{Name: args[0], IncludeSource: source}
			for {
				if limit > 0 {
					req.PageSize = int32(min(limit-len(all), 1000))
				}
				ctx, cancel := f.call(cmd.Context())
				resp, err := c.ListRulesetVersions(ctx, req)
				cancel()
				if err != nil {
					return f.rpcError("list versions of ruleset "+args[0], err)
				}
				all = append(all, resp.GetVersions()...)
				if resp.GetNextPageToken() == "" || limit > 0 && len(all) >= limit {
					break
				}
				req.PageToken = resp.GetNextPageToken()
			}
			if limit > 0 && len(all) > limit {
				all = all[:limit]
			}
			if f.output == "json" {
				for _, v := range all {
					if err := writeJSONLine(e.stdout, v); err != nil {
						return err
					}
				}
				return nil
			}
			t := newTable(e.stdout)
			if source {
				t.printf("VERSION\tCREATED\tBYTES\tNOTE\n")
			} else {
				t.printf("VERSION\tCREATED\tNOTE\n")
			}
			for i, v := range all {
				var notes []string
				switch {
				case v.GetDeleted():
					notes = append(notes, "deleted")
				case i == 0:
					// Newest first: the first is the one running.
					notes = append(notes, "current")
				}
				if r := v.GetRollbackOf(); r != 0 {
					notes = append(notes, fmt.Sprintf("rollback to version %d", r))
				}
				note := "-"
				if len(notes) > 0 {
					note = strings.Join(notes, ", ")
				}
				if source {
					t.printf("%d\t%s\t%d\t%s\n", v.GetVersion(), formatTime(v.GetCreateTime()), len(v.GetSource()), note)
				} else {
					t.printf("%d\t%s\t%s\n", v.GetVersion(), formatTime(v.GetCreateTime()), note)
				}
			}
			return t.flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "list the newest `N` versions only (default: every version kept)")
	cmd.Flags().BoolVar(&source, "source", false, "fetch each version's source too: in -o json output, and its size in the table")
	return cmd
}

func newRulesRollbackCmd(e env, f *clientFlags) *cobra.Command {
	var version int64
	cmd := &cobra.Command{
		Use:   "rollback NAME [--version N]",
		Short: "Make an earlier version of a ruleset current again",
		Long: `Rollback stores the source of version N as a new version of the ruleset (the
history only grows), which every instance then runs like any other change.

Without --version it goes back to the previous version, as kubectl rollout
undo and helm rollback do: the newest version before the current one that
is not a deletion and has another source (a deleted ruleset comes back as it
was), so that two rollbacks in a row go back and forth. A ruleset with no
such version is an error.`,
		Example: "  shrike rules rollback payments\n  shrike rules rollback payments --version 2",
		Args:    argsExactly(1, "ruleset name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("version") && version < 1 {
				return usageError{fmt.Errorf("--version %d: want a version number, 1 or more (shrike rules versions NAME lists them), or no --version for the previous one", version)}
			}
			c, done, err := rulesClient(cmd, e, f)
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := f.call(cmd.Context())
			defer cancel()
			rs, err := c.RollbackRuleset(ctx, &shrikev1.RollbackRulesetRequest{Name: args[0], Version: version})
			if err != nil {
				what := fmt.Sprintf("roll back ruleset %s to version %d", args[0], version)
				if version == 0 {
					what = fmt.Sprintf("roll back ruleset %s to its previous version", args[0])
				}
				return f.rpcError(what, err)
			}
			if f.output == "json" {
				return writeJSONLine(e.stdout, rs)
			}
			of := "version " + strconv.FormatInt(version, 10)
			if version == 0 {
				// The Ruleset message does not say which version it restored;
				// its entry in the history does.
				of = "the previous version"
				vs, err := c.ListRulesetVersions(ctx, &shrikev1.ListRulesetVersionsRequest{Name: rs.GetName(), PageSize: 1})
				if err == nil && len(vs.GetVersions()) == 1 && vs.GetVersions()[0].GetVersion() == rs.GetVersion() {
					of = "version " + strconv.FormatInt(vs.GetVersions()[0].GetRollbackOf(), 10)
				}
			}
			fmt.Fprintf(e.stdout, "ruleset %s version %d: the source of %s, %s\n", rs.GetName(), rs.GetVersion(), of, countRules(len(rs.GetRules())))
			return nil
		},
	}
	cmd.Flags().Int64Var(&version, "version", 0, "the version `N` to make current again (default: the previous version)")
	return cmd
}
