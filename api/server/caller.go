package server

import (
	"context"
	"slices"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
)

// authService implements shrikev1.AuthServiceServer: what the caller's
// token lets it do, for a console to log in and hide what it may not do.
type authService struct {
	shrikev1.UnimplementedAuthServiceServer
	s *Server
}

// GetCaller answers from the token the auth interceptor accepted: with
// tokens required, a call reaches here only with a known token.
func (h *authService) GetCaller(ctx context.Context, _ *shrikev1.GetCallerRequest) (*shrikev1.Caller, error) {
	out := &shrikev1.Caller{TokensRequired: h.s.auth.enabled()}
	granted := shrikev1.Scopes()
	if out.TokensRequired {
		tok, _ := ctx.Value(tokenKey{}).(*Token)
		if tok == nil {
			// The interceptor refuses such calls; this guards a method
			// registered without it.
			return nil, errNoCaller
		}
		out.TokenName = tok.Name
		granted = tok.Scopes
	}
	// In Scopes' order, whatever the configuration's.
	for _, s := range shrikev1.Scopes() {
		if slices.Contains(granted, s) {
			out.Scopes = append(out.Scopes, string(s))
		}
	}
	return out, nil
}
