package config

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/google/go-cmp/cmp/cmpopts"
	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
)

var ignoreOrigin = cmpopts.IgnoreUnexported(Config{})

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want func(c *Config)
	}{
		{name: "empty file is the defaults", src: "", want: func(*Config) {}},
		{name: "null document is the defaults", src: "~\n", want: func(*Config) {}},
		{
			name: "every field",
			src: `kafka:
  brokers: [k1:9092, k2:9092]
  group: fraud
  topics: {alerts: a, shadow_alerts: s, deadletter: d, late: l}
  idle_timeout: 2m
  session_timeout: 20s
  exactly_once: false
  transactional_id: shrike-fraud-eu-1
  transaction_timeout: 30s
  embedded: {port: 0, partitions: 6}
redis:
  addrs: [r1:6379, r2:6379, r3:6379]
  cluster: true
  username: shrike
  password: s3cret
  key_prefix: prod
  embedded: {port: 0}
state:
  checkpoint_interval: 250ms
  max_resident_keys: 1_000
  drain_timeout: 1m
limits:
  max_runs_per_key: 50
  max_uncommitted_records: 5000
http: {listen: ":8081", read_header_timeout: 2s, read_timeout: 20s, idle_timeout: 30s, max_header_bytes: 8192}
grpc: {listen: 0.0.0.0:9091}
admin: {listen: "127.0.0.1:9100"}
api:
  tokens:
    - {name: ci, token: 9f2c4e7a1b6d8f3e0a5c2b7d4e9f1a6c, scopes: [rules:read, rules:write]}
    - name: ops
      token_file: /etc/shrike/ops.token
      scopes: alerts:read,events:write
  tls: {cert_file: /etc/shrike/tls.crt, key_file: /etc/shrike/tls.key}
  max_request_bytes: 65536
  recent_alerts: 500
  max_streams: 50
  max_streams_per_token: 5
  recordings_dir: /var/lib/shrike/recordings
  request_timeout: 5s
  max_concurrent_expensive: 8
rules: {dir: /etc/shrike/rules}
log: {level: debug, format: json}
`,
			want: func(c *Config) {
				c.Kafka = KafkaConfig{
					Brokers:        []string{"k1:9092", "k2:9092"},
					Group:          "fraud",
					Topics:         TopicsConfig{Alerts: "a", ShadowAlerts: "s", DeadLetter: "d", Late: "l"},
					IdleTimeout:    2 * time.Minute,
					MaxClockSkew:   5 * time.Minute,
					SessionTimeout: 20 * time.Second,
					// Set apart from the defaults, which are on, empty, 10s.
					ExactlyOnce:        false,
					TransactionalID:    "shrike-fraud-eu-1",
					TransactionTimeout: 30 * time.Second,
					Embedded:           EmbeddedConfig{Port: 0, Partitions: 6},
				}
				c.Redis = RedisConfig{Addrs: []string{"r1:6379", "r2:6379", "r3:6379"}, Cluster: true, Username: "shrike", Password: "s3cret", KeyPrefix: "prod", Embedded: EmbeddedRedisConfig{Port: 0}}
				c.State = StateConfig{CheckpointInterval: 250 * time.Millisecond, MaxResidentKeys: 1000, DrainTimeout: time.Minute}
				c.Limits = LimitsConfig{MaxRunsPerKey: 50, MaxUncommittedRecords: 5000}
				c.HTTP = HTTPConfig{Listen: ":8081", ReadHeaderTimeout: 2 * time.Second, ReadTimeout: 20 * time.Second, IdleTimeout: 30 * time.Second, MaxHeaderBytes: 8192}
				c.GRPC.Listen = "0.0.0.0:9091"
				c.Admin.Listen = "127.0.0.1:9100"
				c.API = APIConfig{
					Tokens: []TokenConfig{
						{Name: "ci", Token: "9f2c4e7a1b6d8f3e0a5c2b7d4e9f1a6c", Scopes: []shrikev1.Scope{"rules:read", "rules:write"}},
						{Name: "ops", TokenFile: "/etc/shrike/ops.token", Scopes: []shrikev1.Scope{"alerts:read", "events:write"}},
					},
					TLS:             TLSConfig{CertFile: "/etc/shrike/tls.crt", KeyFile: "/etc/shrike/tls.key"},
					MaxRequestBytes: 65536,
					RecentAlerts:    500,
					RecordingsDir:   "/var/lib/shrike/recordings",
					// The limits on calls.
					RequestTimeout:         5 * time.Second,
					MaxConcurrentExpensive: 8,
					// The limits on alert subscriptions.
					MaxStreams:         50,
					MaxStreamsPerToken: 5,
				}
				c.Rules.Dir = "/etc/shrike/rules"
				c.Log = LogConfig{Level: "debug", Format: "json"}
			},
		},
		{
			name: "a field left out keeps its default",
			src:  "kafka:\n  topics:\n    alerts: my-alerts\n",
			want: func(c *Config) { c.Kafka.Topics.Alerts = "my-alerts" },
		},
		{
			name: "comma-separated list as one string",
			src:  "kafka: {brokers: 'k1:9092, k2:9092,'}\n",
			want: func(c *Config) { c.Kafka.Brokers = []string{"k1:9092", "k2:9092"} },
		},
		{
			name: "days in a duration",
			// A day-long interval is valid without transactions only (their
			// timeout is at most 15m).
			src: "kafka: {exactly_once: false}\nstate: {checkpoint_interval: 1d}\n",
			want: func(c *Config) {
				c.Kafka.ExactlyOnce = false
				c.State.CheckpointInterval = 24 * time.Hour
			},
		},
		{
			name: "aliases",
			src:  "kafka: {group: &g fraud}\nredis: {key_prefix: *g}\n",
			want: func(c *Config) { c.Kafka.Group, c.Redis.KeyPrefix = "fraud", "fraud" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadConfig("shrike.yaml", []byte(tt.src))
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			want := DefaultConfig()
			tt.want(&want)
			if diff := cmp.Diff(want, got, ignoreOrigin); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "unknown fields at every level, with positions",
			src:  "kafka:\n  brokerz: [a:1]\n  topics:\n    alert: x\nredis: {}\nmetrics: true\n",
			want: []string{
				`c.yaml:2:3: unknown field "brokerz" in kafka (known: brokers, group, topics, idle_timeout, max_clock_skew, session_timeout, exactly_once, transactional_id, transaction_timeout, tls, sasl, embedded)`,
				`c.yaml:4:5: unknown field "alert" in kafka.topics (known: alerts, shadow_alerts, deadletter, late)`,
				`c.yaml:6:1: unknown field "metrics" in the configuration (known: kafka, redis, state, limits, http, grpc, admin, api, rules, log, alerts)`,
			},
		},
		{
			name: "wrong types",
			src: `kafka:
  brokers: {a: b}
  embedded: {port: "9092", partitions: 1.5}
state: {checkpoint_interval: 5, max_resident_keys: many}
http: [a]
log: {level: ~}
`,
			want: []string{
				`c.yaml:2:12: kafka.brokers: must be a list of strings, not a mapping`,
				`c.yaml:3:20: kafka.embedded.port: must be an integer, not a string`,
				`c.yaml:3:40: kafka.embedded.partitions: must be an integer, not a number`,
				`c.yaml:4:30: state.checkpoint_interval: must be a duration such as 1s or 500ms, not an integer`,
				`c.yaml:4:52: state.max_resident_keys: must be an integer, not a string`,
				`c.yaml:5:7: http: must be a mapping, not a list`,
				`c.yaml:6:14: log.level: must be a string, not null`,
			},
		},
		{
			name: "bad duration",
			src:  "state:\n  checkpoint_interval: soon\n",
			want: []string{`c.yaml:2:24: state.checkpoint_interval: invalid duration "soon" (use Go syntax such as 90s, 10m, 1h30m or 2d)`},
		},
		{
			name: "duplicate field",
			src:  "log: {level: info}\nlog: {level: debug}\n",
			want: []string{`c.yaml:2:1: duplicate field "log" in the configuration`},
		},
		{
			name: "list items",
			src:  "redis:\n  addrs:\n    - a:1\n    - [b]\n",
			want: []string{`c.yaml:4:7: redis.addrs: items must be strings, not a list`},
		},
		{
			name: "not a mapping",
			src:  "just words\n",
			want: []string{`c.yaml:1:1: must be a mapping, not a string`},
		},
		{
			name: "YAML syntax",
			src:  "kafka:\n  group: [unclosed\n",
			want: []string{`c.yaml:2:1: invalid YAML: did not find expected ',' or ']'`},
		},
		{
			name: "two documents",
			src:  "log: {level: info}\n---\nlog: {level: info}\n",
			want: []string{`c.yaml:2:1: a configuration file holds one YAML document`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig("c.yaml", []byte(tt.src))
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("LoadConfig error %v does not match ErrInvalidConfig", err)
			}
			if diff := cmp.Diff(tt.want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		flags [][3]string // path, value, flag
		want  []string
	}{
		{name: "defaults are valid"},
		{
			name: "values from the file are reported at their position",
			src: `kafka:
  brokers: [nohost, ":9092", "h:x"]
  group: " "
  topics: {alerts: "bad topic", deadletter: shrike-late}
  embedded: {port: 70000, partitions: 0}
redis:
  addrs: [a:1, b:2]
  db: 2
  key_prefix: "{x}"
  embedded: {port: -1}
state: {checkpoint_interval: 0s, max_resident_keys: 0, drain_timeout: -1s}
limits: {max_runs_per_key: -1, max_uncommitted_records: 0}
http: {listen: localhost}
log: {level: verbose, format: xml}
`,
			want: []string{
				`c.yaml:2:12: kafka.brokers: broker "nohost": want host:port`,
				`c.yaml:2:12: kafka.brokers: broker ":9092": missing host`,
				`c.yaml:2:12: kafka.brokers: broker "h:x": bad port "x"`,
				`c.yaml:3:10: kafka.group: must not be empty`,
				`c.yaml:4:20: kafka.topics.alerts: "bad topic" is not a Kafka topic name (letters, digits, '.', '_' and '-', at most 249)`,
				`c.yaml:5:20: kafka.embedded.port: 70000 is not a port (0 picks a free one)`,
				`c.yaml:5:39: kafka.embedded.partitions: must be at least 1, not 0`,
				`c.yaml:8:7: redis.db: a Redis Cluster has only database 0`,
				`c.yaml:9:15: redis.key_prefix: must be non-empty and hold no '{' or '}' (they mark Cluster hash tags)`,
				`c.yaml:10:20: redis.embedded.port: -1 is not a port (0 picks a free one)`,
				`c.yaml:11:30: state.checkpoint_interval: must be positive`,
				`c.yaml:11:53: state.max_resident_keys: must be at least 1, not 0`,
				`c.yaml:11:71: state.drain_timeout: must be positive`,
				`c.yaml:12:28: limits.max_runs_per_key: must be at least 1, not -1`,
				`c.yaml:12:57: limits.max_uncommitted_records: must be at least 1, not 0`,
				`c.yaml:13:16: http.listen: "localhost": want host:port`,
				`c.yaml:14:14: log.level: "verbose" is not one of debug, info, warn, error`,
				`c.yaml:14:31: log.format: "xml" is not one of text, json`,
				// The late topic keeps its default, which deadletter now takes.
				`kafka.topics.late: topic "shrike-late" is also kafka.topics.deadletter`,
			},
		},
		{
			// Its on-disk log is not crash-safe: a restart would resume
			// into a damaged log silently.
			name: "the embedded broker's data_dir is refused, the session timeout bounded",
			src:  "kafka:\n  embedded: {data_dir: /var/lib/kfake}\n  session_timeout: 1s\n",
			want: []string{
				`c.yaml:2:24: kafka.embedded.data_dir: is not supported: the embedded broker keeps its log in memory only, ` +
					`because its on-disk log is not crash-safe (a kill -9 can leave it truncated or unreadable); ` +
					`for events and offsets that outlive a restart use a real Kafka (kafka.brokers, or --kafka)`,
				`c.yaml:3:20: kafka.session_timeout: 1s is outside 6s to 30m0s (Kafka's default group.min/max.session.timeout.ms)`,
			},
		},
		{
			name:  "flags are reported by name",
			flags: [][3]string{{"http.listen", "nope", "--listen"}, {"kafka.brokers", "a:1,b", "--kafka"}},
			want: []string{
				`--kafka: broker "b": want host:port`,
				`--listen: "nope": want host:port`,
			},
		},
		{
			name:  "a flag fixes the file",
			src:   "http: {listen: nope}\n",
			flags: [][3]string{{"http.listen", "127.0.0.1:0", "--listen"}},
		},
		{
			name:  "a flag breaks the file",
			src:   "grpc: {listen: \"127.0.0.1:1\"}\n",
			flags: [][3]string{{"grpc.listen", "x", "--grpc-listen"}},
			want:  []string{`--grpc-listen: "x": want host:port`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig("c.yaml", []byte(tt.src))
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			for _, f := range tt.flags {
				if err := cfg.Set(f[0], f[1], f[2]); err != nil {
					t.Fatalf("Set(%q): %v", f[0], err)
				}
			}
			var got []string
			if err := cfg.Validate(); err != nil {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Errorf("Validate error %v does not match ErrInvalidConfig", err)
				}
				got = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConfigIdleTimeout: kafka.idle_timeout defaults to the engine's 30 s,
// 0s turns the wall clock off (a negative engine option), and a negative
// value is refused at its position.
func TestConfigIdleTimeout(t *testing.T) {
	def := DefaultConfig()
	if got := def.EngineIdleTimeout(); got != 30*time.Second {
		t.Errorf("default engine idle timeout = %v, want 30s", got)
	}
	off, err := LoadConfig("c.yaml", []byte("kafka: {idle_timeout: 0s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := off.EngineIdleTimeout(); got >= 0 {
		t.Errorf("idle_timeout 0s: engine idle timeout = %v, want negative (never)", got)
	}
	neg, err := LoadConfig("c.yaml", []byte("kafka: {idle_timeout: -1s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := neg.Validate(); err == nil || err.Error() != "c.yaml:1:23: kafka.idle_timeout: must not be negative (0s: never)" {
		t.Errorf("Validate = %v", err)
	}
}

// TestConfigMaxClockSkew: kafka.max_clock_skew defaults to the engine's
// 5 min, 0s turns the bound off (a negative engine option), and a
// negative value is refused at its position.
func TestConfigMaxClockSkew(t *testing.T) {
	def := DefaultConfig()
	if got := def.EngineMaxClockSkew(); got != 5*time.Minute {
		t.Errorf("default engine max clock skew = %v, want 5m", got)
	}
	off, err := LoadConfig("c.yaml", []byte("kafka: {max_clock_skew: 0s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := off.EngineMaxClockSkew(); got >= 0 {
		t.Errorf("max_clock_skew 0s: engine max clock skew = %v, want negative (no bound)", got)
	}
	neg, err := LoadConfig("c.yaml", []byte("kafka: {max_clock_skew: -1s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := neg.Validate(); err == nil || err.Error() != "c.yaml:1:25: kafka.max_clock_skew: must not be negative (0s: no bound)" {
		t.Errorf("Validate = %v", err)
	}
}

// TestConfigTransactions: kafka.exactly_once is on when the file leaves
// it out, the transactional id defaults to shrike-<group>-<hostname>-<pid> and
// the transaction timeout to the engine's, and each bad value is refused
// naming its field and position.
func TestConfigTransactions(t *testing.T) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	def, err := LoadConfig("c.yaml", []byte("kafka: {group: fraud}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !def.Kafka.ExactlyOnce {
		t.Error("kafka.exactly_once left out is false, want true")
	}
	if got, want := def.EngineTransactionalID(), "shrike-fraud-"+host+"-"+strconv.Itoa(os.Getpid()); got != want {
		t.Errorf("default transactional id = %q, want %q", got, want)
	}
	if got := def.Kafka.TransactionTimeout; got != 10*time.Second {
		t.Errorf("default transaction timeout = %v, want 10s", got)
	}
	if err := def.Validate(); err != nil {
		t.Errorf("Validate of the defaults: %v", err)
	}
	set, err := LoadConfig("c.yaml", []byte("kafka: {transactional_id: ' shrike eu/1 '}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := set.EngineTransactionalID(); got != " shrike eu/1 " {
		t.Errorf("transactional id = %q, want the configured one as it is", got)
	}

	long := strings.Repeat("x", 201)
	tests := []struct {
		name, src, want string
	}{
		{
			"blank id", "kafka: {transactional_id: '  '}\n",
			"c.yaml:1:27: kafka.transactional_id: must not be blank (leave it empty for shrike-<group>-<hostname>-<pid>)",
		},
		{
			"id too long", "kafka: {transactional_id: " + long + "}\n",
			`c.yaml:1:27: kafka.transactional_id: "` + long + `" is longer than 200 characters`,
		},
		{
			"default id too long", "kafka: {group: " + long + "}\n",
			`kafka.transactional_id: "shrike-` + long + "-" + host + "-" + strconv.Itoa(os.Getpid()) + `" shrike-<group>-<hostname>-<pid> is longer than 200 characters`,
		},
		{
			"id not printable", "kafka: {transactional_id: \"a\\tb\"}\n",
			`c.yaml:1:27: kafka.transactional_id: "a\tb" holds a character that is not printable`,
		},
		{
			"bad id checked with exactly_once off", "kafka: {exactly_once: false, transactional_id: ' '}\n",
			"c.yaml:1:48: kafka.transactional_id: must not be blank (leave it empty for shrike-<group>-<hostname>-<pid>)",
		},
		{
			"zero timeout", "kafka: {transaction_timeout: 0s}\n",
			"c.yaml:1:30: kafka.transaction_timeout: must be positive",
		},
		{
			"negative timeout", "kafka: {transaction_timeout: -1s}\n",
			"c.yaml:1:30: kafka.transaction_timeout: must be positive",
		},
		{
			"timeout beyond the brokers' maximum", "kafka: {transaction_timeout: 16m}\n",
			"c.yaml:1:30: kafka.transaction_timeout: 16m0s is more than 15m0s (Kafka's default transaction.max.timeout.ms)",
		},
		{
			"timeout not above twice the interval", "kafka: {transaction_timeout: 4s}\nstate: {checkpoint_interval: 2s}\n",
			"c.yaml:1:30: kafka.transaction_timeout: 4s must be more than twice state.checkpoint_interval (2s): a transaction spans one interval and its checkpoint",
		},
		{
			"default timeout against a long interval", "state: {checkpoint_interval: 6s}\n",
			"kafka.transaction_timeout: 10s must be more than twice state.checkpoint_interval (6s): a transaction spans one interval and its checkpoint",
		},
		{
			"set timeout checked with exactly_once off", "kafka: {exactly_once: false, transaction_timeout: 0s}\n",
			"c.yaml:1:51: kafka.transaction_timeout: must be positive",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig("c.yaml", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err == nil || err.Error() != tt.want {
				t.Errorf("Validate = %v\nwant %s", err, tt.want)
			}
		})
	}

	// With exactly_once off the defaults are not used, so they are not
	// held against the rest: a long interval is fine.
	off, err := LoadConfig("c.yaml", []byte("kafka: {exactly_once: false}\nstate: {checkpoint_interval: 6s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := off.Validate(); err != nil {
		t.Errorf("Validate with exactly_once off: %v", err)
	}
	if err := off.Set("kafka.exactly_once", "true", "--flag"); err != nil {
		t.Fatal(err)
	}
	if err := off.Validate(); err == nil || !strings.Contains(err.Error(), "kafka.transaction_timeout") {
		t.Errorf("Validate with exactly_once turned on by a flag = %v, want the timeout refused", err)
	}
}

func TestConfigSet(t *testing.T) {
	tests := []struct {
		name, path, value string
		want              func(c *Config)
		wantErr           string
	}{
		{name: "list", path: "redis.addrs", value: "a:1, b:2", want: func(c *Config) { c.Redis.Addrs = []string{"a:1", "b:2"} }},
		{name: "string", path: "rules.dir", value: "rulesets", want: func(c *Config) { c.Rules.Dir = "rulesets" }},
		{name: "duration", path: "state.checkpoint_interval", value: "2s", want: func(c *Config) { c.State.CheckpointInterval = 2 * time.Second }},
		{name: "boolean", path: "redis.cluster", value: "true", want: func(c *Config) { c.Redis.Cluster = true }},
		{name: "bad boolean", path: "redis.cluster", value: "yes", wantErr: `--flag: must be true or false, not "yes"`},
		{name: "integer", path: "kafka.embedded.port", value: "0", want: func(c *Config) { c.Kafka.Embedded.Port = 0 }},
		{name: "bad integer", path: "kafka.embedded.port", value: "x", wantErr: `--flag: must be an integer, not "x"`},
		{name: "bad duration", path: "state.checkpoint_interval", value: "1y", wantErr: `--flag: invalid duration "1y" (use Go syntax such as 90s, 10m, 1h30m or 2d)`},
		{name: "no such field", path: "kafka.nope", value: "x", wantErr: `config: no field "kafka.nope"`},
		{name: "a section is not a field", path: "kafka", value: "x", wantErr: `config: no field "kafka"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			err := cfg.Set(tt.path, tt.value, "--flag")
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Set error = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Set: %v", err)
			}
			want := DefaultConfig()
			tt.want(&want)
			if diff := cmp.Diff(want, cfg, ignoreOrigin); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadConfigFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, src string
		rules     string
	}{
		{
			name: "relative paths are the file's", src: "rules: {dir: rulesets}\n",
			rules: filepath.Join(dir, "etc", "rulesets"),
		},
		{
			name: "absolute paths stay", src: "rules: {dir: /srv/rules}\n",
			rules: "/srv/rules",
		},
		{name: "unset paths stay unset", src: "log: {level: info}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "etc", "shrike.yaml")
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(tt.src), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadConfigFile(path)
			if err != nil {
				t.Fatalf("LoadConfigFile: %v", err)
			}
			if cfg.Rules.Dir != tt.rules {
				t.Errorf("rules.dir = %q, want %q", cfg.Rules.Dir, tt.rules)
			}
			// A flag is the working directory's.
			if err := cfg.Set("rules.dir", "mine", "--rules"); err != nil {
				t.Fatal(err)
			}
			if cfg.Rules.Dir != "mine" {
				t.Errorf("rules.dir after --rules = %q, want mine", cfg.Rules.Dir)
			}
		})
	}
	if _, err := LoadConfigFile(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: error %v, want os.ErrNotExist", err)
	}
}
