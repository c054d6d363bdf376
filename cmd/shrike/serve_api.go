package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	apiserver "github.com/shrike-cep/shrike/api/server"
	"github.com/shrike-cep/shrike/config"
	"github.com/shrike-cep/shrike/feed"
	"github.com/shrike-cep/shrike/internal/httpserver"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/ui"
)

// apiServer is serve's API (api/README.md): the gRPC server on
// grpc.listen, its REST gateway on the HTTP server, the feed of the alerts
// topic it streams from, and the producer of PublishEvents.
type apiServer struct {
	feed *feed.AlertFeed
	// shadowFeed follows the shadow alerts topic for the subscriptions
	// that ask for shadow versions' alerts.
	shadowFeed *feed.AlertFeed
	pub        *feed.Publisher
	srv        *apiserver.Server
	log        *slog.Logger
}

// apiDeps are what the API serves, made by the rest of serve.
type apiDeps struct {
	log     *slog.Logger
	brokers []string
	// kafka are the Kafka clients' security options (TLS, SASL).
	kafka    []kgo.Opt
	registry apiserver.Registry
	// compile are the limits the registry compiles under, so that
	// ValidateRuleset and TestRuleset judge a source as PutRuleset does.
	compile rules.CompileOptions
	http    *httpserver.Server
	// reg registers the API's metrics.
	reg prometheus.Registerer
	// tls is the HTTP server's too (apiTLS), nil without TLS.
	tls   *tls.Config
	ready func() bool
	clock func() time.Time
}

// startAPI builds the API and mounts REST under /v1/ on the HTTP server;
// run serves it. Tokens and TLS files are read here, so that a missing
// file stops serve at start.
func startAPI(ctx context.Context, cfg config.Config, d apiDeps) (_ *apiServer, err error) {
	a := &apiServer{log: d.log}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	tokens, err := apiTokens(cfg.API)
	if err != nil {
		return nil, usageError{err} // a configuration that cannot run: status 2
	}
	tlsCfg := d.tls
	a.feed, err = feed.NewAlertFeed(feed.AlertFeedOptions{
		Brokers: d.brokers,
		Topic:   cfg.Kafka.Topics.Alerts,
		Recent:  cfg.API.RecentAlerts,
		// In exactly-once mode the engine writes its alerts in
		// transactions: subscribers and listings show the committed
		// ones only.
		ReadCommitted: cfg.Kafka.ExactlyOnce,
		Logger:        d.log,
		ExtraKafka:    d.kafka,
	})
	if err != nil {
		return nil, err
	}
	a.shadowFeed, err = feed.NewAlertFeed(feed.AlertFeedOptions{
		Brokers:       d.brokers,
		Topic:         cfg.Kafka.Topics.ShadowAlerts,
		Recent:        cfg.API.RecentAlerts,
		ReadCommitted: cfg.Kafka.ExactlyOnce,
		Logger:        d.log,
		ExtraKafka:    d.kafka,
	})
	if err != nil {
		return nil, err
	}
	shadowAlerts, err := feed.NewShadowDiffer(feed.ShadowDiffOptions{
		Brokers:           d.brokers,
		AlertsTopic:       cfg.Kafka.Topics.Alerts,
		ShadowAlertsTopic: cfg.Kafka.Topics.ShadowAlerts,
		ReadCommitted:     cfg.Kafka.ExactlyOnce,
		Logger:            d.log,
		ExtraKafka:        d.kafka,
	})
	if err != nil {
		return nil, err
	}
	a.pub, err = feed.NewPublisher(ctx, feed.PublisherOptions{Brokers: d.brokers, ClientID: "shrike-api", Extra: d.kafka})
	if err != nil {
		return nil, err
	}
	a.srv, err = apiserver.New(apiserver.Options{
		GRPCListen:      cfg.GRPC.Listen,
		HTTPListen:      cfg.HTTP.Listen,
		Registry:        d.registry,
		Feed:            a.feed,
		ShadowFeed:      a.shadowFeed,
		ShadowAlerts:    shadowAlerts,
		Publisher:       a.pub,
		Tokens:          tokens,
		TLS:             tlsCfg,
		MaxRequestBytes: cfg.API.MaxRequestBytes,
		CompileOptions:  d.compile,
		RecordingsDir:   cfg.API.RecordingsDir,
		MaxRunsPerKey:   cfg.Limits.MaxRunsPerKey,
		Ready:           d.ready,
		Clock:           d.clock,
		Logger:          d.log,
		Registerer:      d.reg,
		// The limits on calls (api.request_timeout, api.max_concurrent_expensive).
		RequestTimeout:         cfg.API.RequestTimeout,
		MaxConcurrentExpensive: cfg.API.MaxConcurrentExpensive,
		// A gRPC connection's handshake is bounded like an HTTP request's headers.
		HandshakeTimeout: cfg.HTTP.ReadHeaderTimeout,
		// The limits on alert subscriptions (api.max_streams, api.max_streams_per_token).
		MaxStreams:         cfg.API.MaxStreams,
		MaxStreamsPerToken: cfg.API.MaxStreamsPerToken,
	})
	if err != nil {
		if errors.Is(err, apiserver.ErrTokensRequired) {
			return nil, usageError{fmt.Errorf("%w: add api.tokens to the --config file, or listen on 127.0.0.1", err)}
		}
		return nil, err
	}
	d.http.Handle("/v1/", a.srv.Handler())
	// The console calls the API above from the same origin, with the
	// caller's own token: it adds no access of its own.
	d.http.Handle(ui.Prefix, ui.Handler())
	d.http.Handle(strings.TrimSuffix(ui.Prefix, "/"), ui.Handler())
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	d.log.Info("api listening", "grpc", a.srv.Addr(), "rest", scheme+"://"+d.http.Addr()+"/v1/",
		"console", scheme+"://"+d.http.Addr()+ui.Prefix,
		"tokens", len(tokens), "tls", tlsCfg != nil)
	return a, nil
}

