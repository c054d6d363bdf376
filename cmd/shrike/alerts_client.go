package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
)

// alertFilters are the filter flags of alerts tail and alerts list.
type alertFilters struct {
	ruleset, rule, severity, key, filter string
}

func (a *alertFilters) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&a.filter, "filter", "", "only alerts for which the CEL `EXPR` over alert is true, e.g. 'alert.labels.team == \"fraud\"'")
	fl.StringVar(&a.ruleset, "ruleset", "", "only alerts of ruleset `NAME`")
	fl.StringVar(&a.rule, "rule", "", "only alerts of rule `ID`")
	fl.StringVar(&a.severity, "severity", "", "only alerts of at least severity `MIN` (info, low, medium, high, critical)")
	fl.StringVar(&a.key, "key", "", "only alerts of partition key `KEY`")
}

func (a *alertFilters) check() error {
	switch a.severity {
	case "", "info", "low", "medium", "high", "critical":
		return nil
	}
	return usageError{fmt.Errorf("--severity %q: want info, low, medium, high or critical", a.severity)}
}

func newAlertsCmd(e env) *cobra.Command {
	f := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "Follow or list the alerts of a running shrike serve (API client)",
		Long: `Alerts reads the alerts of every instance of shrike serve from any one of them,
through its gRPC API (--server, default ` + defaultServer + `). The token (--token or
` + tokenEnv + `) needs the scope alerts:read.`,
		Example: `  shrike alerts tail
  shrike alerts tail --severity high --filter 'alert.labels.team == "fraud"'
  shrike alerts list --ruleset payments --limit 10`,
	}
	addClientFlags(cmd, f)
	cmd.AddCommand(newAlertsTailCmd(e, f), newAlertsListCmd(e, f))
	return cmd
}

func alertsClient(cmd *cobra.Command, e env, f *clientFlags) (shrikev1.AlertServiceClient, func(), error) {
	f.resolve(cmd)
	if err := f.checkOutput(); err != nil {
		return nil, nil, err
	}
	conn, err := f.dial(e.stderr)
	if err != nil {
		return nil, nil, err
	}
	return shrikev1.NewAlertServiceClient(conn), func() { _ = conn.Close() }, nil
}

// Reconnection delays of alerts tail: from the first to the longest.
const (
	tailRetryFirst   = 500 * time.Millisecond
	tailRetryLongest = 10 * time.Second
)

func newAlertsTailCmd(e env, f *clientFlags) *cobra.Command {
	var (
		filters alertFilters
		from    string
		count   int
	)
	cmd := &cobra.Command{
		Use:   "tail [--filter CEL] [--ruleset R] [--rule ID] [--severity MIN] [--key K] [--from POSITION]",
		Short: "Follow the alert stream",
		Long: `Tail prints the alerts that pass its filters as they are emitted, until
interrupted or, with --count, after that many. The filters combine with AND;
--filter is a CEL expression over alert, which has the fields of the alert
JSON (alert.severity, alert.labels.team, alert.events.login[0].ip, ...).

A table line per alert gives the event time of its last matched event, the
severity, ruleset/rule, key and summary; -o json prints each alert's JSON,
with its position in the stream.

When the connection breaks, tail reconnects and resumes after the last alert
it printed, so that nothing is missed (an alert may then show twice: they
have ids). On interrupt it prints on stderr the --from POSITION that resumes
after the last alert shown.`,
		Example: `  shrike alerts tail
  shrike alerts tail --ruleset payments --severity high -o json
  shrike alerts tail --filter 'alert.key.startsWith("acct-4") && !alert.timeout'`,
		Args: argsExactly(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := filters.check(); err != nil {
				return err
			}
			if count < 0 {
				return usageError{fmt.Errorf("--count %d: want 0 (no limit) or more", count)}
			}
			c, done, err := alertsClient(cmd, e, f)
			if err != nil {
				return err
			}
			defer done()
			req := &shrikev1.SubscribeAlertsRequest{
				Ruleset:     filters.ruleset,
				Rule:        filters.rule,
				MinSeverity: filters.severity,
				Key:         filters.key,
				Filter:      filters.filter,
				After:       from,
			}
			return tailAlerts(cmd.Context(), e, f, c, req, count)
		},
	}
	filters.add(cmd)
	fl := cmd.Flags()
	fl.StringVar(&from, "from", "", "start after the alert at `POSITION` (an alert's position, or what an interrupted tail printed); default: alerts from now on")
	fl.IntVarP(&count, "count", "n", 0, "exit after `N` alerts (0: follow until interrupted)")
	return cmd
}

