package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shrike-cep/shrike/api/server"
	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/internal/testkit"
)

// TestCallMetrics: gRPC calls count by full method and status code, REST
// requests by HTTP method, path pattern (never the path) and status, a
// REST request once (not again as the gRPC call the gateway makes), and a
// stream is timed until it started.
func TestCallMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, envOptions{tokens: tokens, api: func(o *server.Options) { o.Registerer = reg }})
	e.token = tokens[0].Secret // rules:read

	if _, err := e.rulesets().ListRulesets(e.ctx(t), &shrikev1.ListRulesetsRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rulesets().GetRuleset(e.ctx(t), &shrikev1.GetRulesetRequest{Name: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetRuleset(nope) = %v, want NotFound", err)
	}
	for _, name := range []string{"a", "b", "c"} {
		if code, _ := e.restRaw(t, http.MethodGet, "/v1/rulesets/"+name, nil); code != http.StatusNotFound {
			t.Fatalf("GET /v1/rulesets/%s = %d, want 404", name, code)
		}
	}
	// A scope the token lacks: refused by the gRPC interceptor, after
	// routing.
	if code, _ := e.restRaw(t, http.MethodPut, "/v1/rulesets/a", strings.NewReader(`{"source":"x"}`)); code != http.StatusForbidden {
		t.Fatalf("PUT /v1/rulesets/a with a read-only token = %d, want 403", code)
	}
	if code, _ := e.restRaw(t, http.MethodGet, "/v1/openapi.json", nil); code != http.StatusOK {
		t.Fatalf("GET /v1/openapi.json = %d, want 200", code)
	}
	// Refused before routing, and a made-up method.
	e.token = ""
	if code, _ := e.restRaw(t, http.MethodGet, "/v1/rulesets/a", nil); code != http.StatusUnauthorized {
		t.Fatalf("GET /v1/rulesets/a without a token = %d, want 401", code)
	}
	e.token = tokens[0].Secret
	if code, _ := e.restRaw(t, "BREW", "/v1/rulesets/a", nil); code < 400 {
		t.Fatalf("BREW /v1/rulesets/a = %d, want an error", code)
	}

	// A gRPC stream is timed once it sent its headers, while it lasts.
	e.token = tokens[2].Secret // alerts:read
	ctx, cancel := context.WithCancel(e.ctx(t))
	sub, err := e.alerts().SubscribeAlerts(ctx, &shrikev1.SubscribeAlertsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Header(); err != nil {
		t.Fatal(err)
	}
	text := testkit.MetricsText(t, reg)
	const streamTimed = `shrike_api_request_duration_seconds{method="/shrike.v1.AlertService/SubscribeAlerts",protocol="grpc"}_count 1`
	if !strings.Contains(text, streamTimed+"\n") {
		t.Errorf("a started stream is not timed: no %s in\n%s", streamTimed, text)
	}
	if strings.Contains(text, `shrike_api_requests_total{code="OK",method="/shrike.v1.AlertService/SubscribeAlerts"`) {
		t.Errorf("a stream still open counts as ended:\n%s", text)
	}
	cancel()
	const streamEnded = `shrike_api_requests_total{code="Canceled",method="/shrike.v1.AlertService/SubscribeAlerts",protocol="grpc"} 1`
	testkit.WaitFor(t, wait, "the ended stream counted", func() bool {
		return strings.Contains(testkit.MetricsText(t, reg), streamEnded+"\n")
	})

	text = testkit.MetricsText(t, reg)
	for _, want := range []string{
		`shrike_api_requests_total{code="OK",method="/shrike.v1.RulesetService/ListRulesets",protocol="grpc"} 1`,
		`shrike_api_requests_total{code="NotFound",method="/shrike.v1.RulesetService/GetRuleset",protocol="grpc"} 1`,
		`shrike_api_requests_total{code="404",method="GET /v1/rulesets/{name}",protocol="rest"} 3`,
		`shrike_api_requests_total{code="403",method="PUT /v1/rulesets/{name}",protocol="rest"} 1`,
		`shrike_api_requests_total{code="200",method="GET /v1/openapi.json",protocol="rest"} 1`,
		`shrike_api_requests_total{code="401",method="GET unrouted",protocol="rest"} 1`,
		`shrike_api_request_duration_seconds{method="GET /v1/rulesets/{name}",protocol="rest"}_count 3`,
		`shrike_api_request_duration_seconds{method="/shrike.v1.RulesetService/GetRuleset",protocol="grpc"}_count 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, unwanted := range []string{`/v1/rulesets/a"`, `/v1/rulesets/b"`, `BREW`} {
		if strings.Contains(text, unwanted) {
			t.Errorf("metrics hold a client's %s, a series per value a client sends:\n%s", unwanted, text)
		}
	}
	if !strings.Contains(text, `method="OTHER `) {
		t.Errorf("the made-up method is not counted as OTHER:\n%s", text)
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}
}
