package server

import (
	"context"
	"errors"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/feed"
	"github.com/shrike-cep/shrike/internal/alertdiff"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/registry"
)

// ShadowAlerts reads what the live and the shadow version of a ruleset
// alerted on since a time, from the alerts topics of the whole cluster.
type ShadowAlerts interface {
	// ShadowDiff compares the live and shadow alerts of ruleset produced at or
	// after since, with at most examples examples of each kind per rule.
	ShadowDiff(ctx context.Context, ruleset string, since time.Time, examples int) (*alertdiff.Diff, error)
}

// Bounds of GetShadowDiffRequest.examples.
const (
	DefaultShadowDiffExamples = alertdiff.DefaultExamples
	MaxShadowDiffExamples     = 20
)

// shadowService implements shrikev1.ShadowServiceServer over the registry's
// shadow versions and the alert feeds.
type shadowService struct {
	shrikev1.UnimplementedShadowServiceServer
	s *Server
}

// shadowMeta names the ruleset a shadow error is about.
func shadowMeta(err error, name string) error {
	return withMeta(registryErr(err), "ruleset", name)
}

func (h *shadowService) PutShadow(ctx context.Context, req *shrikev1.PutShadowRequest) (*shrikev1.Shadow, error) {
	sh, err := h.s.registry.PutShadow(ctx, req.GetName(), []byte(req.GetSource()))
	if err != nil {
		return nil, shadowMeta(err, req.GetName())
	}
	h.s.log.Info("shadow stored", "ruleset", sh.Name, "live_version", sh.LiveVersion, "token", tokenName(ctx))
	return h.shadowProto(sh), nil
}

func (h *shadowService) GetShadow(ctx context.Context, req *shrikev1.GetShadowRequest) (*shrikev1.Shadow, error) {
	sh, err := h.s.registry.GetShadow(ctx, req.GetName())
	if err != nil {
		return nil, shadowMeta(err, req.GetName())
	}
	return h.shadowProto(sh), nil
}

func (h *shadowService) DeleteShadow(ctx context.Context, req *shrikev1.DeleteShadowRequest) (*emptypb.Empty, error) {
	if err := h.s.registry.DeleteShadow(ctx, req.GetName()); err != nil {
		return nil, shadowMeta(err, req.GetName())
	}
	h.s.log.Info("shadow deleted", "ruleset", req.GetName(), "token", tokenName(ctx))
	return &emptypb.Empty{}, nil
}

func (h *shadowService) PromoteShadow(ctx context.Context, req *shrikev1.PromoteShadowRequest) (*shrikev1.Ruleset, error) {
	rec, err := h.s.registry.PromoteShadow(ctx, req.GetName())
	if err != nil {
		return nil, shadowMeta(err, req.GetName())
	}
	h.s.log.Info("shadow promoted", "ruleset", rec.Name, "version", rec.Version, "token", tokenName(ctx))
	return h.s.summaries.rulesetProto(rec), nil
}

func (h *shadowService) GetShadowDiff(ctx context.Context, req *shrikev1.GetShadowDiffRequest) (*shrikev1.ShadowDiff, error) {
	examples := int(req.GetExamples())
	switch {
	case examples < 0 || examples > MaxShadowDiffExamples:
		return nil, badField("examples", "must be from 0 (the default, %d) to %d, not %d", DefaultShadowDiffExamples, MaxShadowDiffExamples, examples)
	case examples == 0:
		examples = DefaultShadowDiffExamples
	}
	sh, err := h.s.registry.GetShadow(ctx, req.GetName())
	if err != nil {
		return nil, shadowMeta(err, req.GetName())
	}
	if h.s.opts.ShadowAlerts == nil {
		return nil, withMeta(errNoShadowAlerts, "ruleset", req.GetName())
	}
	diff, err := h.s.opts.ShadowAlerts.ShadowDiff(ctx, sh.Name, sh.StartTime, examples)
	if err != nil {
		switch {
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			return nil, err
		case errors.Is(err, feed.ErrTooManyAlerts):
			return nil, withMeta(err, "ruleset", req.GetName())
		}
		return nil, withMeta(unavailable("kafka", err), "ruleset", req.GetName())
	}
	// Rules neither version alerted on are shown too, after the others:
	// a rule that never fires is worth seeing beside one that does. The
	// live version is read again for its rules; should that fail (the
	// ruleset deleted since, Redis gone), the diff goes without them.
	if live, err := h.s.registry.Get(ctx, sh.Name, 0); err == nil {
		declare(diff, alertdiff.Old, sh.Name, h.s.summaries.get(live))
	}
	declare(diff, alertdiff.New, sh.Name, h.shadowSummary(sh))
	out := &shrikev1.ShadowDiff{Name: sh.Name, StartTime: timestamp(sh.StartTime)}
	for _, r := range diff.Rules() {
		if r.Differs() {
			out.Differ = true
		}
		out.Rules = append(out.Rules, &shrikev1.RuleDiff{
			Ruleset:         r.Ruleset,
			Rule:            r.Rule,
			Both:            int64(r.Both),
			OnlyOld:         int64(r.OnlyOld),
			OnlyNew:         int64(r.OnlyNew),
			BothExamples:    h.examples(r.BothExamples),
			OnlyOldExamples: h.examples(r.OnlyOldExamples),
			OnlyNewExamples: h.examples(r.OnlyNewExamples),
			InOld:           r.InOld,
			InNew:           r.InNew,
		})
	}
	return out, nil
}

// declare records the enabled rules of a version's summary in diff.
func declare(diff *alertdiff.Diff, side alertdiff.Side, ruleset string, s *summary) {
	for _, r := range s.rules {
		if r.GetEnabled() {
			diff.Declare(side, ruleset, r.GetId())
		}
	}
}

// examples converts example alerts; one whose events cannot be converted
// is left out, logged and counted as the alert listings do.
func (h *shadowService) examples(as []*matcher.Alert) []*shrikev1.Alert {
	out := make([]*shrikev1.Alert, 0, len(as))
	for _, a := range as {
		pa, err := alertProto(a, "")
		if err != nil {
			h.s.skipped.Inc()
			h.s.log.Warn("api: alert skipped: cannot convert", "ruleset", a.Ruleset, "rule", a.Rule, "err", err)
			continue
		}
		out = append(out, pa)
	}
	return out
}

// shadowSummary is the summary of a shadow's source, cached as the
// versions' are: under a name no ruleset can have ('#' is not allowed in
// one) and the shadow's start, which a new shadow changes.
func (h *shadowService) shadowSummary(sh registry.ShadowRecord) *summary {
	return h.s.summaries.get(registry.RulesetRecord{Name: sh.Name + "#shadow", Version: sh.StartTime.UnixNano(), Source: sh.Source})
}

func (h *shadowService) shadowProto(sh registry.ShadowRecord) *shrikev1.Shadow {
	return &shrikev1.Shadow{
		Name:        sh.Name,
		Source:      string(sh.Source),
		LiveVersion: sh.LiveVersion,
		StartTime:   timestamp(sh.StartTime),
		Rules:       h.shadowSummary(sh).rules,
	}
}
