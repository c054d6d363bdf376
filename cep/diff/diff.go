// Package diff compares two versions of rulesets over recorded events: it
// replays the events once, through the old rulesets and, beside them,
// through the new ones run as shadow versions (rules.Compiled.Shadow: a
// stream of their own over the same records), and compares their alerts
// per rule by rule, key and matched events with internal/alertdiff.
// `shrike diff` and the API's DiffRulesets both use it; the JSON of both
// is the API's DiffRulesetsResponse.
//
// One pass costs less than two replays: every line is read and decoded
// once, and only the matching is done twice.
package diff

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/internal/alertdiff"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// DefaultExamples is how many example alerts of each kind (in both, only
// old, only new) a Result keeps per rule when Options.Examples is zero.
const DefaultExamples = alertdiff.DefaultExamples

// Options configure Run.
type Options struct {
	// Old are the rulesets compared against (`shrike diff --rules`),
	// usually the ones that run. Required; their names must differ.
	Old []*rules.Compiled
	// New are the candidates (`shrike diff --against`). Required; their
	// names must differ. A ruleset of New is compared with the ruleset of
	// the same name in Old: a renamed ruleset is all new.
	New []*rules.Compiled
	// Inputs are the recorded events, as for cep.Replay. Required.
	Inputs []cep.Input
	// Examples is how many example alerts of each kind to keep per rule.
	// Default DefaultExamples; negative keeps none.
	Examples int
	// MaxRunsPerKey, MaxLineBytes, MaxClockSkew and Clock are cep.Replay's,
	// and apply to both versions.
	MaxRunsPerKey int
	MaxLineBytes  int
	MaxClockSkew  time.Duration
	Clock         func() time.Time
}

// Result compares the two versions' alerts.
type Result struct {
	// Rules has one entry per rule of either version: the rulesets and
	// rules of Old in their order, then the rules only New has. Examples
	// are the alerts as `shrike run` prints them for their version: those
	// of New are not marked shadow and have the ids a run of New gives.
	Rules []alertdiff.Rule
	// Differs says whether some rule has an alert in one version only.
	Differs bool
	// Summary is the replay's; its Rules count the new version's rules as
	// shadow rules.
	Summary cep.Summary
}

// Errors of Run for bad Options: the caller's mistake.
var (
	ErrNoOld    = errors.New("diff: no old rulesets to compare against")
	ErrNoNew    = errors.New("diff: no new rulesets to compare")
	ErrNoInputs = errors.New("diff: no events to replay")
	// ErrRulesets wraps a nil ruleset or one named twice on one side.
	ErrRulesets = errors.New("diff: bad rulesets")
)

// Run replays opts.Inputs once through the old and the new rulesets and
// compares their alerts. An error is a bad option or what stops cep.Replay
// (a file that cannot be read, ctx ending).
func Run(ctx context.Context, opts Options) (*Result, error) {
	switch {
	case len(opts.Old) == 0:
		return nil, ErrNoOld
	case len(opts.New) == 0:
		return nil, ErrNoNew
	case len(opts.Inputs) == 0:
		return nil, ErrNoInputs
	}
	d := alertdiff.NewDiff(alertdiff.Options{Examples: opts.Examples})
	all := make([]*rules.Compiled, 0, len(opts.Old)+len(opts.New))
	for _, side := range []struct {
		name     string
		side     alertdiff.Side
		rulesets []*rules.Compiled
	}{{"old", alertdiff.Old, opts.Old}, {"new", alertdiff.New, opts.New}} {
		seen := map[string]bool{}
		for i, rs := range side.rulesets {
			if rs == nil || rs.Ruleset == nil {
				return nil, fmt.Errorf("%w: %s ruleset %d is nil", ErrRulesets, side.name, i+1)
			}
			if seen[rs.Name] {
				return nil, fmt.Errorf("%w: %s ruleset %q given twice", ErrRulesets, side.name, rs.Name)
			}
			seen[rs.Name] = true
			for _, cr := range rs.Rules {
				d.Declare(side.side, rs.Name, cr.ID)
			}
			// The old version runs live and the new one as its shadow, in
			// a stream of its own: the copy leaves the caller's ruleset
			// as it was.
			c := *rs
			c.Shadow = side.side == alertdiff.New
			all = append(all, &c)
		}
	}
	sum, err := cep.Replay(ctx, cep.ReplayOptions{
		Rulesets:             all,
		Inputs:               opts.Inputs,
		MaxRunsPerKey:        opts.MaxRunsPerKey,
		MaxLineBytes:         opts.MaxLineBytes,
		MaxClockSkew:         opts.MaxClockSkew,
		Clock:                opts.Clock,
		MaxDeadLetterReports: -1,
		OnAlert: func(a *matcher.Alert) {
			side := alertdiff.Old
			if a.Shadow {
				side = alertdiff.New
			}
			// The diff keeps a few alerts as examples: the replay gives
			// each alert records of its own, which stay valid after it.
			d.Add(side, a)
		},
	})
	if err != nil {
		return nil, err
	}
	res := &Result{Rules: d.Rules(), Summary: sum}
	for i := range res.Rules {
		r := &res.Rules[i]
		res.Differs = res.Differs || r.Differs()
		// Only the examples shown are made live: an id per new alert
		// would cost the replay a second hash of every match.
		for _, ex := range [][]*matcher.Alert{r.BothExamples, r.OnlyOldExamples, r.OnlyNewExamples} {
			for j, a := range ex {
				ex[j] = a.AsLive()
			}
		}
	}
	return res, nil
}
