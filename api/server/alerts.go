package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/config"
	"github.com/shrike-cep/shrike/feed"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// AlertFeed is what the alert service needs of the alerts topic's feed
// (feed.AlertFeed).
type AlertFeed interface {
	Subscribe(ctx context.Context, from string) (<-chan feed.Alert, error)
	Recent(pageSize int, pageToken string, keep func(*matcher.Alert) bool) ([]feed.Alert, string, error)
}

// subscribedHeader is the header metadata by which SubscribeAlerts says
// that the subscription is live; the gateway then answers at once.
const subscribedHeader = "shrike-subscribed"

// alertService implements shrikev1.AlertServiceServer over the feed.
type alertService struct {
	shrikev1.UnimplementedAlertServiceServer
	s *Server

	limitsOnce sync.Once
	limits     *streamLimits
}

// Defaults of Options.MaxStreams and Options.MaxStreamsPerToken.
const (
	// DefaultMaxStreams bounds the alert subscriptions open at once on
	// one server. Each costs a goroutine, a channel and, while it is
	// behind the feed's ring, one Kafka read at a time (shared).
	DefaultMaxStreams = config.DefaultAPIMaxStreams
	// DefaultMaxStreamsPerToken bounds the subscriptions of one bearer
	// token, so that one client cannot take every stream.
	DefaultMaxStreamsPerToken = config.DefaultAPIMaxStreamsPerToken
)

// ReasonTooManyStreams is the ErrorInfo reason of a subscription refused
// by a stream limit: RESOURCE_EXHAUSTED (HTTP 429), with metadata "limit"
// naming the configuration field and "max" its value.
const ReasonTooManyStreams = "TOO_MANY_STREAMS"

func (a *alertService) streams() *streamLimits {
	a.limitsOnce.Do(func() {
		a.limits = newStreamLimits(a.s.opts.MaxStreams, a.s.opts.MaxStreamsPerToken)
	})
	return a.limits
}

// streamLimits counts the open subscriptions, in all and per token.
// Without tokens (authentication off) only the overall limit applies.
type streamLimits struct {
	max, perToken int

	mu      sync.Mutex
	open    int
	byToken map[string]int
}

func newStreamLimits(maxStreams, perToken int) *streamLimits {
	if maxStreams <= 0 {
		maxStreams = DefaultMaxStreams
	}
	if perToken <= 0 {
		perToken = DefaultMaxStreamsPerToken
	}
	return &streamLimits{max: maxStreams, perToken: perToken, byToken: make(map[string]int)}
}

// acquire takes a stream for token ("" without authentication), or says
// which limit refuses it; release gives it back.
func (l *streamLimits) acquire(token string) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.max {
		return nil, withDetails(codes.ResourceExhausted,
			fmt.Sprintf("too many alert subscriptions: the server has its limit of %d open (api.max_streams); retry later", l.max),
			ReasonTooManyStreams, map[string]string{"limit": "api.max_streams", "max": strconv.Itoa(l.max)})
	}
	if token != "" && l.byToken[token] >= l.perToken {
		return nil, withDetails(codes.ResourceExhausted,
			fmt.Sprintf("too many alert subscriptions for token %q: it has its limit of %d open (api.max_streams_per_token); close one first", token, l.perToken),
			ReasonTooManyStreams, map[string]string{"limit": "api.max_streams_per_token", "max": strconv.Itoa(l.perToken), "token": token})
	}
	l.open++
	if token != "" {
		l.byToken[token]++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.open--
			if token != "" {
				if l.byToken[token]--; l.byToken[token] <= 0 {
					delete(l.byToken, token)
				}
			}
		})
	}, nil
}

