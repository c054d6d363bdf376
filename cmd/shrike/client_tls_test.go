package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shrike-cep/shrike/config"
	"github.com/shrike-cep/shrike/internal/testkit"
)

// TestClientTLS runs the client against serve with TLS: with the CA it
// connects, without it the certificate is refused, and in plain text the
// call fails.
func TestClientTLS(t *testing.T) {
	certFile, keyFile := writeSelfSigned(t)
	cfg := testServeConfig("")
	cfg.API.TLS = config.TLSConfig{CertFile: certFile, KeyFile: keyFile}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var logs testkit.Buffer
	s, err := startServer(ctx, env{stderr: newOutput(&logs), clock: time.Now}, cfg)
	if err != nil {
		t.Fatalf("start: %v\n%s", err, logs.String())
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	addr := s.api.srv.Addr()

	tests := []struct {
		name   string
		args   []string
		want   int
		stderr string
	}{
		{"the CA given", []string{"--ca-file", certFile}, 0, "no rulesets"},
		{"system roots", []string{"--tls"}, 1, "certificate"},
		{"plain text", nil, 1, "list rulesets: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			e := env{stdin: strings.NewReader(""), stdout: newOutput(&stdout), stderr: newOutput(&stderr), clock: time.Now}
			args := append([]string{"rules", "list", "--server", addr, "--timeout", "10s"}, tt.args...)
			if code := run(ctx, args, e); code != tt.want {
				t.Errorf("exit status %d, want %d\nstderr:\n%s", code, tt.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr does not say %q:\n%s", tt.stderr, stderr.String())
			}
		})
	}
}

// TestTokenInTheClearWarning checks that a token about to cross the
// network without TLS is warned about, and one to loopback is not.
func TestTokenInTheClearWarning(t *testing.T) {
	tests := []struct {
		server string
		want   bool
	}{
		{closedPort(t), false},
		{"192.0.2.1:9", true}, // TEST-NET-1: never answers
	}
	for _, tt := range tests {
		t.Run(tt.server, func(t *testing.T) {
			var stderr bytes.Buffer
			e := env{stdin: strings.NewReader(""), stdout: newOutput(&bytes.Buffer{}), stderr: newOutput(&stderr), clock: time.Now}
			run(t.Context(), []string{"rules", "list", "--server", tt.server, "--token", "t", "--timeout", "100ms"}, e)
			if got := strings.Contains(stderr.String(), "warning: sending the token to "+tt.server+" without TLS"); got != tt.want {
				t.Errorf("warned: %v, want %v\nstderr:\n%s", got, tt.want, stderr.String())
			}
		})
	}
}
