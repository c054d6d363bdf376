package server

import shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"

// analysisService implements shrikev1.AnalysisServiceServer: ExplainRuleset
// and DiffRulesets run the matcher of `shrike run` offline, as TestRuleset
// does; GetRuleAutomaton draws the automaton the matcher runs for a rule.
type analysisService struct {
	shrikev1.UnimplementedAnalysisServiceServer
	s *Server
}
