package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/config"
	"github.com/shrike-cep/shrike/rules"
)

// ErrTokensRequired refuses a server that would listen beyond loopback
// without bearer tokens (api/README.md).
var ErrTokensRequired = errors.New("a listener beyond loopback requires bearer tokens (api.tokens)")

// Defaults of Options.
const (
	DefaultMaxRequestBytes = config.DefaultAPIMaxRequestBytes
	// DefaultShutdownTimeout bounds the wait for unary calls in flight
	// when the server stops; streams are ended at once.
	DefaultShutdownTimeout = 5 * time.Second
	// readyPoll is how often the health service rereads Options.Ready.
	readyPoll = 250 * time.Millisecond
)

// DefaultHandshakeTimeout bounds a gRPC connection's handshake when
// Options.HandshakeTimeout is not set (grpc-go's own default is 120 s).
const DefaultHandshakeTimeout = 5 * time.Second

// Options configure New. Zero values are the documented defaults.
type Options struct {
	// GRPCListen is the gRPC listener's host:port; port 0 picks a free
	// one. Required.
	GRPCListen string
	// HTTPListen is the address of the HTTP listener that Handler is
	// mounted on, checked like GRPCListen: beyond loopback, tokens are
	// required. Empty when REST is not served.
	HTTPListen string
	// Registry, Feed and Publisher are what the services serve.
	// Required.
	Registry  Registry
	Feed      AlertFeed
	Publisher Publisher
	// ShadowFeed is the shadow alerts topic's feed, for subscriptions that
	// ask for shadow versions' alerts; nil refuses them.
	ShadowFeed AlertFeed
	// ShadowAlerts compares the live and shadow alerts of a ruleset for
	// GetShadowDiff; nil answers it UNAVAILABLE.
	ShadowAlerts ShadowAlerts
	// Tokens are the accepted bearer tokens. None disables authentication,
	// which New allows only on loopback listeners.
	Tokens []Token
	// TLS, when set, serves gRPC over TLS with it (its NextProtos get
	// "h2"). The HTTP listener's TLS is its own server's.
	TLS *tls.Config
	// MaxRequestBytes bounds one request's size, on gRPC (a received
	// message) and REST (a body). Default DefaultMaxRequestBytes.
	MaxRequestBytes int
	// CompileOptions are the limits of ValidateRuleset and TestRuleset,
	// those the registry compiles under.
	CompileOptions rules.CompileOptions
	// RecordingsDir is the folder TestRuleset's recordings are read from;
	// empty disables recordings.
	RecordingsDir string
	// MaxRunsPerKey caps partial matches per rule and key in TestRuleset.
	// Default: the matcher's.
	MaxRunsPerKey int
	// MaxTestAlerts and MaxTestDeadLetters bound a TestRuleset response.
	// Defaults DefaultMaxTestAlerts and DefaultMaxTestDeadLetters.
	MaxTestAlerts, MaxTestDeadLetters int
	// MaxExplainEntries bounds the trace entries of an ExplainRuleset
	// response (the verdicts come on top). Default DefaultMaxExplainEntries.
	MaxExplainEntries int
	// FilterCostLimit bounds one evaluation of an alert filter. Default
	// DefaultFilterCostLimit.
	FilterCostLimit uint64
	// MaxStreams and MaxStreamsPerToken bound the alert subscriptions
	// open at once, in all and per token; beyond, RESOURCE_EXHAUSTED
	// (HTTP 429). Defaults DefaultMaxStreams, DefaultMaxStreamsPerToken.
	MaxStreams, MaxStreamsPerToken int
	// Ready reports whether the engine is ready; gRPC health says SERVING
	// from then on. Default: always.
	Ready func() bool
	// Clock stamps TestRuleset's alerts. Default time.Now.
	Clock func() time.Time
	// Logger receives the server's messages. Default: discard.
	Logger *slog.Logger
	// Registerer registers the server's metrics. Default: none.
	Registerer prometheus.Registerer
	// ShutdownTimeout: see DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// HandshakeTimeout bounds a new gRPC connection's TLS and HTTP/2
	// handshake, so that connections that never speak cannot pile up.
	// Default DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// RequestTimeout bounds every unary call (limits); a client's shorter
	// deadline stays in force. Default DefaultRequestTimeout.
	RequestTimeout time.Duration
	// MaxConcurrentExpensive bounds the expensive calls running at once
	// (limits). Default: GOMAXPROCS.
	MaxConcurrentExpensive int
}

// Server is the gRPC API (the services of package shrike.v1, health and
// reflection) and its REST gateway.
type Server struct {
	opts      Options
	log       *slog.Logger
	registry  Registry
	feed      AlertFeed
	publisher Publisher
	auth      *authenticator
	summaries *summaries
	limits    *limits
	calls     *callMetrics
	// skipped counts alerts the API could not convert for a client
	// (skipAlert).
	skipped prometheus.Counter

	ln      net.Listener      // the public gRPC listener
	inproc  *bufconn.Listener // the gateway's connection to the same server
	grpc    *grpc.Server
	health  *health.Server
	gateway *gateway

	// stopping is cancelled when Run begins to stop: subscriptions end
	// on it rather than hold the shutdown up.
	stopping context.Context
	stop     context.CancelFunc
}

