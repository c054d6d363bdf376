package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/config"
	"github.com/shrike-cep/shrike/delivery"
	"github.com/shrike-cep/shrike/internal/embedded"
	"github.com/shrike-cep/shrike/internal/gctune"
	"github.com/shrike-cep/shrike/internal/httpserver"
	"github.com/shrike-cep/shrike/state"
)

// serveFlags are the options of `shrike serve`; each but --config
// overrides one field of the configuration file.
type serveFlags struct {
	config      string
	printConfig bool
}

// serveFlagFields maps serve's flags to the configuration fields they
// override (config.Config.Set): flags win over the file.
var serveFlagFields = []struct {
	flag, field, usage string
}{
	{"rules", "rules.dir", "keep the rules registry in step with the ruleset files (*.yaml, not *_test.yaml) of `DIR`, at start and on every change"},
	{"kafka", "kafka.brokers", "Kafka seed `BROKERS` (host:port, comma-separated); none starts an embedded broker on 127.0.0.1:9092"},
	{"redis", "redis.addrs", "Redis `ADDRS` (host:port, comma-separated; several: a Redis Cluster); none starts an embedded Redis on 127.0.0.1:6379"},
	{"listen", "http.listen", "`HOST:PORT` of the REST API (/v1/), /healthz and /readyz (default 127.0.0.1:8080)"},
	{"grpc-listen", "grpc.listen", "`HOST:PORT` of the gRPC API (default 127.0.0.1:9090)"},
	{"admin-listen", "admin.listen", "`HOST:PORT` of the admin listener: /metrics, /debug/pprof/, /healthz and /readyz, without authentication; off for none (default 127.0.0.1:8079)"},
	{"embedded-kafka-port", "kafka.embedded.port", "`PORT` of the embedded broker on 127.0.0.1, when --kafka is not given; 0 picks a free one (default 9092)"},
	{"embedded-redis-port", "redis.embedded.port", "`PORT` of the embedded Redis on 127.0.0.1, when --redis is not given; 0 picks a free one (default 6379)"},
	{"group", "kafka.group", "Kafka consumer `GROUP`; instances of one group share the partitions (default shrike)"},
	{"log-level", "log.level", "`LEVEL` of the log on stderr: debug, info, warn, error (default info)"},
	{"log-format", "log.format", "`FORMAT` of the log on stderr: text or json (default text)"},
}

