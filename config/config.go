package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/delivery"
	"github.com/shrike-cep/shrike/feed"
	"github.com/shrike-cep/shrike/internal/yamlnode"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// ErrInvalidConfig matches (errors.Is) every Errors value: the
// configuration was rejected because of what it says, not because a file
// could not be read.
var ErrInvalidConfig = errors.New("invalid configuration")

// Config is the configuration of `shrike serve` (README.md#configuration). It is
// read from a YAML file (LoadConfig), then SHRIKE_* environment variables
// override single fields (Config.ApplyEnv), then command-line flags
// (Config.Set), then Validate checks the result. Every
// field's default is what DefaultConfig returns; a field the file leaves
// out keeps it.
//
// A complete file with the defaults:
//
//	kafka:
//	  brokers: []                 # empty: start an embedded broker (kfake)
//	  group: shrike               # consumer group; instances of one group share the partitions
//	  topics:
//	    alerts: shrike-alerts
//	    deadletter: shrike-deadletter
//	    late: shrike-late
//	  idle_timeout: 30s           # for rulesets without stream.idle_timeout: a partition quiet this
//	                              # long follows the wall clock; 0s: it waits for events for ever
//	  max_clock_skew: 5m          # for rulesets without stream.max_clock_skew: an event further ahead
//	                              # of the wall clock is dead-lettered; 0s: no bound
//	  session_timeout: 10s        # an instance that dies without leaving keeps its partitions this long
//	  exactly_once: true          # outputs in Kafka transactions tied to the checkpoints: a read_committed
//	                              # consumer sees each alert once; false: at-least-once, stable ids
//	  transactional_id: ""        # empty: shrike-<group>-<hostname>-<pid>; unique per running instance
//	  transaction_timeout: 10s    # a crashed instance's open transaction holds read_committed readers
//	                              # this long; > 2 × state.checkpoint_interval, at most 15m
//	  tls:                        # TLS to the brokers: on when any field is set (enabled alone: system CAs)
//	    {enabled: false, ca_file: "", cert_file: "", key_file: "", server_name: "", insecure_skip_verify: false}
//	  sasl:                       # mechanism: plain | scram-sha-256 | scram-sha-512; the password from a file only
//	    {mechanism: "", username: "", password_file: ""}
//	  embedded:                   # used only when brokers is empty; keeps everything in memory
//	    port: 9092                # 0 picks a free port
//	    partitions: 3             # of every topic it creates
//	redis:
//	  addrs: []                   # empty: start an embedded Redis (miniredis); several: Redis Cluster
//	  cluster: false              # one address that is a Redis Cluster seed
//	  username: ""                # an ACL user; empty: the default user
//	  password: ""                # inline, discouraged: never from a flag or the environment
//	  password_file: ""           # the AUTH password, from a file
//	  tls: {enabled: false, ca_file: "", cert_file: "", key_file: "", server_name: "", insecure_skip_verify: false}
//	  db: 0                       # standalone only
//	  key_prefix: shrike
//	  embedded:                   # used only when addrs is empty
//	    port: 6379                # 0 picks a free port
//	state:
//	  checkpoint_interval: 1s     # how often dirty key states and offsets are committed
//	  max_resident_keys: 1000000  # per partition; colder keys are evicted to Redis
//	  drain_timeout: 30s          # bound on a revoked partition's last checkpoint; + 5 s: the rebalance timeout
//	limits:
//	  max_runs_per_key: 10000     # one rule's partial matches per key; the oldest are dropped
//	  max_uncommitted_records: 1000000  # per partition while Redis fails; then fetching pauses
//	http:
//	  listen: 127.0.0.1:8080      # the REST API (/v1/), /healthz, /readyz; never /metrics or pprof
//	  read_header_timeout: 5s     # every HTTP server: a request's headers must arrive within this;
//	                              # also bounds a gRPC connection's TLS and HTTP/2 handshake
//	  read_timeout: 1m            # ... and its body too; a response (a stream) is not bounded
//	  idle_timeout: 2m            # a keep-alive connection waiting for its next request
//	  max_header_bytes: 65536     # request line and headers; larger: 431
//	grpc:
//	  listen: 127.0.0.1:9090      # the gRPC API; its REST gateway is on http.listen
//	admin:
//	  listen: 127.0.0.1:8079      # /metrics, /debug/pprof/, /healthz, /readyz, no authentication;
//	                              # "off": none. Beyond loopback serve warns at start
//	api:
//	  tokens: []                  # bearer tokens; required when a listener is not on loopback:
//	                              #   - {name: ci, token_file: ci.token, scopes: [rules:read, rules:write]}
//	                              # scopes: rules:read, rules:write, alerts:read, events:write, lists:write
//	  tls: {cert_file: "", key_file: ""}  # TLS on every listener, from PEM files
//	  max_request_bytes: 4194304  # larger requests are refused before they are read
//	  recent_alerts: 10000        # alerts ListAlerts can page through, and how far a subscriber
//	                              # may fall behind (a burst) before it reads on from Kafka
//	  max_streams: 100            # alert subscriptions open at once; beyond: RESOURCE_EXHAUSTED / 429
//	  max_streams_per_token: 20   # of them, per bearer token (without tokens only max_streams applies)
//	  recordings_dir: ""          # recorded event files TestRuleset may read by name
//	  request_timeout: 30s        # bound on every unary call; past it DEADLINE_EXCEEDED (504)
//	  max_concurrent_expensive: 0 # filtered ListAlerts, Validate/Test/PutRuleset at once; 0 = CPUs
//	rules:
//	  dir: ""                     # load the *.yaml rulesets of this folder (not *_test.yaml);
//	                              # relative to the configuration file
//	  max_versions: 100           # versions kept per ruleset; older ones are trimmed (at least 2)
//	log:
//	  level: info                 # debug | info | warn | error
//	  format: text                # text | json
//	alerts:
//	  webhooks: []                # each: name, url, secret_file, filter, format, timeout,
//	                              # max_attempts, backoff, max_backoff, max_in_flight (WebhookConfig)
//	  undelivered_topic: shrike-alerts-undelivered  # alerts a webhook gave up on
type Config struct {
	Kafka  KafkaConfig  `yaml:"kafka"`
	Redis  RedisConfig  `yaml:"redis"`
	State  StateConfig  `yaml:"state"`
	Limits LimitsConfig `yaml:"limits"`
	HTTP   HTTPConfig   `yaml:"http"`
	GRPC   ListenConfig `yaml:"grpc"`
	Admin  AdminConfig  `yaml:"admin"`
	API    APIConfig    `yaml:"api"`
	Rules  RulesConfig  `yaml:"rules"`
	Log    LogConfig    `yaml:"log"`
	Alerts AlertsConfig `yaml:"alerts"`

	// origin remembers, per dotted field path, where a value that is not a
	// default came from, so that Validate points at the line or the flag.
	origin map[string]origin
}

