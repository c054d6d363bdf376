package tokencheck_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/shrike-cep/shrike/internal/tokencheck"
)

func TestCheckRefuses(t *testing.T) {
	for _, tt := range []struct{ name, secret, want string }{
		{"short", "s3cret", "bits"},
		{"the old fixtures", "admin-secret", "bits"},
		{"a word", "password", "bits"},
		{"a word repeated", "changemechangemechangemechangeme", "bits"},
		{"a word and little else", "Password-For-Prod-Ci", "bits"},
		{"one character", strings.Repeat("a", 64), "distinct"},
		{"few characters", strings.Repeat("abcd", 16), "distinct"},
		{"a repeated hex run", strings.Repeat("0123456789abcdef", 4), "repeat or continue a run"},
		{"the alphabet", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "repeat or continue a run"},
		{"31 hex digits", randomHex(t, 16)[:31], "bits"},
		{"21 base64 characters", "Zq3xW9kPb2Lm7RtY4vHc8", "bits"},
		{"digits only, too few", "8240193756482019375", "bits"},
		{"a space", "k8Qz 3vLp9XwR2mTn7YbC4hJs6", "space"},
		{"non-ASCII", "k8Qz3vLp9XwR2mTn7YbC4hJs6é", "non-ASCII"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tokencheck.Check(tt.secret)
			if !errors.Is(err, tokencheck.ErrWeak) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check(%q) = %v, want ErrWeak saying %q", tt.secret, err, tt.want)
			}
			if !strings.Contains(err.Error(), "openssl rand -hex 32") {
				t.Errorf("the error does not say how to generate a token: %v", err)
			}
		})
	}
}

func TestCheckAccepts(t *testing.T) {
	for _, tt := range []struct{ name, secret string }{
		{"32 hex digits", "4f9c2a7e1b8d3f6a0c5e9b2d7a4f1c8e"},
		{"22 base64 characters", "Zq3xW9kPb2Lm7RtY4vHc8N"},
		{"a prefix before random characters", "ci-token-Zq3xW9kPb2Lm7RtY4vHc8NpQ"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tokencheck.Check(tt.secret); err != nil {
				t.Errorf("Check(%q) = %v", tt.secret, err)
			}
		})
	}
	// What the error message recommends always passes.
	for range 2000 {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		for _, s := range []string{hex.EncodeToString(b), base64.StdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b)} {
			if err := tokencheck.Check(s); err != nil {
				t.Fatalf("Check(%q) = %v", s, err)
			}
		}
	}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
