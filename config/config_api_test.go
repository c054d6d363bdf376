package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestConfigAPIValidate(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{name: "loopback without tokens", src: "http: {listen: 'localhost:0'}\ngrpc: {listen: '[::1]:0'}\n"},
		{
			name: "beyond loopback without tokens",
			src:  "http: {listen: ':8080'}\ngrpc: {listen: '10.0.0.5:9090'}\n",
			want: []string{
				`c.yaml:1:16: http.listen: ":8080" is reachable beyond this host: configure api.tokens (a listener beyond loopback requires bearer tokens)`,
				`c.yaml:2:16: grpc.listen: "10.0.0.5:9090" is reachable beyond this host: configure api.tokens (a listener beyond loopback requires bearer tokens)`,
			},
		},
		{
			name: "beyond loopback with tokens",
			src:  "grpc: {listen: '0.0.0.0:9090'}\napi: {tokens: [{name: a, token: 9f2c4e7a1b6d8f3e0a5c2b7d4e9f1a6c, scopes: [rules:read]}]}\n",
		},
		{
			name: "bad tokens",
			src: `api:
  tokens:
    - {token: 9f2c4e7a1b6d8f3e0a5c2b7d4e9f1a6c, scopes: [rules:read]}
    - {name: a, token: 9f2c4e7a1b6d8f3e0a5c2b7d4e9f1a6c, token_file: f, scopes: [rules:admin]}
    - {name: a, scopes: []}
    - {name: b, token: 9f2c4e7a1b6d8f3e0a5c2b7d4e9f1a6c, scopes: [alerts:read]}
    - {name: c, token: changeme, scopes: [alerts:read]}
  tls: {key_file: k}
  max_request_bytes: 10
  recent_alerts: 0
  request_timeout: 10ms
  max_concurrent_expensive: -1
  max_streams: 0
  max_streams_per_token: -1
`,
			want: []string{
				`c.yaml:3:7: api.tokens[0]: every token needs a name`,
				`c.yaml:4:24: api.tokens[1].token: give token or token_file, not both`,
				`c.yaml:4:81: api.tokens[1].scopes: unknown scope "rules:admin" (known: rules:read, rules:write, alerts:read, events:write, lists:write)`,
				`c.yaml:5:7: api.tokens[2]: token "a" has neither token nor token_file`,
				`c.yaml:5:14: api.tokens[2].name: token name "a" is used twice`,
				`c.yaml:5:25: api.tokens[2].scopes: token "a" grants no scope (known: rules:read, rules:write, alerts:read, events:write, lists:write)`,
				`c.yaml:6:24: api.tokens[3].token: the same secret is given twice`,
				"c.yaml:7:24: api.tokens[4].token: token \"c\": too weak: about 0 bits, 128 needed (at least 32 hex digits or 22 base64 characters, not counting common words); generate one with `openssl rand -hex 32` or `head -c 32 /dev/urandom | base64`",
				`c.yaml:9:22: api.max_request_bytes: must be at least 1024, not 10`,
				`c.yaml:10:18: api.recent_alerts: must be at least 1, not 0`,
				`c.yaml:11:20: api.request_timeout: must be at least 100ms, not 10ms`,
				`c.yaml:12:29: api.max_concurrent_expensive: must not be negative, not -1 (0 is the number of CPUs)`,
				`c.yaml:13:16: api.max_streams: must be at least 1, not 0`,
				`c.yaml:14:26: api.max_streams_per_token: must be at least 1, not -1`,
				`api.tls.cert_file: cert_file and key_file go together`,
			},
		},
		{
			name: "tokens must be a list of mappings",
			src:  "api: {tokens: [x]}\n",
			want: []string{`c.yaml:1:16: api.tokens[0]: must be a mapping, not a string`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig("c.yaml", []byte(tt.src))
			if err == nil {
				err = cfg.Validate()
			}
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigAPIPathsRelativeToFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shrike.yaml")
	src := `api:
  tokens: [{name: a, token_file: secrets/a.token, scopes: [rules:read]}, {name: b, token_file: /abs/b.token, scopes: [rules:read]}]
  tls: {cert_file: tls/c.pem, key_file: tls/k.pem}
  recordings_dir: rec
`
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{cfg.API.Tokens[0].TokenFile, cfg.API.Tokens[1].TokenFile, cfg.API.TLS.CertFile, cfg.API.TLS.KeyFile, cfg.API.RecordingsDir}
	want := []string{filepath.Join(dir, "secrets/a.token"), "/abs/b.token", filepath.Join(dir, "tls/c.pem"), filepath.Join(dir, "tls/k.pem"), filepath.Join(dir, "rec")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
	if err := cfg.Set("api.tokens", "x", "--tokens"); err == nil {
		t.Error("Set of api.tokens from a flag succeeded")
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "127.5.0.1:0": true, "[::1]:9090": true, "localhost:1": true, "LOCALHOST:1": true,
		":8080": false, "0.0.0.0:1": false, "[::]:1": false, "10.1.2.3:80": false, "example.com:80": false, "nope": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestTokenSecret refuses weak secrets, inline or from a token_file,
// naming the token, its file and how to generate a good one.
func TestTokenSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const strong = "9f2c4e7a1b6d8f3e0a5c2b7d4e9f1a6c"
	good := write("good.token", "  "+strong+"\n")
	weak := write("weak.token", "changeme\n")
	repeated := write("repeated.token", strings.Repeat("a", 64))
	empty := write("empty.token", "\n")
	for _, tt := range []struct {
		name    string
		tok     TokenConfig
		want    string
		wantErr string
	}{
		{"inline", TokenConfig{Name: "a", Token: strong}, strong, ""},
		{"from a file, trimmed", TokenConfig{Name: "b", TokenFile: good}, strong, ""},
		{"weak inline", TokenConfig{Name: "c", Token: "admin-secret"}, "", `token "c": too weak: about `},
		{"weak file", TokenConfig{Name: "d", TokenFile: weak}, "", `token "d" in ` + weak + `: too weak: about 0 bits`},
		{"one character", TokenConfig{Name: "e", TokenFile: repeated}, "", `token "e" in ` + repeated + `: too weak: it has only 1 distinct characters`},
		{"empty file", TokenConfig{Name: "f", TokenFile: empty}, "", `token "f": ` + empty + ` is empty; generate one with`},
		{"missing file", TokenConfig{Name: "g", TokenFile: filepath.Join(dir, "nope")}, "", `token "g": open `},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.tok.Secret()
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("Secret() = %q, %v; want an error starting %q", got, err, tt.wantErr)
				}
				if tt.tok.TokenFile != "" && !strings.Contains(err.Error(), "nope") && !strings.Contains(err.Error(), "openssl rand -hex 32") {
					t.Errorf("the error does not say how to generate a token: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Secret() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
