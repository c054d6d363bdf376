package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// shrikeCmd runs one command line and returns its exit status and output.
func shrikeCmd(t *testing.T, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := env{stdin: strings.NewReader(""), stdout: newOutput(&out), stderr: newOutput(&errOut), clock: func() time.Time { return testNow }}
	status = run(context.Background(), args, e)
	return status, out.String(), errOut.String()
}

var (
	paymentsRules = filepath.Join("..", "..", "rulesets", "payments.yaml")
	paymentsCases = filepath.Join("..", "..", "rulesets", "testdata", "payments_cases.jsonl")
)

func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// TestExplainPaymentsCases explains the three accounts of the shipped
// cases recording: one whose transfer came after the 10 minutes of
// account-takeover, one with a failed login too few, one where it fired.
func TestExplainPaymentsCases(t *testing.T) {
	explainKey := func(key string, extra ...string) (string, []map[string]any) {
		args := append([]string{"explain", "--rules", paymentsRules, "--key", key, "--rule", "account-takeover"}, extra...)
		status, text, stderr := shrikeCmd(t, append(args, paymentsCases)...)
		if status != 0 {
			t.Fatalf("explain %s: status %d\n%s", key, status, stderr)
		}
		status, js, stderr := shrikeCmd(t, append(append(args, "--json"), paymentsCases)...)
		if status != 0 {
			t.Fatalf("explain --json %s: status %d\n%s", key, status, stderr)
		}
		return text, jsonLines(t, js)
	}
	last := func(lines []map[string]any) map[string]any { return lines[len(lines)-1] }

	text, lines := explainKey("k-late")
	v := last(lines)
	f, _ := v["furthest"].(map[string]any)
	if v["verdict"] != "did_not_fire" || f["reason"] != "window_expired" || f["window"] != "10m" || v["unmet_step"] != "drain" {
		t.Errorf("k-late verdict %v", v)
	}
	if !strings.Contains(text, "did not fire") || !strings.Contains(text, "the rule's within 10m expired") || !strings.Contains(text, "unmet step drain") {
		t.Errorf("k-late text:\n%s", text)
	}

	text, lines = explainKey("k-two")
	v = last(lines)
	f, _ = v["furthest"].(map[string]any)
	if v["verdict"] != "did_not_fire" || v["unmet_step"] != "fails" || len(f["events"].([]any)) != 2 {
		t.Errorf("k-two verdict %v", v)
	}
	if !strings.Contains(text, "did not fire") || !strings.Contains(text, "unmet step fails") {
		t.Errorf("k-two text:\n%s", text)
	}

	_, lines = explainKey("k-fired")
	v = last(lines)
	var alertIDs []any
	for _, l := range lines {
		if l["type"] == "alert" {
			alertIDs = append(alertIDs, l["alert_id"])
		}
	}
	if v["verdict"] != "fired" || len(alertIDs) != 1 || v["alert_ids"].([]any)[0] != alertIDs[0] {
		t.Errorf("k-fired: verdict %v, alerts %v", v, alertIDs)
	}
	// The alert id is the one `shrike run` prints for the same recording.
	status, out, _ := shrikeCmd(t, "run", "--rules", paymentsRules, "-q", paymentsCases)
	if status != 0 || !strings.Contains(out, `"id":"`+alertIDs[0].(string)+`"`) {
		t.Errorf("shrike run does not print alert %v:\n%s", alertIDs[0], out)
	}
}

func TestExplainExitStatus(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"unknown rule", []string{"--rule", "nope", "--key", "k", paymentsCases}, 2},
		{"no key", []string{paymentsCases}, 2},
		{"empty key", []string{"--key", "", paymentsCases}, 2},
		{"missing events file", []string{"--key", "k", "nope.jsonl"}, 1},
		{"negative --max-entries", []string{"--key", "k", "--max-entries", "-1", paymentsCases}, 2},
		{"a key with no records", []string{"--key", "nobody", paymentsCases}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, stderr := shrikeCmd(t, append([]string{"explain", "--rules", paymentsRules}, tt.args...)...)
			if status != tt.want {
				t.Errorf("status %d, want %d\n%s", status, tt.want, stderr)
			}
		})
	}
}
