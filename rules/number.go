package rules

import "strconv"

// pow10 are the powers of ten a float64 holds exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// parseFloat is strconv.ParseFloat(string(b), 64) for JSON number text:
// the same value, and ok false where ParseFloat fails (out of range).
// Event streams are full of short decimals (amounts, coordinates), which
// it converts exactly without the general algorithm: with at most 15
// digits the digits form an integer below 2^53, and dividing it by a power
// of ten a float64 holds exactly rounds once, correctly (Clinger's fast
// path, which strconv also takes, after a slower scan).
func parseFloat(b []byte) (float64, bool) {
	if f, ok := parseShortDecimal(b); ok {
		return f, true
	}
	f, err := strconv.ParseFloat(string(b), 64)
	return f, err == nil
}

// parseShortDecimal parses -?digits(.digits)? of at most 15 digits in all;
// ok is false for anything else.
func parseShortDecimal(b []byte) (float64, bool) {
	i, neg := 0, false
	if len(b) > 0 && b[0] == '-' {
		i, neg = 1, true
	}
	var m uint64
	digits, frac, dot := 0, 0, false
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= '0' && c <= '9':
			m = m*10 + uint64(c-'0')
			digits++
			if dot {
				frac++
			}
		case c == '.' && !dot:
			dot = true
		default:
			return 0, false
		}
	}
	if digits == 0 || digits > 15 || (dot && frac == 0) {
		return 0, false
	}
	f := float64(m) / pow10[frac]
	if neg {
		f = -f
	}
	return f, true
}
