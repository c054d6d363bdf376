package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shrike-cep/shrike/api/server"
	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/feed"
	"github.com/shrike-cep/shrike/internal/embedded"
	"github.com/shrike-cep/shrike/internal/httpserver"
	"github.com/shrike-cep/shrike/registry"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// The tests run the API as `shrike serve` does, on loopback ports: the
// real registry on miniredis, the alert feed and the publisher on kfake,
// the gRPC server and its REST gateway on the API's HTTP server. Clients
// are real ones: a gRPC connection and plain net/http.

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	alertsTopic = "shrike-alerts"
	partitions  = 3
	// wait bounds every wait: a failure guard, not a timing assertion.
	wait = 20 * time.Second
)

// paymentsSrc is the ruleset most tests store. Its one rule alerts on a
// big amount; with no out-of-orderness an event is matched as soon as a
// later one of its partition arrives.
const paymentsSrc = `ruleset: payments
description: big payments
stream:
  topic: payments
  key: event.account_id
  time: event.ts
  max_out_of_orderness: 0s
rules:
  - id: big
    severity: high
    when: event.amount > 100.0
    alert:
      labels: {team: fraud}
  - id: off
    enabled: false
    when: "true"
`

// tokens grant one scope each, but writer, which also reads.
var tokens = []server.Token{
	{Name: "reader", Secret: "reader-2666b541a9ca9cfc00f5a5121c23732a", Scopes: []shrikev1.Scope{"rules:read"}},
	{Name: "writer", Secret: "writer-7507a84de02d4003977593f783f43ca6", Scopes: []shrikev1.Scope{"rules:read", "rules:write"}},
	{Name: "watcher", Secret: "watcher-d15effcb07db80c20f9f3aaa07df3aec", Scopes: []shrikev1.Scope{"alerts:read"}},
	{Name: "producer", Secret: "producer-a3b2e981e03a5e96c3f98b3599f43419", Scopes: []shrikev1.Scope{"events:write"}},
}

// startEngine runs the engine with the ruleset src until the test ends,
// with state in memory: the producer of the alerts the API serves.
func startEngine(t *testing.T, brokers []string, src string) *cep.Engine {
	t.Helper()
	rs, err := rules.Load("payments.yaml", []byte(src), rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := cep.NewEngine(cep.EngineOptions{
		Brokers:     brokers,
		Rulesets:    []*rules.Compiled{rs},
		Store:       state.NewMemory(),
		AlertsTopic: alertsTopic,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine: %v", err)
		}
	})
	return eng
}

// env is one running API with its backends.
type env struct {
	brokers  []string
	registry *registry.Registry
	feed     *feed.AlertFeed
	api      *server.Server
	http     *httpserver.Server
	conn     *grpc.ClientConn
	base     string // REST base URL
	client   *http.Client
	// token is sent by the clients, when set.
	token string
	// seconds is the event time of the last event published.
	seconds int
	// stop stops the servers (at the latest when the test ends).
	stop func()
}

type envOptions struct {
	tokens []server.Token
	api    func(*server.Options)
	tls    *tls.Config    // both listeners
	caPool *x509.CertPool // the clients trust, with tls
	feed   func(*feed.AlertFeedOptions)
	// compile are the limits of the registry and the server.
	compile rules.CompileOptions
	// publisher are further options of the publisher's Kafka client.
	publisher []kgo.Opt
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	kc, err := embedded.NewKafka(context.Background(), embedded.KafkaOptions{Partitions: partitions, Topics: []string{"payments", alertsTopic}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	e := &env{brokers: kc.Addrs()}

	mr := miniredis.RunT(t)
	rc := registry.NewClient(state.Options{Addrs: []string{mr.Addr()}})
	t.Cleanup(func() { _ = rc.Close() })
	e.registry, err = registry.New(registry.Options{Client: rc, CompileOptions: o.compile})
	if err != nil {
		t.Fatal(err)
	}

	fo := feed.AlertFeedOptions{Brokers: e.brokers, Topic: alertsTopic}
	if o.feed != nil {
		o.feed(&fo)
	}
	e.feed, err = feed.NewAlertFeed(fo)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := feed.NewPublisher(context.Background(), feed.PublisherOptions{Brokers: e.brokers, Extra: o.publisher})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)

	e.http, err = httpserver.New(httpserver.Options{Addr: "127.0.0.1:0", TLS: o.tls})
	if err != nil {
		t.Fatal(err)
	}
	opts := server.Options{
		GRPCListen:     "127.0.0.1:0",
		HTTPListen:     e.http.Addr(),
		Registry:       e.registry,
		Feed:           e.feed,
		Publisher:      pub,
		Tokens:         o.tokens,
		TLS:            o.tls,
		CompileOptions: o.compile,
	}
	if o.api != nil {
		o.api(&opts)
	}
	e.api, err = server.New(opts)
	if err != nil {
		_ = e.http.Close()
		t.Fatal(err)
	}
	e.http.Handle("/v1/", e.api.Handler())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 3)
	go func() { done <- e.feed.Run(ctx) }()
	go func() { done <- e.api.Run(ctx) }()
	go func() { done <- e.http.Run(ctx) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			for range 3 {
				if err := <-done; err != nil {
					t.Errorf("run: %v", err)
				}
			}
		})
	}
	t.Cleanup(e.stop)

	creds := insecure.NewCredentials()
	scheme := "http"
	e.client = &http.Client{}
	if o.tls != nil {
		pool := o.caPool
		creds = credentials.NewTLS(&tls.Config{RootCAs: pool})
		scheme = "https"
		e.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	}
	e.conn, err = grpc.NewClient(e.api.Addr(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.conn.Close(); e.client.CloseIdleConnections() })
	e.base = scheme + "://" + e.http.Addr()
	return e
}