func newServeCmd(e env) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve [--config FILE] [--rules DIR] [--kafka BROKERS] [--redis ADDR[,ADDR…]] [flags]",
		Short: "Run the engine on Kafka, with partial matches kept in Redis",
		Long: `Serve runs the rules engine as a service: it reads the topics of
the rulesets of its registry from Kafka in a consumer group, matches each
partition on its own worker, keeps partial matches in Redis, and produces
alerts to the alerts topic (shrike-alerts), undecodable events to
shrike-deadletter and late ones to shrike-late. Webhooks (alerts.webhooks
in --config) get the alerts over HTTP, signed, at least once; those they
cannot take go to shrike-alerts-undelivered.

The rules registry lives in Redis, shared by every instance.
--rules DIR loads the folder's ruleset files into it at start and on every
change (a broken file at start stops serve; later, it keeps the running
version and is logged); rulesets also come through the API. Every instance
runs a change within a second, partial matches of a changed rule finishing
under their old version.

Without --kafka it starts an embedded Kafka-protocol broker on 127.0.0.1:9092
(--embedded-kafka-port), and without --redis an embedded Redis on
127.0.0.1:6379 (--embedded-redis-port), both in memory, so that one command
gives a working engine to feed with shrike gen --kafka or kcat. With --kafka and --redis it uses real ones; several Redis addresses are
a Redis Cluster. Instances started with the same --group share the partitions.

Settings come from defaults, then --config (YAML; every field and default is
in the README, "Running the engine"), then SHRIKE_* environment variables
(SHRIKE_KAFKA_BROKERS for kafka.brokers; docs/configuration.md lists them
all), then flags, which win. --print-config prints the result, secrets
redacted, and exits. Kafka over TLS and SASL (kafka.tls, kafka.sasl) and
Redis over TLS with an ACL user (redis.tls, redis.username,
redis.password_file) take their secrets from files only. The admin
listener, --admin-listen (loopback by default), serves /metrics
(Prometheus), /debug/pprof/, /healthz and /readyz (200 once its partitions
are assigned and restored and every partition of the group has an owner)
without authentication; the API's listeners never serve /metrics or
/debug/pprof/.

The API is gRPC on --grpc-listen and REST under /v1/ on
--listen (its OpenAPI document at /v1/openapi.json; /healthz and /readyz
there too): rulesets, their
versions and tests, the alert stream of every instance, and publishing
events. A listener beyond loopback requires bearer tokens (api.tokens in
--config); api.tls serves every listener over TLS.

On SIGINT or SIGTERM it ends the API's streams and stops taking requests,
stops fetching, lets every partition finish its batch, checkpoint and
commit, leaves the group, and exits 0.`,
		Example: `  shrike serve --rules rulesets
  shrike serve --rules rulesets --kafka k1:9092,k2:9092 --redis r1:6379,r2:6379,r3:6379
  shrike serve --config /etc/shrike/shrike.yaml --log-format json`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unexpected argument %q (serve takes flags only; rulesets go in --rules DIR)", args[0])}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			var environ []string
			if e.environ != nil {
				environ = e.environ()
			}
			cfg, err := serveConfig(f.config, environ, cmd)
			if err != nil {
				return err
			}
			if f.printConfig {
				out, err := cfg.PrintYAML()
				if err != nil {
					return err
				}
				_, _ = e.stdout.Write(out) // the output's sticky error is checked by run
				return nil
			}
			gctune.ForServe()
			return runServe(cmd.Context(), e, cfg)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.config, "config", "c", "", "read settings from the YAML `FILE`")
	fl.BoolVar(&f.printConfig, "print-config", false, "print the effective configuration (defaults, --config, SHRIKE_* variables, flags) as YAML, secrets redacted, and exit")
	for _, sf := range serveFlagFields {
		fl.String(sf.flag, "", sf.usage)
	}
	return cmd
}

// serveConfig builds the configuration: defaults, the file, the SHRIKE_*
// variables of environ, then the flags given on the command line.
func serveConfig(file string, environ []string, cmd *cobra.Command) (config.Config, error) {
	cfg := config.DefaultConfig()
	if file != "" {
		var err error
		if cfg, err = config.LoadConfigFile(file); err != nil {
			return cfg, configErr(err)
		}
	}
	if err := cfg.ApplyEnv(environ); err != nil {
		return cfg, configErr(err)
	}
	for _, sf := range serveFlagFields {
		if !cmd.Flags().Changed(sf.flag) {
			continue
		}
		v, _ := cmd.Flags().GetString(sf.flag)
		if err := cfg.Set(sf.field, v, "--"+sf.flag); err != nil {
			return cfg, usageError{err}
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, configErr(err)
	}
	return cfg, nil
}

// configErr marks a configuration that does not validate as a usage
// error; one that cannot be read stays an ordinary error.
func configErr(err error) error {
	if errors.Is(err, config.ErrInvalidConfig) {
		return usageError{fmt.Errorf("config:\n%w", err)}
	}
	return err
}

func newLogger(w io.Writer, c config.LogConfig) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.SlogLevel()}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func runServe(ctx context.Context, e env, cfg config.Config) error {
	s, err := startServer(ctx, e, cfg)
	if err != nil {
		return err
	}
	return s.run(ctx)
}

// server is a started `shrike serve`: every part is constructed and
// listening, none is running yet.
type server struct {
	cfg    config.Config
	log    *slog.Logger
	kafka  *embedded.Kafka // nil with real brokers
	redis  *embedded.Redis // nil with a real Redis
	store  *state.Redis
	engine *cep.Engine
	rules  *rulesServer
	http   *httpserver.Server
	admin  *httpserver.Server // nil when admin.listen is off
	api    *apiServer
	// webhooks delivers alerts to alerts.webhooks; nil without any.
	webhooks *delivery.Service
}

