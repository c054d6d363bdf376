package delivery

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBackoffDoublesToTheCapWithJitter(t *testing.T) {
	s := &sender{hook: Webhook{Backoff: time.Second, MaxBackoff: 10 * time.Second}}
	for _, tt := range []struct {
		jitter float64
		want   []time.Duration
	}{
		{0, []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}},
		{0.5, []time.Duration{750 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second, 6 * time.Second, 7500 * time.Millisecond, 7500 * time.Millisecond}},
	} {
		s.jitter = func() float64 { return tt.jitter }
		for i, want := range tt.want {
			if got := s.backoff(i + 1); got != want {
				t.Errorf("jitter %v: backoff(%d) = %v, want %v", tt.jitter, i+1, got, want)
			}
		}
	}
	// A large attempt number neither overflows nor passes the cap.
	s.jitter = func() float64 { return 0.999 }
	if got := s.backoff(200); got <= 0 || got > 10*time.Second {
		t.Errorf("backoff(200) = %v", got)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{"0", 0},
		{"-3", 0},
		{"999999999999", MaxRetryAfter},
		{"Mon, 07 Dec 2026 10:00:30 GMT", 30 * time.Second},
		{"Mon, 07 Dec 2026 09:00:00 GMT", 0},
		{"Mon, 07 Dec 2027 10:00:00 GMT", MaxRetryAfter},
		{"soon", 0},
	} {
		if got := retryAfter(tt.v, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

// receiver is a loopback HTTP server whose answers the test scripts:
// answer(n) handles the n-th request (from 1).
type receiver struct {
	*httptest.Server
	mu    sync.Mutex
	reqs  []receivedRequest
	count atomic.Int64
}

type receivedRequest struct {
	header http.Header
	body   []byte
}

func startReceiver(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		n := int(rc.count.Add(1))
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, receivedRequest{r.Header.Clone(), b})
		rc.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		answer(n, w, r)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []receivedRequest {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]receivedRequest(nil), rc.reqs...)
}

// testSender is a sender to url that records its waits instead of
// sleeping.
func testSender(t *testing.T, url string, w Webhook) (*sender, *[]time.Duration) {
	t.Helper()
	w.Name, w.URL = "soc", url
	if w.Secret == nil {
		w.Secret = []byte("k3y-0123456789abcdef")
	}
	w.fill()
	s, err := newSender(w, DefaultUserAgent)
	if err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	s.jitter = func() float64 { return 0 }
	s.sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	return s, &waits
}

func TestDeliverRetriesUntilAccepted(t *testing.T) {
	rc := startReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		switch n {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		case 3:
			w.WriteHeader(http.StatusRequestTimeout)
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	})
	s, waits := testSender(t, rc.URL+"/hook", Webhook{})
	retried := 0
	body := []byte(`{"id":"a1"}`)
	n, err := s.deliver(context.Background(), "a1", body, func() { retried++ })
	if err != nil || n != 4 || retried != 3 {
		t.Fatalf("deliver = %d attempts, %v, %d retries; want 4, nil, 3", n, err, retried)
	}
	if want := []time.Duration{500 * time.Millisecond, 7 * time.Second, 2 * time.Second}; !equalDurations(*waits, want) {
		t.Errorf("waits = %v, want %v (the backoff, then Retry-After, then the backoff)", *waits, want)
	}
	for i, r := range rc.requests() {
		ts := r.header.Get(HeaderTimestamp)
		if err := Verify(s.hook.Secret, r.header.Get(HeaderSignature), r.body); err != nil {
			t.Errorf("attempt %d: %v", i+1, err)
		}
		if err := VerifyTimestamped(s.hook.Secret, r.header.Get(HeaderTimestampedSignature), ts, r.body, time.Now(), time.Minute); err != nil {
			t.Errorf("attempt %d: timestamped: %v", i+1, err)
		}
		if got := r.header.Get(HeaderAlertID); got != "a1" {
			t.Errorf("attempt %d: %s = %q", i+1, HeaderAlertID, got)
		}
		if got, want := r.header.Get(HeaderAttempt), string(rune('1'+i)); got != want {
			t.Errorf("attempt %d: %s = %q", i+1, HeaderAttempt, got)
		}
		if got := r.header.Get("Content-Type"); got != "application/json" {
			t.Errorf("attempt %d: Content-Type %q", i+1, got)
		}
		if got := r.header.Get("User-Agent"); got != DefaultUserAgent {
			t.Errorf("attempt %d: User-Agent %q", i+1, got)
		}
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDeliverGivesUp(t *testing.T) {
	tests := []struct {
		name         string
		answer       func(n int, w http.ResponseWriter, r *http.Request)
		wantAttempts int
		wantErr      string
	}{
		{"4xx is permanent", func(_ int, w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, "bad\x00 payload\n")
		}, 1, `HTTP 400: "bad  payload"`},
		{"5xx until the last attempt", func(_ int, w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
		}, 3, "HTTP 500"},
		{"a redirect is not followed", func(_ int, w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, 1, "HTTP 302: redirects are not followed"},
		{"a huge error body is quoted in part", func(_ int, w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, strings.Repeat("x", 10<<20))
		}, 3, "HTTP 502: \"xxxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := startReceiver(t, tt.answer)
			s, _ := testSender(t, rc.URL+"/hook/SECRETPATH", Webhook{MaxAttempts: 3})
			n, err := s.deliver(context.Background(), "a1", []byte(`{}`), func() {})
			if n != tt.wantAttempts || err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("deliver = %d attempts, %v; want %d, an error with %q", n, err, tt.wantAttempts, tt.wantErr)
			}
			if len(err.Error()) > 512 || strings.Contains(err.Error(), "SECRETPATH") {
				t.Errorf("error too long or naming the URL's path: %.600s", err)
			}
			if got := int(rc.count.Load()); got != tt.wantAttempts {
				t.Errorf("the receiver got %d requests, want %d (no redirect followed)", got, tt.wantAttempts)
			}
		})
	}
}

