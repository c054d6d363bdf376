package server

import shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"

// shadowService implements shrikev1.ShadowServiceServer over the registry's
// shadow versions and the alert feeds.
type shadowService struct {
	shrikev1.UnimplementedShadowServiceServer
	s *Server
}
