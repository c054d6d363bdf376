package cep

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrClockSkew is the reason an event is dead-lettered for being further
// ahead in time than its stream allows: further ahead of the wall clock
// under serve (EngineOptions.MaxClockSkew, stream.max_clock_skew), of the
// watermark in a replay (ReplayOptions.MaxClockSkew). Taken, one such
// event would push the watermark to its time, making every later event of
// its partition late and closing every open window at once.
var ErrClockSkew = errors.New("clock skew")

// clockSkewError says which event time was refused, against what and
// under which bound, for the dead-letter reason and the offline reports.
type clockSkewError struct {
	eventTime, ref int64 // Unix ns
	refName        string
	bound          time.Duration
	s              *stream
}

func (e *clockSkewError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: event time %s is ahead of the %s %s by more than max_clock_skew %s (",
		ErrClockSkew, formatNanos(e.eventTime), e.refName, formatNanos(e.ref), e.bound)
	const maxNames = 3
	if n := len(e.s.rulesets); n == 1 {
		b.WriteString("ruleset ")
	} else {
		b.WriteString("rulesets ")
	}
	for i, rs := range e.s.rulesets {
		if i == maxNames {
			fmt.Fprintf(&b, " and %d more", len(e.s.rulesets)-maxNames)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(rs.Name))
	}
	if e.s.topic != "" {
		fmt.Fprintf(&b, ", topic %q", e.s.topic)
	}
	b.WriteByte(')')
	return b.String()
}

func (e *clockSkewError) Unwrap() error { return ErrClockSkew }

// tooFarAhead returns the reason an event at time t is refused when it
// is more than bound ahead of ref, else nil. A bound of zero or less, or a
// ref of math.MinInt64 (a watermark before the first event), bounds
// nothing.
func tooFarAhead(s *stream, t, ref int64, refName string, bound time.Duration) error {
	if bound <= 0 || ref == math.MinInt64 || ref > math.MaxInt64-int64(bound) || t <= ref+int64(bound) {
		return nil
	}
	return &clockSkewError{eventTime: t, ref: ref, refName: refName, bound: bound, s: s}
}

// formatNanos formats Unix ns as an RFC 3339 UTC time.
func formatNanos(ns int64) string {
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}
