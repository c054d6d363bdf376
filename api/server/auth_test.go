package server_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/shrike-cep/shrike/api/server"
	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/feed"
)

// call is one RPC, by gRPC and by REST.
type call struct {
	name   string
	scope  shrikev1.Scope
	grpc   func(e *env, t *testing.T) error
	method string
	path   string
	body   any
}

var calls = []call{
	{"PutRuleset", "rules:write", func(e *env, t *testing.T) error {
		_, err := e.rulesets().PutRuleset(e.ctx(t), &shrikev1.PutRulesetRequest{Name: "payments", Source: paymentsSrc})
		return err
	}, "PUT", "/v1/rulesets/payments", map[string]string{"source": paymentsSrc}},
	{"GetRuleset", "rules:read", func(e *env, t *testing.T) error {
		_, err := e.rulesets().GetRuleset(e.ctx(t), &shrikev1.GetRulesetRequest{Name: "payments"})
		return err
	}, "GET", "/v1/rulesets/payments", nil},
	{"ListRulesets", "rules:read", func(e *env, t *testing.T) error {
		_, err := e.rulesets().ListRulesets(e.ctx(t), &shrikev1.ListRulesetsRequest{})
		return err
	}, "GET", "/v1/rulesets", nil},
	{"ListRulesetVersions", "rules:read", func(e *env, t *testing.T) error {
		_, err := e.rulesets().ListRulesetVersions(e.ctx(t), &shrikev1.ListRulesetVersionsRequest{Name: "payments"})
		return err
	}, "GET", "/v1/rulesets/payments/versions", nil},
	{"RollbackRuleset", "rules:write", func(e *env, t *testing.T) error {
		_, err := e.rulesets().RollbackRuleset(e.ctx(t), &shrikev1.RollbackRulesetRequest{Name: "payments", Version: 1})
		return err
	}, "POST", "/v1/rulesets/payments:rollback", map[string]int{"version": 1}},
	{"ValidateRuleset", "rules:read", func(e *env, t *testing.T) error {
		_, err := e.rulesets().ValidateRuleset(e.ctx(t), &shrikev1.ValidateRulesetRequest{Source: paymentsSrc})
		return err
	}, "POST", "/v1/rulesets:validate", map[string]string{"source": paymentsSrc}},
	{"TestRuleset", "rules:read", func(e *env, t *testing.T) error {
		_, err := e.rulesets().TestRuleset(e.ctx(t), &shrikev1.TestRulesetRequest{
			Ruleset: &shrikev1.TestRulesetRequest_Source{Source: paymentsSrc},
			Input:   &shrikev1.TestRulesetRequest_Events{Events: "{}"},
		})
		return err
	}, "POST", "/v1/rulesets:test", map[string]string{"source": paymentsSrc, "events": "{}"}},
	{"ListAlerts", "alerts:read", func(e *env, t *testing.T) error {
		_, err := e.alerts().ListAlerts(e.ctx(t), &shrikev1.ListAlertsRequest{})
		return err
	}, "GET", "/v1/alerts", nil},
	{"SubscribeAlerts", "alerts:read", func(e *env, t *testing.T) error {
		ctx, cancel := context.WithCancel(e.ctx(t))
		defer cancel()
		stream, err := e.alerts().SubscribeAlerts(ctx, &shrikev1.SubscribeAlertsRequest{})
		if err != nil {
			return err
		}
		md, err := stream.Header()
		if err == nil && len(md.Get("shrike-subscribed")) == 0 {
			// Ended before subscribing: its status is the error.
			_, err = stream.Recv()
		}
		return err
	}, "", "", nil},
	{"PublishEvents", "events:write", func(e *env, t *testing.T) error {
		_, err := e.events().PublishEvents(e.ctx(t), &shrikev1.PublishEventsRequest{Topic: "payments", Events: []*shrikev1.Event{
			{Key: "a", Payload: &shrikev1.Event_RawJson{RawJson: `{"account_id":"a"}`}},
		}})
		return err
	}, "POST", "/v1/events:publish", map[string]any{"topic": "payments", "events": []any{map[string]any{"raw_json": "{}"}}}},
	// Last, so that the calls above find the ruleset.
	{"DeleteRuleset", "rules:write", func(e *env, t *testing.T) error {
		_, err := e.rulesets().DeleteRuleset(e.ctx(t), &shrikev1.DeleteRulesetRequest{Name: "payments"})
		return err
	}, "DELETE", "/v1/rulesets/payments", nil},
}

// tokenWithout returns a token lacking scope, and one holding it.
func tokenFor(scope shrikev1.Scope, has bool) string {
	for _, tok := range tokens {
		held := false
		for _, s := range tok.Scopes {
			held = held || s == scope
		}
		if held == has {
			return tok.Secret
		}
	}
	panic("no token")
}