// ctx is a call context carrying the env's token.
func (e *env) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	if e.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+e.token)
	}
	return ctx
}

func (e *env) rulesets() shrikev1.RulesetServiceClient {
	return shrikev1.NewRulesetServiceClient(e.conn)
}

func (e *env) alerts() shrikev1.AlertServiceClient { return shrikev1.NewAlertServiceClient(e.conn) }

func (e *env) events() shrikev1.EventServiceClient { return shrikev1.NewEventServiceClient(e.conn) }

// rest makes a REST call and returns the status code and the decoded JSON
// body.
func (e *env) rest(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	code, raw := e.restRaw(t, method, path, rd)
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: body %q: %v", method, path, raw, err)
		}
	}
	return code, out
}

func (e *env) restRaw(t *testing.T, method, path string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(e.ctx(t), method, e.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }() // read to the end: a Close error loses nothing
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, raw
}

// put stores a ruleset through gRPC.
func (e *env) put(t *testing.T, name, src string) *shrikev1.Ruleset {
	t.Helper()
	rs, err := e.rulesets().PutRuleset(e.ctx(t), &shrikev1.PutRulesetRequest{Name: name, Source: src})
	if err != nil {
		t.Fatalf("PutRuleset(%s): %v", name, err)
	}
	return rs
}

// statusOf describes a gRPC error as code, ErrorInfo reason and field
// violations.
func statusOf(err error) string {
	st := status.Convert(err)
	var reason string
	var fields []string
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			reason = d.GetReason()
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				fields = append(fields, v.GetField()+": "+v.GetDescription())
			}
		}
	}
	s := st.Code().String() + " " + reason
	if len(fields) > 0 {
		s += " [" + strings.Join(fields, "; ") + "]"
	}
	return s
}

// restStatus describes a REST error body the same way.
func restStatus(code int, body map[string]any) string {
	if inner, ok := body["error"].(map[string]any); ok {
		body = inner // a stream's error line
	}
	var reason string
	var fields []string
	details, _ := body["details"].([]any)
	for _, d := range details {
		d, _ := d.(map[string]any)
		switch d["@type"] {
		case "type.googleapis.com/google.rpc.ErrorInfo":
			reason, _ = d["reason"].(string)
		case "type.googleapis.com/google.rpc.BadRequest":
			vs, _ := d["field_violations"].([]any)
			for _, v := range vs {
				v, _ := v.(map[string]any)
				fields = append(fields, fmt.Sprint(v["field"])+": "+fmt.Sprint(v["description"]))
			}
		}
	}
	s := fmt.Sprintf("%d %s", code, reason)
	if len(fields) > 0 {
		s += " [" + strings.Join(fields, "; ") + "]"
	}
	return s
}

// publish sends events for key through REST, one second apart and after
// every earlier one, so that none is late.
func (e *env) publish(t *testing.T, key string, amounts ...float64) {
	t.Helper()
	var evs []any
	for _, amt := range amounts {
		e.seconds++
		evs = append(evs, map[string]any{"key": key, "value": map[string]any{
			"account_id": key, "amount": amt, "ts": time.Date(2026, 11, 20, 10, 0, e.seconds, 0, time.UTC).Format(time.RFC3339),
		}})
	}
	code, body := e.rest(t, "POST", "/v1/events:publish", map[string]any{"topic": "payments", "events": evs})
	if code != http.StatusOK || body["published_count"] != fmt.Sprint(len(amounts)) {
		t.Fatalf("publish: %d %v", code, body)
	}
}

// grpcSub is a gRPC subscription whose alerts arrive on a channel.
type grpcSub struct {
	ch chan *shrikev1.Alert
	// errc has the stream's end.
	errc chan error
}

func (e *env) subscribeGRPC(t *testing.T, req *shrikev1.SubscribeAlertsRequest) *grpcSub {
	t.Helper()
	ctx, cancel := context.WithCancel(e.ctx(t))
	stream, err := e.alerts().SubscribeAlerts(ctx, req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	// The headers say the subscription is live.
	if _, err := stream.Header(); err != nil {
		cancel()
		t.Fatalf("subscribe: %v", err)
	}
	s := &grpcSub{ch: make(chan *shrikev1.Alert, 100), errc: make(chan error, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			a, err := stream.Recv()
			if err != nil {
				s.errc <- err
				return
			}
			s.ch <- a
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func (s *grpcSub) next(t *testing.T) *shrikev1.Alert {
	t.Helper()
	select {
	case a := <-s.ch:
		return a
	case err := <-s.errc:
		t.Fatalf("subscription ended: %v", err)
	case <-time.After(wait):
		t.Fatal("no alert")
	}
	return nil
}

// restSub is a REST subscription read line by line.
type restSub struct {
	lines chan map[string]any
}

func (e *env) subscribeREST(t *testing.T, query string) *restSub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", e.base+"/v1/alerts:subscribe"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		cancel()
		t.Fatalf("subscribe: %s %v", resp.Status, resp.Header)
	}
	s := &restSub{lines: make(chan map[string]any, 100)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { _ = resp.Body.Close() }() // ends the stream; a Close error loses nothing
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var line map[string]any
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				line = map[string]any{"error": sc.Text()}
			}
			s.lines <- line
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// next returns the next alert, the "result" of the next line.
func (s *restSub) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case l := <-s.lines:
		r, ok := l["result"].(map[string]any)
		if !ok {
			t.Fatalf("stream line without result: %v", l)
		}
		return r
	case <-time.After(wait):
		t.Fatal("no alert on the REST stream")
	}
	return nil
}