// startServer loads the rulesets, starts the embedded broker and Redis if
// the configuration names none, and builds the engine and the HTTP server.
// On error everything started is released.
func startServer(ctx context.Context, e env, cfg config.Config) (_ *server, err error) {
	// The log goes to the file under stderr, not through its sticky
	// error: a server that once failed to write a line (a full disk, since
	// freed) logs the next ones.
	s := &server{cfg: cfg, log: newLogger(e.stderr.w, cfg.Log)}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	// The folder is read first: a broken file stops serve before anything
	// starts, and the embedded broker creates its topics.
	local, err := loadRulesDir(cfg.Rules.Dir, e.stderr)
	if err != nil {
		return nil, err
	}
	topics := rulesetTopics(local)

	for _, w := range cfg.Warnings() {
		s.log.Warn("insecure configuration", "warning", w)
	}
	brokers := cfg.Kafka.Brokers
	var kafkaSecurity []kgo.Opt
	if !cfg.EmbeddedKafka() {
		if kafkaSecurity, err = checkKafka(ctx, s.log, cfg); err != nil {
			return nil, err
		}
	}
	if cfg.EmbeddedKafka() {
		k := cfg.Kafka
		s.kafka, err = embedded.NewKafka(ctx, embedded.KafkaOptions{
			Port:       k.Embedded.Port,
			Partitions: k.Embedded.Partitions,
			Topics: append(slices.Clone(topics), k.Topics.Alerts, k.Topics.ShadowAlerts, k.Topics.DeadLetter, k.Topics.Late,
				cfg.Alerts.UndeliveredTopic),
			Logger: s.log,
		})
		if err != nil {
			return nil, fmt.Errorf("%w (is a broker already running there? then pass --kafka 127.0.0.1:%d, or --embedded-kafka-port for another port)", err, k.Embedded.Port)
		}
		brokers = s.kafka.Addrs()
		s.log.Info("embedded kafka started", "addr", strings.Join(brokers, ","), "partitions", k.Embedded.Partitions,
			"topics", topics)
	}
	redisAddrs := cfg.Redis.Addrs
	if cfg.EmbeddedRedis() {
		s.redis, err = embedded.NewRedis(embedded.RedisOptions{Port: cfg.Redis.Embedded.Port})
		if err != nil {
			return nil, fmt.Errorf("%w (is a Redis already running there? then pass --redis 127.0.0.1:%d, or --embedded-redis-port for another port)", err, cfg.Redis.Embedded.Port)
		}
		redisAddrs = []string{s.redis.Addr()}
		s.log.Info("embedded redis started", "addr", s.redis.Addr())
	}
	if cfg.EmbeddedKafka() && !cfg.EmbeddedRedis() {
		s.log.Warn("the embedded broker starts empty, while Redis may hold checkpoints of an earlier broker's offsets; use a separate key_prefix, or a real Kafka (--kafka)")
	}
	redisOpts, err := cfg.Redis.StateOptions(redisAddrs)
	if err != nil {
		return nil, usageError{err}
	}
	s.store, err = state.New(redisOpts)
	if err != nil {
		return nil, err
	}
	// A Redis that does not answer yet is not fatal: the engine retries and
	// reports not ready until it does. Say so early, though. One that
	// answers but refuses the credentials or the TLS handshake would
	// refuse them for ever: that stops serve at once.
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if perr := s.store.Check(pctx); perr != nil {
		if !errors.Is(perr, state.ErrUnavailable) {
			cancel()
			return nil, perr
		}
		s.log.Warn("redis does not answer yet; the engine retries", "addr", strings.Join(redisAddrs, ","), "err", perr)
	}
	cancel()

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
		buildInfo(binaryIdentity()),
	)
	s.engine, err = cep.NewEngine(cep.EngineOptions{
		Brokers:               brokers,
		Group:                 cfg.Kafka.Group,
		Store:                 s.store,
		AlertsTopic:           cfg.Kafka.Topics.Alerts,
		ShadowAlertsTopic:     cfg.Kafka.Topics.ShadowAlerts,
		DeadLetterTopic:       cfg.Kafka.Topics.DeadLetter,
		LateTopic:             cfg.Kafka.Topics.Late,
		CheckpointInterval:    cfg.State.CheckpointInterval,
		MaxResidentKeys:       cfg.State.MaxResidentKeys,
		MaxRunsPerKey:         cfg.Limits.MaxRunsPerKey,
		DrainTimeout:          cfg.State.DrainTimeout,
		SessionTimeout:        cfg.Kafka.SessionTimeout,
		ExactlyOnce:           cfg.Kafka.ExactlyOnce,
		TransactionalID:       cfg.EngineTransactionalID(),
		TransactionTimeout:    cfg.Kafka.TransactionTimeout,
		MaxUncommittedRecords: cfg.Limits.MaxUncommittedRecords,
		IdleTimeout:           cfg.EngineIdleTimeout(),
		MaxClockSkew:          cfg.EngineMaxClockSkew(),
		Logger:                s.log,
		Registerer:            reg,
		Clock:                 e.clock,
		KafkaOptions:          append(slices.Clone(kafkaSecurity), cep.KafkaClientMetrics(reg)...),
	})
	if err != nil {
		return nil, err
	}
	if s.webhooks, err = startWebhooks(cfg, brokers, kafkaSecurity, s.log, reg); err != nil {
		return nil, err
	}
	// The rulesets come from the registry (the folder's among them).
	s.rules, err = startRules(ctx, cfg, rulesDeps{
		redis: redisOpts, engine: s.engine, local: local, log: s.log, reg: reg, clock: e.clock,
	})
	if err != nil {
		return nil, err
	}
	topics = s.engine.Topics()
	// The REST API is on the HTTP listener; it and the admin one share the
	// API's TLS.
	tlsCfg, err := apiTLS(cfg.API.TLS)
	if err != nil {
		return nil, err
	}
	s.http, err = httpserver.New(withHTTPLimits(httpserver.Options{
		Addr:   cfg.HTTP.Listen,
		Ready:  s.ready,
		Logger: s.log,
		TLS:    tlsCfg,
	}, cfg.HTTP))
	if err != nil {
		return nil, err
	}
	s.log.Info("http listening", "addr", s.http.Addr(), "paths", "/v1/ /healthz /readyz")
	if s.admin, err = startAdmin(cfg, s.log, cep.KafkaGaugesRenamed(reg), s.ready, tlsCfg); err != nil {
		return nil, err
	}
	s.api, err = startAPI(ctx, cfg, apiDeps{
		log: s.log, brokers: brokers, kafka: kafkaSecurity, registry: s.rules.registry, compile: s.rules.compile,
		http: s.http, tls: tlsCfg, ready: s.engine.Ready, clock: e.clock, reg: reg,
	})
	if err != nil {
		return nil, err
	}
	if s.kafka != nil && cfg.Log.Format == "text" {
		// For a person at a terminal; a JSON log stays machine-readable.
		printQuickStart(e.stderr, s, topics)
	}
	return s, nil
}