func (a *alertService) SubscribeAlerts(req *shrikev1.SubscribeAlertsRequest, stream shrikev1.AlertService_SubscribeAlertsServer) error {
	f, err := newFilter(req.GetRuleset(), req.GetRule(), req.GetMinSeverity(), req.GetKey(), req.GetFilter(), a.s.opts.FilterCostLimit)
	if err != nil {
		return err
	}
	release, err := a.streams().acquire(tokenName(stream.Context()))
	if err != nil {
		return err
	}
	defer release()
	// The subscription ends with the stream, or when the server stops.
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	stop := context.AfterFunc(a.s.stopping, cancel)
	defer stop()
	src := a.s.feed
	if req.GetShadow() {
		// Shadow versions' alerts come only to the subscriptions that ask
		// for them, from their own topic: never mixed with live alerts.
		if a.s.opts.ShadowFeed == nil {
			return withDetails(codes.FailedPrecondition, "shadow: this server does not stream shadow alerts (it has no shadow alerts topic)", ReasonInvalidRequest, map[string]string{"field": "shadow"})
		}
		src = a.s.opts.ShadowFeed
	}
	ch, err := src.Subscribe(ctx, req.GetAfter())
	if err != nil {
		return withMeta(err, "after", req.GetAfter())
	}
	// Headers go out now, so that a client (and the REST gateway, which
	// then answers with its status line) knows the subscription is live
	// before the first alert.
	if err := stream.SendHeader(metadata.Pairs(subscribedHeader, "1")); err != nil {
		return err
	}
	for fa := range ch {
		if fa.Err != nil {
			return fa.Err
		}
		if !f.keep(fa.Alert, fa.Raw) {
			continue
		}
		pa, err := feedAlertProto(fa)
		if err != nil {
			a.s.skipAlert(fa, err)
			continue
		}
		if err := stream.Send(pa); err != nil {
			return err
		}
	}
	if a.s.stopping.Err() != nil {
		return errShuttingDown
	}
	return ctx.Err()
}

func (a *alertService) ListAlerts(ctx context.Context, req *shrikev1.ListAlertsRequest) (*shrikev1.ListAlertsResponse, error) {
	n, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	f, err := newFilter(req.GetRuleset(), req.GetRule(), req.GetMinSeverity(), req.GetKey(), req.GetFilter(), a.s.opts.FilterCostLimit)
	if err != nil {
		return nil, err
	}
	var keep func(*matcher.Alert) bool
	if !f.empty() {
		// Recent takes no context: once the call's ends (the client left,
		// the server's deadline passed), no alert passes and the rest of
		// the scan costs a comparison per alert, not a CEL evaluation.
		keep = func(al *matcher.Alert) bool { return ctx.Err() == nil && f.keep(al, nil) }
	}
	fas, next, err := a.s.feed.Recent(n, req.GetPageToken(), keep)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := &shrikev1.ListAlertsResponse{NextPageToken: next}
	for _, fa := range fas {
		pa, err := feedAlertProto(fa)
		if err != nil {
			a.s.skipAlert(fa, err)
			continue
		}
		out.Alerts = append(out.Alerts, pa)
	}
	return out, nil
}

// skipAlert logs and counts an alert that cannot be converted for a client.
// It is left out rather than failing the call: an alert is shared by every
// subscriber and by every resume past it, so one that cannot be converted
// would otherwise end every subscription, again and again. Events are
// checked at decode (rules.ErrBadValue), so this is for what got past
// that: an alert written by another producer, or an older version.
func (s *Server) skipAlert(fa feed.Alert, err error) {
	s.skipped.Inc()
	s.log.Warn("api: alert skipped: cannot convert", "ruleset", fa.Alert.Ruleset, "rule", fa.Alert.Rule, "position", fa.Cursor, "err", err)
}

// severityRank orders severities; 0 is unknown.
func severityRank(s rules.Severity) int {
	switch s {
	case rules.SeverityInfo:
		return 1
	case rules.SeverityLow:
		return 2
	case rules.SeverityMedium:
		return 3
	case rules.SeverityHigh:
		return 4
	case rules.SeverityCritical:
		return 5
	}
	return 0
}

// filter is a request's alert filters, compiled once per request.
type filter struct {
	ruleset, rule, key string
	minSeverity        int
	prg                cel.Program
}

