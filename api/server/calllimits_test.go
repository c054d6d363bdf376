package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shrike-cep/shrike/api/server"
	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/feed"
	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/rules"
)

// costlyFilter passes no alert and spends the whole cost limit on each:
// about 10 ms of CPU per alert at the default limit, so that a listing
// over 10,000 recent alerts costs 100 s.
const costlyFilter = `lists.range(2000).map(i, lists.range(2000).filter(j, j == i).size()).size() == 0`

// costlyFilterLimit is the filter cost limit of these tests: twenty times
// the default makes each evaluation cost about 0.2 s, so that a few
// hundred alerts make a listing of a minute and more.
const costlyFilterLimit = 20 * server.DefaultFilterCostLimit

// seededAlerts is how many alerts seedAlerts stores: the costly filter
// over all of them runs for far longer than any wait of these tests, so a
// call that does not stop with its context is caught.
const seededAlerts = 300

// seedAlerts puts n alerts on the alerts topic and waits until ListAlerts
// has them.
func seedAlerts(t *testing.T, e *env, n int) {
	t.Helper()
	pub, err := feed.NewPublisher(context.Background(), feed.PublisherOptions{Brokers: e.brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for i := range n {
		if err := pub.Publish(context.Background(), alertsTopic, []byte("acct-1"), alertJSON(t, fmt.Sprintf("a-%d", i), `{"amount":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, wait, "the seeded alerts", func() bool {
		resp, err := e.alerts().ListAlerts(e.ctx(t), &shrikev1.ListAlertsRequest{PageSize: int32(server.MaxPageSize)})
		return err == nil && len(resp.GetAlerts()) == n
	})
}

// listCostly starts a ListAlerts with costlyFilter; cancel is the client
// going away, errc has the call's end.
func (e *env) listCostly(t *testing.T) (cancel func(), errc <-chan error) {
	ctx, cancel := context.WithCancel(e.ctx(t))
	ch := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := e.alerts().ListAlerts(ctx, &shrikev1.ListAlertsRequest{Filter: costlyFilter})
		ch <- err
	}()
	t.Cleanup(func() { cancel(); <-done })
	return cancel, ch
}

// waitInFlight waits until n expensive calls run on the server.
func waitInFlight(t *testing.T, reg prometheus.Gatherer, n int) {
	t.Helper()
	m := fmt.Sprintf("shrike_api_expensive_calls_in_flight %d\n", n)
	testkit.WaitFor(t, wait, strings.TrimSpace(m), func() bool { return strings.Contains(testkit.MetricsText(t, reg), m) })
}

// TestListAlertsStopsWhenClientLeaves runs a costly filter over the recent
// alerts and leaves: the server stops evaluating it, rather than burn a
// CPU for every remaining alert after the client has gone.
func TestListAlertsStopsWhenClientLeaves(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, envOptions{api: func(o *server.Options) { o.Registerer = reg; o.FilterCostLimit = costlyFilterLimit }})
	seedAlerts(t, e, seededAlerts)

	t.Run("gRPC", func(t *testing.T) {
		cancel, errc := e.listCostly(t)
		waitInFlight(t, reg, 1)
		cancel()
		if err := <-errc; status.Code(err) != codes.Canceled {
			t.Errorf("ListAlerts: %v, want Canceled", err)
		}
		// The call leaves the server when its work stops.
		waitInFlight(t, reg, 0)
	})
	t.Run("REST", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "GET", e.base+"/v1/alerts?filter="+url.QueryEscape(costlyFilter), nil)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			if resp, err := e.client.Do(req); err == nil {
				_ = resp.Body.Close() // only the cancel matters
				t.Errorf("REST ListAlerts answered %s before it was cancelled", resp.Status)
			}
		}()
		waitInFlight(t, reg, 1)
		cancel()
		<-done
		waitInFlight(t, reg, 0)
	})
}

// TestListAlertsServerDeadline runs a costly filter with no deadline of
// the client's: the server ends it at api.request_timeout with
// DEADLINE_EXCEEDED, HTTP 504.
func TestListAlertsServerDeadline(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, envOptions{api: func(o *server.Options) {
		o.Registerer = reg
		o.RequestTimeout = time.Second
		o.FilterCostLimit = costlyFilterLimit
	}})
	seedAlerts(t, e, seededAlerts)

	_, err := e.alerts().ListAlerts(e.ctx(t), &shrikev1.ListAlertsRequest{Filter: costlyFilter})
	if got := statusOf(err); got != "DeadlineExceeded "+server.ReasonRequestTimeout {
		t.Errorf("gRPC: got %s, want DeadlineExceeded %s", got, server.ReasonRequestTimeout)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "limit of 1s (api.request_timeout)") {
		t.Errorf("gRPC message %q does not name the limit", msg)
	}
	code, body := e.rest(t, "GET", "/v1/alerts?filter="+url.QueryEscape(costlyFilter), nil)
	if got := restStatus(code, body); got != "504 "+server.ReasonRequestTimeout {
		t.Errorf("REST: got %s, want 504 %s", got, server.ReasonRequestTimeout)
	}
	if m := "shrike_api_calls_timed_out_total 2\n"; !strings.Contains(testkit.MetricsText(t, reg), m) {
		t.Errorf("metrics lack %s:\n%s", m, testkit.MetricsText(t, reg))
	}
	waitInFlight(t, reg, 0)
}

// bigRuleset is a source of n small rules, for n = 20,000 just under the
// 1 MiB source limit.
func bigRuleset(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("ruleset: big\nstream:\n  topic: payments\n  key: event.account_id\nrules:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - id: r%d\n    when: event.amount > %d.0\n", i, i)
	}
	if b.Len() >= 1<<20 {
		t.Fatalf("the ruleset is %d bytes, over the source limit", b.Len())
	}
	return b.String()
}

// TestRuleLimitRefusesHugeRulesets validates, tests and stores a ruleset of
// 20,000 rules within the source size limit: each is refused with the
// rule count and the limit, before any rule is compiled (compiling them
// took seconds and hundreds of MB per call).
func TestRuleLimitRefusesHugeRulesets(t *testing.T) {
	e := newEnv(t, envOptions{})
	src := bigRuleset(t, 20_000)
	msg := fmt.Sprintf("ruleset has 20000 rules, over the limit of %d", rules.DefaultMaxRules)
	wantInvalid := "InvalidArgument RULESET_INVALID [source: 6:3: " + msg + "]"

	resp, err := e.rulesets().ValidateRuleset(e.ctx(t), &shrikev1.ValidateRulesetRequest{Source: src})
	if err != nil {
		t.Fatalf("ValidateRuleset: %v", err)
	}
	if resp.GetValid() || len(resp.GetErrors()) != 1 || resp.GetErrors()[0].GetMessage() != msg || resp.GetName() != "big" {
		t.Errorf("ValidateRuleset: %v, want invalid with %q", resp, msg)
	}
	_, err = e.rulesets().TestRuleset(e.ctx(t), &shrikev1.TestRulesetRequest{
		Ruleset: &shrikev1.TestRulesetRequest_Source{Source: src},
		Input:   &shrikev1.TestRulesetRequest_Events{Events: `{"account_id":"a1","amount":1}` + "\n"},
	})
	if got := statusOf(err); got != wantInvalid {
		t.Errorf("TestRuleset: got %s, want %s", got, wantInvalid)
	}
	_, err = e.rulesets().PutRuleset(e.ctx(t), &shrikev1.PutRulesetRequest{Name: "big", Source: src})
	if got := statusOf(err); got != wantInvalid {
		t.Errorf("PutRuleset: got %s, want %s", got, wantInvalid)
	}

	code, body := e.rest(t, "POST", "/v1/rulesets:validate", map[string]any{"source": src})
	if errs, _ := body["errors"].([]any); code != http.StatusOK || fmt.Sprint(body["valid"]) != "false" || len(errs) != 1 || !strings.Contains(fmt.Sprint(errs[0]), msg) {
		t.Errorf("REST validate: %d %v", code, errs)
	}
	code, body = e.rest(t, "POST", "/v1/rulesets:test", map[string]any{"source": src, "events": `{"account_id":"a1","amount":1}` + "\n"})
	if got, want := restStatus(code, body), "400 RULESET_INVALID [source: 6:3: "+msg+"]"; got != want {
		t.Errorf("REST test: got %s, want %s", got, want)
	}
}

// TestExpensiveCallsLimit fills the slots for expensive calls with costly
// ListAlerts: one more expensive call, of any kind, is refused with
// RESOURCE_EXHAUSTED (HTTP 429) naming the limit, cheap calls still pass,
// and once the slots are free expensive calls pass again.
func TestExpensiveCallsLimit(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, envOptions{tokens: tokens, api: func(o *server.Options) {
		o.Registerer = reg
		o.MaxConcurrentExpensive = 2
		o.FilterCostLimit = costlyFilterLimit
	}})
	e.token = tokens[1].Secret
	e.put(t, "payments", paymentsSrc)
	// A read-only token is enough to fill the slots.
	e.token = tokens[2].Secret
	seedAlerts(t, e, seededAlerts)
	cancel1, errc1 := e.listCostly(t)
	cancel2, errc2 := e.listCostly(t)
	waitInFlight(t, reg, 2)

	want := "ResourceExhausted " + server.ReasonTooManyExpensiveCalls
	_, err := e.alerts().ListAlerts(e.ctx(t), &shrikev1.ListAlertsRequest{Filter: costlyFilter})
	if got := statusOf(err); got != want {
		t.Errorf("a third ListAlerts: got %s, want %s", got, want)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "2 already running, the limit (api.max_concurrent_expensive)") {
		t.Errorf("message %q does not name the limit", msg)
	}
	code, body := e.rest(t, "GET", "/v1/alerts?filter="+url.QueryEscape(costlyFilter), nil)
	if got := restStatus(code, body); got != "429 "+server.ReasonTooManyExpensiveCalls {
		t.Errorf("a third ListAlerts (REST): got %s, want 429 %s", got, server.ReasonTooManyExpensiveCalls)
	}
	e.token = tokens[0].Secret
	_, err = e.rulesets().ValidateRuleset(e.ctx(t), &shrikev1.ValidateRulesetRequest{Source: paymentsSrc})
	if got := statusOf(err); got != want {
		t.Errorf("ValidateRuleset: got %s, want %s", got, want)
	}
	// Cheap calls do not queue behind expensive ones.
	if _, err := e.rulesets().GetRuleset(e.ctx(t), &shrikev1.GetRulesetRequest{Name: "payments"}); err != nil {
		t.Errorf("GetRuleset: %v", err)
	}
	e.token = tokens[2].Secret
	if _, err := e.alerts().ListAlerts(e.ctx(t), &shrikev1.ListAlertsRequest{Rule: "big"}); err != nil {
		t.Errorf("ListAlerts without a CEL filter: %v", err)
	}
	if m := "shrike_api_expensive_calls_refused_total 3\n"; !strings.Contains(testkit.MetricsText(t, reg), m) {
		t.Errorf("metrics lack %s:\n%s", m, testkit.MetricsText(t, reg))
	}

	cancel1()
	cancel2()
	for _, errc := range []<-chan error{errc1, errc2} {
		if err := <-errc; status.Code(err) != codes.Canceled {
			t.Errorf("a costly ListAlerts: %v, want Canceled", err)
		}
	}
	waitInFlight(t, reg, 0)
	e.token = tokens[0].Secret
	if _, err := e.rulesets().ValidateRuleset(e.ctx(t), &shrikev1.ValidateRulesetRequest{Source: paymentsSrc}); err != nil {
		t.Errorf("ValidateRuleset with the slots free: %v", err)
	}
}
