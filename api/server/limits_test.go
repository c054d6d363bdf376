package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shrike-cep/shrike/api/server"
	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/rules"
)

func TestRequestAndRulesetLimits(t *testing.T) {
	e := newEnv(t, envOptions{
		api:     func(o *server.Options) { o.MaxRequestBytes = 4096 },
		compile: rules.CompileOptions{MaxSourceBytes: 2048},
	})
	// A comment pads a valid ruleset to n bytes.
	padded := func(n int) string {
		return paymentsSrc + "# " + strings.Repeat("x", n-len(paymentsSrc)-3) + "\n"
	}
	tests := []struct {
		name string
		src  string
		grpc string
		rest string
	}{
		{"within both limits", padded(1500), "OK", "200 "},
		{"over the ruleset limit", padded(3000), "InvalidArgument RULESET_INVALID", "400 RULESET_INVALID"},
		{"over the request limit", padded(5000), "ResourceExhausted ", "413 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.rulesets().ValidateRuleset(e.ctx(t), &shrikev1.ValidateRulesetRequest{Source: tt.src})
			if tt.grpc == "OK" && err != nil {
				t.Errorf("validate: %v", err)
			}
			_, err = e.rulesets().PutRuleset(e.ctx(t), &shrikev1.PutRulesetRequest{Name: "payments", Source: tt.src})
			got := "OK"
			if err != nil {
				got = statusOf(err)
			}
			if !strings.HasPrefix(got, tt.grpc) {
				t.Errorf("gRPC: got %s, want %s", got, tt.grpc)
			}
			code, body := e.rest(t, "PUT", "/v1/rulesets/payments", map[string]string{"source": tt.src})
			if got := restStatus(code, body); !strings.HasPrefix(got, tt.rest) {
				t.Errorf("REST: got %s, want %s", got, tt.rest)
			}
		})
	}
	t.Run("413 names the reason", func(t *testing.T) {
		code, body := e.rest(t, "PUT", "/v1/rulesets/payments", map[string]string{"source": padded(5000)})
		if got := restStatus(code, body); got != "413 REQUEST_TOO_LARGE" {
			t.Errorf("got %s", got)
		}
	})
}

func TestTLSOnBothListeners(t *testing.T) {
	cert, pool := testkit.SelfSignedTLS(t)
	e := newEnv(t, envOptions{tls: &tls.Config{Certificates: []tls.Certificate{cert}}, caPool: pool})
	e.put(t, "payments", paymentsSrc) // gRPC over TLS
	code, body := e.rest(t, "GET", "/v1/rulesets/payments", nil)
	if code != http.StatusOK || body["name"] != "payments" {
		t.Errorf("REST over TLS: %d %v", code, body)
	}
	// The REST stream works over TLS too.
	e.subscribeREST(t, "")

	t.Run("plain HTTP is refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "GET", strings.Replace(e.base, "https", "http", 1)+"/v1/rulesets", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close() // only the status mattered
			if resp.StatusCode == http.StatusOK {
				t.Error("plain HTTP got 200 from the TLS listener")
			}
		}
	})
}

// TestShutdownEndsStreams checks that a stopping server ends
// subscriptions with UNAVAILABLE at once rather than wait for them.
func TestShutdownEndsStreams(t *testing.T) {
	e := newEnv(t, envOptions{})
	sub := e.subscribeGRPC(t, &shrikev1.SubscribeAlertsRequest{})
	e.stop()
	select {
	case err := <-sub.errc:
		if got := statusOf(err); got != "Unavailable SHUTTING_DOWN" {
			t.Errorf("stream ended with %s, want Unavailable SHUTTING_DOWN", got)
		}
	case <-time.After(wait):
		t.Fatal("the stream outlived the server")
	}
}

// TestGRPCHandshakeTimeout: a connection to the gRPC listener that never
// sends its HTTP/2 preface is closed after HandshakeTimeout, so that idle
// connections cannot pile up for grpc-go's default two minutes.
func TestGRPCHandshakeTimeout(t *testing.T) {
	e := newEnv(t, envOptions{api: func(o *server.Options) { o.HandshakeTimeout = 300 * time.Millisecond }})
	c, err := net.Dial("tcp", e.api.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }() // the server closed it already, or the test failed
	start := time.Now()
	// The server would close it at once on a bad preface; this connection
	// says nothing at all. The read ends when the server closes it.
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1024)
	for {
		if _, err = c.Read(buf); err != nil {
			break
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("a silent connection was still open after %v, want it closed after the 300ms handshake timeout", time.Since(start).Round(time.Millisecond))
	}
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Errorf("the silent connection was closed after %v, before the handshake timeout", took)
	}
}
