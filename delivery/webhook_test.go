package delivery

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSignMatchesOpenSSL(t *testing.T) {
	secret, body := []byte("k3y-0123456789abcdef"), []byte(`{"id":"a1"}`)
	// printf '%s' '{"id":"a1"}' | openssl dgst -sha256 -hmac 'k3y-0123456789abcdef'
	const want = "sha256=f2b008ed219e462dcb9703998834c013207d3f0a068459c5663d06c0a8a0e797"
	if got := Sign(secret, body); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	// printf '%s' '1700000000.{"id":"a1"}' | openssl dgst -sha256 -hmac 'k3y-0123456789abcdef'
	const wantTimestamped = "sha256=a81a3d73f6aaca5dfe1d0b608577f9e3f46de99966793fd6854fab1a453aaf19"
	if got := SignTimestamped(secret, 1700000000, body); got != wantTimestamped {
		t.Errorf("SignTimestamped = %s, want %s", got, wantTimestamped)
	}
}

func TestVerify(t *testing.T) {
	secret := []byte("k3y-0123456789abcdef")
	body := []byte(`{"id":"a1"}`)
	sig := Sign(secret, body)
	if err := Verify(secret, sig, body); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if err := Verify(secret, sig, []byte(`{"id":"a2"}`)); err == nil {
		t.Error("Verify of another body: nil, want an error")
	}
	if err := Verify([]byte("other-0123456789abcdef"), sig, body); err == nil {
		t.Error("Verify with another secret: nil, want an error")
	}
}