// KafkaConfig says which Kafka cluster to read and write.
type KafkaConfig struct {
	// Brokers are the seed brokers, host:port. Empty starts an embedded
	// in-process broker (see Embedded).
	Brokers []string `yaml:"brokers"`
	// Group is the consumer group. Instances with the same group share the
	// partitions of the rulesets' topics; state in Redis is kept per group.
	Group  string       `yaml:"group"`
	Topics TopicsConfig `yaml:"topics"`
	// IdleTimeout is the idle timeout of the streams of rulesets that set
	// no stream.idle_timeout (EngineOptions.IdleTimeout); zero: their
	// partitions wait for events for ever, as when Kafka is fed old data.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxClockSkew is the bound on event times ahead of the wall clock of
	// the streams of rulesets that set no stream.max_clock_skew
	// (EngineOptions.MaxClockSkew); zero: no bound.
	MaxClockSkew time.Duration `yaml:"max_clock_skew"`
	// SessionTimeout is the consumer group session timeout
	// (EngineOptions.SessionTimeout): an instance that dies without
	// leaving the group keeps its partitions this long.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// ExactlyOnce produces the outputs in Kafka transactions tied to the
	// checkpoints (EngineOptions.ExactlyOnce), so that a read_committed
	// consumer sees each alert once. False is for brokers without
	// transactions: outputs are then at-least-once with stable ids.
	ExactlyOnce bool `yaml:"exactly_once"`
	// TransactionalID is the instance's Kafka transactional id when
	// ExactlyOnce; empty is "shrike-<group>-<hostname>-<pid>" (see
	// EngineTransactionalID). Instances running at once need distinct
	// ids; a restart keeps its own, which fences its predecessor.
	TransactionalID string `yaml:"transactional_id"`
	// TransactionTimeout is how long the brokers keep a transaction of
	// the instance open before aborting it (EngineOptions.TransactionTimeout).
	TransactionTimeout time.Duration `yaml:"transaction_timeout"`
	// TLS connects to the brokers over TLS (kafka.tls), with a CA, a client
	// certificate and a server name from files.
	TLS ClientTLSConfig `yaml:"tls"`
	// SASL authenticates to the brokers (kafka.sasl): PLAIN,
	// SCRAM-SHA-256 or SCRAM-SHA-512, the password from a file.
	SASL     SASLConfig     `yaml:"sasl"`
	Embedded EmbeddedConfig `yaml:"embedded"`
}

// TopicsConfig names the topics the engine writes (docs/design.md#runtime).
type TopicsConfig struct {
	// Alerts receives every alert, keyed by its id.
	Alerts string `yaml:"alerts"`
	// ShadowAlerts receives the alerts of shadow versions, never Alerts.
	ShadowAlerts string `yaml:"shadow_alerts"`
	// DeadLetter receives the records that could not be decoded, or had
	// no key or time, with the reason in a header.
	DeadLetter string `yaml:"deadletter"`
	// Late receives the events behind their partition's watermark.
	Late string `yaml:"late"`
}

