package rules

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrInvalid matches (errors.Is) every ErrorList: the ruleset was rejected
// because of what it says, not because of an I/O or internal failure.
var ErrInvalid = errors.New("invalid ruleset")

// Error is one problem in a ruleset, at a position of its source.
type Error struct {
	Pos Pos
	// Rule is the id of the rule the error is in; empty outside rules.
	Rule string
	Msg  string
	// Snippet, for errors inside CEL expressions, holds the source line and
	// a caret under the column, each line starting with " | ".
	Snippet string
	// Warning marks a problem that does not reject the ruleset (see
	// Compiled.Warnings).
	Warning bool
}

// Error formats the error as `file:line:col: rule "id": message` (a warning
// as `file:line:col: warning: rule "id": message`), followed by the snippet
// lines.
func (e *Error) Error() string {
	var b strings.Builder
	if s := e.Pos.String(); s != "" {
		b.WriteString(s)
		b.WriteString(": ")
	}
	if e.Warning {
		b.WriteString("warning: ")
	}
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %q: ", e.Rule)
	}
	b.WriteString(e.Msg)
	if e.Snippet != "" {
		b.WriteByte('\n')
		b.WriteString(e.Snippet)
	}
	return b.String()
}

// ErrorList is every problem found in a ruleset, sorted by position.
type ErrorList []*Error

// Error joins the errors, one per line (a snippet adds its own lines).
func (l ErrorList) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Is makes errors.Is(err, ErrInvalid) true for any ErrorList.
func (l ErrorList) Is(target error) bool { return target == ErrInvalid }

// Unwrap exposes the single errors to errors.As.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// sort orders the list by file, line and column, keeping the order of
// errors at the same position, and drops exact duplicates.
func (l ErrorList) sort() ErrorList {
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
	return slices.CompactFunc(l, func(a, b *Error) bool {
		return a.Pos == b.Pos && a.Rule == b.Rule && a.Msg == b.Msg
	})
}

// err returns the list as an error, nil when empty.
func (l ErrorList) err() error {
	if len(l) == 0 {
		return nil
	}
	return l.sort()
}

// errs collects errors while walking a ruleset.
type errs struct {
	list     ErrorList
	warnings ErrorList
	rule     string
}

func (e *errs) add(pos Pos, format string, args ...any) {
	e.list = append(e.list, &Error{Pos: pos, Rule: e.rule, Msg: fmt.Sprintf(format, args...)})
}

// warn records a warning, kept apart from the errors.
func (e *errs) warn(pos Pos, format string, args ...any) {
	e.warnings = append(e.warnings, &Error{Pos: pos, Rule: e.rule, Msg: fmt.Sprintf(format, args...), Warning: true})
}
