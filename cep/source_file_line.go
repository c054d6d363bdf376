package cep

import (
	"bytes"
	"errors"
	"math"
	"strconv"

	"github.com/shrike-cep/shrike/internal/jsonstr"
)

// ErrTombstone is returned by LineDecoder.Decode for a kcat envelope whose
// payload is null: a Kafka tombstone carries no event.
var ErrTombstone = errors.New("kafka record has a null payload (tombstone)")

// Line is one decoded line of a recorded event file. Its byte slices alias
// the line and the LineDecoder's scratch space: they are valid until the
// next Decode.
type Line struct {
	// Event is the event's JSON: the line itself, or the content of an
	// envelope's payload string.
	Event []byte
	// Envelope marks a kcat -J envelope line; the fields below are set only
	// for envelopes.
	Envelope bool
	// Topic is the Kafka topic the record was read from.
	Topic []byte
	// Key is the Kafka record key; HasKey is false when the key was null or
	// absent.
	Key    []byte
	HasKey bool
	// TimeMillis is the Kafka record timestamp (epoch ms); HasTime is false
	// when the envelope had none (absent, negative or not an integer).
	TimeMillis int64
	HasTime    bool
	// Partition and Offset locate the record in Kafka (-1 when absent). They
	// are kept for reports only: offline positions are file and line.
	Partition int64
	Offset    int64
}

// LineDecoder splits the lines of a recorded file into event bytes and kcat
// envelope fields. A line is an envelope when it is a JSON object whose
// "topic" member is a string and whose "payload" member is a string (or
// null, a tombstone); any other line is the event itself. The decoder does
// not validate event JSON: rules.ParseEvent does that once, on the event
// bytes. The zero value is ready to use; it is not safe for concurrent use.
type LineDecoder struct {
	payload, topic, key []byte // unescape scratch, reused across lines
}

// Decode decodes line into out. It returns ErrTombstone for an envelope
// without payload; every other line decodes, leaving JSON validation to
// the caller (a badly escaped payload fails there).
func (d *LineDecoder) Decode(line []byte, out *Line) error {
	*out = Line{Event: line, Partition: -1, Offset: -1}
	// An envelope names a "payload" member. Without the word in the line,
	// and without \u escapes that could spell it, the line cannot be one:
	// plain events skip the member scan entirely.
	if !bytes.Contains(line, []byte("payload")) && !bytes.Contains(line, []byte(`\u`)) {
		return nil
	}
	var (
		topic, payload, key, ts, partition, offset []byte
		topicString, payloadString, payloadNull    bool
		keyString                                  bool
		keyEsc, topicEsc, payloadEsc               bool
	)
	ok := scanMembers(line, func(name []byte, nameEsc bool, v []byte, vEsc bool) {
		if nameEsc {
			d.key = jsonstr.Append(d.key[:0], name)
			name = d.key
		}
		str := len(v) >= 2 && v[0] == '"'
		null := string(v) == "null"
		switch string(name) {
		case "topic":
			topic, topicString, topicEsc = v, str, vEsc
		case "payload":
			payload, payloadString, payloadNull, payloadEsc = v, str, null, vEsc
		case "key":
			key, keyString, keyEsc = v, str, vEsc
		case "ts":
			ts = v
		case "partition":
			partition = v
		case "offset":
			offset = v
		}
	})
	if !ok || !topicString || !(payloadString || payloadNull) {
		return nil
	}
	out.Envelope = true
	out.Topic = d.unquote(&d.topic, topic, topicEsc)
	if keyString {
		out.Key, out.HasKey = d.unquote(&d.key, key, keyEsc), true
	}
	if ms, err := strconv.ParseInt(string(ts), 10, 64); err == nil && ms >= 0 && ms <= math.MaxInt64/1_000_000 {
		out.TimeMillis, out.HasTime = ms, true
	}
	if p, err := strconv.ParseInt(string(partition), 10, 64); err == nil {
		out.Partition = p
	}
	if o, err := strconv.ParseInt(string(offset), 10, 64); err == nil {
		out.Offset = o
	}
	if payloadNull {
		out.Event = nil
		return ErrTombstone
	}
	out.Event = d.unquote(&d.payload, payload, payloadEsc)
	return nil
}

// unquote returns the content of the JSON string v (quotes included). Only
// strings with escapes are copied, into *scratch.
func (d *LineDecoder) unquote(scratch *[]byte, v []byte, esc bool) []byte {
	v = v[1 : len(v)-1]
	if !esc {
		return v
	}
	*scratch = jsonstr.Append((*scratch)[:0], v)
	return *scratch
}

// scanMembers calls fn for each member of the top-level JSON object in b,
// with the member name (without quotes) and the raw value. The esc flags say
// whether the name or a string value holds escapes. It reports false when b
// is not shaped like an object; it checks structure only as far as needed to
// find member boundaries, since full validation happens on the event bytes.
func scanMembers(b []byte, fn func(name []byte, nameEsc bool, value []byte, valueEsc bool)) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		end, nameEsc, ok := scanString(b, i)
		if !ok {
			return false
		}
		name := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipSpace(b, i+1)
		vend, vEsc, ok := skipValue(b, i)
		if !ok {
			return false
		}
		fn(name, nameEsc, b[i:vend], vEsc)
		i = skipSpace(b, vend)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return skipSpace(b, i+1) == len(b)
		default:
			return false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the index just past the string starting at b[i] == '"'
// and whether it holds escapes. A quote ends the string when an even number
// of backslashes precedes it; IndexByte finds the candidates quickly.
func scanString(b []byte, i int) (end int, esc, ok bool) {
	for j := i + 1; ; {
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			return 0, false, false
		}
		q += j
		if !esc && bytes.IndexByte(b[j:q], '\\') >= 0 {
			esc = true
		}
		n := 0
		for k := q - 1; k > i && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return q + 1, esc, true
		}
		j = q + 1
	}
}

// skipValue returns the index just past the JSON value starting at b[i].
// Objects and arrays are skipped by bracket depth, strings by their quotes;
// scalars run to the next delimiter.
func skipValue(b []byte, i int) (end int, esc, ok bool) {
	if i >= len(b) {
		return 0, false, false
	}
	switch b[i] {
	case '"':
		return scanString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e, _, ok := scanString(b, j)
				if !ok {
					return 0, false, false
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, false, true
				}
			}
		}
		return 0, false, false
	}
	j := i
scalar:
	for ; j < len(b); j++ {
		switch b[j] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			break scalar
		}
	}
	return j, false, j > i
}