// New checks the options, listens on GRPCListen and builds the services
// and the REST gateway; Run serves them.
func New(opts Options) (*Server, error) {
	if opts.GRPCListen == "" {
		return nil, errors.New("api server: no gRPC listen address")
	}
	if opts.Registry == nil || opts.Feed == nil || opts.Publisher == nil {
		return nil, errors.New("api server: registry, feed and publisher are required")
	}
	auth, err := newAuthenticator(opts.Tokens)
	if err != nil {
		return nil, fmt.Errorf("api server: %w", err)
	}
	if !auth.enabled() {
		for _, addr := range []string{opts.GRPCListen, opts.HTTPListen} {
			if addr != "" && !config.IsLoopback(addr) {
				return nil, fmt.Errorf("api server: %s: %w", addr, ErrTokensRequired)
			}
		}
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if opts.MaxTestAlerts <= 0 {
		opts.MaxTestAlerts = DefaultMaxTestAlerts
	}
	if opts.MaxExplainEntries <= 0 {
		opts.MaxExplainEntries = DefaultMaxExplainEntries
	}
	if opts.MaxTestDeadLetters <= 0 {
		opts.MaxTestDeadLetters = DefaultMaxTestDeadLetters
	}
	if opts.Ready == nil {
		opts.Ready = func() bool { return true }
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	s := &Server{
		opts:      opts,
		log:       opts.Logger,
		registry:  opts.Registry,
		feed:      opts.Feed,
		publisher: opts.Publisher,
		auth:      auth,
		summaries: &summaries{opts: opts.CompileOptions},
		limits:    newLimits(opts.RequestTimeout, opts.MaxConcurrentExpensive),
		calls:     newCallMetrics(),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "shrike", Subsystem: "api", Name: "alerts_skipped_total",
			Help: "Alerts of the alerts topic the API could not convert for a client and left out of subscriptions and listings.",
		}),
	}
	if opts.Registerer != nil {
		for _, c := range append(append(s.limits.collectors(), s.calls.collectors()...), s.skipped) {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("api server: register metrics: %w", err)
			}
		}
	}
	s.stopping, s.stop = context.WithCancel(context.Background())

	ln, err := net.Listen("tcp", opts.GRPCListen)
	if err != nil {
		return nil, fmt.Errorf("api server: %w", err)
	}
	if opts.TLS != nil {
		// TLS on the listener rather than as gRPC credentials, so that the
		// gateway's in-process connection to the same server stays plain.
		cfg := opts.TLS.Clone()
		if !slices.Contains(cfg.NextProtos, "h2") {
			cfg.NextProtos = append(cfg.NextProtos, "h2")
		}
		ln = tls.NewListener(ln, cfg)
	}
	s.ln = ln
	handshake := opts.HandshakeTimeout
	if handshake <= 0 {
		handshake = DefaultHandshakeTimeout
	}
	s.grpc = grpc.NewServer(
		grpc.MaxRecvMsgSize(opts.MaxRequestBytes),
		grpc.ConnectionTimeout(handshake),
		grpc.UnaryInterceptor(s.unary),
		grpc.StreamInterceptor(s.stream),
		// Subscribers idle for long: pings find the dead ones.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	shrikev1.RegisterRulesetServiceServer(s.grpc, &rulesetService{s: s})
	shrikev1.RegisterAlertServiceServer(s.grpc, &alertService{s: s})
	shrikev1.RegisterEventServiceServer(s.grpc, &eventService{s: s})
	shrikev1.RegisterAnalysisServiceServer(s.grpc, &analysisService{s: s})
	shrikev1.RegisterShadowServiceServer(s.grpc, &shadowService{s: s})
	shrikev1.RegisterListServiceServer(s.grpc, &listService{s: s})
	shrikev1.RegisterRecordingServiceServer(s.grpc, &recordingService{s: s})
	shrikev1.RegisterAuthServiceServer(s.grpc, &authService{s: s})
	s.health = health.NewServer()
	s.setHealth(healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)

	s.inproc = bufconn.Listen(1 << 20)
	if s.gateway, err = newGateway(s); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("api server: %w", err)
	}
	return s, nil
}

// Addr is the gRPC listener's address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Handler serves REST (the paths of api/README.md under /v1/) and the
// OpenAPI document at /v1/openapi.json, by calling the gRPC server, so
// that REST calls pass the same auth and error mapping.
func (s *Server) Handler() http.Handler { return s.gateway }

