package matcher

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"

	"github.com/shrike-cep/shrike/rules"
)

// Alert is one match (or timed-out partial match) of a rule, in the format of
// docs/design.md#alerts.
type Alert struct {
	ID          string
	Ruleset     string
	Rule        string
	RuleVersion string
	Severity    rules.Severity
	Key         string
	Summary     string
	Labels      map[string]string
	// Start and End are the event times of the first and last matched event.
	Start, End time.Time
	DetectedAt time.Time
	// Timeout marks a partial match whose window closed before it completed.
	Timeout bool
	// Shadow marks an alert of a shadow version (rules.Compiled.Shadow):
	// it goes to the shadow outputs only, and its id differs from the id
	// the live version gives the same match.
	Shadow bool
	// Steps holds the matched records per step, in pattern order; steps that
	// took nothing (skipped optional steps) are absent. An aggregate rule's
	// alert holds the event it fired on, as step "event".
	Steps []StepRecords
	// Measures are an aggregate rule's measures as the event that fired
	// it left them, in the rule's order, and WindowStart and WindowEnd the
	// window they cover (docs/semantics.md#aggregates); empty for other
	// rules.
	Measures               []Measure
	WindowStart, WindowEnd time.Time
	// Truncated lists what AppendJSONWithin shrank ("events", "key",
	// "summary") in an alert decoded from its JSON, whose events are then
	// the markers; empty for an alert the matcher made.
	Truncated []string
}

// Measure is one measure of an aggregate alert. None marks a min, max or
// avg over no value (JSON null); Int one counted (count, count_distinct).
type Measure struct {
	Name  string
	Value float64
	Int   bool
	None  bool
}

// StepRecords are the records one step of a match took, in match order.
type StepRecords struct {
	Step    string
	Records []*Record
}

// alertIDLen is the length of an alert id: 32 hexadecimal digits.
const alertIDLen = 32

// alertID derives the deterministic id of docs/design.md#alerts: a hash of ruleset,
// rule, rule version, key, the timeout flag and the matched records'
// positions, so that replaying the same input yields the same ids.
func alertID(ruleset, rule, version, key string, timeout, shadow bool, steps []StepRecords) string {
	var id [alertIDLen]byte
	return string(appendAlertID(id[:0], ruleset, rule, version, key, timeout, shadow, steps))
}

// appendAlertID appends the id alertID returns to dst.
func appendAlertID(dst []byte, ruleset, rule, version, key string, timeout, shadow bool, steps []StepRecords) []byte {
	// Most ids hash a few hundred bytes: built on the stack, they leave no
	// garbage behind (a burst of alerts, as when a replay's end closes
	// every window, would otherwise grow the heap by as much).
	var stack [512]byte
	buf := stack[:0]
	for _, s := range []string{ruleset, rule, version, key} {
		buf = strconv.AppendInt(buf, int64(len(s)), 10)
		buf = append(buf, ':')
		buf = append(buf, s...)
	}
	if timeout {
		buf = append(buf, 'T')
	}
	if shadow {
		buf = append(buf, 'S')
	}
	for _, s := range steps {
		buf = append(buf, '|')
		buf = append(buf, s.Step...)
		for _, r := range s.Records {
			buf = append(buf, ';')
			buf = append(buf, r.Pos.Source...)
			buf = append(buf, '@')
			buf = strconv.AppendInt(buf, r.Pos.Offset, 10)
		}
	}
	// Two 64-bit digests (the second over a salted copy) give a 128-bit id:
	// collisions across billions of alerts stay negligible.
	h1 := xxhash.Sum64(buf)
	h2 := xxhash.Sum64(append(buf, "#shrike"...))
	var sum [16]byte
	for i := range 8 {
		sum[i] = byte(h1 >> (56 - 8*i))
		sum[8+i] = byte(h2 >> (56 - 8*i))
	}
	return hex.AppendEncode(dst, sum[:])
}

// AsLive returns a copy of an alert of a shadow version as the version
// would have made it running live: not marked shadow, with the id `shrike
// run` gives the match. An alert that is not a shadow's is returned as it
// is. The id is recomputed from the matched records' positions, so a is
// one the matcher made, not one decoded from its JSON. The copy shares
// a's labels and steps.
func (a *Alert) AsLive() *Alert {
	if !a.Shadow {
		return a
	}
	c := *a
	c.Shadow = false
	c.ID = alertID(c.Ruleset, c.Rule, c.RuleVersion, c.Key, c.Timeout, false, c.Steps)
	return &c
}

// MarshalJSON encodes the alert as one JSON object. The events of each step
// are the records' bytes in normal form (AppendEventJSON: compact, each key
// once), and steps keep pattern order.
func (a *Alert) MarshalJSON() ([]byte, error) {
	return a.AppendJSON(nil), nil
}

