package server

import (
	"context"
	"encoding/json"
	"errors"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/cep/explain"
	"github.com/shrike-cep/shrike/rules"
)

// DefaultMaxExplainEntries bounds an ExplainRuleset response when
// Options.MaxExplainEntries is zero: some 2 MiB of trace, under a gRPC
// client's default 4 MiB message limit.
const DefaultMaxExplainEntries = 5000

// ExplainRuleset traces one key through the ruleset with cep/explain, the
// code of `shrike explain`: the entries are its JSON lines.
func (a *analysisService) ExplainRuleset(ctx context.Context, req *shrikev1.ExplainRulesetRequest) (*shrikev1.ExplainRulesetResponse, error) {
	if req.GetKey() == "" {
		return nil, badField("key", "required: the key to trace")
	}
	compiled, in, treq, done, err := a.explainInputs(ctx, req)
	if err != nil {
		return nil, err
	}
	defer done()
	res, err := explain.Run(ctx, explain.Options{
		Rulesets:      []*rules.Compiled{compiled},
		Inputs:        []cep.Input{in},
		Key:           req.GetKey(),
		Rule:          req.GetRule(),
		MaxEntries:    a.s.opts.MaxExplainEntries,
		MaxRunsPerKey: a.s.opts.MaxRunsPerKey,
		Clock:         a.s.opts.Clock,
	})
	switch {
	case errors.Is(err, explain.ErrRule):
		return nil, badField("rule", "%v", err)
	case err != nil && ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		return nil, badField(inputField(treq), "%v", err)
	}
	out := &shrikev1.ExplainRulesetResponse{Truncated: res.Truncated}
	for i := range res.Entries {
		s, err := entryStruct(&res.Entries[i])
		if err != nil {
			return nil, err
		}
		out.Entries = append(out.Entries, s)
	}
	return out, nil
}

// entryStruct converts a trace entry through its JSON, so that the API
// answers the fields `shrike explain --json` writes.
func entryStruct(e *explain.Entry) (*structpb.Struct, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(b, s); err != nil {
		return nil, err
	}
	return s, nil
}

// explainInputs resolves the ruleset and the events as TestRuleset does,
// and returns the TestRuleset request that names them.
func (a *analysisService) explainInputs(ctx context.Context, req *shrikev1.ExplainRulesetRequest) (*rules.Compiled, cep.Input, *shrikev1.TestRulesetRequest, func(), error) {
	nop := func() {}
	treq := testRequest(req.GetRuleset())
	switch in := req.GetInput().(type) {
	case *shrikev1.ExplainRulesetRequest_Events:
		treq.Input = &shrikev1.TestRulesetRequest_Events{Events: in.Events}
	case *shrikev1.ExplainRulesetRequest_Recording:
		treq.Input = &shrikev1.TestRulesetRequest_Recording{Recording: in.Recording}
	}
	rsvc := &rulesetService{s: a.s}
	compiled, err := rsvc.testRuleset(ctx, treq)
	if err != nil {
		return nil, cep.Input{}, treq, nop, err
	}
	in, done, err := rsvc.testInput(treq)
	if err != nil {
		return nil, cep.Input{}, treq, nop, err
	}
	return compiled, in, treq, done, nil
}

// testRequest is the TestRuleset request naming ref's ruleset (a stored
// name and version, or an inline source), which TestRuleset's helpers
// resolve for ExplainRuleset and DiffRulesets alike.
func testRequest(ref *shrikev1.RulesetRef) *shrikev1.TestRulesetRequest {
	treq := &shrikev1.TestRulesetRequest{Version: ref.GetVersion()}
	switch rs := ref.GetRuleset().(type) {
	case *shrikev1.RulesetRef_Source:
		treq.Ruleset = &shrikev1.TestRulesetRequest_Source{Source: rs.Source}
	case *shrikev1.RulesetRef_Name:
		treq.Ruleset = &shrikev1.TestRulesetRequest_Name{Name: rs.Name}
	}
	return treq
}
