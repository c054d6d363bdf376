package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Bounds on what a receiver's response may make a sender hold.
const (
	// maxResponseHeaderBytes bounds a response's headers.
	maxResponseHeaderBytes = 64 << 10
	// maxResponseBody bounds the body read from a response (to reuse the
	// connection); the rest is left unread and the connection closed.
	maxResponseBody = 64 << 10
	// maxErrorBody is how much of a failed response's body the error
	// (logs, the undelivered record's reason) quotes.
	maxErrorBody = 256
)

// sender makes the attempts of one webhook.
type sender struct {
	hook   Webhook
	client *http.Client
	// origin is the URL's scheme and host, what errors and logs name of
	// it: the path of a Slack or similar URL is itself a secret.
	origin string
	now    func() time.Time
	// jitter returns a number in [0, 1).
	jitter func() float64
	// sleep waits d or until ctx ends; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

func newSender(w Webhook, userAgent string) (*sender, error) {
	u, err := url.Parse(w.URL)
	if err != nil {
		return nil, fmt.Errorf("webhook %q: url: %w", w.Name, CheckURL(w.URL))
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxResponseHeaderBytes = maxResponseHeaderBytes
	tr.TLSHandshakeTimeout = w.Timeout
	tr.MaxIdleConnsPerHost = w.MaxInFlight
	tr.DisableCompression = true // a small gzip body must not unpack to a large one
	s := &sender{
		hook: w,
		client: &http.Client{
			Transport: userAgentTransport{tr, userAgent},
			// A redirect is not followed: the receiver's address is the
			// configured one, and a redirect is answered like a 4xx.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		origin: u.Scheme + "://" + u.Host,
		now:    time.Now,
		jitter: rand.Float64,
		sleep:  sleepCtx,
	}
	return s, nil
}

type userAgentTransport struct {
	http.RoundTripper
	agent string
}

func (t userAgentTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r.Header.Set("User-Agent", t.agent)
	return t.RoundTripper.RoundTrip(r)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// outcome is the result of one attempt.
type outcome struct {
	// err is nil when the receiver took the alert (2xx).
	err error
	// permanent: another attempt cannot succeed (a 4xx but 408 and 429,
	// a redirect).
	permanent bool
	// retryAfter is the wait the receiver asked for (Retry-After), 0
	// if none.
	retryAfter time.Duration
}

// attempt POSTs body once.
func (s *sender) attempt(ctx context.Context, alertID string, body []byte, n int) outcome {
	ctx, cancel := context.WithTimeout(ctx, s.hook.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.hook.URL, bytes.NewReader(body))
	if err != nil {
		return outcome{err: fmt.Errorf("POST %s: %w", s.origin, err), permanent: true}
	}
	ts := s.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderAlertID, alertID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderWebhook, s.hook.Name)
	req.Header.Set(HeaderAttempt, strconv.Itoa(n))
	if len(s.hook.Secret) > 0 {
		req.Header.Set(HeaderSignature, Sign(s.hook.Secret, body))
		req.Header.Set(HeaderTimestampedSignature, SignTimestamped(s.hook.Secret, ts, body))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return outcome{err: s.transportError(ctx, err)}
	}
	defer func() { _ = resp.Body.Close() }() // the body was read as far as it will be
	head, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	// Read on to a bound so that the connection can be reused; a larger
	// body closes it.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody))
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return outcome{}
	case code >= 300 && code < 400:
		return outcome{err: fmt.Errorf("POST %s: HTTP %d: redirects are not followed", s.origin, code), permanent: true}
	}
	o := outcome{err: fmt.Errorf("POST %s: HTTP %d%s", s.origin, code, quoteBody(head))}
	if code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests {
		o.permanent = true
		return o
	}
	o.retryAfter = retryAfter(resp.Header.Get("Retry-After"), s.now())
	return o
}

// transportError names a failed request without its URL (url.Error's
// text would hold it) and says when it timed out.
func (s *sender) transportError(ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("POST %s: no response within %s", s.origin, s.hook.Timeout)
	}
	return fmt.Errorf("POST %s: %w", s.origin, err)
}

// quoteBody is ": " and the start of a response body as printable text,
// or "" for an empty one.
func quoteBody(b []byte) string {
	s := strings.TrimSpace(strings.Map(func(r rune) rune {
		if r == utf8RuneError || !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, string(b)))
	if s == "" {
		return ""
	}
	return ": " + strconv.Quote(cut(s, maxErrorBody))
}

const utf8RuneError = '\uFFFD'

// retryAfter parses a Retry-After value, seconds or an HTTP date, into
// a wait bounded by MaxRetryAfter; 0 when absent or unparsable.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		d = time.Duration(min(secs, int64(MaxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}

// backoff is the wait after the n-th failed attempt (n from 1): Backoff
// doubled n-1 times, at most MaxBackoff, drawn between half and all of it.
func (s *sender) backoff(n int) time.Duration {
	d := s.hook.Backoff
	for i := 1; i < n && d < s.hook.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.hook.MaxBackoff)
	return d/2 + time.Duration(s.jitter()*float64(d/2))
}

// deliver makes attempts until one succeeds, one fails for good, or
// MaxAttempts failed; retried is called before each attempt after the
// first. It returns the number of attempts and the last error, nil once
// delivered. When ctx ends it returns ctx's error: the delivery neither
// succeeded nor failed.
func (s *sender) deliver(ctx context.Context, alertID string, body []byte, retried func()) (int, error) {
	for n := 1; ; n++ {
		o := s.attempt(ctx, alertID, body, n)
		if o.err == nil {
			return n, nil
		}
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		if o.permanent || n >= s.hook.MaxAttempts {
			return n, o.err
		}
		wait := o.retryAfter
		if wait == 0 {
			wait = s.backoff(n)
		}
		if err := s.sleep(ctx, wait); err != nil {
			return n, err
		}
		retried()
	}
}