// EmbeddedConfig shapes the in-process broker started when no brokers are
// configured.
type EmbeddedConfig struct {
	// Port is the broker's port on 127.0.0.1; 0 picks a free one.
	Port int `yaml:"port"`
	// Partitions is the partition count of every topic the broker creates,
	// the rulesets' topics and the output topics alike, and of topics
	// created on first use.
	Partitions int `yaml:"partitions"`
	// DataDir is refused by Validate: the embedded broker keeps its log
	// in memory only. Its on-disk log (kfake's) is not crash-safe: a kill -9
	// can leave it truncated or unreadable, and a restart would resume
	// into it silently. The field remains so that a configuration naming
	// it gets that explanation rather than "unknown field".
	DataDir string `yaml:"data_dir"`
}

// RedisConfig says where key state and checkpoints live.
type RedisConfig struct {
	// Addrs are host:port addresses: none starts an embedded in-process
	// Redis, one is a standalone server, several are seeds of a Redis
	// Cluster.
	Addrs []string `yaml:"addrs"`
	// Cluster makes a single address a Redis Cluster seed (several
	// addresses always are).
	Cluster bool `yaml:"cluster"`
	// Username is the ACL user of AUTH; empty: the default user.
	Username string `yaml:"username"`
	// Password is the AUTH password written in the file itself. Prefer
	// PasswordFile: a secret is never taken from a flag or the
	// environment, and --print-config shows it as <redacted>.
	Password string `yaml:"password" secret:"true"`
	// PasswordFile holds the AUTH password (surrounding white space is
	// dropped). Relative to the configuration file.
	PasswordFile string `yaml:"password_file"`
	// TLS connects to Redis over TLS (redis.tls), every node of a Cluster
	// too.
	TLS ClientTLSConfig `yaml:"tls"`
	// DB selects the database of a standalone server (Cluster has only 0).
	DB int `yaml:"db"`
	// KeyPrefix starts every key Shrike writes, so that several
	// deployments can share one Redis.
	KeyPrefix string              `yaml:"key_prefix"`
	Embedded  EmbeddedRedisConfig `yaml:"embedded"`
}

// StateOptions are the connection fields of state.Options for the Redis
// at addrs (the configured addresses, or the embedded server's), with c's
// credentials (the password read from PasswordFile), TLS (its files
// read), database and key prefix: what the state store and the registry's
// client (registry.NewClient) both connect with.
func (c RedisConfig) StateOptions(addrs []string) (state.Options, error) {
	password := c.Password
	if c.PasswordFile != "" {
		var err error
		if password, err = readSecret("redis.password_file", c.PasswordFile); err != nil {
			return state.Options{}, err
		}
	}
	tlsCfg, err := c.TLS.Load("redis.tls")
	if err != nil {
		return state.Options{}, err
	}
	return state.Options{
		Addrs:     addrs,
		Cluster:   c.Cluster,
		Username:  c.Username,
		Password:  password,
		TLS:       tlsCfg,
		DB:        c.DB,
		KeyPrefix: c.KeyPrefix,
	}, nil
}

// EmbeddedRedisConfig shapes the in-process Redis started when no Redis
// addresses are configured.
type EmbeddedRedisConfig struct {
	// Port is the server's port on 127.0.0.1, so that redis-cli and a
	// second instance can reach it; 0 picks a free one.
	Port int `yaml:"port"`
}

// StateConfig bounds and paces the engine's state.
type StateConfig struct {
	// CheckpointInterval is how often each partition commits its dirty key
	// states and resume offset to Redis, and then its offset to Kafka: the
	// most work a crash makes the engine redo.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// MaxResidentKeys is how many keys' states a partition keeps in memory;
	// colder keys are evicted after a checkpoint and reloaded on demand.
	MaxResidentKeys int `yaml:"max_resident_keys"`
	// DrainTimeout bounds the last checkpoint of a partition that is
	// revoked or shut down; past it, the partition's work since its last
	// checkpoint is left for the next owner to redo.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
}

// LimitsConfig are the limits of docs/design.md#bad-input-and-limits that the runtime enforces.
type LimitsConfig struct {
	// MaxRunsPerKey caps one rule's partial matches per key; the oldest
	// are dropped and counted.
	MaxRunsPerKey int `yaml:"max_runs_per_key"`
	// MaxUncommittedRecords bounds the records a partition processes past
	// its last successful checkpoint while Redis fails; past it, fetching
	// pauses until a checkpoint succeeds.
	MaxUncommittedRecords int `yaml:"max_uncommitted_records"`
}

// ListenConfig is a listening address.
type ListenConfig struct {
	// Listen is host:port. A port of 0 picks a free one.
	Listen string `yaml:"listen"`
}

// RulesConfig says where rulesets come from.
type RulesConfig struct {
	// Dir is a folder whose *.yaml and *.yml files, except *_test.yaml
	// unit tests, are loaded at start.
	Dir string `yaml:"dir"`
	// MaxVersions is how many versions of each ruleset the registry keeps:
	// each change trims the oldest beyond it, so that history does not
	// grow without end (registry.Options.MaxVersions). At least 2.
	MaxVersions int `yaml:"max_versions"`
}

