// Package jsonstr decodes the body of a JSON string the way encoding/json
// does. Both the event decoder (rules) and the kcat envelope reader (cep)
// need it; one implementation keeps them agreeing byte for byte.
package jsonstr

import (
	"unicode/utf16"
	"unicode/utf8"
)

// Plain reports whether s (a string body, without quotes) decodes to
// itself: no escapes and valid UTF-8.
func Plain(s []byte) bool {
	ascii := true
	for _, c := range s {
		if c == '\\' {
			return false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	return ascii || utf8.Valid(s)
}

// Append appends the decoded content of the JSON string body s (without
// its quotes) to dst. Like encoding/json, invalid UTF-8 and lone or broken
// UTF-16 surrogates become U+FFFD. It accepts malformed input too: an
// unknown or truncated escape is kept as written, so that a caller reading
// unvalidated text (an envelope) rejects it later, when it parses the
// result.
func Append(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return append(dst, c)
			}
			switch e := s[i+1]; e {
			case '"', '\\', '/':
				dst = append(dst, e)
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r, ok := hex4(s[i+2:])
				if !ok {
					dst = append(dst, s[i:i+2]...)
					i += 2
					continue
				}
				i += 6
				if utf16.IsSurrogate(r) {
					// A high surrogate pairs only with an immediately
					// following \u low surrogate; anything else is lone.
					if i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
						if r2, ok := hex4(s[i+2:]); ok {
							if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
								dst = utf8.AppendRune(dst, dec)
								i += 6
								continue
							}
						}
					}
					r = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default:
				dst = append(dst, c, e)
			}
			i += 2
		case c < utf8.RuneSelf:
			j := i + 1
			for j < len(s) && s[j] != '\\' && s[j] < utf8.RuneSelf {
				j++
			}
			dst = append(dst, s[i:j]...)
			i = j
		default:
			r, size := utf8.DecodeRune(s[i:])
			dst = utf8.AppendRune(dst, r)
			i += size
		}
	}
	return dst
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