// AppendJSON appends the alert's JSON encoding to dst.
func (a *Alert) AppendJSON(dst []byte) []byte {
	return a.appendJSON(dst, 0)
}

// Shrinking steps of AppendJSONWithin, as bits of appendJSON's shrink.
const (
	shrinkEvents = 1 << iota // events replaced by markers with their positions
	shrinkText               // key and summary cut to MaxShrunkText bytes
)

// MaxShrunkText is the most bytes of the key and of the summary an alert
// keeps once AppendJSONWithin cut them.
const MaxShrunkText = 1024

// AppendJSONWithin is AppendJSON for an output that takes at most limit
// bytes per alert (a Kafka record). An alert that fits is encoded as
// AppendJSON encodes it. One that does not is shrunk deterministically,
// step by step until it fits: first every matched event is replaced by a
// marker object {"truncated":true,"topic":…,"partition":…,"offset":…,
// "bytes":…} (on Kafka; "source" and "line" offline), its position, from
// which the full event can be read again; then the key and the summary are
// cut to MaxShrunkText bytes. A shrunk alert lists what was shrunk in a
// "truncated" field ("events", "key", "summary"); its id is unchanged.
// shrunk reports whether the alert was shrunk; an alert that still does not
// fit is returned in its most shrunk form.
func (a *Alert) AppendJSONWithin(dst []byte, limit int) (b []byte, shrunk bool) {
	start := len(dst)
	b = a.appendJSON(dst, 0)
	if limit <= 0 || len(b)-start <= limit {
		return b, false
	}
	for _, shrink := range []int{shrinkEvents, shrinkEvents | shrinkText} {
		b = a.appendJSON(b[:start], shrink)
		if len(b)-start <= limit {
			break
		}
	}
	return b, true
}

// appendJSON appends the alert's JSON, shrunk as the bits of shrink say.
func (a *Alert) appendJSON(dst []byte, shrink int) []byte {
	key, summary := a.Key, a.Summary
	if shrink&shrinkText != 0 {
		key, summary = cutText(key), cutText(summary)
	}
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, a.ID)
	dst = append(dst, `,"ruleset":`...)
	dst = appendString(dst, a.Ruleset)
	dst = append(dst, `,"rule":`...)
	dst = appendString(dst, a.Rule)
	dst = append(dst, `,"rule_version":`...)
	dst = appendString(dst, a.RuleVersion)
	dst = append(dst, `,"severity":`...)
	dst = appendString(dst, string(a.Severity))
	dst = append(dst, `,"key":`...)
	dst = appendString(dst, key)
	dst = append(dst, `,"summary":`...)
	dst = appendString(dst, summary)
	dst = append(dst, `,"labels":`...)
	dst = appendLabels(dst, a.Labels)
	dst = append(dst, `,"start":`...)
	dst = appendTime(dst, a.Start)
	dst = append(dst, `,"end":`...)
	dst = appendTime(dst, a.End)
	dst = append(dst, `,"detected_at":`...)
	dst = appendTime(dst, a.DetectedAt)
	dst = append(dst, `,"timeout":`...)
	dst = strconv.AppendBool(dst, a.Timeout)
	if a.Shadow {
		dst = append(dst, `,"shadow":true`...)
	}
	if len(a.Measures) > 0 {
		dst = appendMeasures(dst, a)
	}
	dst = append(dst, `,"events":{`...)
	for i, s := range a.Steps {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, s.Step)
		dst = append(dst, ":["...)
		for j, r := range s.Records {
			if j > 0 {
				dst = append(dst, ',')
			}
			if shrink&shrinkEvents != 0 {
				dst = appendMarker(dst, r)
			} else {
				dst = AppendEventJSON(dst, r.Event.Raw())
			}
		}
		dst = append(dst, ']')
	}
	dst = append(dst, '}')
	truncated := a.Truncated
	if shrink != 0 {
		truncated = []string{"events"}
		if len(key) < len(a.Key) {
			truncated = append(truncated, "key")
		}
		if len(summary) < len(a.Summary) {
			truncated = append(truncated, "summary")
		}
	}
	if len(truncated) > 0 {
		dst = append(dst, `,"truncated":[`...)
		for i, f := range truncated {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, f)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// appendMeasures appends an aggregate alert's "measures" and "window".
func appendMeasures(dst []byte, a *Alert) []byte {
	dst = append(dst, `,"measures":{`...)
	for i, m := range a.Measures {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, m.Name)
		dst = append(dst, ':')
		switch {
		case m.None || math.IsNaN(m.Value) || math.IsInf(m.Value, 0):
			dst = append(dst, "null"...)
		case m.Int:
			dst = strconv.AppendInt(dst, int64(m.Value), 10)
		default:
			dst = strconv.AppendFloat(dst, m.Value, 'g', -1, 64)
		}
	}
	dst = append(dst, `},"window":{"start":`...)
	dst = appendTime(dst, a.WindowStart)
	dst = append(dst, `,"end":`...)
	dst = appendTime(dst, a.WindowEnd)
	return append(dst, '}')
}