// tailAlerts runs the subscription, reconnecting after a broken stream from
// the position of the last alert printed. Only a first call that fails, or
// an error about the request itself (a bad filter, an expired position, the
// token), ends it with an error: a server that was reached once is waited
// for.
func tailAlerts(ctx context.Context, e env, f *clientFlags, c shrikev1.AlertServiceClient, req *shrikev1.SubscribeAlertsRequest, count int) error {
	received := 0
	delay := tailRetryFirst
	connected := false
	for {
		stream, err := c.SubscribeAlerts(ctx, req)
		var recvErr error
		if err == nil {
			connected = true
			for {
				a, err := stream.Recv()
				if err != nil {
					recvErr = err
					break
				}
				delay = tailRetryFirst
				if err := writeAlert(e.stdout, f.output, a); err != nil {
					return err
				}
				req.After = a.GetPosition()
				received++
				if count > 0 && received >= count {
					return nil
				}
			}
		} else {
			recvErr = err
		}
		if ctx.Err() != nil {
			if req.GetAfter() != "" && received > 0 {
				fmt.Fprintf(e.stderr, "shrike: resume with --from %s\n", req.GetAfter())
			}
			return nil
		}
		if !connected || !retryableStream(recvErr) {
			return f.rpcError("tail alerts", recvErr)
		}
		why := "the server ended the stream"
		if !errors.Is(recvErr, io.EOF) {
			why = status.Convert(recvErr).Message()
		}
		fmt.Fprintf(e.stderr, "shrike: alert stream interrupted (%s); reconnecting in %v\n", why, delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, tailRetryLongest)
	}
}

// retryableStream reports a stream error after which a new subscription
// from the last position can go on: the server went away or restarted, or
// cut off a subscriber that read too slowly.
func retryableStream(err error) bool {
	if errors.Is(err, io.EOF) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted:
		return true
	}
	return false
}

// writeAlert prints one alert of a stream: its JSON, or a line for a
// person. Lines come one by one, so columns are padded to common widths
// rather than aligned as a table.
func writeAlert(w io.Writer, output string, a *shrikev1.Alert) error {
	if output == "json" {
		return writeJSONLine(w, a)
	}
	_, err := fmt.Fprintf(w, "%-20s  %-8s  %-30s  %-12s  %s\n", formatTime(a.GetEnd()), a.GetSeverity(), a.GetRuleset()+"/"+a.GetRule(), orDash(a.GetKey()), alertSummary(a))
	return err
}

// alertSummary is the alert's summary, marked when it reports a timed-out
// partial match.
func alertSummary(a *shrikev1.Alert) string {
	s := orDash(a.GetSummary())
	if a.GetTimeout() {
		s = "[timeout] " + s
	}
	return s
}

func newAlertsListCmd(e env, f *clientFlags) *cobra.Command {
	var (
		filters alertFilters
		limit   int
	)
	cmd := &cobra.Command{
		Use:   "list [--filter CEL] [--ruleset R] [--rule ID] [--severity MIN] [--key K] [--limit N]",
		Short: "List recent alerts, newest first",
		Long: `List prints the most recent alerts that pass the filters (those of tail), newest
first, as far back as the server keeps them. -o json prints each alert's
JSON; its position can be given to tail --from to follow on from it.`,
		Example: "  shrike alerts list --severity critical --limit 5",
		Args:    argsExactly(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := filters.check(); err != nil {
				return err
			}
			if limit < 1 {
				return usageError{fmt.Errorf("--limit %d: want 1 or more", limit)}
			}
			c, done, err := alertsClient(cmd, e, f)
			if err != nil {
				return err
			}
			defer done()
			req := &shrikev1.ListAlertsRequest{
				Ruleset:     filters.ruleset,
				Rule:        filters.rule,
				MinSeverity: filters.severity,
				Key:         filters.key,
				Filter:      filters.filter,
			}
			var all []*shrikev1.Alert
			for len(all) < limit {
				req.PageSize = int32(min(limit-len(all), 1000))
				ctx, cancel := f.call(cmd.Context())
				resp, err := c.ListAlerts(ctx, req)
				cancel()
				if err != nil {
					return f.rpcError("list alerts", err)
				}
				all = append(all, resp.GetAlerts()...)
				if resp.GetNextPageToken() == "" {
					break
				}
				req.PageToken = resp.GetNextPageToken()
			}
			all = all[:min(len(all), limit)]
			if f.output == "json" {
				for _, a := range all {
					if err := writeJSONLine(e.stdout, a); err != nil {
						return err
					}
				}
				return nil
			}
			if len(all) == 0 {
				fmt.Fprintln(e.stderr, "no alerts")
				return nil
			}
			t := newTable(e.stdout)
			t.printf("END\tSEVERITY\tRULE\tKEY\tSUMMARY\n")
			for _, a := range all {
				t.printf("%s\t%s\t%s/%s\t%s\t%s\n", formatTime(a.GetEnd()), a.GetSeverity(), a.GetRuleset(), a.GetRule(), orDash(a.GetKey()), alertSummary(a))
			}
			return t.flush()
		},
	}
	filters.add(cmd)
	cmd.Flags().IntVar(&limit, "limit", 20, "print at most `N` alerts")
	return cmd
}