// run serves the API until ctx ends: the gRPC server (streams end first,
// then calls in flight get the shutdown timeout), then the feed.
func (a *apiServer) run(ctx context.Context) error {
	feedCtx, stopFeed := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFeed()
	var g errgroup.Group
	g.Go(func() error { return a.feed.Run(feedCtx) })
	g.Go(func() error { return a.shadowFeed.Run(feedCtx) })
	err := a.srv.Run(ctx)
	// The feed outlives the server's streams, which read it.
	stopFeed()
	return errors.Join(err, g.Wait())
}

// close releases the listener and the Kafka producer, after run or
// instead of it.
func (a *apiServer) close() {
	if a.srv != nil {
		_ = a.srv.Close()
	}
	if a.pub != nil {
		a.pub.Close()
	}
}

// apiTokens reads the configured tokens, their secrets from token_file
// where given, refusing weak ones (config.TokenConfig.Secret).
func apiTokens(c config.APIConfig) ([]apiserver.Token, error) {
	out := make([]apiserver.Token, 0, len(c.Tokens))
	for _, t := range c.Tokens {
		secret, err := t.Secret()
		if err != nil {
			return nil, fmt.Errorf("api.tokens: %w", err)
		}
		out = append(out, apiserver.Token{Name: t.Name, Secret: secret, Scopes: t.Scopes})
	}
	return out, nil
}

// apiTLS loads the certificate every listener serves (HTTP, gRPC, admin),
// if configured.
func apiTLS(c config.TLSConfig) (*tls.Config, error) {
	if !c.Enabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("api tls: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// withHTTPLimits sets the limits every HTTP server of serve shares (the
// http section): header, request and idle timeouts, header size.
func withHTTPLimits(o httpserver.Options, c config.HTTPConfig) httpserver.Options {
	o.ReadHeaderTimeout = c.ReadHeaderTimeout
	o.ReadTimeout = c.ReadTimeout
	o.IdleTimeout = c.IdleTimeout
	o.MaxHeaderBytes = c.MaxHeaderBytes
	return o
}

// startAdmin binds the admin listener (admin.listen): /metrics,
// /debug/pprof/, /healthz and /readyz, without authentication, over TLS
// when api.tls is set, as every listener of serve. Nil when it is off.
func startAdmin(cfg config.Config, log *slog.Logger, metrics prometheus.Gatherer, ready func() error, tlsCfg *tls.Config) (*httpserver.Server, error) {
	if !cfg.Admin.Enabled() {
		log.Info("admin listener off (admin.listen): no /metrics, no /debug/pprof/")
		return nil, nil
	}
	s, err := httpserver.New(withHTTPLimits(httpserver.Options{
		Name:     "admin server",
		Addr:     cfg.Admin.Listen,
		Admin:    true,
		Gatherer: metrics,
		Ready:    ready,
		Logger:   log,
		TLS:      tlsCfg,
	}, cfg.HTTP))
	if err != nil {
		return nil, fmt.Errorf("%w (admin.listen, --admin-listen: another port, or %q for none)", err, config.AdminOff)
	}
	if !config.IsLoopback(cfg.Admin.Listen) {
		log.Warn("the admin listener is reachable beyond this host: whoever reaches it reads /metrics and /debug/pprof/ without a token; keep it on a network only operators and Prometheus reach",
			"addr", s.Addr())
	}
	log.Info("admin listening", "addr", s.Addr(), "paths", "/metrics /healthz /readyz /debug/pprof/", "tls", tlsCfg != nil)
	return s, nil
}
