package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/internal/tokencheck"
)

// Token is a bearer token and the scopes it grants.
type Token struct {
	// Name identifies the token in logs.
	Name string
	// Secret is what clients send: "authorization: Bearer <secret>". New
	// refuses a weak one (internal/tokencheck: at least 128 bits).
	Secret string
	// Scopes are among shrikev1.Scopes.
	Scopes []shrikev1.Scope
}

// authenticator checks bearer tokens against the configured ones. Tokens
// are looked up by their SHA-256, so that the lookup's timing says nothing
// about how much of a guess was right.
type authenticator struct {
	byHash map[[sha256.Size]byte]*Token
}

func newAuthenticator(tokens []Token) (*authenticator, error) {
	a := &authenticator{byHash: make(map[[sha256.Size]byte]*Token, len(tokens))}
	for i := range tokens {
		t := &tokens[i]
		if t.Name == "" || t.Secret == "" {
			return nil, fmt.Errorf("token %d: needs a name and a secret", i)
		}
		if err := tokencheck.Check(t.Secret); err != nil {
			return nil, fmt.Errorf("token %q: %w", t.Name, err)
		}
		for _, s := range t.Scopes {
			if !s.Known() {
				return nil, fmt.Errorf("token %q: unknown scope %q", t.Name, s)
			}
		}
		h := sha256.Sum256([]byte(t.Secret))
		if _, dup := a.byHash[h]; dup {
			return nil, fmt.Errorf("token %q: the same secret as another token", t.Name)
		}
		a.byHash[h] = t
	}
	return a, nil
}

// enabled reports whether tokens are required at all.
func (a *authenticator) enabled() bool { return len(a.byHash) > 0 }

// authorize checks the bearer token in ctx's metadata against the scope
// fullMethod needs; ScopeAuthenticated needs a valid token only. Methods
// outside shrike.v1 (health, reflection) need none; a shrike.v1 method
// without a required_scope option is refused, so that a method added
// without one fails closed.
func (a *authenticator) authorize(ctx context.Context, fullMethod string) (*Token, error) {
	if !strings.HasPrefix(fullMethod, "/shrike.v1.") {
		return nil, nil
	}
	scope := shrikev1.RequiredScope(fullMethod)
	if scope == "" {
		return nil, withDetails(codes.PermissionDenied, "method has no required scope", ReasonScopeMissing, nil)
	}
	if !a.enabled() {
		return nil, nil
	}
	secret, err := bearer(ctx)
	if errors.Is(err, errNoToken) {
		return nil, withDetails(codes.Unauthenticated, err.Error(), ReasonTokenMissing, nil)
	}
	if err != nil {
		return nil, withDetails(codes.Unauthenticated, err.Error(), ReasonTokenInvalid, nil)
	}
	t := a.byHash[sha256.Sum256([]byte(secret))]
	if t == nil {
		return nil, withDetails(codes.Unauthenticated, "unknown bearer token", ReasonTokenInvalid, nil)
	}
	if scope != shrikev1.ScopeAuthenticated && !slices.Contains(t.Scopes, scope) {
		return t, withDetails(codes.PermissionDenied, fmt.Sprintf("token %q lacks scope %s", t.Name, scope), ReasonScopeMissing,
			map[string]string{"scope": string(scope)})
	}
	return t, nil
}

var errNoToken = errors.New("missing bearer token (authorization: Bearer <token>)")

// bearer returns the token of the request's "authorization: Bearer …"
// metadata, which the REST gateway forwards from the HTTP header.
func bearer(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return "", errNoToken
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(tok) == "" {
		return "", errors.New("the authorization must be a bearer token (authorization: Bearer <token>)")
	}
	return strings.TrimSpace(tok), nil
}
