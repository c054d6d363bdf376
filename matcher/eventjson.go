package matcher

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// AppendEventJSON appends the normal form of an event's JSON, raw, to dst:
// the form alerts embed, so that an alert record is one compact line
// whatever the producer's formatting, and so that every JSON reader
// accepts it as the rules saw it (protojson refuses duplicate keys and
// lone surrogates that encoding/json and the rules take). The normal form
// has no white space between tokens; an object holds each key once, at
// its first place, with its last value (the value the rules read, as
// JSON.parse does); a lone UTF-16 surrogate escape ("\ud800") is U+FFFD.
// Numbers and strings are otherwise kept as written. raw must be valid
// JSON (rules.ParseEvent checked it); an event already in normal form is
// copied as it is, after one scan.
func AppendEventJSON(dst, raw []byte) []byte {
	switch scanJSON(raw) {
	case normal:
		return append(dst, raw...)
	case spaced:
		return appendCompact(dst, raw)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := readJSON(dec)
	if err != nil {
		return append(dst, raw...) // not JSON after all: left to the reader
	}
	return appendNormal(dst, v)
}

// span is the bytes [from, to) of a key inside the event.
type span struct{ from, to int }

// form is what scanJSON finds of an event.
type form uint8

const (
	normal form = iota // in normal form: copied
	spaced             // normal but for white space between tokens: compacted
	other              // a repeated key, an escaped key or surrogate: re-encoded
)

// scanJSON tells how far raw, valid JSON, is from AppendEventJSON's
// normal form: no white space outside strings, no escaped surrogate, no
// object with a key twice. A key with an escape sends the event to the
// slow path too, which compares keys decoded.
func scanJSON(raw []byte) form {
	var keyBuf [64]span
	var objBuf [16]int
	keys, objs := keyBuf[:0], objBuf[:0]
	f := normal
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case ' ', '\t', '\n', '\r':
			f = spaced
		case '{':
			objs = append(objs, len(keys))
		case '}':
			if len(objs) == 0 {
				return other
			}
			start := objs[len(objs)-1]
			if repeats(raw, keys[start:]) {
				return other
			}
			keys, objs = keys[:start], objs[:len(objs)-1]
		case '"':
			from := i + 1
			esc := false
			for i++; i < len(raw) && raw[i] != '"'; i++ {
				if raw[i] != '\\' {
					continue
				}
				esc = true
				i++
				// \uD800-\uDFFF: a surrogate, paired or not.
				if i+2 >= len(raw) || raw[i] == 'u' && (raw[i+1] == 'd' || raw[i+1] == 'D') && isSurrogateNibble(raw[i+2]) {
					return other
				}
			}
			if i >= len(raw) {
				return other
			}
			j := i + 1
			for j < len(raw) && isSpace(raw[j]) {
				j++
			}
			if j < len(raw) && raw[j] == ':' {
				if esc {
					return other
				}
				keys = append(keys, span{from, i})
			}
		}
	}
	return f
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// appendCompact appends raw, valid JSON, without the white space between
// its tokens.
func appendCompact(dst, raw []byte) []byte {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if isSpace(c) {
			continue
		}
		if c != '"' {
			dst = append(dst, c)
			continue
		}
		j := i + 1
		for j < len(raw) && raw[j] != '"' {
			if raw[j] == '\\' {
				j++
			}
			j++
		}
		j = min(j, len(raw)-1)
		dst = append(dst, raw[i:j+1]...)
		i = j
	}
	return dst
}

func isSurrogateNibble(c byte) bool {
	return c >= '8' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// repeats reports whether two of an object's keys are the same.
func repeats(raw []byte, keys []span) bool {
	if len(keys) > 32 {
		seen := make(map[string]bool, len(keys))
		for _, k := range keys {
			if seen[string(raw[k.from:k.to])] {
				return true
			}
			seen[string(raw[k.from:k.to])] = true
		}
		return false
	}
	for i := 1; i < len(keys); i++ {
		for j := range i {
			if bytes.Equal(raw[keys[i].from:keys[i].to], raw[keys[j].from:keys[j].to]) {
				return true
			}
		}
	}
	return false
}

// member is one key of an object and its value.
type member struct {
	key string
	val any
}

// readJSON reads one value: an object as []member (each key once, at its
// first place, with its last value), an array as []any, a number as
// json.Number (as written), a string (lone surrogates as U+FFFD), a bool
// or nil.
func readJSON(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		var obj []member
		at := map[string]int{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			k, _ := kt.(string)
			v, err := readJSON(dec)
			if err != nil {
				return nil, err
			}
			if i, ok := at[k]; ok {
				obj[i].val = v
				continue
			}
			at[k] = len(obj)
			obj = append(obj, member{k, v})
		}
		_, err := dec.Token()
		if obj == nil {
			obj = []member{}
		}
		return obj, err
	case json.Delim('['):
		arr := []any{}
		for dec.More() {
			v, err := readJSON(dec)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		_, err := dec.Token()
		return arr, err
	case json.Delim('}'), json.Delim(']'):
		return nil, errors.New("unexpected end of a composite value")
	}
	return tok, nil
}

// appendNormal appends a value readJSON returned.
func appendNormal(dst []byte, v any) []byte {
	switch v := v.(type) {
	case []member:
		dst = append(dst, '{')
		for i, m := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, m.key)
			dst = append(dst, ':')
			dst = appendNormal(dst, m.val)
		}
		return append(dst, '}')
	case []any:
		dst = append(dst, '[')
		for i, x := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendNormal(dst, x)
		}
		return append(dst, ']')
	case string:
		return appendJSONString(dst, v)
	case json.Number:
		return append(dst, v...)
	case bool:
		return strconv.AppendBool(dst, v)
	}
	return append(dst, "null"...)
}

// appendJSONString appends s as a JSON string, escaping only what JSON
// requires (quote, backslash, control characters), as producers mostly
// write it.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			dst = utf8.AppendRune(dst, r) // invalid UTF-8 becomes U+FFFD
			i += n
			continue
		}
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
		i++
	}
	return append(dst, '"')
}
