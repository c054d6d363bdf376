package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	apiserver "github.com/shrike-cep/shrike/api/server"
	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/config"
	"github.com/shrike-cep/shrike/internal/testkit"
)

func TestAPITokens(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.token", "  4f9c2a7e1b8d3f6a0c5e9b2d7a4f1c8e\n")
	weak := write("weak.token", "s3cret\n")
	empty := write("empty.token", "\n")
	tests := []struct {
		name    string
		tokens  []config.TokenConfig
		want    []apiserver.Token
		wantErr string
	}{
		{"inline and from a file, trimmed", []config.TokenConfig{
			{Name: "a", Token: "Zq3xW9kPb2Lm7RtY4vHc8NpQ", Scopes: []shrikev1.Scope{"rules:read"}},
			{Name: "b", TokenFile: good, Scopes: []shrikev1.Scope{"alerts:read"}},
		}, []apiserver.Token{
			{Name: "a", Secret: "Zq3xW9kPb2Lm7RtY4vHc8NpQ", Scopes: []shrikev1.Scope{"rules:read"}},
			{Name: "b", Secret: "4f9c2a7e1b8d3f6a0c5e9b2d7a4f1c8e", Scopes: []shrikev1.Scope{"alerts:read"}},
		}, ""},
		{"missing file", []config.TokenConfig{{Name: "c", TokenFile: filepath.Join(dir, "nope")}}, nil, `api.tokens: token "c": open `},
		{"empty file", []config.TokenConfig{{Name: "d", TokenFile: empty}}, nil, `api.tokens: token "d": ` + empty + " is empty"},
		{"weak file", []config.TokenConfig{{Name: "e", TokenFile: weak}}, nil, `api.tokens: token "e" in ` + weak + ": too weak: "},
		{"weak inline", []config.TokenConfig{{Name: "f", Token: "inline"}}, nil, `api.tokens: token "f": too weak: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := apiTokens(config.APIConfig{Tokens: tt.tokens})
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want %q…", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("tokens (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAPITLS(t *testing.T) {
	if c, err := apiTLS(config.TLSConfig{}); c != nil || err != nil {
		t.Errorf("no files: %v, %v; want no TLS", c, err)
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := os.WriteFile(cert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := apiTLS(config.TLSConfig{CertFile: cert, KeyFile: key}); err == nil || !strings.HasPrefix(err.Error(), "api tls: ") {
		t.Errorf("bad PEM: %v", err)
	}
}

// TestServeAPI runs serve in-process on embedded Kafka and Redis with no
// rulesets, and drives it through its API as a user would: a ruleset
// uploaded with REST reaches the engine, events published with REST are
// matched, and the alert arrives on a gRPC subscription and on the REST
// stream; serve then shuts down cleanly with the streams open.
func TestServeAPI(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var logs testkit.Buffer
	s, err := startServer(ctx, env{stderr: newOutput(&logs), clock: time.Now}, testServeConfig(""))
	if err != nil {
		t.Fatalf("start: %v\n%s", err, logs.String())
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- s.run(runCtx) }()

	base := "http://" + s.http.Addr()
	client := &http.Client{}
	defer client.CloseIdleConnections()
	rest := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }() // read to the end: nothing is lost
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	src := "ruleset: api\nstream: {topic: api-events, key: event.account, time: event.ts, max_out_of_orderness: 0s}\n" +
		"rules:\n  - id: big\n    severity: high\n    when: event.amount > 100.0\n"
	body, _ := json.Marshal(map[string]string{"source": src})
	if code, out := rest("PUT", "/v1/rulesets/api", string(body)); code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, out)
	}
	badBody, _ := json.Marshal(map[string]string{"source": strings.Replace(src, "100.0", "'x' +", 1)})
	if code, out := rest("PUT", "/v1/rulesets/api", string(badBody)); code != http.StatusBadRequest || !strings.Contains(out, `"6:31: rule \"big\": `) {
		t.Errorf("PUT of a broken ruleset: %d %s", code, out)
	}

	conn, err := grpc.NewClient(s.api.srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }() // the test is over: nothing waits on it
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	sub, err := shrikev1.NewAlertServiceClient(conn).SubscribeAlerts(sctx, &shrikev1.SubscribeAlertsRequest{Ruleset: "api"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Header(); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(sctx, "GET", base+"/v1/alerts:subscribe?ruleset=api", nil)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stream.Body.Close() }() // closing ends the subscription; its error says nothing

	// The engine reads the new topic within a second of the upload; until
	// it does, published events wait in Kafka. An event for a new account
	// every second, each followed by one that closes its watermark, until
	// an alert arrives.
	alerts := make(chan *shrikev1.Alert, 1)
	go func() {
		for {
			a, err := sub.Recv()
			if err != nil {
				close(alerts)
				return
			}
			alerts <- a
		}
	}()
	var got *shrikev1.Alert
	for i := 0; got == nil; i++ {
		ts := time.Date(2026, 11, 20, 10, 0, 2*i, 0, time.UTC)
		ev := func(amount float64, at time.Time) map[string]any {
			return map[string]any{"key": "k", "value": map[string]any{"account": "k", "amount": amount, "ts": at.Format(time.RFC3339)}}
		}
		pub, _ := json.Marshal(map[string]any{"topic": "api-events", "events": []any{ev(500, ts), ev(1, ts.Add(time.Second))}})
		if code, out := rest("POST", "/v1/events:publish", string(pub)); code != http.StatusOK {
			t.Fatalf("publish: %d %s", code, out)
		}
		select {
		case got = <-alerts:
			if got == nil {
				t.Fatal("gRPC subscription ended")
			}
		case <-time.After(time.Second):
		case <-ctx.Done():
			t.Fatal("no alert")
		}
	}
	if got.GetRuleset() != "api" || got.GetRule() != "big" || got.GetPosition() == "" {
		t.Errorf("gRPC alert = %v", got)
	}
	line, err := bufio.NewReader(stream.Body).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var restAlert struct {
		Result struct{ ID, Position string }
	}
	if err := json.Unmarshal([]byte(line), &restAlert); err != nil || restAlert.Result.ID != got.GetId() || restAlert.Result.Position != got.GetPosition() {
		t.Errorf("REST stream line %s (%v), want alert %s", line, err, got.GetId())
	}

	// The engine publishes its rule figures to the registry every few
	// seconds: the alert is counted in the ruleset's stats.
	for {
		code, out := rest("GET", "/v1/rulesets/api/stats", "")
		var stats struct {
			Instances int
			Rules     []struct {
				Rule           string
				AlertsLastHour string `json:"alerts_last_hour"`
			}
		}
		if err := json.Unmarshal([]byte(out), &stats); code != http.StatusOK || err != nil || len(stats.Rules) != 1 || stats.Rules[0].Rule != "big" {
			t.Fatalf("GET /v1/rulesets/api/stats: %d %s (%v)", code, out, err)
		}
		if stats.Instances == 1 && stats.Rules[0].AlertsLastHour != "0" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the alert was never counted in the stats: %s", out)
		case <-time.After(200 * time.Millisecond):
		}
	}

	// A backtest of inline events gives the ids `shrike run --source
	// events` gives on a file of the same events.
	events := `{"account":"a1","amount":150.0,"ts":"2026-11-20T10:00:01Z"}` + "\n" +
		`{"account":"a2","amount":250.0,"ts":"2026-11-20T10:00:02Z"}` + "\n"
	testBody, _ := json.Marshal(map[string]string{"source": src, "events": events})
	code, out := rest("POST", "/v1/rulesets:test", string(testBody))
	var backtest struct{ Alerts []struct{ ID string } }
	if err := json.Unmarshal([]byte(out), &backtest); code != http.StatusOK || err != nil || len(backtest.Alerts) != 2 {
		t.Fatalf("POST /v1/rulesets:test: %d %s (%v), want 2 alerts", code, out, err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "api.yaml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "recorded.jsonl"), []byte(events), 0o644); err != nil {
		t.Fatal(err)
	}
	// runReplay is `shrike run` without its collector tuning, whose
	// goroutine would outlive the test.
	var runOut, runErr bytes.Buffer
	runCmd := &cobra.Command{}
	runCmd.SetContext(ctx)
	if err := runReplay(runCmd, env{stdout: newOutput(&runOut), stderr: newOutput(&runErr), clock: time.Now},
		runFlags{rules: []string{filepath.Join(dir, "api.yaml")}, sources: []string{apiserver.InlineEventsSource}, maxLineBytes: cep.DefaultMaxLineBytes, quiet: true},
		[]string{filepath.Join(dir, "recorded.jsonl")}); err != nil {
		t.Fatalf("shrike run --source events: %v: %s", err, runErr.String())
	}
	var runIDs []string
	for line := range strings.Lines(runOut.String()) {
		var a struct{ ID string }
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatal(err)
		}
		runIDs = append(runIDs, a.ID)
	}
	if len(runIDs) != 2 || runIDs[0] != backtest.Alerts[0].ID || runIDs[1] != backtest.Alerts[1].ID {
		t.Errorf("shrike run --source events gave ids %v, the API's backtest %v", runIDs, backtest.Alerts)
	}

	stop()
	if err := <-done; err != nil {
		t.Errorf("run after cancel = %v, want nil", err)
	}
	if !strings.Contains(logs.String(), `msg="api listening"`) || !strings.Contains(logs.String(), `msg="shut down cleanly"`) {
		t.Errorf("log:\n%s", logs.String())
	}
}
