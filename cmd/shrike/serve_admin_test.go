package main

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/config"
	"github.com/shrike-cep/shrike/internal/testkit"
)

// TestServeAdminListener runs serve with bearer tokens and TLS: /metrics
// and /debug/pprof/ are not on the API's listener, with a token or
// without, and are on the admin listener; /healthz and /readyz are on
// both.
func TestServeAdminListener(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	const token = "tZ8q3LwP0vXk5Rm2Yc7Hn4Jd9Bf6Gs1A"
	cfg := testServeConfig("")
	cfg.API.Tokens = []config.TokenConfig{{Name: "ops", Token: token, Scopes: []shrikev1.Scope{"rules:read", "alerts:read"}}}
	cert, key := writeSelfSigned(t)
	cfg.API.TLS = config.TLSConfig{CertFile: cert, KeyFile: key}
	var logs testkit.Buffer
	s, err := startServer(ctx, env{stderr: newOutput(&logs), clock: time.Now}, cfg)
	if err != nil {
		t.Fatalf("start: %v\n%s", err, logs.String())
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- s.run(runCtx) }()

	client := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the test's own self-signed certificate
	}}
	defer client.CloseIdleConnections()
	get := func(url, bearer string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer func() { _ = resp.Body.Close() }() // read to the end: nothing is lost
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		return resp.StatusCode, string(b)
	}
	api := "https://" + s.http.Addr()
	admin := "https://" + s.admin.Addr()
	waitReady(ctx, t, client, api)

	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1"} {
		for _, bearer := range []string{"", token} {
			if code, body := get(api+path, bearer); code != http.StatusNotFound {
				t.Errorf("API listener: GET %s (token %t) = %d %.80q, want 404", path, bearer != "", code, body)
			}
		}
	}
	for _, tt := range []struct {
		url, bearer, want string
		code              int
	}{
		{api + "/healthz", "", "ok", 200},
		{api + "/readyz", "", "ready", 200},
		{api + "/v1/rulesets", "", "TOKEN_MISSING", 401},
		{api + "/v1/rulesets", token, "rulesets", 200},
		{admin + "/metrics", "", "shrike_engine_ready 1", 200},
		{admin + "/debug/pprof/", "", "goroutine", 200},
		{admin + "/healthz", "", "ok", 200},
		{admin + "/readyz", "", "ready", 200},
		{admin + "/v1/rulesets", token, "404", 404},
	} {
		if code, body := get(tt.url, tt.bearer); code != tt.code || !strings.Contains(body, tt.want) {
			t.Errorf("GET %s = %d %.200q, want %d with %q", tt.url, code, body, tt.code, tt.want)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("run: %v\n%s", err, logs.String())
	}
}

// TestServeAdminOff: admin.listen off serves no admin listener, and the
// API's listener still has no /metrics.
func TestServeAdminOff(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := testServeConfig("")
	cfg.Admin.Listen = config.AdminOff
	var logs testkit.Buffer
	s, err := startServer(t.Context(), env{stderr: newOutput(&logs), clock: time.Now}, cfg)
	if err != nil {
		t.Fatalf("start: %v\n%s", err, logs.String())
	}
	defer s.close()
	if s.admin != nil {
		t.Errorf("admin listener on %s, want none", s.admin.Addr())
	}
	for _, want := range []string{"admin listener off", "metrics:      off (admin.listen)"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the output lacks %q:\n%s", want, logs.String())
		}
	}
}
