package matcher

import (
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"

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
	// Steps holds the matched records per step, in pattern order; steps that
	// took nothing (skipped optional steps) are absent.
	Steps []StepRecords
}

// StepRecords are the records one step of a match took, in match order.
type StepRecords struct {
	Step    string
	Records []*Record
}

// alertID derives the deterministic id of docs/design.md#alerts: a hash of ruleset,
// rule, rule version, key, the timeout flag and the matched records'
// positions, so that replaying the same input yields the same ids.
func alertID(ruleset, rule, version, key string, timeout bool, steps []StepRecords) string {
	var buf []byte
	for _, s := range []string{ruleset, rule, version, key} {
		buf = strconv.AppendInt(buf, int64(len(s)), 10)
		buf = append(buf, ':')
		buf = append(buf, s...)
	}
	if timeout {
		buf = append(buf, 'T')
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
	var sum [16]byte
	h1 := xxhash.Sum64(buf)
	h2 := xxhash.Sum64(append(buf, "#shrike"...))
	for i := range 8 {
		sum[i] = byte(h1 >> (56 - 8*i))
		sum[8+i] = byte(h2 >> (56 - 8*i))
	}
	return hex.EncodeToString(sum[:])
}

// MarshalJSON encodes the alert as one JSON object. The events of each step
// are the records' original bytes, and steps keep pattern order.
func (a *Alert) MarshalJSON() ([]byte, error) {
	return a.AppendJSON(nil), nil
}

// AppendJSON appends the alert's JSON encoding to dst.
func (a *Alert) AppendJSON(dst []byte) []byte {
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
	dst = appendString(dst, a.Key)
	dst = append(dst, `,"summary":`...)
	dst = appendString(dst, a.Summary)
	dst = append(dst, `,"labels":`...)
	if len(a.Labels) == 0 {
		dst = append(dst, `{}`...)
	} else {
		b, _ := json.Marshal(a.Labels) // sorted keys: stable output
		dst = append(dst, b...)
	}
	dst = append(dst, `,"start":`...)
	dst = appendTime(dst, a.Start)
	dst = append(dst, `,"end":`...)
	dst = appendTime(dst, a.End)
	dst = append(dst, `,"detected_at":`...)
	dst = appendTime(dst, a.DetectedAt)
	dst = append(dst, `,"timeout":`...)
	dst = strconv.AppendBool(dst, a.Timeout)
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
			dst = append(dst, r.Event.Raw()...)
		}
		dst = append(dst, ']')
	}
	return append(dst, "}}"...)
}

func appendTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

func appendString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s)
	return append(dst, b...)
}

func unixTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }
