package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
)

func TestApplyEnv(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		environ []string
		want    func(c *Config)
	}{
		{
			name: "scalars, lists, durations and nested sections",
			environ: []string{
				"SHRIKE_KAFKA_BROKERS=k1:9092, k2:9092", "SHRIKE_KAFKA_GROUP=fraud", "SHRIKE_KAFKA_TOPICS_SHADOW_ALERTS=shadow",
				"SHRIKE_KAFKA_EXACTLY_ONCE=false", "SHRIKE_STATE_CHECKPOINT_INTERVAL=250ms", "SHRIKE_LIMITS_MAX_RUNS_PER_KEY=50",
				"SHRIKE_KAFKA_SASL_MECHANISM=scram-sha-512", "SHRIKE_KAFKA_SASL_USERNAME=alice",
				"SHRIKE_KAFKA_SASL_PASSWORD_FILE=/run/secrets/kafka", "SHRIKE_KAFKA_TLS_CA_FILE=/etc/ca.pem",
				"SHRIKE_REDIS_ADDRS=r1:6379", "SHRIKE_REDIS_TLS_SERVER_NAME=redis.internal", "SHRIKE_REDIS_PASSWORD_FILE=/run/secrets/redis",
			},
			want: func(c *Config) {
				c.Kafka.Brokers = []string{"k1:9092", "k2:9092"}
				c.Kafka.Group = "fraud"
				c.Kafka.Topics.ShadowAlerts = "shadow"
				c.Kafka.ExactlyOnce = false
				c.State.CheckpointInterval = 250 * time.Millisecond
				c.Limits.MaxRunsPerKey = 50
				c.Kafka.SASL = SASLConfig{Mechanism: "scram-sha-512", Username: "alice", PasswordFile: "/run/secrets/kafka"}
				c.Kafka.TLS.CAFile = "/etc/ca.pem"
				c.Redis.Addrs = []string{"r1:6379"}
				c.Redis.TLS.ServerName = "redis.internal"
				c.Redis.PasswordFile = "/run/secrets/redis"
			},
		},
		{
			name:    "the environment wins over the file; an empty variable is unset",
			file:    "kafka: {group: from-file, brokers: [f:9092]}\nlog: {level: debug}\n",
			environ: []string{"SHRIKE_KAFKA_GROUP=from-env", "SHRIKE_LOG_LEVEL=", "PATH=/bin"},
			want: func(c *Config) {
				c.Kafka.Group = "from-env"
				c.Kafka.Brokers = []string{"f:9092"}
				c.Log.Level = "debug"
			},
		},
		{
			name: "list items by index: over the file's, then appended",
			file: "api:\n  tokens:\n    - {name: ci, token_file: ci.token, scopes: [rules:read]}\n",
			environ: []string{
				"SHRIKE_API_TOKENS_0_SCOPES=rules:read,rules:write",
				"SHRIKE_API_TOKENS_1_NAME=ops", "SHRIKE_API_TOKENS_1_TOKEN_FILE=/run/secrets/ops", "SHRIKE_API_TOKENS_1_SCOPES=alerts:read",
			},
			want: func(c *Config) {
				c.API.Tokens = []TokenConfig{
					{Name: "ci", TokenFile: "ci.token", Scopes: []shrikev1.Scope{"rules:read", "rules:write"}},
					{Name: "ops", TokenFile: "/run/secrets/ops", Scopes: []shrikev1.Scope{"alerts:read"}},
				}
			},
		},
		{
			name: "variables that are not configuration are left alone",
			environ: []string{
				"SHRIKE_SERVER=127.0.0.1:9090", "SHRIKE_TOKEN=x", "SHRIKE_SERVICE_HOST=10.0.0.1", "SHRIKE_PORT=tcp://10.0.0.1:8080",
				"SHRIKE_TEST_CRASH_AT=commit:1", "NOT_SHRIKE_KAFKA_GROUP=x",
				// Kubernetes service links of Services named shrike-redis and shrike-kafka.
				"SHRIKE_REDIS_SERVICE_HOST=10.0.0.2", "SHRIKE_REDIS_SERVICE_PORT=6379", "SHRIKE_REDIS_PORT=tcp://10.0.0.2:6379",
				"SHRIKE_REDIS_PORT_6379_TCP=tcp://10.0.0.2:6379", "SHRIKE_REDIS_PORT_6379_TCP_ADDR=10.0.0.2",
				"SHRIKE_REDIS_PORT_6379_TCP_PORT=6379", "SHRIKE_REDIS_PORT_6379_TCP_PROTO=tcp", "SHRIKE_KAFKA_SERVICE_PORT_BROKER=9092",
			},
			want: func(*Config) {},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig("shrike.yaml", []byte(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			want, err := LoadConfig("shrike.yaml", []byte(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			tt.want(&want)
			if err := cfg.ApplyEnv(tt.environ); err != nil {
				t.Fatalf("ApplyEnv: %v", err)
			}
			if diff := cmp.Diff(want, cfg, ignoreOrigin); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyEnvErrors(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    []string
	}{
		{
			"a value that does not parse names the variable",
			[]string{"SHRIKE_REDIS_DB=two"},
			[]string{`SHRIKE_REDIS_DB: redis.db: must be an integer, not "two"`},
		},
		{
			"a bad duration",
			[]string{"SHRIKE_KAFKA_SESSION_TIMEOUT=soon"},
			[]string{"SHRIKE_KAFKA_SESSION_TIMEOUT: kafka.session_timeout: "},
		},
		{
			"a bad boolean",
			[]string{"SHRIKE_KAFKA_EXACTLY_ONCE=maybe"},
			[]string{`SHRIKE_KAFKA_EXACTLY_ONCE: kafka.exactly_once: must be true or false, not "maybe"`},
		},
		{
			"a secret",
			[]string{"SHRIKE_REDIS_PASSWORD=hunter2"},
			[]string{"SHRIKE_REDIS_PASSWORD: redis.password: a secret is never read from the environment: write it to a file and set SHRIKE_REDIS_PASSWORD_FILE"},
		},
		{
			"a token",
			[]string{"SHRIKE_API_TOKENS_0_TOKEN=9f2c4e7a1b6d8f3e0a5c2b7d4e9f1a6c"},
			[]string{"SHRIKE_API_TOKENS_0_TOKEN: api.tokens[0].token: a secret is never read from the environment: write it to a file and set SHRIKE_API_TOKENS_0_TOKEN_FILE"},
		},
		{
			"an unknown field of a section",
			[]string{"SHRIKE_KAFKA_BROKER=k:9092"},
			[]string{"SHRIKE_KAFKA_BROKER: is not a configuration variable (did you mean SHRIKE_KAFKA_BROKERS?)"},
		},
		{
			"a misspelt section",
			[]string{"SHRIKE_KAFAK_GROUP=g"},
			[]string{"SHRIKE_KAFAK_GROUP: is not a configuration variable (did you mean SHRIKE_KAFKA_GROUP?)"},
		},
		{
			"a near miss that ends like a service link",
			[]string{"SHRIKE_KAFKA_EMBEDED_PORT=9093"},
			[]string{"SHRIKE_KAFKA_EMBEDED_PORT: is not a configuration variable (did you mean SHRIKE_KAFKA_EMBEDDED_PORT?)"},
		},
		{
			"a section's name alone",
			[]string{"SHRIKE_REDIS=r:6379"},
			[]string{"SHRIKE_REDIS: is not a configuration variable"},
		},
		{
			"a gap in a list",
			[]string{"SHRIKE_API_TOKENS_1_NAME=ops"},
			[]string{"SHRIKE_API_TOKENS_1_NAME: api.tokens[1]: index 1 leaves api.tokens[0] unset (api.tokens has 0 items)"},
		},
		{
			"every problem at once",
			[]string{"SHRIKE_REDIS_DB=x", "SHRIKE_LOG_LEVL=debug"},
			[]string{"SHRIKE_LOG_LEVL: is not a configuration variable (did you mean SHRIKE_LOG_LEVEL?)", "SHRIKE_REDIS_DB: redis.db:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			err := cfg.ApplyEnv(tt.environ)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("ApplyEnv = %v, want an invalid configuration", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ApplyEnv =\n%v\nwant it to say %q", err, w)
				}
			}
			if got := strings.Count(err.Error(), "\n") + 1; got != len(tt.want) {
				t.Errorf("ApplyEnv reported %d problems, want %d:\n%v", got, len(tt.want), err)
			}
		})
	}
}

// TestConfigPrecedence checks defaults < file < environment < flags, and
// that Validate names where a bad value came from.
func TestConfigPrecedence(t *testing.T) {
	cfg, err := LoadConfig("shrike.yaml", []byte("kafka: {group: file, session_timeout: 20s}\nhttp: {listen: '127.0.0.1:8181'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.ApplyEnv([]string{"SHRIKE_KAFKA_GROUP=env", "SHRIKE_HTTP_LISTEN=127.0.0.1:8282", "SHRIKE_GRPC_LISTEN=127.0.0.1:9292"}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Set("http.listen", "127.0.0.1:8383", "--listen"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ field, got, want string }{
		{"kafka.topics.alerts (default)", cfg.Kafka.Topics.Alerts, "shrike-alerts"},
		{"kafka.session_timeout (file)", cfg.Kafka.SessionTimeout.String(), "20s"},
		{"kafka.group (environment over file)", cfg.Kafka.Group, "env"},
		{"grpc.listen (environment over default)", cfg.GRPC.Listen, "127.0.0.1:9292"},
		{"http.listen (flag over environment and file)", cfg.HTTP.Listen, "127.0.0.1:8383"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
		}
	}

	bad := DefaultConfig()
	if err := bad.ApplyEnv([]string{"SHRIKE_LIMITS_MAX_RUNS_PER_KEY=0"}); err != nil {
		t.Fatal(err)
	}
	err = bad.Validate()
	if want := "SHRIKE_LIMITS_MAX_RUNS_PER_KEY: limits.max_runs_per_key: must be at least 1, not 0"; err == nil || err.Error() != want {
		t.Errorf("Validate = %v, want %q", err, want)
	}
}

// TestEnvVarsCoverEveryField checks that the variables are generated for
// every field the configuration file has, with no two fields sharing a
// name, and that secrets are marked.
func TestEnvVarsCoverEveryField(t *testing.T) {
	vars := EnvVars()
	names := map[string]string{}
	for _, v := range vars {
		if other, ok := names[v.Name]; ok {
			t.Errorf("%s and %s share the variable %s", other, v.Field, v.Name)
		}
		names[v.Name] = v.Field
		want := EnvPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "[N]", "_<N>").Replace(v.Field))
		if v.Name != want {
			t.Errorf("%s: variable %s, want %s", v.Field, v.Name, want)
		}
	}
	for _, field := range []string{"kafka.brokers", "kafka.sasl.password_file", "redis.tls.ca_file", "api.tokens[N].scopes", "log.format"} {
		found := false
		for _, v := range vars {
			found = found || v.Field == field
		}
		if !found {
			t.Errorf("no variable for %s", field)
		}
	}
	var secrets []string
	for _, v := range vars {
		if v.Secret {
			secrets = append(secrets, v.Field)
		}
	}
	if diff := cmp.Diff([]string{"redis.password", "api.tokens[N].token"}, secrets); diff != "" {
		t.Errorf("secret fields (-want +got):\n%s", diff)
	}
	// Every leaf of Config is a type ApplyEnv can set.
	for _, v := range vars {
		k := v.Type.Kind()
		if k == reflect.Slice {
			k = v.Type.Elem().Kind()
		}
		if k != reflect.String && k != reflect.Int && k != reflect.Int64 && k != reflect.Bool {
			t.Errorf("%s: type %s cannot be set from the environment", v.Field, v.Type)
		}
	}
}

// TestPrintYAMLRedacts checks that the printed configuration holds no
// secret value, shows the paths of secret files, and reads back as the
// same configuration.
func TestPrintYAMLRedacts(t *testing.T) {
	dir := t.TempDir()
	const inlineToken = "9f2c4e7a1b6d8f3e0a5c2b7d4e9f1a6c"
	const inlinePassword = "correct-horse-battery-staple"
	const slackPath = "XXXXsecretpathXXXX"
	src := `kafka:
  brokers: [k1:9092]
  sasl: {mechanism: scram-sha-256, username: alice, password_file: kafka.pass}
  tls: {ca_file: ca.pem}
redis:
  addrs: [r1:6379]
  username: shrike
  password: ` + inlinePassword + `
api:
  tokens:
    - {name: ci, token: ` + inlineToken + `, scopes: [rules:read]}
alerts:
  webhooks:
    - {name: chat, url: "https://hooks.slack.example/services/T000/B000/` + slackPath + `", format: slack}
`
	path := filepath.Join(dir, "shrike.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.ApplyEnv([]string{"SHRIKE_KAFKA_GROUP=from-env"}); err != nil {
		t.Fatal(err)
	}
	out, err := cfg.PrintYAML()
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, secret := range []string{inlineToken, inlinePassword, slackPath} {
		if strings.Contains(text, secret) {
			t.Errorf("printed configuration holds the secret %q:\n%s", secret, text)
		}
	}
	for _, want := range []string{
		"password: " + Redacted + " # " + path + ":8:13",
		"token: " + Redacted,
		"url: https://hooks.slack.example/" + Redacted,
		"password_file: " + filepath.Join(dir, "kafka.pass"),
		"ca_file: " + filepath.Join(dir, "ca.pem"),
		"group: from-env # SHRIKE_KAFKA_GROUP",
		"checkpoint_interval: 1s\n",
		"read_timeout: 1m\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("printed configuration lacks %q:\n%s", want, text)
		}
	}
	back, err := LoadConfig("printed.yaml", out)
	if err != nil {
		t.Fatalf("the printed configuration does not load: %v\n%s", err, text)
	}
	want := cfg
	want.Redis.Password = Redacted
	want.API.Tokens[0].Token = Redacted
	want.Alerts.Webhooks = slices.Clone(want.Alerts.Webhooks)
	want.Alerts.Webhooks[0].URL = "https://hooks.slack.example/" + Redacted
	if diff := cmp.Diff(want, back, ignoreOrigin); diff != "" {
		t.Errorf("printed and loaded back (-want +got):\n%s", diff)
	}
}
