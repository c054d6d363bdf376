package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shrike-cep/shrike/config"
)

// writeSelfSigned writes a self-signed certificate for 127.0.0.1, which is
// its own CA, and its key, and returns their paths.
func writeSelfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "shrike test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestClientTLS runs the client against serve with TLS: with the CA it
// connects, without it the certificate is refused, and in plain text the
// call fails.
func TestClientTLS(t *testing.T) {
	certFile, keyFile := writeSelfSigned(t)
	cfg := testServeConfig("")
	cfg.API.TLS = config.TLSConfig{CertFile: certFile, KeyFile: keyFile}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var logs syncBuffer
	s, err := startServer(ctx, env{stderr: &logs, clock: time.Now}, cfg)
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
			e := env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, clock: time.Now}
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
			e := env{stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &stderr, clock: time.Now}
			run(t.Context(), []string{"rules", "list", "--server", tt.server, "--token", "t", "--timeout", "100ms"}, e)
			if got := strings.Contains(stderr.String(), "warning: sending the token to "+tt.server+" without TLS"); got != tt.want {
				t.Errorf("warned: %v, want %v\nstderr:\n%s", got, tt.want, stderr.String())
			}
		})
	}
}
