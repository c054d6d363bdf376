package rules

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

func checkParseFloat(t *testing.T, s string) {
	t.Helper()
	got, ok := parseFloat([]byte(s))
	want, err := strconv.ParseFloat(s, 64)
	if ok != (err == nil) || (ok && math.Float64bits(got) != math.Float64bits(want)) {
		t.Fatalf("parseFloat(%q) = %v, %v; strconv: %v, %v", s, got, ok, want, err)
	}
}

// TestParseFloatAgreesWithStrconv compares the fast path bit for bit with
// strconv over random decimals on both sides of its 15-digit limit.
func TestParseFloatAgreesWithStrconv(t *testing.T) {
	for _, s := range []string{
		"0", "-0", "0.0", "-0.0", "1", "52.52", "-118.2592", "9500.00", "0.1", "0.3",
		"999999999999999", "9999999999999999", "123456789012345.6", "1.23456789012345", "0.000000000000001",
		"1e3", "1E-3", "-1.5e300", "1e999", "-1e999", "4.9e-324", "007", "12345678901234567890",
	} {
		checkParseFloat(t, s)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200_000 {
		n := 1 + rng.IntN(18)
		digits := make([]byte, n)
		for i := range digits {
			digits[i] = byte('0' + rng.IntN(10))
		}
		s := string(digits)
		if dot := rng.IntN(n + 1); dot > 0 && dot < n {
			s = s[:dot] + "." + s[dot:]
		}
		if rng.IntN(2) == 0 {
			s = "-" + s
		}
		checkParseFloat(t, s)
	}
}

func FuzzParseFloat(f *testing.F) {
	for _, s := range []string{"52.52", "-0", "1e5", "123456789012345.6", "0.30000000000000004"} {
		f.Add(s)
	}
	// parseFloat hands everything its fast path does not take to strconv,
	// so the two agree on any text, not only on JSON numbers.
	f.Fuzz(checkParseFloat)
}
