package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shrike-cep/shrike/internal/testkit"
)

func TestValidateSecure(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // none: valid
	}{
		{"complete TLS and SASL", `kafka:
  brokers: [k:9093]
  tls: {ca_file: ca.pem, cert_file: c.pem, key_file: k.pem, server_name: kafka.internal}
  sasl: {mechanism: SCRAM-SHA-512, username: alice, password_file: p}
redis:
  addrs: [r:6380]
  username: shrike
  password_file: rp
  tls: {enabled: true}
`, nil},
		{
			"an unknown mechanism", "kafka: {brokers: [k:9093], sasl: {mechanism: gssapi, username: a, password_file: p}}\n",
			[]string{`c.yaml:1:46: kafka.sasl.mechanism: "gssapi" is not one of plain, scram-sha-256, scram-sha-512`},
		},
		{
			"a mechanism without user or password file", "kafka: {brokers: [k:9093], sasl: {mechanism: plain}}\n",
			[]string{"kafka.sasl.username: must be set with kafka.sasl.mechanism plain", "kafka.sasl.password_file: must be set with kafka.sasl.mechanism plain: the file that holds the password"},
		},
		{
			"a user without a mechanism", "kafka: {brokers: [k:9093], sasl: {username: a, password_file: p}}\n",
			[]string{"kafka.sasl.mechanism: must be set when kafka.sasl has a username or password_file"},
		},
		{
			"a certificate without its key", "kafka: {brokers: [k:9093], tls: {cert_file: c.pem}}\nredis: {addrs: [r:1], tls: {key_file: k.pem}}\n",
			[]string{"kafka.tls.cert_file: cert_file and key_file go together", "redis.tls.cert_file: cert_file and key_file go together"},
		},
		{
			"security with the embedded servers", "kafka: {tls: {enabled: true}, sasl: {mechanism: plain, username: a, password_file: p}}\nredis: {password_file: p, tls: {ca_file: ca.pem}}\n",
			[]string{"kafka.tls: needs kafka.brokers", "kafka.sasl.mechanism: needs kafka.brokers", "redis.tls: needs redis.addrs", "redis.username: needs redis.addrs"},
		},
		{
			"an inline password and a password file", "redis: {addrs: [r:1], password: x, password_file: p}\n",
			[]string{"redis.password: give password or password_file, not both"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig("c.yaml", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			err = cfg.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate =\n%v\nwant it to say %q", err, w)
				}
			}
		})
	}
}

// TestSecretsFromFiles checks that the SASL and Redis passwords and the
// TLS files are read, relative to the configuration file, and that a
// missing or empty file is an error naming its field.
func TestSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	pki := testkit.NewPKI(t, dir, "test")
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("kafka.pass", "wonderland\n")
	write("redis.pass", "  s3cret \n")
	write("empty.pass", "\n")
	write("shrike.yaml", `kafka:
  brokers: [k:9093]
  tls: {ca_file: `+filepath.Base(pki.CAFile)+`, cert_file: `+filepath.Base(pki.ClientCertFile)+`, key_file: `+filepath.Base(pki.ClientKeyFile)+`, server_name: kafka.internal}
  sasl: {mechanism: scram-sha-512, username: alice, password_file: kafka.pass}
redis:
  addrs: [r:6380]
  username: shrike
  password_file: redis.pass
  tls: {ca_file: `+filepath.Base(pki.CAFile)+`}
`)
	cfg, err := LoadConfigFile(filepath.Join(dir, "shrike.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sec, err := cfg.Kafka.KafkaSecurity()
	if err != nil {
		t.Fatal(err)
	}
	if sec.SASLPassword != "wonderland" || sec.SASLUser != "alice" || sec.SASLMechanism != "scram-sha-512" {
		t.Errorf("kafka SASL = %s %s %q", sec.SASLMechanism, sec.SASLUser, sec.SASLPassword)
	}
	if sec.TLS == nil || sec.TLS.ServerName != "kafka.internal" || len(sec.TLS.Certificates) != 1 || sec.TLS.RootCAs == nil || sec.TLS.InsecureSkipVerify {
		t.Errorf("kafka TLS = %+v, want the CA, the client certificate and the server name", sec.TLS)
	}
	opts, err := cfg.Redis.StateOptions([]string{"r:6380"})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Password != "s3cret" || opts.Username != "shrike" || opts.TLS == nil || opts.TLS.RootCAs == nil {
		t.Errorf("redis options = user %q password %q tls %v", opts.Username, opts.Password, opts.TLS)
	}

	for _, tt := range []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"missing password file", func(c *Config) { c.Kafka.SASL.PasswordFile = filepath.Join(dir, "nope") }, "kafka.sasl.password_file: open "},
		{"empty password file", func(c *Config) { c.Kafka.SASL.PasswordFile = filepath.Join(dir, "empty.pass") }, "kafka.sasl.password_file: " + filepath.Join(dir, "empty.pass") + " is empty"},
		{"a CA file without a certificate", func(c *Config) { c.Kafka.TLS.CAFile = filepath.Join(dir, "kafka.pass") }, "kafka.tls.ca_file: " + filepath.Join(dir, "kafka.pass") + " holds no PEM certificate"},
		{"a key that is not the certificate's", func(c *Config) { c.Kafka.TLS.KeyFile = pki.KeyFile }, "kafka.tls.cert_file and key_file: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			tt.edit(&c)
			_, err := c.Kafka.KafkaSecurity()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("KafkaSecurity = %v, want %q", err, tt.want)
			}
		})
	}
	c := cfg
	c.Redis.PasswordFile = filepath.Join(dir, "nope")
	if _, err := c.Redis.StateOptions([]string{"r:1"}); err == nil || !strings.Contains(err.Error(), "redis.password_file: open ") {
		t.Errorf("StateOptions with a missing password file = %v", err)
	}
}

func TestWarnings(t *testing.T) {
	cfg, err := LoadConfig("c.yaml", []byte("kafka: {brokers: [k:1], tls: {insecure_skip_verify: true}}\nredis: {addrs: [r:1], password: x}\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(cfg.Warnings(), "\n")
	for _, w := range []string{"kafka.tls.insecure_skip_verify is true", "redis.password holds the password in the configuration file"} {
		if !strings.Contains(got, w) {
			t.Errorf("Warnings = %q, want %q", got, w)
		}
	}
	if w := DefaultConfig(); len(w.Warnings()) != 0 {
		t.Errorf("the defaults warn: %q", w.Warnings())
	}
}
