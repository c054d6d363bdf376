package matcher

import "testing"

func TestRuleIDString(t *testing.T) {
	for _, tc := range []struct {
		id   RuleID
		want string
	}{
		{RuleID{Ruleset: "payments", Rule: "big"}, "payments/big"},
		{RuleID{Ruleset: "payments", Rule: "big", Version: "3f2a"}, "payments/big@3f2a"},
	} {
		if got := tc.id.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.id, got, tc.want)
		}
	}
}
