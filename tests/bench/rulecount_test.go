package bench

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shrike-cep/shrike/rules"
)

// BenchmarkRuleCount is BenchmarkMatcher over a ruleset of n pattern rules
// of one shape that differ only in a threshold (a large transfer, then a
// transfer to a high-risk country within ten minutes, the first step's
// amount above 1,000, 1,010, 1,020, …): what a team with one template per
// segment writes. The cost of n rules should grow with what differs
// between them, not with n; compare the cpu-ns/event of rules=20 and
// rules=100 with rules=1's, measured in the same run.
func BenchmarkRuleCount(b *testing.B) {
	for _, n := range []int{1, 20, 100} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			benchMatcher(b, thresholdRuleset(b, n), nil)
		})
	}
}

// thresholdRuleset is the ruleset of BenchmarkRuleCount with n rules, over
// the payments stream.
func thresholdRuleset(tb testing.TB, n int) *rules.Compiled {
	tb.Helper()
	var src strings.Builder
	src.WriteString(`ruleset: thresholds
stream:
  topic: payments
  key: event.account_id
  time: event.ts
  max_out_of_orderness: 5s
lists:
  high_risk_countries: [KP, IR, SY, CU]
rules:
`)
	for i := range n {
		fmt.Fprintf(&src, `  - id: big-then-risky-%d
    within: 10m
    pattern:
      - step: big
        where: event.type == "transfer" && event.amount > %d.0
      - step: risky
        where: event.type == "transfer" && event.country in lists.high_risk_countries
    skip: past_last_event
`, i, 1000+10*i)
	}
	rs, err := rules.Load("thresholds.yaml", []byte(src.String()), rules.CompileOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	if len(rs.Rules) != n {
		tb.Fatalf("%d rules compiled, want %d", len(rs.Rules), n)
	}
	return rs
}
