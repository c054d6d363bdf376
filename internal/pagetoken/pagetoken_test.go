package pagetoken

import (
	"errors"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct{ kind, scope, last string }{
		{"rulesets", "", "payments"},
		{"versions", "payments", "7"},
		{"alerts", "", "18446744073709551615"},
	} {
		tok := Encode(tc.kind, tc.scope, tc.last)
		if strings.ContainsAny(tok, "+/=") {
			t.Errorf("token %q is not URL-safe", tok)
		}
		got, err := Decode(tok, tc.kind, tc.scope)
		if err != nil || got != tc.last {
			t.Errorf("Decode(Encode(%q, %q, %q)) = %q, %v", tc.kind, tc.scope, tc.last, got, err)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	versionsOfA := Encode("versions", "a", "5")
	for _, tc := range []struct {
		name, tok, kind, scope string
	}{
		{"not base64", "!!!", "rulesets", ""},
		{"empty", "", "rulesets", ""},
		{"another kind", Encode("alerts", "", "5"), "rulesets", ""},
		{"another scope", versionsOfA, "versions", "b"},
		{"no position", Encode("rulesets", "", ""), "rulesets", ""},
		{"truncated", versionsOfA[:len(versionsOfA)-3], "versions", "a"},
		{"huge", strings.Repeat("A", 1<<20), "rulesets", ""},
	} {
		got, err := Decode(tc.tok, tc.kind, tc.scope)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Decode = %q, %v; want ErrInvalid", tc.name, got, err)
			continue
		}
		if len(err.Error()) > 200 {
			t.Errorf("%s: error of %d bytes quotes the whole token", tc.name, len(err.Error()))
		}
	}
}