// LogConfig shapes the structured log on stderr.
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text (logfmt-like key=value pairs) or json.
	Format string `yaml:"format"`
}

// Defaults of the fields of Config that EngineOptions does not share
// (the group, topics, checkpoint interval, resident keys, drain timeout
// and uncommitted records take the engine's defaults), as DefaultConfig
// sets them.
const (
	DefaultEmbeddedKafkaPort  = 9092
	DefaultEmbeddedRedisPort  = 6379
	DefaultEmbeddedPartitions = 3
	DefaultRedisKeyPrefix     = "shrike"
	DefaultMaxRunsPerKey      = 10_000
	DefaultMaxVersions        = 100 // registry.DefaultMaxVersions
	DefaultHTTPListen         = "127.0.0.1:8080"
	DefaultGRPCListen         = "127.0.0.1:9090"
)

// minSessionTimeout and maxSessionTimeout bound kafka.session_timeout as
// Kafka's brokers do by default (group.min/max.session.timeout.ms); the
// embedded broker is given the same bounds.
const (
	minSessionTimeout = 6 * time.Second
	maxSessionTimeout = 30 * time.Minute
)

// DefaultConfig returns the configuration `shrike serve` runs with when
// neither a file nor a flag says otherwise: embedded Kafka and Redis, the
// documented topic names, every listener on loopback.
func DefaultConfig() Config {
	return Config{
		Kafka: KafkaConfig{
			Group: cep.DefaultGroup,
			Topics: TopicsConfig{
				Alerts:       cep.DefaultAlertsTopic,
				ShadowAlerts: cep.DefaultShadowAlertsTopic,
				DeadLetter:   cep.DefaultDeadLetterTopic,
				Late:         cep.DefaultLateTopic,
			},
			IdleTimeout:    cep.DefaultIdleTimeout,
			MaxClockSkew:   cep.DefaultMaxClockSkew,
			Embedded:       EmbeddedConfig{Port: DefaultEmbeddedKafkaPort, Partitions: DefaultEmbeddedPartitions},
			SessionTimeout: cep.DefaultSessionTimeout,
			// Exactly-once is the default: a fraud engine's alerts block
			// payments or page people, and every consumer would otherwise
			// have to deduplicate.
			ExactlyOnce:        true,
			TransactionTimeout: cep.DefaultTransactionTimeout,
		},
		Redis: RedisConfig{
			KeyPrefix: DefaultRedisKeyPrefix,
			Embedded:  EmbeddedRedisConfig{Port: DefaultEmbeddedRedisPort},
		},
		State: StateConfig{
			CheckpointInterval: cep.DefaultCheckpointInterval,
			MaxResidentKeys:    cep.DefaultMaxResidentKeys,
			DrainTimeout:       cep.DefaultDrainTimeout,
		},
		Limits: LimitsConfig{MaxRunsPerKey: DefaultMaxRunsPerKey, MaxUncommittedRecords: cep.DefaultMaxUncommittedRecords},
		HTTP:   defaultHTTPConfig(),
		GRPC:   ListenConfig{Listen: DefaultGRPCListen},
		Admin:  AdminConfig{Listen: DefaultAdminListen},
		API: APIConfig{
			MaxRequestBytes:    DefaultAPIMaxRequestBytes,
			RecentAlerts:       feed.DefaultRecentAlerts,
			RequestTimeout:     DefaultAPIRequestTimeout,
			MaxStreams:         DefaultAPIMaxStreams,
			MaxStreamsPerToken: DefaultAPIMaxStreamsPerToken,
		},
		Rules:  RulesConfig{MaxVersions: DefaultMaxVersions},
		Log:    LogConfig{Level: "info", Format: "text"},
		Alerts: AlertsConfig{UndeliveredTopic: delivery.DefaultUndeliveredTopic},
	}
}

// EngineIdleTimeout is kafka.idle_timeout as EngineOptions.IdleTimeout
// takes it: there zero is the default and a negative value is never.
func (c *Config) EngineIdleTimeout() time.Duration {
	if c.Kafka.IdleTimeout == 0 {
		return -1
	}
	return c.Kafka.IdleTimeout
}

// EngineMaxClockSkew is kafka.max_clock_skew as EngineOptions.MaxClockSkew
// takes it: there zero is the default and a negative value is no bound.
func (c *Config) EngineMaxClockSkew() time.Duration {
	if c.Kafka.MaxClockSkew == 0 {
		return -1
	}
	return c.Kafka.MaxClockSkew
}

// EngineTransactionalID is kafka.transactional_id as
// EngineOptions.TransactionalID takes it: the configured id, or
// cep.DefaultTransactionalID, "shrike-<group>-<hostname>-<pid>".
func (c *Config) EngineTransactionalID() string {
	if c.Kafka.TransactionalID != "" {
		return c.Kafka.TransactionalID
	}
	return cep.DefaultTransactionalID(c.Kafka.Group)
}

