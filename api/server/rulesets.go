package server

import (
	"bytes"
	"context"
	"errors"
	"strconv"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/types/known/emptypb"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/internal/pagetoken"
	"github.com/shrike-cep/shrike/registry"
	"github.com/shrike-cep/shrike/rules"
)

// Registry is what the ruleset service needs of the rules registry
// (registry.Registry).
type Registry interface {
	Put(ctx context.Context, name string, source []byte) (registry.RulesetRecord, error)
	Get(ctx context.Context, name string, version int64) (registry.RulesetRecord, error)
	List(ctx context.Context, pageSize int, pageToken string) ([]registry.RulesetRecord, string, error)
	ListVersions(ctx context.Context, name string, q registry.VersionQuery) ([]registry.RulesetRecord, string, error)
	Delete(ctx context.Context, name string) error
	Rollback(ctx context.Context, name string, version int64) (registry.RulesetRecord, error)

	PutShadow(ctx context.Context, name string, source []byte) (registry.ShadowRecord, error)
	GetShadow(ctx context.Context, name string) (registry.ShadowRecord, error)
	DeleteShadow(ctx context.Context, name string) error
	PromoteShadow(ctx context.Context, name string) (registry.RulesetRecord, error)

	PutList(ctx context.Context, name string, items []string) (registry.ListChange, error)
	AddListItems(ctx context.Context, name string, items []string) (registry.ListChange, error)
	RemoveListItems(ctx context.Context, name string, items []string) (registry.ListChange, error)
	GetList(ctx context.Context, name string, q registry.ListQuery) (registry.ListPage, error)
	ListLists(ctx context.Context, pageSize int, pageToken string) ([]registry.ListInfo, string, error)

	RuleStats(ctx context.Context, rules []registry.RuleRef) (registry.RuleStatsReport, error)
}

// Page sizes of every List method (AIP-158).
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// pageSize applies AIP-158: 0 is the default, larger than the maximum is
// the maximum, negative is an error.
func pageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, badField("page_size", "must not be negative, not %d", n)
	case n == 0:
		return DefaultPageSize, nil
	}
	return min(int(n), MaxPageSize), nil
}

// rulesetService implements shrikev1.RulesetServiceServer over the
// registry. Its methods return plain errors; the interceptors map them
// (toStatus).
type rulesetService struct {
	shrikev1.UnimplementedRulesetServiceServer
	s *Server
}

// registryErr tells the caller's mistakes (not found, bad name or token,
// invalid source) from the registry failing, which is worth a retry.
func registryErr(err error) error {
	var list rules.ErrorList
	if errors.As(err, &list) || errors.Is(err, registry.ErrRulesetNotFound) || errors.Is(err, registry.ErrInvalidName) ||
		errors.Is(err, pagetoken.ErrInvalid) || errors.Is(err, registry.ErrDeletedVersion) || errors.Is(err, registry.ErrNoPreviousVersion) ||
		errors.Is(err, registry.ErrShadowNotFound) || errors.Is(err, registry.ErrShadowReplaced) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return unavailable("redis", err)
}

// notFoundMeta names the ruleset (and version) an error is about.
func notFoundMeta(err error, name string, version int64) error {
	if version > 0 {
		return withMeta(err, "ruleset", name, "version", strconv.FormatInt(version, 10))
	}
	return withMeta(err, "ruleset", name)
}

func (r *rulesetService) PutRuleset(ctx context.Context, req *shrikev1.PutRulesetRequest) (*shrikev1.Ruleset, error) {
	rec, err := r.s.registry.Put(ctx, req.GetName(), []byte(req.GetSource()))
	if err != nil {
		return nil, withMeta(registryErr(err), "ruleset", req.GetName())
	}
	r.s.log.Info("ruleset stored", "ruleset", rec.Name, "version", rec.Version, "token", tokenName(ctx))
	return r.s.summaries.rulesetProto(rec), nil
}

func (r *rulesetService) GetRuleset(ctx context.Context, req *shrikev1.GetRulesetRequest) (*shrikev1.Ruleset, error) {
	if req.GetVersion() < 0 {
		return nil, badField("version", "must not be negative, not %d", req.GetVersion())
	}
	rec, err := r.s.registry.Get(ctx, req.GetName(), req.GetVersion())
	if err != nil {
		return nil, notFoundMeta(registryErr(err), req.GetName(), req.GetVersion())
	}
	if rec.Deleted {
		// A deletion asked for by number has no ruleset to show.
		return nil, notFoundMeta(registry.ErrVersionNotFound, req.GetName(), req.GetVersion())
	}
	return r.s.summaries.rulesetProto(rec), nil
}

