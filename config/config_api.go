package config

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/internal/tokencheck"
	"github.com/shrike-cep/shrike/internal/yamlnode"
)

// DefaultAPIMaxRequestBytes bounds one API request (a ruleset upload, a
// batch of events to publish, a rule test's events) when
// api.max_request_bytes is not set: gRPC's own default, and four times
// the largest ruleset the rules package accepts.
const DefaultAPIMaxRequestBytes = 4 << 20

// DefaultAPIRequestTimeout bounds one unary API call when
// api.request_timeout is not set: ample for a ruleset of the largest
// size to compile, short enough that a costly call cannot hold the
// server's CPUs for long.
const DefaultAPIRequestTimeout = 30 * time.Second

// Defaults of api.max_streams and api.max_streams_per_token: alert
// subscriptions are few (dashboards, integrations, tails), and each
// costs the server a goroutine and its share of the feed's reads.
const (
	DefaultAPIMaxStreams         = 100
	DefaultAPIMaxStreamsPerToken = 20
)

// APIConfig configures the gRPC API and its REST gateway (api/README.md).
type APIConfig struct {
	// Tokens are the bearer tokens clients authenticate with. None means
	// no authentication, which Validate accepts only while both listeners
	// are on loopback.
	Tokens []TokenConfig `yaml:"tokens"`
	// TLS, when its files are set, serves every listener over TLS: HTTP,
	// gRPC and admin.
	TLS TLSConfig `yaml:"tls"`
	// MaxRequestBytes bounds one request; larger ones are refused
	// (RESOURCE_EXHAUSTED, HTTP 413). Default DefaultAPIMaxRequestBytes.
	MaxRequestBytes int `yaml:"max_request_bytes"`
	// RecentAlerts is how many of the latest alerts ListAlerts pages
	// through. Default feed.DefaultRecentAlerts.
	RecentAlerts int `yaml:"recent_alerts"`
	// MaxStreams bounds the alert subscriptions (SubscribeAlerts) open at
	// once; beyond, RESOURCE_EXHAUSTED (HTTP 429) names this field.
	// Default DefaultAPIMaxStreams.
	MaxStreams int `yaml:"max_streams"`
	// MaxStreamsPerToken bounds those of one bearer token, likewise.
	// Default DefaultAPIMaxStreamsPerToken.
	MaxStreamsPerToken int `yaml:"max_streams_per_token"`
	// RecordingsDir is a folder of recorded event files that TestRuleset
	// may run by name; empty disables recordings. Relative to the
	// configuration file.
	RecordingsDir string `yaml:"recordings_dir"`
	// RequestTimeout bounds every unary call (not SubscribeAlerts); past
	// it the call ends with DEADLINE_EXCEEDED (HTTP 504). Default
	// DefaultAPIRequestTimeout.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// MaxConcurrentExpensive bounds the expensive calls running at once:
	// ListAlerts with a filter, ValidateRuleset, TestRuleset, PutRuleset,
	// ExplainRuleset, DiffRulesets, GetRuleAutomaton, PutShadow, PromoteShadow and
	// GetShadowDiff. One more waits up to a second for a slot, then is
	// refused with RESOURCE_EXHAUSTED (HTTP 429). 0, the default: the
	// number of CPUs Go uses (GOMAXPROCS).
	MaxConcurrentExpensive int `yaml:"max_concurrent_expensive"`
}

// TokenConfig is one bearer token and what it may do.
type TokenConfig struct {
	// Name identifies the token in logs; never the token itself.
	Name string `yaml:"name"`
	// Token is the secret. Prefer TokenFile, which keeps it out of the
	// configuration. Either way it must be strong (tokencheck.Check: at least
	// 128 bits, e.g. `openssl rand -hex 32`), or serve refuses to start.
	Token string `yaml:"token" secret:"true"`
	// TokenFile holds the secret (surrounding white space is dropped).
	// Relative to the configuration file.
	TokenFile string `yaml:"token_file"`
	// Scopes are the scopes the token grants: rules:read, rules:write,
	// alerts:read, events:write, lists:write.
	Scopes []shrikev1.Scope `yaml:"scopes"`
}

// Secret returns the token's secret, read from TokenFile when that is set
// (without surrounding white space), once it passed tokencheck.Check: a token
// an attacker could guess is refused at start, naming the token, its file
// and how to generate a good one.
func (t TokenConfig) Secret() (string, error) {
	if t.TokenFile == "" {
		if err := tokencheck.Check(t.Token); err != nil {
			return "", fmt.Errorf("token %q: %w", t.Name, err)
		}
		return t.Token, nil
	}
	b, err := os.ReadFile(t.TokenFile)
	if err != nil {
		return "", fmt.Errorf("token %q: %w", t.Name, err)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", fmt.Errorf("token %q: %s is empty; %s", t.Name, t.TokenFile, tokencheck.Generate)
	}
	if err := tokencheck.Check(secret); err != nil {
		return "", fmt.Errorf("token %q in %s: %w", t.Name, t.TokenFile, err)
	}
	return secret, nil
}

