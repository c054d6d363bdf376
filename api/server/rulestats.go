package server

import (
	"context"
	"errors"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/registry"
	"github.com/shrike-cep/shrike/rules"
)

// GetRulesetStats reads the rules of the current version (and of the
// shadow) from the registry and their figures from what every serve
// instance published there (registry.StatsPublisher).
func (r *rulesetService) GetRulesetStats(ctx context.Context, req *shrikev1.GetRulesetStatsRequest) (*shrikev1.RulesetStats, error) {
	name := req.GetName()
	rec, err := r.s.registry.Get(ctx, name, 0)
	if err != nil {
		return nil, notFoundMeta(registryErr(err), name, 0)
	}
	out := &shrikev1.RulesetStats{Name: rec.Name, Version: rec.Version}
	var refs []registry.RuleRef
	add := func(rs []*shrikev1.Rule, shadow bool) {
		for _, rule := range rs {
			refs = append(refs, registry.RuleRef{Ruleset: rec.Name, Rule: rule.GetId(), Shadow: shadow})
			out.Rules = append(out.Rules, &shrikev1.RuleActivity{Rule: rule.GetId(), Shadow: shadow, Enabled: rule.GetEnabled()})
		}
	}
	add(r.s.summaries.get(rec).rules, false)
	sh, err := r.s.registry.GetShadow(ctx, name)
	switch {
	case errors.Is(err, registry.ErrShadowNotFound):
	case err != nil:
		return nil, notFoundMeta(registryErr(err), name, 0)
	default:
		out.HasShadow = true
		// Only the rules' ids and whether they run are needed: a parse,
		// not a compile.
		if rs, err := rules.Parse(name+".yaml", sh.Source); err == nil {
			add(summaryOf(rs, nil).rules, true)
		}
	}
	rep, err := r.s.registry.RuleStats(ctx, refs)
	if err != nil {
		return nil, withMeta(registryErr(err), "ruleset", name)
	}
	for i, fig := range rep.Rules {
		ra := out.Rules[i]
		ra.AlertsLastHour = fig.AlertsLastHour
		ra.SuppressedLastHour = fig.SuppressedLastHour
		ra.OpenPartialMatches = fig.OpenPartialMatches
	}
	out.Instances = int32(rep.Instances)
	if !rep.GatherTime.IsZero() {
		out.GatherTime = timestamp(rep.GatherTime)
	}
	return out, nil
}
