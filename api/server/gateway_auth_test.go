package server_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRESTAuthBeforeBody: with tokens configured, a REST request without
// a valid token is refused with 401 as soon as its headers are in, and
// its connection closed, while its body has not come: the server reads
// none of it and holds nothing for it. Before, the gateway read the whole body first, so a client
// with no token held a connection and up to max_request_bytes of memory
// for as long as it took to send it.
func TestRESTAuthBeforeBody(t *testing.T) {
	e := newEnv(t, envOptions{tokens: tokens})
	for _, tt := range []struct {
		name, auth, framing, reason string
	}{
		{"no token, small body", "", "Content-Length: 1000", "TOKEN_MISSING"},
		{"no token, large body", "", "Content-Length: 3000000", "TOKEN_MISSING"},
		{"no token, chunked body", "", "Transfer-Encoding: chunked", "TOKEN_MISSING"},
		{"unknown token", "Authorization: Bearer guess\r\n", "Content-Length: 1000", "TOKEN_INVALID"},
		{"not a bearer token", "Authorization: Basic dXNlcjpwYXNz\r\n", "Content-Length: 1000", "TOKEN_INVALID"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = conn.Close() }() // read to the end below
			// The headers and the start of a body, which never ends.
			start := "{\"source\": \""
			if tt.framing == "Transfer-Encoding: chunked" {
				start = fmt.Sprintf("%x\r\n%s", 1000, start)
			}
			t0 := time.Now()
			if _, err := fmt.Fprintf(conn, "POST /v1/rulesets:validate HTTP/1.1\r\nHost: shrike\r\n%sContent-Type: application/json\r\n%s\r\n\r\n%s",
				tt.auth, tt.framing, start); err != nil {
				t.Fatal(err)
			}
			if err := conn.SetReadDeadline(t0.Add(5 * time.Second)); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no answer while the body is pending (after %v): %v", time.Since(t0).Round(time.Millisecond), err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("read the answer: %v", err)
			}
			var st struct {
				Details []struct {
					Reason string `json:"reason"`
				} `json:"details"`
			}
			if err := json.Unmarshal(body, &st); err != nil {
				t.Fatalf("answer %s: %v", body, err)
			}
			if resp.StatusCode != http.StatusUnauthorized || len(st.Details) == 0 || st.Details[0].Reason != tt.reason {
				t.Errorf("answer %d %s, want 401 %s", resp.StatusCode, body, tt.reason)
			}
			if !resp.Close {
				t.Error("the connection stays open after a refusal that left the body unread")
			}
			refused := time.Since(t0)
			// The server ends the connection too, rather than wait for
			// the body until the read timeout (a minute).
			if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, conn); err != nil {
				t.Errorf("the connection is still open %v after the refusal: %v", time.Since(t0).Round(time.Millisecond), err)
			}
			t.Logf("refused after %v, connection closed after %v", refused.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
		})
	}

	t.Run("a valid token still uploads", func(t *testing.T) {
		e.token = tokenFor("rules:read", true)
		code, body := e.rest(t, "POST", "/v1/rulesets:validate", map[string]string{"source": paymentsSrc})
		if code != http.StatusOK {
			t.Errorf("validate with a token = %d %v", code, body)
		}
	})
}