// checkKafka reads the Kafka clients' TLS files and SASL password, and
// connects once as they will: wrong credentials or a TLS handshake that
// fails stop serve at start, naming what failed; brokers that cannot be
// reached yet are only logged, as the clients retry. It returns the
// security options of every Kafka client.
func checkKafka(ctx context.Context, log *slog.Logger, cfg config.Config) ([]kgo.Opt, error) {
	sec, err := cfg.Kafka.KafkaSecurity()
	if err != nil {
		return nil, usageError{err}
	}
	opts, err := sec.Options()
	if err != nil {
		return nil, usageError{err}
	}
	cctx, cancel := context.WithTimeout(ctx, kafkaCheckTimeout)
	defer cancel()
	if err := cep.CheckKafka(cctx, cfg.Kafka.Brokers, sec); err != nil {
		if !errors.Is(err, cep.ErrKafkaUnreachable) {
			return nil, err
		}
		log.Warn("kafka does not answer yet; the clients retry", "addr", strings.Join(cfg.Kafka.Brokers, ","), "err", err)
	}
	return opts, nil
}

// kafkaCheckTimeout bounds checkKafka's connection: a broker that needs
// longer to answer is reported as not answering yet.
const kafkaCheckTimeout = 10 * time.Second

// ready is /readyz: the engine's readiness with its reason, the group's
// coverage asked of the broker at the time of the probe.
func (s *server) ready() error {
	ctx, cancel := context.WithTimeout(context.Background(), readyGroupTimeout)
	s.engine.CheckGroup(ctx)
	cancel()
	st := s.engine.Status()
	if st.Ready {
		return nil
	}
	return errors.New(st.Reason)
}