func TestDeliverTimeoutAndRefusedRetry(t *testing.T) {
	release := make(chan struct{})
	rc := startReceiver(t, func(_ int, _ http.ResponseWriter, _ *http.Request) { <-release })
	defer close(release)
	s, _ := testSender(t, rc.URL+"/hook/SECRETPATH", Webhook{MaxAttempts: 2, Timeout: 100 * time.Millisecond})
	n, err := s.deliver(context.Background(), "a1", []byte(`{}`), func() {})
	if n != 2 || err == nil || !strings.Contains(err.Error(), "no response within 100ms") {
		t.Errorf("slow receiver: deliver = %d, %v", n, err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	s, _ = testSender(t, "http://"+addr+"/hook/SECRETPATH", Webhook{MaxAttempts: 3})
	n, err = s.deliver(context.Background(), "a1", []byte(`{}`), func() {})
	if n != 3 || err == nil || !strings.Contains(err.Error(), "POST http://"+addr+":") || strings.Contains(err.Error(), "SECRETPATH") {
		t.Errorf("refused connection: deliver = %d, %v", n, err)
	}
}

func TestDeliverStopsWithContext(t *testing.T) {
	rc := startReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	s, _ := testSender(t, rc.URL, Webhook{MaxAttempts: 100})
	ctx, cancel := context.WithCancel(context.Background())
	s.sleep = func(context.Context, time.Duration) error { cancel(); return context.Canceled }
	n, err := s.deliver(ctx, "a1", []byte(`{}`), func() {})
	if n != 1 || !errors.Is(err, context.Canceled) {
		t.Errorf("deliver = %d, %v; want 1, context.Canceled", n, err)
	}
}

func TestSlackWithoutSecretIsUnsigned(t *testing.T) {
	rc := startReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {})
	w := Webhook{Name: "chat", URL: rc.URL, Format: FormatSlack}
	w.fill()
	if err := w.check(); err != nil {
		t.Fatal(err)
	}
	s, err := newSender(w, DefaultUserAgent)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.deliver(context.Background(), "a1", []byte(`{}`), func() {}); err != nil {
		t.Fatal(err)
	}
	if h := rc.requests()[0].header; h.Get(HeaderSignature) != "" || h.Get(HeaderTimestamp) == "" {
		t.Errorf("headers %v: want a timestamp and no signature", h)
	}
	w.Format = FormatJSON
	if err := w.check(); err == nil || !strings.Contains(err.Error(), "secret: required for format json") {
		t.Errorf("json without a secret: %v", err)
	}
}
