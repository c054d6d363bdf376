package server

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/config"
)

// Defaults of Options.RequestTimeout and Options.MaxConcurrentExpensive.
const (
	DefaultRequestTimeout = config.DefaultAPIRequestTimeout
	// expensiveWait is how long an expensive call waits for a slot before
	// it is refused: long enough to absorb a burst of small validations,
	// short enough that a client refused learns it at once rather than
	// time out behind calls that may run for the whole request timeout.
	expensiveWait = time.Second
)

// The google.rpc.ErrorInfo reasons of the limits on unary calls.
const (
	// ReasonRequestTimeout: DEADLINE_EXCEEDED (HTTP 504), the call ran
	// past Options.RequestTimeout; metadata "timeout".
	ReasonRequestTimeout = "REQUEST_TIMEOUT"
	// ReasonTooManyExpensiveCalls: RESOURCE_EXHAUSTED (HTTP 429), every
	// slot for expensive calls stayed taken; metadata "limit". Retry later.
	ReasonTooManyExpensiveCalls = "TOO_MANY_EXPENSIVE_CALLS"
)

// errRequestTimeout is the cause of a call's context ended by the server's
// deadline, told apart from the client's own deadline.
var errRequestTimeout = errors.New("request timeout")

// expensiveMethods compile a ruleset or replay events, whatever their
// request; ListAlerts is expensive only with a CEL filter (expensive).
var expensiveMethods = map[string]bool{
	shrikev1.RulesetService_PutRuleset_FullMethodName:        true,
	shrikev1.RulesetService_ValidateRuleset_FullMethodName:   true,
	shrikev1.RulesetService_TestRuleset_FullMethodName:       true,
	shrikev1.AnalysisService_ExplainRuleset_FullMethodName:   true,
	shrikev1.AnalysisService_DiffRulesets_FullMethodName:     true,
	shrikev1.AnalysisService_GetRuleAutomaton_FullMethodName: true,
	shrikev1.ShadowService_PutShadow_FullMethodName:          true,
	shrikev1.ShadowService_PromoteShadow_FullMethodName:      true,
	// It reads the alerts topics since the shadow started.
	shrikev1.ShadowService_GetShadowDiff_FullMethodName: true,
}

// expensive reports whether a call costs CPU and memory in proportion to
// what its request holds (a ruleset's rules, a test's events, a filter run
// over every recent alert), so that few may run at once.
func expensive(method string, req any) bool {
	if expensiveMethods[method] {
		return true
	}
	if r, ok := req.(*shrikev1.ListAlertsRequest); ok {
		return strings.TrimSpace(r.GetFilter()) != ""
	}
	return false
}

// limits bound unary calls: each runs under a deadline, and expensive ones
// (expensive) take one of a fixed number of slots, so that a read-only
// token cannot fill the server's memory or CPUs with them. Streams are
// not bounded here: a subscription is meant to last.
type limits struct {
	timeout time.Duration
	slots   chan struct{}

	inFlight prometheus.Gauge
	refused  prometheus.Counter
	timedOut prometheus.Counter
}

func newLimits(timeout time.Duration, maxExpensive int) *limits {
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	if maxExpensive <= 0 {
		maxExpensive = runtime.GOMAXPROCS(0)
	}
	return &limits{
		timeout: timeout,
		slots:   make(chan struct{}, maxExpensive),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "shrike", Subsystem: "api", Name: "expensive_calls_in_flight",
			Help: "Expensive API calls running (ListAlerts with a filter, ValidateRuleset, TestRuleset, PutRuleset, ExplainRuleset, DiffRulesets, GetRuleAutomaton, PutShadow, PromoteShadow, GetShadowDiff); at most api.max_concurrent_expensive.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "shrike", Subsystem: "api", Name: "expensive_calls_refused_total",
			Help: "Expensive API calls refused with RESOURCE_EXHAUSTED because api.max_concurrent_expensive were running.",
		}),
		timedOut: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "shrike", Subsystem: "api", Name: "calls_timed_out_total",
			Help: "API calls ended by the server's deadline, api.request_timeout (DEADLINE_EXCEEDED).",
		}),
	}
}

func (l *limits) collectors() []prometheus.Collector {
	return []prometheus.Collector{l.inFlight, l.refused, l.timedOut}
}

// begin puts a call under the server's deadline (the client's, when
// shorter, stays in force) and, for an expensive call, takes a slot,
// waiting up to expensiveWait for one. The call must call end with its
// context and its error once it returns.
func (l *limits) begin(ctx context.Context, method string, req any) (context.Context, func(context.Context, error) error, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, l.timeout, errRequestTimeout)
	release := func() {}
	if expensive(method, req) {
		if err := l.acquire(ctx); err != nil {
			cancel()
			return nil, nil, err
		}
		l.inFlight.Inc()
		release = func() {
			l.inFlight.Dec()
			<-l.slots
		}
	}
	end := func(ctx context.Context, err error) error {
		release()
		cancel()
		// Once the server's deadline has passed, whatever the call failed
		// with follows from it.
		if err != nil && errors.Is(context.Cause(ctx), errRequestTimeout) {
			l.timedOut.Inc()
			return withDetails(codes.DeadlineExceeded,
				fmt.Sprintf("the call ran past the server's limit of %s (api.request_timeout); ask for less (a narrower filter, fewer rules or events)", l.timeout),
				ReasonRequestTimeout, map[string]string{"timeout": l.timeout.String()})
		}
		return err
	}
	return ctx, end, nil
}

func (l *limits) acquire(ctx context.Context) error {
	select {
	case l.slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(expensiveWait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	l.refused.Inc()
	n := cap(l.slots)
	return withDetails(codes.ResourceExhausted,
		fmt.Sprintf("too many expensive calls: %d already running, the limit (api.max_concurrent_expensive); ListAlerts with a filter, ValidateRuleset, TestRuleset, PutRuleset, ExplainRuleset, DiffRulesets, GetRuleAutomaton and the shadows' put, promote and diff share it; retry later", n),
		ReasonTooManyExpensiveCalls, map[string]string{"limit": fmt.Sprint(n)})
}