// DefaultFilterCostLimit bounds one evaluation of an alert filter when
// Options.FilterCostLimit is zero.
const DefaultFilterCostLimit = 100_000

func newFilter(ruleset, rule, minSeverity, key, expr string, costLimit uint64) (*filter, error) {
	f := &filter{ruleset: ruleset, rule: rule, key: key}
	if minSeverity != "" {
		if f.minSeverity = severityRank(rules.Severity(minSeverity)); f.minSeverity == 0 {
			return nil, badField("min_severity", "%q is not a severity (info, low, medium, high, critical)", minSeverity)
		}
	}
	if strings.TrimSpace(expr) != "" {
		prg, err := compileFilter(expr, costLimit)
		if err != nil {
			return nil, err
		}
		f.prg = prg
	}
	return f, nil
}

func (f *filter) empty() bool {
	return f.ruleset == "" && f.rule == "" && f.key == "" && f.minSeverity == 0 && f.prg == nil
}

// keep reports whether the alert passes. raw is its JSON when at hand;
// the CEL filter needs it as a map.
func (f *filter) keep(a *matcher.Alert, raw []byte) bool {
	if (f.ruleset != "" && a.Ruleset != f.ruleset) || (f.rule != "" && a.Rule != f.rule) ||
		(f.key != "" && a.Key != f.key) || severityRank(a.Severity) < f.minSeverity {
		return false
	}
	if f.prg == nil {
		return true
	}
	if raw == nil {
		raw = a.AppendJSON(nil)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return false
	}
	out, _, err := f.prg.Eval(map[string]any{"alert": m})
	// A filter that fails on an alert (a missing field, the cost limit)
	// does not pass it, as the proto says.
	return err == nil && out == types.True
}

// filterEnv is the CEL environment of alert filters: `alert` is the alert
// JSON as a map, with the standard library, strings and lists extensions,
// and numbers comparable across int and double (JSON numbers are doubles).
var filterEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("alert", cel.MapType(cel.StringType, cel.DynType)),
		ext.Strings(),
		ext.Lists(),
		cel.CrossTypeNumericComparisons(true),
	)
})

// compileFilter compiles a filter; its errors are INVALID_ARGUMENT with a
// field violation per CEL error, "line:col: message".
func compileFilter(expr string, costLimit uint64) (cel.Program, error) {
	env, err := filterEnv()
	if err != nil {
		return nil, fmt.Errorf("filter environment: %w", err)
	}
	ast, iss := env.Compile(expr)
	var violations []*errdetails.BadRequest_FieldViolation
	if iss.Err() != nil {
		for _, e := range iss.Errors() {
			line, col := 1, 1
			if loc := e.Location; loc != nil && loc.Line() > 0 {
				line, col = loc.Line(), loc.Column()+1
			}
			violations = append(violations, &errdetails.BadRequest_FieldViolation{
				Field: "filter", Description: fmt.Sprintf("%d:%d: %s", line, col, e.Message),
			})
		}
	} else if k := ast.OutputType().Kind(); k != types.BoolKind && k != types.DynKind {
		violations = append(violations, &errdetails.BadRequest_FieldViolation{
			Field: "filter", Description: fmt.Sprintf("1:1: the filter must be a bool expression, not %s", ast.OutputType()),
		})
	}
	if len(violations) > 0 {
		descs := make([]string, len(violations))
		for i, v := range violations {
			descs[i] = v.Description
		}
		return nil, withDetails(codes.InvalidArgument, "invalid filter:\n"+strings.Join(descs, "\n"), ReasonInvalidRequest, nil,
			&errdetails.BadRequest{FieldViolations: violations})
	}
	if costLimit == 0 {
		costLimit = DefaultFilterCostLimit
	}
	prg, err := env.Program(ast, cel.CostLimit(costLimit), cel.InterruptCheckFrequency(100))
	if err != nil {
		return nil, badField("filter", "%v", err)
	}
	return prg, nil
}