func TestVerifyTimestamped(t *testing.T) {
	secret := []byte("k3y-0123456789abcdef")
	body := []byte(`{"id":"a1"}`)
	now := time.Unix(1700000000, 0)
	sig := SignTimestamped(secret, now.Unix(), body)
	tests := []struct {
		name              string
		secret            []byte
		sig, ts           string
		body              []byte
		at                time.Time
		wantErrSubstrings string
	}{
		{"valid", secret, sig, "1700000000", body, now, ""},
		{"valid within the window", secret, sig, "1700000000", body, now.Add(4 * time.Minute), ""},
		{"replayed after the window", secret, sig, "1700000000", body, now.Add(6 * time.Minute), "away from now"},
		{"another body", secret, sig, "1700000000", []byte(`{"id":"a2"}`), now, "signature mismatch"},
		{"another timestamp", secret, sig, "1700000001", body, now, "signature mismatch"},
		{"another secret", []byte("other-0123456789abcdef"), sig, "1700000000", body, now, "signature mismatch"},
		{"bad timestamp", secret, sig, "yesterday", body, now, "bad timestamp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyTimestamped(tt.secret, tt.sig, tt.ts, tt.body, tt.at, 5*time.Minute)
			switch {
			case tt.wantErrSubstrings == "" && err != nil:
				t.Errorf("VerifyTimestamped: %v, want nil", err)
			case tt.wantErrSubstrings != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErrSubstrings)):
				t.Errorf("VerifyTimestamped: %v, want an error with %q", err, tt.wantErrSubstrings)
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	tests := []struct{ url, want string }{
		{"https://cases.example/hooks/shrike", ""},
		{"http://127.0.0.1:8080/x?y=1", ""},
		{"", "must not be empty"},
		{"ftp://cases.example/x", `scheme "ftp" is not http or https`},
		{"cases.example/hooks", `scheme "" is not http or https`},
		{"https:///path", "has no host"},
		{"https://cases.example/x#frag", "fragment"},
		{"https://cases.example:99999/x", `port "99999" is not a port`},
		{"https://hooks.slack.com/services/T0/B0/SECRET\x7f", "not a URL"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := CheckURL(tt.url)
			if tt.want == "" {
				if err != nil {
					t.Errorf("CheckURL: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckURL: %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("the error repeats the URL: %v", err)
			}
		})
	}
}

func TestFilter(t *testing.T) {
	alert := map[string]any{
		"id": "a1", "severity": "high", "rule": "big", "labels": map[string]any{"team": "fraud"},
		"measures": map[string]any{"total": 12000.0},
	}
	tests := []struct {
		expr    string
		want    bool
		wantErr bool
	}{
		{"", true, false},
		{`alert.severity in ["high", "critical"]`, true, false},
		{`alert.severity == "low"`, false, false},
		{`alert.labels.team == "fraud" && alert.measures.total > 10000`, true, false},
		{`alert.nosuch == 1`, false, true}, // a missing field fails: not passed
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			f, err := CompileFilter(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Match(alert)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("Match = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestCompileFilterErrors(t *testing.T) {
	tests := []struct {
		expr string
		want string
	}{
		{`alert.severity in ["high"] && nosuch`, "1:31: undeclared reference to 'nosuch'\n | alert.severity in [\"high\"] && nosuch\n |                               ^"},
		{`alert.severity == `, "1:19: Syntax error"},
		{`"high"`, "1:1: a filter must be a bool expression, not string"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			_, err := CompileFilter(tt.expr)
			var fe *FilterError
			if !errors.As(err, &fe) {
				t.Fatalf("CompileFilter: %v, want a *FilterError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CompileFilter error:\n%s\nwant it to hold:\n%s", err, tt.want)
			}
		})
	}
}

var sampleAlert = `{"id":"67c0a78c","ruleset":"payments","rule":"account-takeover","rule_version":"3f4f",` +
	`"severity":"critical","key":"acct-<42>","summary":"account acct-42 drained & gone","labels":{"team":"fraud"},` +
	`"start":"2026-11-20T10:01:11Z","end":"2026-11-20T10:06:55Z","detected_at":"2026-11-21T01:13:29Z","timeout":false,` +
	`"events":{"fails":[{"x":1}]}}`

func TestFormatJSONIsTheRecord(t *testing.T) {
	a, err := decodeAlert([]byte(sampleAlert))
	if err != nil {
		t.Fatal(err)
	}
	b, err := body(FormatJSON, nil, []byte(sampleAlert), a)
	if err != nil || string(b) != sampleAlert {
		t.Errorf("json body = %s, %v; want the record's value unchanged", b, err)
	}
}

func TestFormatSlack(t *testing.T) {
	a, err := decodeAlert([]byte(sampleAlert))
	if err != nil {
		t.Fatal(err)
	}
	b, err := body(FormatSlack, nil, []byte(sampleAlert), a)
	if err != nil {
		t.Fatal(err)
	}
	var got any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	var want any
	if err := json.Unmarshal([]byte(`{
	  "text": "[CRITICAL] payments/account-takeover, key acct-&lt;42&gt;: account acct-42 drained &amp; gone",
	  "blocks": [
	    {"type": "header", "text": {"type": "plain_text", "text": "CRITICAL: account-takeover"}},
	    {"type": "section", "text": {"type": "mrkdwn", "text": "account acct-42 drained &amp; gone"}},
	    {"type": "section", "fields": [
	      {"type": "mrkdwn", "text": "*Severity*\ncritical"},
	      {"type": "mrkdwn", "text": "*Rule*\npayments/account-takeover"},
	      {"type": "mrkdwn", "text": "*Key*\nacct-&lt;42&gt;"},
	      {"type": "mrkdwn", "text": "*Detected at*\n2026-11-21T01:13:29Z"}]},
	    {"type": "context", "elements": [{"type": "mrkdwn", "text": "alert 67c0a78c"}]}
	  ]}`), &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("slack body (-want +got):\n%s", diff)
	}
}

func TestFormatPagerDuty(t *testing.T) {
	a, err := decodeAlert([]byte(sampleAlert))
	if err != nil {
		t.Fatal(err)
	}
	b, err := body(FormatPagerDuty, []byte("R0UT1NGKEY"), []byte(sampleAlert), a)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := json.Unmarshal([]byte(`{
	  "routing_key": "R0UT1NGKEY", "event_action": "trigger", "dedup_key": "67c0a78c", "client": "Shrike",
	  "payload": {
	    "summary": "payments/account-takeover, key acct-<42>: account acct-42 drained & gone",
	    "source": "shrike/payments", "severity": "critical", "timestamp": "2026-11-21T01:13:29Z",
	    "component": "payments", "group": "payments", "class": "account-takeover",
	    "custom_details": {"id":"67c0a78c","ruleset":"payments","rule":"account-takeover","rule_version":"3f4f",
	      "severity":"critical","key":"acct-<42>","summary":"account acct-42 drained & gone","labels":{"team":"fraud"},
	      "start":"2026-11-20T10:01:11Z","end":"2026-11-20T10:06:55Z","detected_at":"2026-11-21T01:13:29Z","timeout":false}
	  }}`), &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pagerduty body (-want +got):\n%s", diff)
	}
}

func TestPagerDutySeverity(t *testing.T) {
	for sev, want := range map[string]string{
		"info": "info", "low": "info", "medium": "warning", "high": "error", "critical": "critical", "": "info",
	} {
		if got := pagerDutySeverity(sev); got != want {
			t.Errorf("pagerDutySeverity(%q) = %q, want %q", sev, got, want)
		}
	}
}

func TestCutKeepsRunes(t *testing.T) {
	s := strings.Repeat("é", 100) // 200 bytes
	got := cut(s, 51)
	if len(got) > 51 || !strings.HasSuffix(got, "…") || !json.Valid([]byte(`"`+got+`"`)) {
		t.Errorf("cut = %q (%d bytes)", got, len(got))
	}
	if cut("short", 10) != "short" {
		t.Error("cut shortened a short string")
	}
}