// EmbeddedKafka reports whether serve must start its own broker.
func (c *Config) EmbeddedKafka() bool { return len(c.Kafka.Brokers) == 0 }

// EmbeddedRedis reports whether serve must start its own Redis.
func (c *Config) EmbeddedRedis() bool { return len(c.Redis.Addrs) == 0 }

// SlogLevel returns the log level as slog's; call it on a validated
// config (an unknown name is Info).
func (l LogConfig) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// origin is where a value came from: a file position, an environment
// variable or a flag.
type origin struct {
	pos  rules.Pos
	env  string
	flag string
}

func (o origin) String() string {
	switch {
	case o.flag != "":
		return o.flag
	case o.env != "":
		return o.env
	}
	return o.pos.String()
}

// Error is one problem with the configuration.
type Error struct {
	// Pos is the problem's position in the file; zero when the value came
	// from a flag or is a default.
	Pos rules.Pos
	// Flag is the command-line flag that set the value, if any.
	Flag string
	// Env is the environment variable that set the value, if any.
	Env string
	// Field is the dotted path of the field ("kafka.brokers"), if known.
	Field string
	Msg   string
}

// Error formats the error as `file:line:col: field: message`,
// `--flag: message` for a value from the command line, or `VARIABLE:
// field: message` for one from the environment.
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.Flag != "":
		b.WriteString(e.Flag)
		b.WriteString(": ")
	case e.Env != "":
		b.WriteString(e.Env)
		b.WriteString(": ")
		if e.Field != "" {
			b.WriteString(e.Field)
			b.WriteString(": ")
		}
	case e.Pos != rules.Pos{}:
		b.WriteString(e.Pos.String())
		b.WriteString(": ")
		if e.Field != "" {
			b.WriteString(e.Field)
			b.WriteString(": ")
		}
	case e.Field != "":
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a configuration, file positions
// first in order, then flags and defaults.
type Errors []*Error

// Error joins the errors, one per line.
func (l Errors) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Is makes errors.Is(err, ErrInvalidConfig) true for any Errors.
func (l Errors) Is(target error) bool { return target == ErrInvalidConfig }

// Unwrap exposes the single errors to errors.As.
func (l Errors) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

