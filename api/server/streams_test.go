package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shrike-cep/shrike/api/server"
	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/feed"
	"github.com/shrike-cep/shrike/internal/testkit"
)

// publishAlerts writes n alerts with ids prefix-0.. to the alerts topic,
// as the engine would, as fast as the producer batches them.
func publishAlerts(t *testing.T, e *env, prefix string, n int) {
	t.Helper()
	pub, err := feed.NewPublisher(context.Background(), feed.PublisherOptions{Brokers: e.brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for i := range n {
		a := alertJSON(t, fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf(`{"amount":%d}`, i))
		if err := pub.Publish(context.Background(), alertsTopic, fmt.Appendf(nil, "acct-%d", i%7), a); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// subscribeAs opens a gRPC subscription with token's secret; the error is
// the stream's first (headers or status).
func subscribeAs(t *testing.T, e *env, secret string) (cancel func(), err error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+secret)
	stream, err := e.alerts().SubscribeAlerts(ctx, &shrikev1.SubscribeAlertsRequest{})
	if err == nil {
		var md metadata.MD
		// A stream refused at once has no headers; its status is what
		// Recv returns.
		if md, err = stream.Header(); err == nil && len(md.Get("shrike-subscribed")) == 0 {
			_, err = stream.Recv()
		}
	}
	if err != nil {
		cancel()
		return func() {}, err
	}
	t.Cleanup(cancel)
	return cancel, nil
}

// TestSubscribeStreamLimits opens more subscriptions than the limits
// allow, per token and in all, over gRPC and REST: those beyond are
// refused with RESOURCE_EXHAUSTED (HTTP 429) naming the limit's field,
// and a slot freed by a closed subscription is taken again.
func TestSubscribeStreamLimits(t *testing.T) {
	second := server.Token{Name: "watcher-2", Secret: "watcher2-5c0e93d7a41b8f26e9d3c7a04b1f8e62", Scopes: []shrikev1.Scope{"alerts:read"}}
	e := newEnv(t, envOptions{
		tokens: append(append([]server.Token(nil), tokens...), second),
		api: func(o *server.Options) {
			o.MaxStreams = 3
			o.MaxStreamsPerToken = 2
		},
	})
	first, err := subscribeAs(t, e, tokens[2].Secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := subscribeAs(t, e, tokens[2].Secret); err != nil {
		t.Fatal(err)
	}
	_, err = subscribeAs(t, e, tokens[2].Secret)
	if got := statusOf(err); got != "ResourceExhausted TOO_MANY_STREAMS" {
		t.Errorf("third stream of a token: %s (%v), want ResourceExhausted TOO_MANY_STREAMS", got, err)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "api.max_streams_per_token") || !strings.Contains(msg, "watcher") {
		t.Errorf("per-token refusal %q names neither api.max_streams_per_token nor the token", msg)
	}
	// Over REST, the same with 429.
	e.token = tokens[2].Secret
	code, body := e.rest(t, "GET", "/v1/alerts:subscribe", nil)
	if got := restStatus(code, body); got != "429 TOO_MANY_STREAMS" {
		t.Errorf("REST stream beyond the token's limit: %s %v, want 429 TOO_MANY_STREAMS", got, body)
	}
	// The other token has its own share, up to the overall limit.
	if _, err := subscribeAs(t, e, second.Secret); err != nil {
		t.Fatal(err)
	}
	_, err = subscribeAs(t, e, second.Secret)
	if got := statusOf(err); got != "ResourceExhausted TOO_MANY_STREAMS" || !strings.Contains(status.Convert(err).Message(), "(api.max_streams)") {
		t.Errorf("stream beyond the overall limit: %s (%v), want ResourceExhausted TOO_MANY_STREAMS naming api.max_streams", got, err)
	}
	e.token = second.Secret
	code, body = e.rest(t, "GET", "/v1/alerts:subscribe", nil)
	if got := restStatus(code, body); got != "429 TOO_MANY_STREAMS" || !strings.Contains(fmt.Sprint(body), "(api.max_streams)") {
		t.Errorf("REST stream beyond the overall limit: %s %v, want 429 TOO_MANY_STREAMS naming api.max_streams", got, body)
	}
	// A closed subscription frees its slot.
	first()
	testkit.WaitFor(t, wait, "a freed stream slot", func() bool {
		_, err := subscribeAs(t, e, tokens[2].Secret)
		return err == nil
	})
}

// TestSubscribeSurvivesBurst: subscribers that read as fast as they can,
// over gRPC and REST, get every alert of a 5,000-alert burst and stay
// open.
func TestSubscribeSurvivesBurst(t *testing.T) {
	e := newEnv(t, envOptions{})
	grpcSub := e.subscribeGRPC(t, &shrikev1.SubscribeAlertsRequest{})
	restSub := e.subscribeREST(t, "")
	const burst = 5000
	publishAlerts(t, e, "burst", burst)
	seenG, seenR := map[string]bool{}, map[string]bool{}
	for range burst {
		seenG[grpcSub.next(t).GetId()] = true
		seenR[fmt.Sprint(restSub.next(t)["id"])] = true
	}
	if len(seenG) != burst || len(seenR) != burst {
		t.Errorf("distinct alerts received: gRPC %d, REST %d, want %d each", len(seenG), len(seenR), burst)
	}
}

// TestSubscribeConvertsOnce: an alert fanned out to many subscribers is
// converted for the API once, not once per subscriber.
func TestSubscribeConvertsOnce(t *testing.T) {
	e := newEnv(t, envOptions{})
	const subscribers, alerts = 12, 50
	subs := make([]*grpcSub, subscribers)
	for i := range subs {
		subs[i] = e.subscribeGRPC(t, &shrikev1.SubscribeAlertsRequest{})
	}
	before := server.AlertConversions()
	publishAlerts(t, e, "fan", alerts)
	for i, s := range subs {
		for range alerts {
			a := s.next(t)
			if a.GetPosition() == "" || len(a.GetEvents()["event"].GetValues()) != 1 {
				t.Fatalf("subscriber %d: alert %s without its position or event: %v", i, a.GetId(), a)
			}
		}
	}
	if got := server.AlertConversions() - before; got != alerts {
		t.Errorf("%d alerts to %d subscribers: %d conversions, want %d (once per alert)", alerts, subscribers, got, alerts)
	}
}

// TestSubscribeShadowWithoutShadowFeed: a server with no shadow alerts
// feed refuses a subscription to shadow alerts rather than stream live
// ones.
func TestSubscribeShadowWithoutShadowFeed(t *testing.T) {
	e := newEnv(t, envOptions{})
	stream, err := e.alerts().SubscribeAlerts(e.ctx(t), &shrikev1.SubscribeAlertsRequest{Shadow: true})
	if err == nil {
		_, err = stream.Recv()
	}
	if got := statusOf(err); got != "FailedPrecondition "+server.ReasonInvalidRequest {
		t.Errorf("shadow subscription without a shadow feed: %s (%v)", got, err)
	}
}
