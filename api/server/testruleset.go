package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/registry"
	"github.com/shrike-cep/shrike/rules"
)

// Limits of a TestRuleset response, when Options leave them zero.
const (
	DefaultMaxTestAlerts      = 1000
	DefaultMaxTestDeadLetters = 20
)

// InlineEventsSource names the inline events of a TestRuleset request in
// positions, and so in alert ids, as `shrike run --source` names a file:
// the same events give the same ids posted again or replayed with
// `shrike run --source events FILE`. A recording is named by its base name,
// as `shrike run` names a file.
const InlineEventsSource = "events"

// TestRuleset replays the events through the ruleset with cep.Replay, the
// path of `shrike run` and `shrike test`: the same matcher, time moving
// only with the events, every window closed at the end.
func (r *rulesetService) TestRuleset(ctx context.Context, req *shrikev1.TestRulesetRequest) (*shrikev1.TestRulesetResponse, error) {
	compiled, err := r.testRuleset(ctx, req)
	if err != nil {
		return nil, err
	}
	in, closeInput, err := r.testInput(req)
	if err != nil {
		return nil, err
	}
	defer closeInput()

	out := &shrikev1.TestRulesetResponse{}
	var convErr error
	maxAlerts, maxDead := r.s.opts.MaxTestAlerts, r.s.opts.MaxTestDeadLetters
	sum, err := cep.Replay(ctx, cep.ReplayOptions{
		Rulesets:             []*rules.Compiled{compiled},
		Inputs:               []cep.Input{in},
		MaxDeadLetterReports: -1,
		MaxRunsPerKey:        r.s.opts.MaxRunsPerKey,
		Clock:                r.s.opts.Clock,
		Sequential:           true, // one request, one goroutine
		OnAlert: func(a *matcher.Alert) {
			if len(out.Alerts) >= maxAlerts {
				out.AlertsTruncated = true
				return
			}
			// Converted at once: the alert's events belong to the replay.
			pa, err := alertProto(a, "")
			if err != nil && convErr == nil {
				convErr = err
			}
			out.Alerts = append(out.Alerts, pa)
		},
		OnDeadLetter: func(_ string, line int64, reason error) {
			if len(out.DeadLetters) < maxDead {
				out.DeadLetters = append(out.DeadLetters, &shrikev1.DeadLetter{Line: line, Reason: reason.Error()})
			}
		},
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// The input is the caller's (a line too long for the reader, a
		// gzip recording that is not gzip): their mistake to fix.
		return nil, badField(inputField(req), "%v", err)
	}
	if convErr != nil {
		// An event the API cannot carry (its decode rejects most of them):
		// the input is the caller's to fix.
		return nil, badField(inputField(req), "%v", convErr)
	}
	out.AlertCount = int64(sum.Alerts)
	out.Lines = int64(sum.Lines)
	out.Events = int64(sum.Events)
	out.Unrouted = int64(sum.Unrouted)
	out.Late = int64(sum.Late)
	out.DeadLettered = int64(sum.DeadLettered)
	for _, rs := range sum.Rules {
		out.RuleStats = append(out.RuleStats, &shrikev1.RuleStats{
			Rule:       rs.Rule,
			Alerts:     int64(rs.Alerts),
			Timeouts:   int64(rs.Timeouts),
			Dropped:    int64(rs.Dropped),
			CelErrors:  int64(rs.CELErrors),
			Suppressed: int64(rs.Suppressed),
		})
	}
	return out, nil
}

// testRuleset compiles the inline source, or the stored version.
func (r *rulesetService) testRuleset(ctx context.Context, req *shrikev1.TestRulesetRequest) (*rules.Compiled, error) {
	switch rs := req.GetRuleset().(type) {
	case *shrikev1.TestRulesetRequest_Source:
		if req.GetVersion() != 0 {
			return nil, badField("version", "goes with name, not with source")
		}
		return rules.LoadContext(ctx, validateFile, []byte(rs.Source), r.s.opts.CompileOptions)
	case *shrikev1.TestRulesetRequest_Name:
		if req.GetVersion() < 0 {
			return nil, badField("version", "must not be negative, not %d", req.GetVersion())
		}
		rec, err := r.s.registry.Get(ctx, rs.Name, req.GetVersion())
		if err != nil {
			return nil, notFoundMeta(registryErr(err), rs.Name, req.GetVersion())
		}
		if rec.Deleted {
			return nil, notFoundMeta(registry.ErrVersionNotFound, rs.Name, req.GetVersion())
		}
		return rules.LoadContext(ctx, rec.Name+".yaml", rec.Source, r.s.opts.CompileOptions)
	}
	return nil, badField("ruleset", "give source (YAML) or name (a stored ruleset)")
}

// testInput opens the events: inline, or a recording under the server's
// recordings folder, which the name may not leave (os.Root refuses
// "..", absolute paths and symbolic links out of it).
func (r *rulesetService) testInput(req *shrikev1.TestRulesetRequest) (cep.Input, func(), error) {
	nop := func() {}
	switch in := req.GetInput().(type) {
	case *shrikev1.TestRulesetRequest_Events:
		return cep.Input{Name: "events", Source: InlineEventsSource, R: strings.NewReader(in.Events)}, nop, nil
	case *shrikev1.TestRulesetRequest_Recording:
		if r.s.opts.RecordingsDir == "" {
			return cep.Input{}, nop, errRecordingsDisabled
		}
		if !filepath.IsLocal(in.Recording) {
			return cep.Input{}, nop, badField("recording", "%q is not a path inside the recordings folder", in.Recording)
		}
		root, err := os.OpenRoot(r.s.opts.RecordingsDir)
		if err != nil {
			return cep.Input{}, nop, fmt.Errorf("recordings folder: %w", err)
		}
		f, err := root.Open(in.Recording)
		_ = root.Close()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return cep.Input{}, nop, withMeta(errRecordingNotFound, "recording", in.Recording)
			}
			return cep.Input{}, nop, badField("recording", "%v", err)
		}
		// Source is left to its default, the base name, as for a file given
		// to `shrike run`.
		return cep.Input{Name: in.Recording, R: f}, func() { _ = f.Close() }, nil
	}
	return cep.Input{}, nop, badField("input", "give events (JSON lines) or recording (a file name)")
}

func inputField(req *shrikev1.TestRulesetRequest) string {
	if _, ok := req.GetInput().(*shrikev1.TestRulesetRequest_Recording); ok {
		return "recording"
	}
	return "events"
}