// services are the names the health service reports on, besides "" (the
// whole server).
var services = []string{
	shrikev1.RulesetService_ServiceDesc.ServiceName,
	shrikev1.AlertService_ServiceDesc.ServiceName,
	shrikev1.EventService_ServiceDesc.ServiceName,
	shrikev1.AnalysisService_ServiceDesc.ServiceName,
	shrikev1.ShadowService_ServiceDesc.ServiceName,
	shrikev1.ListService_ServiceDesc.ServiceName,
	shrikev1.RecordingService_ServiceDesc.ServiceName,
	shrikev1.AuthService_ServiceDesc.ServiceName,
}

func (s *Server) setHealth(st healthpb.HealthCheckResponse_ServingStatus) {
	s.health.SetServingStatus("", st)
	for _, name := range services {
		s.health.SetServingStatus(name, st)
	}
}

// Run serves until ctx ends. Then it stops in order: health says
// NOT_SERVING, subscription streams end (UNAVAILABLE: clients reconnect
// elsewhere with their last position), unary calls in flight get up to
// the shutdown timeout, and the gateway's connection closes.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- s.grpc.Serve(s.ln) }()
	go func() { errc <- s.grpc.Serve(s.inproc) }()

	ready := false
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	var err error
	running := 2
loop:
	for {
		// Health follows the engine both ways: a Store outage makes the
		// service NOT_SERVING until it recovers, as /readyz does.
		if now := s.opts.Ready(); now != ready {
			ready = now
			st := healthpb.HealthCheckResponse_NOT_SERVING
			if ready {
				st = healthpb.HealthCheckResponse_SERVING
			}
			s.setHealth(st)
		}
		select {
		case <-ctx.Done():
			break loop
		case err = <-errc:
			running--
			err = fmt.Errorf("api server: %w", err)
			break loop
		case <-tick.C:
		}
	}
	s.health.Shutdown()
	s.stop()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(s.opts.ShutdownTimeout):
		s.log.Warn("api server: calls cut short at shutdown")
		s.grpc.Stop()
		<-done
	}
	// The servers still running end with an error of their own stop
	// (http.ErrServerClosed, grpc.ErrServerStopped): waiting for them is the
	// point, their errors say nothing new.
	for ; running > 0; running-- {
		<-errc //nolint:errcheck // see above: only the wait matters
	}
	s.gateway.close()
	return err
}

// Close releases a server that was never Run.
func (s *Server) Close() error {
	s.stop()
	s.grpc.Stop()
	s.gateway.close()
	_ = s.inproc.Close()
	if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("api server: %w", err)
	}
	return nil
}

// tokenKey carries the authenticated Token in a call's context.
type tokenKey struct{}

// tokenName names the token a call authenticated with, for logs.
func tokenName(ctx context.Context) string {
	if t, ok := ctx.Value(tokenKey{}).(*Token); ok && t != nil {
		return t.Name
	}
	return ""
}

// unary is the one unary interceptor: the call's metrics around
// authentication and scope, then the limits (a deadline, a slot for an
// expensive call), then the call, whose error is mapped to a status
// (toStatus), with a panic turned into INTERNAL rather than a crashed
// engine.
func (s *Server) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	call := s.startCall(ctx, info.FullMethod)
	// Deferred first, so that it runs last and counts the status the
	// client gets.
	defer func() { call.done(err) }()
	tok, err := s.auth.authorize(ctx, info.FullMethod)
	if err != nil {
		s.log.Info("api: call refused", "method", info.FullMethod, "err", err)
		return nil, err
	}
	if tok != nil {
		ctx = context.WithValue(ctx, tokenKey{}, tok)
	}
	callCtx, end, err := s.limits.begin(ctx, info.FullMethod, req)
	if err != nil {
		s.log.Info("api: call refused", "method", info.FullMethod, "token", tokenName(ctx), "err", err)
		return nil, toStatus(s.log, info.FullMethod, err)
	}
	defer s.recover(info.FullMethod, &err)
	// Deferred so that a panic, too, gives the slot back.
	defer func() { err = toStatus(s.log, info.FullMethod, end(callCtx, err)) }()
	return handler(callCtx, req)
}

// stream is the one stream interceptor, the unary one's twin.
func (s *Server) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	call := s.startCall(ss.Context(), info.FullMethod)
	defer func() { call.done(err) }()
	if call != nil {
		ss = &timedStream{ServerStream: ss, call: call}
	}
	tok, err := s.auth.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		s.log.Info("api: call refused", "method", info.FullMethod, "err", err)
		return err
	}
	if tok != nil {
		ss = &authedStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), tokenKey{}, tok)}
	}
	defer s.recover(info.FullMethod, &err)
	return toStatus(s.log, info.FullMethod, handler(srv, ss))
}

func (s *Server) recover(method string, err *error) {
	if p := recover(); p != nil {
		s.log.Error("api: panic", "method", method, "panic", p, "stack", string(debug.Stack()))
		*err = status.Error(codes.Internal, "internal error")
	}
}

// authedStream carries the authenticated token in its context.
type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (a *authedStream) Context() context.Context { return a.ctx }