// readyGroupTimeout bounds the broker round trip of one /readyz probe; a
// broker that does not answer in time leaves the last check, which stops
// counting after a few seconds.
const readyGroupTimeout = 2 * time.Second

// run runs the HTTP server and the engine until ctx ends or one of them
// fails, then stops them in the order of docs/design.md#shutdown: HTTP intake first, then the
// engine (stop fetching, finish the batch, checkpoint, commit, leave the
// group), then the clients and the embedded servers.
func (s *server) run(ctx context.Context) error {
	defer s.close()
	engineCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	defer stopEngine()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		err := s.http.Run(gctx)
		if ctx.Err() != nil {
			// The first signal asked for the orderly shutdown, which may
			// take up to the drain timeout; a second one now ends the
			// process at once, as a person pressing Ctrl-C twice expects.
			signal.Reset(os.Interrupt, syscall.SIGTERM)
			s.log.Info("shutting down: checkpointing every partition (interrupt again to stop at once)")
		}
		stopEngine()
		return err
	})
	if s.admin != nil {
		g.Go(func() error { return s.admin.Run(gctx) })
	}
	g.Go(func() error { return s.rules.run(gctx) })
	g.Go(func() error { return s.api.run(gctx) })
	if s.webhooks != nil {
		// Deliveries run beside the engine on clients of their own, so a
		// slow receiver never holds up matching; stopping abandons those
		// in progress, which the webhook's group delivers again.
		g.Go(func() error { return s.webhooks.Run(gctx) })
	}
	g.Go(func() error {
		err := s.engine.Run(engineCtx)
		if err == nil && engineCtx.Err() == nil {
			err = errors.New("engine stopped unexpectedly")
		}
		return err
	})
	err := g.Wait()
	if err == nil {
		s.log.Info("shut down cleanly")
	}
	return err
}

// close releases the clients, then the embedded servers they talk to.
func (s *server) close() {
	if s.http != nil {
		_ = s.http.Close()
	}
	if s.admin != nil {
		_ = s.admin.Close()
	}
	if s.api != nil {
		s.api.close()
	}
	if s.rules != nil {
		s.rules.close()
	}
	if s.webhooks != nil {
		s.webhooks.Close()
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			s.log.Warn("close redis client", "err", err)
		}
	}
	if s.redis != nil {
		s.redis.Close()
	}
	if s.kafka != nil {
		s.kafka.Close()
	}
}