func (r *rulesetService) ListRulesets(ctx context.Context, req *shrikev1.ListRulesetsRequest) (*shrikev1.ListRulesetsResponse, error) {
	n, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	recs, next, err := r.s.registry.List(ctx, n, req.GetPageToken())
	if err != nil {
		return nil, registryErr(err)
	}
	out := &shrikev1.ListRulesetsResponse{NextPageToken: next}
	for _, rec := range recs {
		out.Rulesets = append(out.Rulesets, r.s.summaries.rulesetProto(rec))
	}
	return out, nil
}

func (r *rulesetService) DeleteRuleset(ctx context.Context, req *shrikev1.DeleteRulesetRequest) (*emptypb.Empty, error) {
	if err := r.s.registry.Delete(ctx, req.GetName()); err != nil {
		return nil, notFoundMeta(registryErr(err), req.GetName(), 0)
	}
	r.s.log.Info("ruleset deleted", "ruleset", req.GetName(), "token", tokenName(ctx))
	return &emptypb.Empty{}, nil
}

// maxVersionPageSources bounds the sources of one page of
// ListRulesetVersions with include_source, so that a page fits the 4 MiB
// a gRPC client takes by default.
const maxVersionPageSources = 3 << 20

func (r *rulesetService) ListRulesetVersions(ctx context.Context, req *shrikev1.ListRulesetVersionsRequest) (*shrikev1.ListRulesetVersionsResponse, error) {
	n, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	// Without sources by default: a history of large rulesets is
	// megabytes, and GetRuleset returns the one source wanted.
	recs, next, err := r.s.registry.ListVersions(ctx, req.GetName(), registry.VersionQuery{
		PageSize: n, PageToken: req.GetPageToken(), Source: req.GetIncludeSource(), MaxSourceBytes: maxVersionPageSources,
	})
	if err != nil {
		return nil, notFoundMeta(registryErr(err), req.GetName(), 0)
	}
	out := &shrikev1.ListRulesetVersionsResponse{NextPageToken: next}
	for _, rec := range recs {
		out.Versions = append(out.Versions, versionProto(rec))
	}
	return out, nil
}

func (r *rulesetService) RollbackRuleset(ctx context.Context, req *shrikev1.RollbackRulesetRequest) (*shrikev1.Ruleset, error) {
	// No version (0) is the previous one, as kubectl rollout undo and helm
	// rollback take it (registry.Registry.Rollback).
	if req.GetVersion() < 0 {
		return nil, badField("version", "must be a version number (1 or more), or none for the previous version, not %d", req.GetVersion())
	}
	rec, err := r.s.registry.Rollback(ctx, req.GetName(), req.GetVersion())
	if err != nil {
		return nil, notFoundMeta(registryErr(err), req.GetName(), req.GetVersion())
	}
	r.s.log.Info("ruleset rolled back", "ruleset", rec.Name, "version", rec.Version, "rollback_of", rec.RollbackOf, "token", tokenName(ctx))
	return r.s.summaries.rulesetProto(rec), nil
}

// validateFile names inline sources in errors; the API strips file names
// from positions, so it shows nowhere.
const validateFile = "ruleset.yaml"

func (r *rulesetService) ValidateRuleset(ctx context.Context, req *shrikev1.ValidateRulesetRequest) (*shrikev1.ValidateRulesetResponse, error) {
	src := []byte(req.GetSource())
	out := &shrikev1.ValidateRulesetResponse{}
	c, err := rules.LoadContext(ctx, validateFile, src, r.s.opts.CompileOptions)
	if err == nil {
		// Valid means PutRuleset takes it, and a stored ruleset must name
		// its topic.
		if list := registry.RequireTopic(c); list != nil {
			err = list
		}
	}
	if err != nil {
		var list rules.ErrorList
		if !errors.As(err, &list) {
			return nil, err
		}
		// Only now, as decoding the YAML again costs as much as parsing:
		// a valid ruleset names itself.
		out.Name = rulesetName(src)
		out.Errors = rulesetErrors(list)
		return out, nil
	}
	out.Valid = true
	out.Name = c.Name
	out.Rules = summaryOf(c.Ruleset, c.Rules).rules
	out.Warnings = rulesetErrors(c.Warnings)
	return out, nil
}

// rulesetName reads the `ruleset:` of a source that may not parse as a
// ruleset, for ValidateRuleset to name it anyway.
func rulesetName(src []byte) string {
	var doc struct {
		Ruleset any `yaml:"ruleset"`
	}
	if err := yaml.NewDecoder(bytes.NewReader(src)).Decode(&doc); err != nil {
		return ""
	}
	name, _ := doc.Ruleset.(string)
	return name
}
