package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/shrike-cep/shrike/cep"
)

// ClientTLSConfig is how serve connects to a server (Kafka's brokers,
// Redis) over TLS: the CA that signed the server's certificate, the
// client certificate for servers that require one (mutual TLS), and the
// name the server's certificate must carry. TLS is on when Enabled is
// true or any field is set; Enabled alone trusts the system's CAs.
type ClientTLSConfig struct {
	// Enabled turns TLS on without any file: the system's CAs verify the
	// server. Setting any other field turns TLS on as well.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM file of the CA certificates that verify the
	// server; empty: the system's. Relative to the configuration file.
	CAFile string `yaml:"ca_file"`
	// CertFile is the PEM client certificate (chain) presented to servers
	// that require one; with KeyFile. Relative to the configuration file.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile. Relative to the
	// configuration file.
	KeyFile string `yaml:"key_file"`
	// ServerName is the name the server's certificate must carry; empty:
	// the host of the address dialled.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any server certificate: the connection is
	// encrypted but anyone in between can read it. For tests only; serve
	// warns at start.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// On reports whether TLS is configured.
func (t ClientTLSConfig) On() bool {
	return t.Enabled || t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify
}

// Load reads the files and returns the client configuration, nil when
// TLS is off. what is the section's path (kafka.tls) for errors.
func (t ClientTLSConfig) Load(what string) (*tls.Config, error) {
	if !t.On() {
		return nil, nil
	}
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: t.ServerName,
		// A deliberate, documented and warned-about choice of the
		// configuration (insecure_skip_verify), never a default.
		InsecureSkipVerify: t.InsecureSkipVerify,
	}
	if t.CAFile != "" {
		pemBytes, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.ca_file: %w", what, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("%s.ca_file: %s holds no PEM certificate", what, t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s.cert_file and key_file: %w", what, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// SASLConfig authenticates serve's Kafka clients with SASL.
type SASLConfig struct {
	// Mechanism is plain, scram-sha-256 or scram-sha-512; empty: no SASL.
	// PLAIN sends the password as it is: use it over TLS only.
	Mechanism string `yaml:"mechanism"`
	// Username is the SASL user.
	Username string `yaml:"username"`
	// PasswordFile holds the SASL password (surrounding white space is
	// dropped). Relative to the configuration file. There is no inline
	// password field: a secret never sits in the configuration itself.
	PasswordFile string `yaml:"password_file"`
}

// KafkaSecurity reads the TLS files and the SASL password and returns how
// every Kafka client of serve connects.
func (c KafkaConfig) KafkaSecurity() (cep.KafkaSecurity, error) {
	tlsCfg, err := c.TLS.Load("kafka.tls")
	if err != nil {
		return cep.KafkaSecurity{}, err
	}
	sec := cep.KafkaSecurity{TLS: tlsCfg}
	if c.SASL.Mechanism == "" {
		return sec, nil
	}
	password, err := readSecret("kafka.sasl.password_file", c.SASL.PasswordFile)
	if err != nil {
		return cep.KafkaSecurity{}, err
	}
	sec.SASLMechanism, sec.SASLUser, sec.SASLPassword = strings.ToLower(c.SASL.Mechanism), c.SASL.Username, password
	return sec, nil
}

// readSecret reads a secret from path without its surrounding white
// space; an empty one is an error.
func readSecret(field, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", fmt.Errorf("%s: %s is empty", field, path)
	}
	return secret, nil
}

// securePaths are the file paths of the kafka and redis sections, which
// a configuration file gives relative to its own folder.
func (c *Config) securePaths() []configPath {
	return []configPath{
		{"kafka.tls.ca_file", &c.Kafka.TLS.CAFile},
		{"kafka.tls.cert_file", &c.Kafka.TLS.CertFile},
		{"kafka.tls.key_file", &c.Kafka.TLS.KeyFile},
		{"kafka.sasl.password_file", &c.Kafka.SASL.PasswordFile},
		{"redis.password_file", &c.Redis.PasswordFile},
		{"redis.tls.ca_file", &c.Redis.TLS.CAFile},
		{"redis.tls.cert_file", &c.Redis.TLS.CertFile},
		{"redis.tls.key_file", &c.Redis.TLS.KeyFile},
	}
}

// validateSecure checks the TLS and SASL settings of Kafka and Redis:
// complete, consistent, and only where a real server is configured (the
// embedded ones speak plaintext without authentication).
func (c *Config) validateSecure(bad func(path, format string, args ...any)) {
	for _, t := range []struct {
		path string
		tls  ClientTLSConfig
	}{{"kafka.tls", c.Kafka.TLS}, {"redis.tls", c.Redis.TLS}} {
		if (t.tls.CertFile == "") != (t.tls.KeyFile == "") {
			bad(t.path+".cert_file", "cert_file and key_file go together")
		}
	}
	s := c.Kafka.SASL
	switch {
	case s.Mechanism == "" && (s.Username != "" || s.PasswordFile != ""):
		bad("kafka.sasl.mechanism", "must be set when kafka.sasl has a username or password_file (one of %s)", strings.Join(cep.SASLMechanisms, ", "))
	case s.Mechanism != "" && !slices.Contains(cep.SASLMechanisms, strings.ToLower(s.Mechanism)):
		bad("kafka.sasl.mechanism", "%q is not one of %s", s.Mechanism, strings.Join(cep.SASLMechanisms, ", "))
	case s.Mechanism != "":
		if s.Username == "" {
			bad("kafka.sasl.username", "must be set with kafka.sasl.mechanism %s", s.Mechanism)
		}
		if s.PasswordFile == "" {
			bad("kafka.sasl.password_file", "must be set with kafka.sasl.mechanism %s: the file that holds the password", s.Mechanism)
		}
	}
	if c.EmbeddedKafka() {
		if c.Kafka.TLS.On() {
			bad("kafka.tls", "needs kafka.brokers: the embedded broker speaks plaintext")
		}
		if s.Mechanism != "" {
			bad("kafka.sasl.mechanism", "needs kafka.brokers: the embedded broker has no authentication")
		}
	}
	r := c.Redis
	if r.Password != "" && r.PasswordFile != "" {
		bad("redis.password", "give password or password_file, not both")
	}
	if c.EmbeddedRedis() {
		if r.TLS.On() {
			bad("redis.tls", "needs redis.addrs: the embedded Redis speaks plaintext")
		}
		if r.Username != "" || r.Password != "" || r.PasswordFile != "" {
			bad("redis.username", "needs redis.addrs: the embedded Redis has no users (username, password, password_file)")
		}
	}
}

// Warnings are the settings serve runs with but should not: an
// insecure TLS verification, an inline password. Serve logs each at
// start.
func (c *Config) Warnings() []string {
	var out []string
	for _, t := range []struct {
		path string
		tls  ClientTLSConfig
	}{{"kafka.tls", c.Kafka.TLS}, {"redis.tls", c.Redis.TLS}} {
		if t.tls.InsecureSkipVerify {
			out = append(out, t.path+".insecure_skip_verify is true: the server's certificate is not verified, anyone in between can read and change the traffic")
		}
	}
	if c.Redis.Password != "" {
		out = append(out, "redis.password holds the password in the configuration file: prefer redis.password_file")
	}
	return out
}