func TestAuthGRPC(t *testing.T) {
	e := newEnv(t, envOptions{tokens: tokens})
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if got := shrikev1.RequiredScope("/shrike.v1." + serviceOf(c.name) + "/" + c.name); got != c.scope {
				t.Fatalf("the proto says scope %q, the test %q", got, c.scope)
			}
			for _, tt := range []struct{ who, token, want string }{
				{"no token", "", "Unauthenticated TOKEN_MISSING"},
				{"unknown token", "guess", "Unauthenticated TOKEN_INVALID"},
				{"token without the scope", tokenFor(c.scope, false), "PermissionDenied SCOPE_MISSING"},
				{"token with the scope", tokenFor(c.scope, true), "OK"},
			} {
				e.token = tt.token
				err := c.grpc(e, t)
				got := "OK"
				if err != nil {
					got = statusOf(err)
				}
				if got != tt.want {
					t.Errorf("%s: got %s, want %s", tt.who, got, tt.want)
				}
			}
		})
	}

	t.Run("health and reflection need no token", func(t *testing.T) {
		e.token = ""
		resp, err := healthpb.NewHealthClient(e.conn).Check(e.ctx(t), &healthpb.HealthCheckRequest{Service: "shrike.v1.RulesetService"})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health: %v, %v", resp, err)
		}
		stream, err := reflectionpb.NewServerReflectionClient(e.conn).ServerReflectionInfo(e.ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		r, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range r.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		joined := strings.Join(names, " ")
		for _, want := range []string{"shrike.v1.RulesetService", "shrike.v1.AlertService", "shrike.v1.EventService", "grpc.health.v1.Health"} {
			if !strings.Contains(joined, want) {
				t.Errorf("reflection lists %v, not %s", names, want)
			}
		}
		_ = stream.CloseSend()
	})
}

func serviceOf(method string) string {
	switch method {
	case "SubscribeAlerts", "ListAlerts":
		return "AlertService"
	case "PublishEvents":
		return "EventService"
	}
	return "RulesetService"
}

func TestAuthREST(t *testing.T) {
	e := newEnv(t, envOptions{tokens: tokens})
	for _, c := range calls {
		if c.path == "" {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			for _, tt := range []struct {
				who, token string
				code       int
				reason     string
			}{
				{"no token", "", http.StatusUnauthorized, "TOKEN_MISSING"},
				{"unknown token", "guess", http.StatusUnauthorized, "TOKEN_INVALID"},
				{"token without the scope", tokenFor(c.scope, false), http.StatusForbidden, "SCOPE_MISSING"},
				{"token with the scope", tokenFor(c.scope, true), http.StatusOK, ""},
			} {
				e.token = tt.token
				code, body := e.rest(t, c.method, c.path, c.body)
				if got := restStatus(code, body); !strings.HasPrefix(got, restStatus(tt.code, map[string]any{})+tt.reason) {
					t.Errorf("%s: got %s, want %d %s", tt.who, got, tt.code, tt.reason)
				}
			}
		})
	}

	t.Run("401 names the scheme", func(t *testing.T) {
		e.token = ""
		req, err := http.NewRequest("GET", e.base+"/v1/rulesets", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close() // only the status mattered
		if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
			t.Errorf("WWW-Authenticate = %q", got)
		}
	})

	t.Run("subscribe", func(t *testing.T) {
		e.token = tokenFor("alerts:read", false)
		code, body := e.rest(t, "GET", "/v1/alerts:subscribe", nil)
		if got := restStatus(code, body); got != "403 SCOPE_MISSING" {
			t.Errorf("subscribe with the wrong scope: %s", got)
		}
		e.token = tokenFor("alerts:read", true)
		e.subscribeREST(t, "") // fails the test unless 200
	})
}

func TestNoTokensBeyondLoopback(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, tt := range []struct{ grpc, http string }{
		{"0.0.0.0:0", "127.0.0.1:0"},
		{"127.0.0.1:0", ":8080"},
		{"[::]:0", ""},
		{"10.0.0.1:0", ""},
	} {
		_, err := server.New(server.Options{
			GRPCListen: tt.grpc, HTTPListen: tt.http,
			Registry: e.registry, Feed: e.feed, Publisher: noPublisher{},
		})
		if !errors.Is(err, server.ErrTokensRequired) {
			t.Errorf("grpc %s, http %s without tokens: %v, want ErrTokensRequired", tt.grpc, tt.http, err)
		}
	}
	s, err := server.New(server.Options{
		GRPCListen: "0.0.0.0:0", Registry: e.registry, Feed: e.feed, Publisher: noPublisher{}, Tokens: tokens,
	})
	if err != nil {
		t.Fatalf("beyond loopback with tokens: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
}

type noPublisher struct{}

func (noPublisher) PublishBatch(context.Context, string, [][]byte, [][]byte) (int, error) {
	return 0, status.Error(codes.Unimplemented, "no")
}

// TestNewRefusesWeakTokens: a token an attacker could guess never
// reaches the listeners, whoever builds the server.
func TestNewRefusesWeakTokens(t *testing.T) {
	e := newEnv(t, envOptions{tokens: tokens})
	pub, err := feed.NewPublisher(context.Background(), feed.PublisherOptions{Brokers: e.brokers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	for _, secret := range []string{"read-secret", "changeme", strings.Repeat("x", 64)} {
		_, err := server.New(server.Options{
			GRPCListen: "127.0.0.1:0", Registry: e.registry, Feed: e.feed, Publisher: pub,
			Tokens: []server.Token{{Name: "weak", Secret: secret, Scopes: []shrikev1.Scope{"rules:read"}}},
		})
		if err == nil || !strings.Contains(err.Error(), `token "weak": too weak`) {
			t.Errorf("New with the token %q: %v, want it refused", secret, err)
		}
	}
}
