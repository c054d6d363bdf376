package main

import (
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shrike-cep/shrike/internal/gen"
	"github.com/shrike-cep/shrike/rules"
)

// TestGenSummaryNamesTheRules: the summary of a payments stream names, for
// every injected pattern, the rule of rulesets/payments.yaml that catches
// it, a rule that ruleset has, and says when an absence rule alerts.
func TestGenSummaryNamesTheRules(t *testing.T) {
	src, err := os.ReadFile("../../rulesets/payments.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load("payments.yaml", src, rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := gen.New(gen.Options{Stream: gen.StreamPayments, Seed: 1, Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	n, err := writeEvents(t.Context(), g, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	printGenSummary(newOutput(&out), g, n, "stdout")
	_, expect, ok := strings.Cut(out.String(), "alerts to expect from ruleset payments (rulesets/payments.yaml, topic payments): ")
	if !ok {
		t.Fatalf("summary names no rules:\n%s", out.String())
	}
	have := map[string]bool{}
	for _, r := range rs.Rules {
		have[r.ID] = true
	}
	var named []string
	for part := range strings.SplitSeq(strings.TrimSpace(expect), ", ") {
		id, _, _ := strings.Cut(part, " ")
		named = append(named, id)
		if !have[id] {
			t.Errorf("summary names rule %q, which rulesets/payments.yaml lacks:\n%s", id, out.String())
		}
	}
	if len(named) != len(rs.Rules) {
		t.Errorf("summary names %d rules, the hour of traffic has patterns for all %d:\n%s", len(named), len(rs.Rules), out.String())
	}
	if !regexp.MustCompile(`reset-without-2fa \d+ \(absence: each alerts once event time is 15m past its first event\)`).MatchString(expect) {
		t.Errorf("summary does not say when reset-without-2fa alerts:\n%s", out.String())
	}
}