// TLSConfig names a PEM certificate (chain) and its key.
type TLSConfig struct {
	// CertFile is the PEM certificate (chain) every listener presents;
	// with KeyFile. Relative to the configuration file.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile. Relative to the
	// configuration file.
	KeyFile string `yaml:"key_file"`
}

// Enabled reports whether TLS is configured.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" }

// configPath is a path-valued field and its dotted name.
type configPath struct {
	field string
	v     *string
}

// apiPaths are the API's file paths, which a configuration file gives
// relative to its own folder.
func (c *Config) apiPaths() []configPath {
	ps := []configPath{
		{"api.tls.cert_file", &c.API.TLS.CertFile},
		{"api.tls.key_file", &c.API.TLS.KeyFile},
		{"api.recordings_dir", &c.API.RecordingsDir},
	}
	for i := range c.API.Tokens {
		ps = append(ps, configPath{fmt.Sprintf("api.tokens[%d].token_file", i), &c.API.Tokens[i].TokenFile})
	}
	return ps
}

// structList decodes a YAML list of mappings into a slice of structs
// (api.tokens); item i's fields are at path[i].
func (d *configDecoder) structList(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.add(d.pos(n), path, "must be a list of mappings, not %s", yamlnode.KindName(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		at := fmt.Sprintf("%s[%d]", path, i)
		d.value(item, out.Index(i), at)
		// Errors about a field the item lacks point at the item.
		d.cfg.setOrigin(at, origin{pos: d.pos(d.resolve(item))})
	}
	v.Set(out)
	d.cfg.setOrigin(path, origin{pos: d.pos(n)})
}

// validateAPI checks the api section, and that tokens are configured
// whenever a listener is reachable from beyond this host.
func (c *Config) validateAPI(bad func(path, format string, args ...any)) {
	names := map[string]bool{}
	secrets := map[string]bool{}
	for i, t := range c.API.Tokens {
		at := fmt.Sprintf("api.tokens[%d]", i)
		switch {
		case t.Name == "":
			bad(at, "every token needs a name")
		case strings.TrimSpace(t.Name) == "":
			bad(at+".name", "every token needs a name")
		case names[t.Name]:
			bad(at+".name", "token name %q is used twice", t.Name)
		}
		names[t.Name] = true
		switch {
		case t.Token != "" && t.TokenFile != "":
			bad(at+".token", "give token or token_file, not both")
		case t.Token == "" && t.TokenFile == "":
			bad(at, "token %q has neither token nor token_file", t.Name)
		case t.Token != "" && secrets[t.Token]:
			bad(at+".token", "the same secret is given twice")
		case t.Token != "":
			// A token_file is checked when serve reads it (Secret).
			if err := tokencheck.Check(t.Token); err != nil {
				bad(at+".token", "token %q: %v", t.Name, err)
			}
		}
		secrets[t.Token] = true
		if len(t.Scopes) == 0 {
			bad(at+".scopes", "token %q grants no scope (known: %s)", t.Name, shrikev1.ScopeList(shrikev1.Scopes()))
		}
		for _, s := range t.Scopes {
			if !s.Known() {
				bad(at+".scopes", "unknown scope %q (known: %s)", s, shrikev1.ScopeList(shrikev1.Scopes()))
			}
		}
	}
	if (c.API.TLS.CertFile == "") != (c.API.TLS.KeyFile == "") {
		bad("api.tls.cert_file", "cert_file and key_file go together")
	}
	if c.API.MaxRequestBytes < 1024 {
		bad("api.max_request_bytes", "must be at least 1024, not %d", c.API.MaxRequestBytes)
	}
	if c.API.RecentAlerts < 1 {
		bad("api.recent_alerts", "must be at least 1, not %d", c.API.RecentAlerts)
	}
	if c.API.RequestTimeout < 100*time.Millisecond {
		bad("api.request_timeout", "must be at least 100ms, not %s", c.API.RequestTimeout)
	}
	if c.API.MaxConcurrentExpensive < 0 {
		bad("api.max_concurrent_expensive", "must not be negative, not %d (0 is the number of CPUs)", c.API.MaxConcurrentExpensive)
	}
	if c.API.MaxStreams < 1 {
		bad("api.max_streams", "must be at least 1, not %d", c.API.MaxStreams)
	}
	if c.API.MaxStreamsPerToken < 1 {
		bad("api.max_streams_per_token", "must be at least 1, not %d", c.API.MaxStreamsPerToken)
	}
	if len(c.API.Tokens) == 0 {
		for _, l := range []struct{ path, addr string }{{"http.listen", c.HTTP.Listen}, {"grpc.listen", c.GRPC.Listen}} {
			// A malformed address is reported on its own.
			if checkHostPort(l.addr, true) == nil && !IsLoopback(l.addr) {
				bad(l.path, "%q is reachable beyond this host: configure api.tokens (a listener beyond loopback requires bearer tokens)", l.addr)
			}
		}
	}
}

// IsLoopback reports whether a listening address host:port accepts
// connections from this host only: a loopback IP or "localhost". An empty
// host (every interface) and any other name are not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
