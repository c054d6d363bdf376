package server

import (
	"context"
	"errors"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/cep/diff"
	"github.com/shrike-cep/shrike/rules"
)

// MaxDiffExamples bounds DiffRulesetsRequest.examples: each example is a
// whole alert, events included, three kinds per rule.
const MaxDiffExamples = 20

// DiffRulesets compares two versions' alerts over the events with
// cep/diff, the code of `shrike diff`: the response is its JSON.
func (a *analysisService) DiffRulesets(ctx context.Context, req *shrikev1.DiffRulesetsRequest) (*shrikev1.DiffRulesetsResponse, error) {
	examples := int(req.GetExamples())
	switch {
	case examples < 0:
		return nil, badField("examples", "must not be negative, not %d (0: %d)", examples, diff.DefaultExamples)
	case examples > MaxDiffExamples:
		return nil, badField("examples", "at most %d, not %d", MaxDiffExamples, examples)
	}
	old, err := a.resolveRuleset(ctx, "old", req.GetOld())
	if err != nil {
		return nil, err
	}
	candidate, err := a.resolveRuleset(ctx, "new", req.GetNew())
	if err != nil {
		return nil, err
	}
	treq := &shrikev1.TestRulesetRequest{}
	switch in := req.GetInput().(type) {
	case *shrikev1.DiffRulesetsRequest_Events:
		treq.Input = &shrikev1.TestRulesetRequest_Events{Events: in.Events}
	case *shrikev1.DiffRulesetsRequest_Recording:
		treq.Input = &shrikev1.TestRulesetRequest_Recording{Recording: in.Recording}
	}
	in, done, err := (&rulesetService{s: a.s}).testInput(treq)
	if err != nil {
		return nil, err
	}
	defer done()
	res, err := diff.Run(ctx, diff.Options{
		Old:           []*rules.Compiled{old},
		New:           []*rules.Compiled{candidate},
		Inputs:        []cep.Input{in},
		Examples:      examples, // 0: diff's default, as the request's
		MaxRunsPerKey: a.s.opts.MaxRunsPerKey,
		Clock:         a.s.opts.Clock,
	})
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		// The input is the caller's (a line too long for the reader, a
		// gzip recording that is not gzip): their mistake to fix.
		return nil, badField(inputField(treq), "%v", err)
	}
	resp, err := res.Response()
	if err != nil {
		// An event the API cannot carry: the input is the caller's.
		return nil, badField(inputField(treq), "%v", err)
	}
	return resp, nil
}

// resolveRuleset compiles the ruleset ref names as TestRuleset compiles its
// own, and names ref's field (side) in the errors: "old.version",
// "new.source", "ruleset.name" (DiffRulesets, GetRuleAutomaton).
func (a *analysisService) resolveRuleset(ctx context.Context, side string, ref *shrikev1.RulesetRef) (*rules.Compiled, error) {
	treq := testRequest(ref)
	field := side + ".source"
	switch ref.GetRuleset().(type) {
	case *shrikev1.RulesetRef_Source:
	case *shrikev1.RulesetRef_Name:
		field = side + ".name"
	default:
		return nil, badField(side, "required: give source (YAML) or name (a stored ruleset, with version)")
	}
	compiled, err := (&rulesetService{s: a.s}).testRuleset(ctx, treq)
	var fe *fieldError
	var list rules.ErrorList
	switch {
	case err == nil:
		return compiled, nil
	case errors.As(err, &fe):
		return nil, badField(side+"."+fe.field, "%s", fe.msg)
	case errors.As(err, &list):
		// Which version does not compile: the violations' field and the
		// ErrorInfo metadata "field" say.
		return nil, withMeta(err, "field", field)
	}
	return nil, err
}