// appendMarker appends the object that stands for r's event in a shrunk
// alert: its position (topic, partition and offset on Kafka, source and
// line offline) and its size.
func appendMarker(dst []byte, r *Record) []byte {
	dst = append(dst, `{"truncated":true,`...)
	src := r.Pos.Source
	i := strings.LastIndexByte(src, '/')
	part, err := strconv.ParseInt(src[i+1:], 10, 32)
	if i > 0 && err == nil {
		dst = append(dst, `"topic":`...)
		dst = appendString(dst, src[:i])
		dst = append(dst, `,"partition":`...)
		dst = strconv.AppendInt(dst, part, 10)
		dst = append(dst, `,"offset":`...)
	} else {
		dst = append(dst, `"source":`...)
		dst = appendString(dst, src)
		dst = append(dst, `,"line":`...)
	}
	dst = strconv.AppendInt(dst, r.Pos.Offset, 10)
	dst = append(dst, `,"bytes":`...)
	dst = strconv.AppendInt(dst, int64(len(r.Event.Raw())), 10)
	return append(dst, '}')
}

// cutText is s cut to at most MaxShrunkText bytes, at a rune boundary.
func cutText(s string) string {
	if len(s) <= MaxShrunkText {
		return s
	}
	n := MaxShrunkText
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// appendLabels appends labels as encoding/json encodes them, in the order
// of their keys.
func appendLabels(dst []byte, labels map[string]string) []byte {
	if len(labels) == 0 {
		return append(dst, `{}`...)
	}
	var stack [16]string
	keys := stack[:0]
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		dst = appendString(dst, labels[k])
	}
	return append(dst, '}')
}

// appendTime appends t in UTC as time.RFC3339Nano formats it, between
// quotes. Alert times are written three to an alert: the date is worked
// out from the Unix time directly, rather than through the time package's
// layout interpreter and calendar.
func appendTime(dst []byte, t time.Time) []byte {
	secs, ns := t.Unix(), t.Nanosecond()
	days, sod := secs/86400, secs%86400
	if sod < 0 {
		days, sod = days-1, sod+86400
	}
	year, month, day := civilDate(days)
	if year < 0 || year > 9999 {
		dst = append(dst, '"')
		dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"')
	}
	dst = append(dst, '"')
	dst = appendDigits(dst, int(year), 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, month, 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, int(sod/3600), 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, int(sod/60%60), 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, int(sod%60), 2)
	if ns != 0 {
		digits := 9
		for ns%10 == 0 {
			ns /= 10
			digits--
		}
		dst = append(dst, '.')
		dst = appendDigits(dst, ns, digits)
	}
	return append(dst, 'Z', '"')
}

// civilDate returns the proleptic Gregorian date of the day days after
// 1970-01-01 (Howard Hinnant's civil_from_days).
func civilDate(days int64) (year int64, month, day int) {
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097                                  // [0, 146096]
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // [0, 365]
	mp := (5*doy + 2) / 153                                // [0, 11], from March
	day = int(doy - (153*mp+2)/5 + 1)
	month = int(mp + 3)
	if month > 12 {
		month -= 12
	}
	year = yoe + era*400
	if month <= 2 {
		year++
	}
	return year, month, day
}

// appendDigits appends the n lowest decimal digits of v >= 0, zero-padded.
func appendDigits(dst []byte, v, n int) []byte {
	dst = append(dst, "000000000"[:n]...)
	for i := len(dst) - 1; v > 0 && i >= len(dst)-n; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
	return dst
}

// plainJSON has c set for the bytes a JSON string holds as they are, as
// encoding/json writes them: printable ASCII but the quote, the backslash
// and the HTML characters it escapes.
var plainJSON = func() (t [256]bool) {
	for c := 0x20; c <= 0x7e; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString appends s as encoding/json encodes it. Ids, names and most
// keys and summaries are printable ASCII with nothing to escape: those are
// copied between quotes, without the allocations of json.Marshal, which
// encodes the rest.
func appendString(dst []byte, s string) []byte {
	for i := range len(s) {
		if !plainJSON[s[i]] {
			b, _ := json.Marshal(s)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

func unixTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }
