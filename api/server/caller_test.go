package server_test

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
)

// TestGetCaller: any valid token may ask what it grants, whatever its
// scopes; without a token, or with an unknown one, the call is refused as
// every other; a server without tokens grants every scope.
func TestGetCaller(t *testing.T) {
	t.Run("tokens", func(t *testing.T) {
		e := newEnv(t, envOptions{tokens: tokens})
		for _, tc := range []struct {
			token string
			want  map[string]any
		}{
			{"reader-2666b541a9ca9cfc00f5a5121c23732a", map[string]any{"tokens_required": true, "token_name": "reader", "scopes": []any{"rules:read"}}},
			{"writer-7507a84de02d4003977593f783f43ca6", map[string]any{"tokens_required": true, "token_name": "writer", "scopes": []any{"rules:read", "rules:write"}}},
			{"watcher-d15effcb07db80c20f9f3aaa07df3aec", map[string]any{"tokens_required": true, "token_name": "watcher", "scopes": []any{"alerts:read"}}},
		} {
			e.token = tc.token
			code, body := e.rest(t, "GET", "/v1/caller", nil)
			if code != http.StatusOK {
				t.Fatalf("GET /v1/caller: %d %v", code, body)
			}
			if d := cmp.Diff(tc.want, body); d != "" {
				t.Errorf("caller (-want +got):\n%s", d)
			}
		}
		// Scopes come in the API's order, whatever the token's.
		e.token = "writer-7507a84de02d4003977593f783f43ca6"
		c, err := shrikev1.NewAuthServiceClient(e.conn).GetCaller(e.ctx(t), &shrikev1.GetCallerRequest{})
		if err != nil || c.GetTokenName() != "writer" || !cmp.Equal(c.GetScopes(), []string{"rules:read", "rules:write"}) || !c.GetTokensRequired() {
			t.Errorf("gRPC GetCaller = %v, %v", c, err)
		}

		for _, tc := range []struct{ token, want string }{
			{"", "401 TOKEN_MISSING"},
			{"unknown-0000000000000000000000000000000000", "401 TOKEN_INVALID"},
		} {
			e.token = tc.token
			code, body := e.rest(t, "GET", "/v1/caller", nil)
			if got := restStatus(code, body); got != tc.want {
				t.Errorf("GET /v1/caller with token %q: %s, want %s", tc.token, got, tc.want)
			}
		}
		e.token = ""
		if _, err := shrikev1.NewAuthServiceClient(e.conn).GetCaller(e.ctx(t), &shrikev1.GetCallerRequest{}); statusOf(err) != "Unauthenticated TOKEN_MISSING" {
			t.Errorf("gRPC GetCaller without a token: %s", statusOf(err))
		}
	})
	t.Run("no tokens", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		code, body := e.rest(t, "GET", "/v1/caller", nil)
		want := map[string]any{
			"tokens_required": false, "token_name": "",
			"scopes": []any{"rules:read", "rules:write", "alerts:read", "events:write", "lists:write"},
		}
		if code != http.StatusOK {
			t.Fatalf("GET /v1/caller: %d %v", code, body)
		}
		if d := cmp.Diff(want, body); d != "" {
			t.Errorf("caller (-want +got):\n%s", d)
		}
	})
}
