package server

import (
	"context"
	"errors"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/nfa/draw"
)

// GetRuleAutomaton compiles the ruleset as TestRuleset does and draws one
// pattern rule's automaton with nfa/draw, the code of `shrike draw`.
func (a *analysisService) GetRuleAutomaton(ctx context.Context, req *shrikev1.GetRuleAutomatonRequest) (*shrikev1.GetRuleAutomatonResponse, error) {
	if req.GetRule() == "" {
		return nil, badField("rule", "required: the id of a pattern rule of the ruleset")
	}
	compiled, err := a.resolveRuleset(ctx, "ruleset", req.GetRuleset())
	if err != nil {
		return nil, err
	}
	g, svg, err := draw.Rule(compiled, req.GetRule())
	switch {
	case errors.Is(err, draw.ErrNoAutomaton), errors.Is(err, draw.ErrTooLarge):
		return nil, badField("rule", "%v", err)
	case err != nil:
		return nil, err
	}
	return &shrikev1.GetRuleAutomatonResponse{Rule: g.Rule, Automaton: automatonProto(g), Svg: string(svg)}, nil
}

// automatonProto is the API's form of a drawn graph.
func automatonProto(g *draw.Graph) *shrikev1.RuleAutomaton {
	out := &shrikev1.RuleAutomaton{
		Window: g.Window,
		Start:  int32(g.Start),
		States: make([]*shrikev1.AutomatonState, 0, len(g.States)),
		Edges:  make([]*shrikev1.AutomatonEdge, 0, len(g.Edges)),
	}
	for _, s := range g.States {
		out.States = append(out.States, &shrikev1.AutomatonState{
			Id: int32(s.ID), Name: s.Name, Kind: s.Kind, Start: s.Start, Group: s.Group, Window: s.Window,
		})
	}
	for _, e := range g.Edges {
		out.Edges = append(out.Edges, &shrikev1.AutomatonEdge{
			From: int32(e.From), To: int32(e.To), Action: e.Action, Condition: e.Condition,
		})
	}
	return out
}