// printQuickStart tells a newcomer on embedded defaults how to feed the
// engine and read its alerts: plain lines for a person, besides the log.
func printQuickStart(w io.Writer, s *server, topics []string) {
	broker := s.kafka.Addrs()[0]
	topic := "payments"
	if !slices.Contains(topics, topic) && len(topics) > 0 {
		topic = topics[0]
	}
	scenario := ""
	if _, ok := genKeyFields[topic]; ok {
		scenario = topic
	}
	var b strings.Builder
	if s.redis != nil {
		fmt.Fprintf(&b, "\nShrike is running on an embedded Kafka broker (%s) and an embedded Redis (%s).\n", broker, s.redis.Addr())
		b.WriteString("Both keep their data in memory: stopping Shrike loses it.\n")
	} else {
		fmt.Fprintf(&b, "\nShrike is running on an embedded Kafka broker (%s), with Redis at %s.\n", broker, strings.Join(s.cfg.Redis.Addrs, ","))
		b.WriteString("The broker keeps its records in memory: stopping Shrike loses them; use a real Kafka (--kafka) to keep them.\n")
	}
	fmt.Fprintf(&b, "Topics: %s; alerts go to %s.\n", strings.Join(topics, ", "), s.cfg.Kafka.Topics.Alerts)
	if scenario != "" {
		fmt.Fprintf(&b, "  feed it:      shrike gen --scenario %s --kafka %s\n", scenario, broker)
		fmt.Fprintf(&b, "           or: kcat -b %s -P -t %s -K: -l events.txt   (key:json lines)\n", broker, topic)
	} else {
		fmt.Fprintf(&b, "  feed it:      kcat -b %s -P -t %s -K: -l events.txt   (key:json lines)\n", broker, topic)
	}
	fmt.Fprintf(&b, "  read alerts:  kcat -b %s -C -t %s -o beginning\n", broker, s.cfg.Kafka.Topics.Alerts)
	// Every listener speaks TLS when it is configured (apiTLS).
	scheme, grpcTLS := "http", ""
	if s.cfg.API.TLS.Enabled() {
		scheme, grpcTLS = "https", " (TLS)"
	}
	fmt.Fprintf(&b, "  API:          REST %s://%s/v1/ (OpenAPI: /v1/openapi.json), gRPC%s %s\n", scheme, s.http.Addr(), grpcTLS, s.api.srv.Addr())
	fmt.Fprintf(&b, "  console:      %s://%s/ui/\n", scheme, s.http.Addr())
	if s.admin != nil {
		fmt.Fprintf(&b, "  metrics:      %s://%s/metrics   readiness: %s://%s/readyz\n\n", scheme, s.admin.Addr(), scheme, s.http.Addr())
	} else {
		fmt.Fprintf(&b, "  metrics:      off (admin.listen)   readiness: %s://%s/readyz\n\n", scheme, s.http.Addr())
	}
	_, _ = io.WriteString(w, b.String())
}

// startWebhooks builds the delivery of alerts to alerts.webhooks, reading
// their secret files, so that a missing or weak secret stops serve at
// start. Nil when no webhook is configured.
func startWebhooks(cfg config.Config, brokers []string, kafkaSecurity []kgo.Opt, log *slog.Logger, reg prometheus.Registerer) (*delivery.Service, error) {
	if len(cfg.Alerts.Webhooks) == 0 {
		return nil, nil
	}
	hooks := make([]delivery.Webhook, 0, len(cfg.Alerts.Webhooks))
	for _, w := range cfg.Alerts.Webhooks {
		secret, err := w.Secret()
		if err != nil {
			return nil, usageError{fmt.Errorf("alerts.webhooks: %w", err)} // a configuration that cannot run: status 2
		}
		hooks = append(hooks, w.Webhook(secret))
		if u, err := url.Parse(w.URL); err == nil && u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
			log.Warn("webhook over plain http beyond this host: alerts and signatures travel unencrypted", "webhook", w.Name, "host", u.Host)
		}
	}
	return delivery.New(delivery.Options{
		Brokers:          brokers,
		AlertsTopic:      cfg.Kafka.Topics.Alerts,
		UndeliveredTopic: cfg.Alerts.UndeliveredTopic,
		Group:            cfg.Kafka.Group,
		Webhooks:         hooks,
		SessionTimeout:   cfg.Kafka.SessionTimeout,
		KafkaOptions:     slices.Clone(kafkaSecurity),
		Logger:           log,
		Registerer:       reg,
	})
}

// isLoopbackHost reports whether a URL's host is this machine.
func isLoopbackHost(host string) bool {
	return config.IsLoopback(net.JoinHostPort(host, "0"))
}