func (l Errors) err() error {
	if len(l) == 0 {
		return nil
	}
	slices.SortStableFunc(l, func(a, b *Error) int {
		// Positioned errors first, in file order; then the rest as found.
		ap, bp := a.Pos.Line > 0, b.Pos.Line > 0
		switch {
		case ap && !bp:
			return -1
		case !ap && bp:
			return 1
		case !ap:
			return 0
		}
		return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
	return l
}

// LoadConfigFile reads and loads the YAML configuration file at path (see
// LoadConfig). Relative paths in the file (rules.dir and the API's files)
// are taken relative to the file's folder, as
// Prometheus does with its rule files, so that a configuration means the
// same from wherever serve is started; paths given as flags stay relative
// to the working directory.
func LoadConfigFile(path string) (Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	cfg, err := LoadConfig(path, src)
	base := filepath.Dir(path)
	for _, p := range []struct {
		field string
		v     *string
	}{{"rules.dir", &cfg.Rules.Dir}} {
		if _, fromFile := cfg.origin[p.field]; fromFile && *p.v != "" && !filepath.IsAbs(*p.v) {
			*p.v = filepath.Join(base, *p.v)
		}
	}
	for _, p := range append(append(cfg.apiPaths(), cfg.securePaths()...), cfg.alertPaths()...) {
		if _, fromFile := cfg.origin[p.field]; fromFile && *p.v != "" && !filepath.IsAbs(*p.v) {
			*p.v = filepath.Join(base, *p.v)
		}
	}
	return cfg, err
}

// LoadConfig parses a YAML configuration over the defaults: fields the
// document leaves out keep DefaultConfig's values. Decoding is strict: an
// unknown field, a value of the wrong type or a duplicate field is an
// error with its file:line:col, and every such problem is reported (as
// Errors). LoadConfig does not Validate, so that flags can still
// correct the result.
func LoadConfig(filename string, src []byte) (Config, error) {
	cfg := DefaultConfig()
	d := newConfigDecoder(filename, &cfg)
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return cfg, nil // an empty file is all defaults
		}
		line, msg := yamlnode.SyntaxError(src, err)
		d.add(rules.Pos{File: filename, Line: max(line, 1), Col: 1}, "", "invalid YAML: %s", msg)
		return cfg, d.errs.err()
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.add(d.pos(&extra), "", "a configuration file holds one YAML document")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if !(root.Kind == yaml.ScalarNode && root.Tag == "!!null") {
		d.value(root, reflect.ValueOf(&cfg).Elem(), "")
	}
	return cfg, d.errs.err()
}

// configDecoder walks a YAML node tree into a Config through the yaml
// field tags, strictly, collecting every error with its position.
type configDecoder struct {
	file string
	cfg  *Config
	errs Errors
	// walk follows aliases under yamlnode's node budget; what it reports
	// (a document too large after expanding aliases) is an Error of
	// no field.
	walk yamlnode.Walker
}

func newConfigDecoder(filename string, cfg *Config) *configDecoder {
	d := &configDecoder{file: filename, cfg: cfg}
	d.walk.Report = func(n *yaml.Node, msg string) { d.add(d.pos(n), "", "%s", msg) }
	return d
}

var durationType = reflect.TypeFor[time.Duration]()

func (d *configDecoder) pos(n *yaml.Node) rules.Pos {
	return rules.Pos{File: d.file, Line: n.Line, Col: n.Column}
}

func (d *configDecoder) add(pos rules.Pos, field, format string, args ...any) {
	d.errs = append(d.errs, &Error{Pos: pos, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (d *configDecoder) resolve(n *yaml.Node) *yaml.Node { return d.walk.Resolve(n) }

// value decodes n into v, the field at path.
func (d *configDecoder) value(n *yaml.Node, v reflect.Value, path string) {
	n = d.resolve(n)
	if d.walk.Exhausted() {
		return
	}
	if v.Kind() == reflect.Struct {
		d.mapping(n, v, path)
		return
	}
	if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct {
		d.structList(n, v, path)
		return
	}
	if v.Kind() == reflect.Slice {
		d.list(n, v, path)
		return
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.add(d.pos(n), path, "must be %s, not %s", typeWord(v.Type()), yamlnode.KindName(n))
		return
	}
	if err := setScalar(v, n.Value, n.Tag); err != nil {
		d.add(d.pos(n), path, "%v", err)
		return
	}
	d.cfg.setOrigin(path, origin{pos: d.pos(n)})
}

func (d *configDecoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	what := path
	if what == "" {
		what = "the configuration"
	}
	if n.Kind != yaml.MappingNode {
		d.add(d.pos(n), path, "must be a mapping, not %s", yamlnode.KindName(n))
		return
	}
	fields := structFields(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := d.resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.add(d.pos(k), path, "keys must be strings")
			continue
		}
		idx, ok := fields[k.Value]
		switch {
		case !ok:
			d.add(d.pos(k), "", "unknown field %q in %s (known: %s)", k.Value, what, strings.Join(fieldNames(v.Type()), ", "))
		case seen[k.Value]:
			d.add(d.pos(k), "", "duplicate field %q in %s", k.Value, what)
		default:
			seen[k.Value] = true
			d.value(val, v.Field(idx), joinPath(path, k.Value))
		}
	}
}

// list decodes a YAML list of scalars, or one scalar holding a
// comma-separated list ("a:9092,b:9092"), as the flags take it.
func (d *configDecoder) list(n *yaml.Node, v reflect.Value, path string) {
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		v.Set(reflect.Zero(v.Type()))
	case n.Kind == yaml.ScalarNode:
		setStrings(v, splitList(n.Value))
	case n.Kind == yaml.SequenceNode:
		out := make([]string, 0, len(n.Content))
		ok := true
		for _, item := range n.Content {
			item = d.resolve(item)
			if item.Kind != yaml.ScalarNode || item.Tag == "!!null" {
				d.add(d.pos(item), path, "items must be strings, not %s", yamlnode.KindName(item))
				ok = false
				continue
			}
			out = append(out, item.Value)
		}
		if !ok {
			return
		}
		setStrings(v, out)
	default:
		d.add(d.pos(n), path, "must be a list of strings, not %s", yamlnode.KindName(n))
		return
	}
	d.cfg.setOrigin(path, origin{pos: d.pos(n)})
}

// setStrings sets v, a slice of strings or of a string type (such as the
// API's scopes), to items.
func setStrings(v reflect.Value, items []string) {
	out := reflect.MakeSlice(v.Type(), len(items), len(items))
	for i, it := range items {
		out.Index(i).SetString(it)
	}
	v.Set(out)
}

// setScalar parses s into v. tag is the YAML tag of a scalar from a file,
// "" for a flag's text; it lets a quoted "10" be refused as a number.
func setScalar(v reflect.Value, s, tag string) error {
	switch {
	case v.Type() == durationType:
		if tag != "" && tag != "!!str" {
			return fmt.Errorf("must be a duration such as 1s or 500ms, not %s", yamlnode.TagName(tag))
		}
		dur, err := rules.ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(dur))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Int:
		if tag != "" && tag != "!!int" {
			return fmt.Errorf("must be an integer, not %s", yamlnode.TagName(tag))
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64)
		if err != nil {
			return fmt.Errorf("must be an integer, not %q", s)
		}
		v.SetInt(i)
	case v.Kind() == reflect.Bool:
		if tag != "" && tag != "!!bool" {
			return fmt.Errorf("must be true or false, not %s", yamlnode.TagName(tag))
		}
		b, err := strconv.ParseBool(strings.ToLower(s))
		if err != nil {
			return fmt.Errorf("must be true or false, not %q", s)
		}
		v.SetBool(b)
	default:
		return fmt.Errorf("unsupported field type %s", v.Type())
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// structFields maps a struct's yaml names to field indexes.
func structFields(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := range t.NumField() {
		if name := yamlName(t.Field(i)); name != "" {
			m[name] = i
		}
	}
	return m
}

func fieldNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		if name := yamlName(t.Field(i)); name != "" {
			names = append(names, name)
		}
	}
	return names
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

func typeWord(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Int:
		return "an integer"
	case t.Kind() == reflect.Bool:
		return "true or false"
	}
	return t.String()
}

func (c *Config) setOrigin(path string, o origin) {
	if c.origin == nil {
		c.origin = map[string]origin{}
	}
	c.origin[path] = o
}

// Set overrides one field, named by its dotted path in the file
// ("kafka.brokers", "http.listen"), with a value given as text on the
// command line by flag ("--kafka"): flags win over the file. Lists take a
// comma-separated value; durations Go's syntax (or d for days). Validate's
// errors about the field then name the flag.
func (c *Config) Set(path, value, flag string) error {
	v := reflect.ValueOf(c).Elem()
	for name := range strings.SplitSeq(path, ".") {
		if v.Kind() != reflect.Struct {
			return fmt.Errorf("config: no field %q", path)
		}
		idx, ok := structFields(v.Type())[name]
		if !ok {
			return fmt.Errorf("config: no field %q", path)
		}
		v = v.Field(idx)
	}
	switch v.Kind() {
	case reflect.Struct:
		return fmt.Errorf("config: no field %q", path)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("config: field %q is set in the file only", path)
		}
		setStrings(v, splitList(value))
	default:
		if err := setScalar(v, value, ""); err != nil {
			return Errors{{Flag: flag, Field: path, Msg: err.Error()}}
		}
	}
	c.setOrigin(path, origin{flag: flag})
	return nil
}

