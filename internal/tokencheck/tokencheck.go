// Package tokencheck judges the strength of API bearer tokens, so that the
// server refuses at start a token an attacker could guess: too short,
// made of few distinct characters, repetitive or sequential, or little
// more than a common word. It is a guard against configuration mistakes
// ("changeme", "admin-secret", "aaaa…"), not a measure of randomness: a
// token must come from a random generator, as the error messages say.
package tokencheck

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// MinBits is the least estimated entropy of a token: 128 bits, as many
// as 32 hex digits or 22 base64 characters carry.
const MinBits = 128

// minDistinct is the least number of distinct characters of a token; a
// random 32-digit hex token has fewer with negligible probability.
const minDistinct = 8

// Generate is how to make a good token, for error messages.
const Generate = "generate one with `openssl rand -hex 32` or `head -c 32 /dev/urandom | base64`"

// ErrWeak is returned (wrapped) by Check for a token that is too weak.
var ErrWeak = errors.New("too weak")

// weakWords are common words and placeholders found in hand-made tokens.
// They are not refused on their own (a prefix such as "ci-token-" before
// random characters is fine) but count for nothing in the estimate.
var weakWords = []string{
	"password", "passwd", "changeme", "secret", "letmein", "qwerty",
	"admin", "token", "example", "default", "shrike", "test",
}

// Check returns an error wrapping ErrWeak that says what is wrong with
// secret, or nil for a strong one. A token must be printable ASCII without
// spaces (it travels in an HTTP header); once common words are set aside,
// its length times the bits per character of its alphabet (digits 3.3,
// hex digits 4, letters and digits 5.95, with other symbols 6.57) must
// reach MinBits; and it must hold at least 8 distinct characters and not
// be half repetitions and runs ("abcabc…", "123456…").
func Check(secret string) error {
	for i := 0; i < len(secret); i++ {
		if c := secret[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("%w: it holds a space, a control or a non-ASCII character at byte %d (a token is printable ASCII); %s", ErrWeak, i, Generate)
		}
	}
	rest := withoutWords(secret)
	if bits := float64(len(rest)) * math.Log2(float64(alphabet(secret))); bits < MinBits {
		return fmt.Errorf("%w: about %.0f bits, %d needed (at least 32 hex digits or 22 base64 characters, not counting common words); %s",
			ErrWeak, bits, MinBits, Generate)
	}
	if d := distinct(secret); d < minDistinct {
		return fmt.Errorf("%w: it has only %d distinct characters; %s", ErrWeak, d, Generate)
	}
	if p := predictable(secret); 2*p >= len(secret) {
		return fmt.Errorf("%w: %d of its %d characters repeat or continue a run; %s", ErrWeak, p, len(secret), Generate)
	}
	return nil
}

// alphabet is the size of the alphabet secret appears to be drawn from:
// digits or hex digits (of one case) when it holds nothing else,
// otherwise the union of the classes it uses (digits, lower and upper
// case letters, symbols).
func alphabet(secret string) int {
	digit, lower, upper, symbol, hexOnly := false, false, false, false, true
	for i := 0; i < len(secret); i++ {
		switch c := secret[i]; {
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'a' && c <= 'z':
			lower = true
			hexOnly = hexOnly && c <= 'f'
		case c >= 'A' && c <= 'Z':
			upper = true
			hexOnly = hexOnly && c <= 'F'
		default:
			symbol = true
		}
	}
	switch {
	case !lower && !upper && !symbol:
		return 10
	case hexOnly && !symbol && lower != upper:
		return 16
	}
	n := 0
	for _, class := range []struct {
		used bool
		size int
	}{{digit, 10}, {lower, 26}, {upper, 26}, {symbol, 33}} {
		if class.used {
			n += class.size
		}
	}
	return n
}

// distinct counts the distinct bytes of s.
func distinct(s string) int {
	var seen [256]bool
	n := 0
	for i := 0; i < len(s); i++ {
		if !seen[s[i]] {
			seen[s[i]] = true
			n++
		}
	}
	return n
}

// predictable counts the characters of s that a guesser gets for free:
// one equal to its predecessor or one step from it ("aa", "ab", "ba"),
// and one that completes three characters seen before ("abXabX").
func predictable(s string) int {
	n := 0
	seen := map[string]bool{}
	for i := 1; i < len(s); i++ {
		d := int(s[i]) - int(s[i-1])
		tri := i >= 2 && seen[s[i-2:i+1]]
		if i >= 2 {
			seen[s[i-2:i+1]] = true
		}
		if d >= -1 && d <= 1 || tri {
			n++
		}
	}
	return n
}

// withoutWords is s with every common word (any case) taken out.
func withoutWords(s string) string {
	lower := strings.ToLower(s)
	for _, w := range weakWords {
		for {
			i := strings.Index(lower, w)
			if i < 0 {
				break
			}
			s, lower = s[:i]+s[i+len(w):], lower[:i]+lower[i+len(w):]
		}
	}
	return s
}