// topicRE is Kafka's legal topic name.
var topicRE = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// Validate checks the configuration's values, all of them, and returns
// Errors naming, for each bad value, the file position or flag it
// came from.
func (c *Config) Validate() error {
	var errs Errors
	bad := func(path, format string, args ...any) {
		e := &Error{Field: path, Msg: fmt.Sprintf(format, args...)}
		if o, ok := c.origin[path]; ok {
			e.Pos, e.Flag, e.Env = o.pos, o.flag, o.env
		}
		errs = append(errs, e)
	}
	for _, b := range c.Kafka.Brokers {
		if err := checkHostPort(b, false); err != nil {
			bad("kafka.brokers", "broker %q: %v", b, err)
		}
	}
	if strings.TrimSpace(c.Kafka.Group) == "" {
		bad("kafka.group", "must not be empty")
	}
	topics := map[string]string{}
	for _, t := range []struct{ path, name string }{
		{"kafka.topics.alerts", c.Kafka.Topics.Alerts},
		{"kafka.topics.shadow_alerts", c.Kafka.Topics.ShadowAlerts},
		{"kafka.topics.deadletter", c.Kafka.Topics.DeadLetter},
		{"kafka.topics.late", c.Kafka.Topics.Late},
	} {
		switch {
		case !topicRE.MatchString(t.name) || t.name == "." || t.name == "..":
			bad(t.path, "%q is not a Kafka topic name (letters, digits, '.', '_' and '-', at most 249)", t.name)
		case topics[t.name] != "":
			bad(t.path, "topic %q is also %s", t.name, topics[t.name])
		default:
			topics[t.name] = t.path
		}
	}
	if c.Kafka.IdleTimeout < 0 {
		bad("kafka.idle_timeout", "must not be negative (0s: never)")
	}
	if c.Kafka.MaxClockSkew < 0 {
		bad("kafka.max_clock_skew", "must not be negative (0s: no bound)")
	}
	if p := c.Kafka.Embedded.Port; p < 0 || p > 65535 {
		bad("kafka.embedded.port", "%d is not a port (0 picks a free one)", p)
	}
	if c.Kafka.Embedded.Partitions < 1 {
		bad("kafka.embedded.partitions", "must be at least 1, not %d", c.Kafka.Embedded.Partitions)
	}
	if c.Kafka.Embedded.DataDir != "" {
		bad("kafka.embedded.data_dir", "is not supported: the embedded broker keeps its log in memory only, "+
			"because its on-disk log is not crash-safe (a kill -9 can leave it truncated or unreadable); "+
			"for events and offsets that outlive a restart use a real Kafka (kafka.brokers, or --kafka)")
	}
	if st := c.Kafka.SessionTimeout; st < minSessionTimeout || st > maxSessionTimeout {
		bad("kafka.session_timeout", "%v is outside %v to %v (Kafka's default group.min/max.session.timeout.ms)",
			st, minSessionTimeout, maxSessionTimeout)
	}
	c.validateTransactions(bad)
	for _, a := range c.Redis.Addrs {
		if err := checkHostPort(a, false); err != nil {
			bad("redis.addrs", "address %q: %v", a, err)
		}
	}
	if p := c.Redis.Embedded.Port; p < 0 || p > 65535 {
		bad("redis.embedded.port", "%d is not a port (0 picks a free one)", p)
	}
	if c.Redis.DB < 0 {
		bad("redis.db", "must not be negative")
	}
	if c.Redis.DB != 0 && (len(c.Redis.Addrs) > 1 || c.Redis.Cluster) {
		bad("redis.db", "a Redis Cluster has only database 0")
	}
	if c.Redis.KeyPrefix == "" || strings.ContainsAny(c.Redis.KeyPrefix, "{}") {
		bad("redis.key_prefix", "must be non-empty and hold no '{' or '}' (they mark Cluster hash tags)")
	}
	if c.State.CheckpointInterval <= 0 {
		bad("state.checkpoint_interval", "must be positive")
	}
	if c.State.MaxResidentKeys < 1 {
		bad("state.max_resident_keys", "must be at least 1, not %d", c.State.MaxResidentKeys)
	}
	if c.State.DrainTimeout <= 0 {
		bad("state.drain_timeout", "must be positive")
	}
	if c.Limits.MaxUncommittedRecords < 1 {
		bad("limits.max_uncommitted_records", "must be at least 1, not %d", c.Limits.MaxUncommittedRecords)
	}
	if c.Limits.MaxRunsPerKey < 1 {
		bad("limits.max_runs_per_key", "must be at least 1, not %d", c.Limits.MaxRunsPerKey)
	}
	if c.Rules.MaxVersions < 2 {
		bad("rules.max_versions", "must be at least 2 (the current version and the one a deletion leaves for rollback), not %d", c.Rules.MaxVersions)
	}
	if err := checkHostPort(c.HTTP.Listen, true); err != nil {
		bad("http.listen", "%q: %v", c.HTTP.Listen, err)
	}
	if err := checkHostPort(c.GRPC.Listen, true); err != nil {
		bad("grpc.listen", "%q: %v", c.GRPC.Listen, err)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if !slices.Contains([]string{"text", "json"}, c.Log.Format) {
		bad("log.format", "%q is not one of text, json", c.Log.Format)
	}
	c.validateAPI(bad)
	c.validateAdmin(bad)
	c.validateSecure(bad)
	c.validateAlerts(bad)
	return errs.err()
}

// Bounds of the transaction settings: Kafka's transactional ids are
// strings that show up in the brokers' logs and tools, and a transaction
// timeout beyond the brokers' transaction.max.timeout.ms (15 min by
// default) makes InitProducerId fail at start.
const (
	maxTransactionalIDLen = 200
	maxTransactionTimeout = 15 * time.Minute
)

// validateTransactions checks kafka.transactional_id and
// kafka.transaction_timeout: always when set in the file or by a flag, and
// with their defaults when kafka.exactly_once uses them. The timeout must
// outlast a checkpoint interval and its barrier, as each transaction spans
// one interval; twice the interval leaves the barrier the other half.
func (c *Config) validateTransactions(bad func(path, format string, args ...any)) {
	k := c.Kafka
	if _, set := c.origin["kafka.transactional_id"]; set || k.ExactlyOnce {
		id := c.EngineTransactionalID()
		switch {
		case strings.TrimSpace(id) == "":
			bad("kafka.transactional_id", "must not be blank (leave it empty for shrike-<group>-<hostname>-<pid>)")
		case utf8.RuneCountInString(id) > maxTransactionalIDLen:
			what := "is"
			if k.TransactionalID == "" {
				what = "shrike-<group>-<hostname>-<pid> is"
			}
			bad("kafka.transactional_id", "%q %s longer than %d characters", id, what, maxTransactionalIDLen)
		case !utf8.ValidString(id) || strings.IndexFunc(id, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
			bad("kafka.transactional_id", "%q holds a character that is not printable", id)
		}
	}
	_, set := c.origin["kafka.transaction_timeout"]
	if !set && !k.ExactlyOnce {
		return
	}
	switch tt, ci := k.TransactionTimeout, c.State.CheckpointInterval; {
	case tt <= 0:
		bad("kafka.transaction_timeout", "must be positive")
	case tt > maxTransactionTimeout:
		bad("kafka.transaction_timeout", "%v is more than %v (Kafka's default transaction.max.timeout.ms)", tt, maxTransactionTimeout)
	case k.ExactlyOnce && ci > 0 && tt <= 2*ci:
		bad("kafka.transaction_timeout", "%v must be more than twice state.checkpoint_interval (%v): "+
			"a transaction spans one interval and its checkpoint", tt, ci)
	}
}

// checkHostPort accepts host:port; a listening address may leave the host
// out (all interfaces) and use port 0.
func checkHostPort(s string, listen bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("want host:port")
	}
	if host == "" && !listen {
		return errors.New("missing host")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !listen) {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}
