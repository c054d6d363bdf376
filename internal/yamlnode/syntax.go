package yamlnode

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// yamlLineRE matches the "line N: " yaml.v3 puts before a syntax error
// (after its "yaml: " prefix).
var yamlLineRE = regexp.MustCompile(`^line (\d+): `)

// SyntaxError locates a syntax error that yaml.v3 returned for src, as
// decoded by a yaml.Decoder into a yaml.Node, and returns its line (0 when
// the error carries none) and its message without yaml's "yaml: line N: "
// prefix.
//
// yaml.v3 prints the line of the construct it was parsing (a block mapping
// that began lines earlier; for a parser error even the line before it)
// rather than the line of the offending token, and no column. The real line
// is the first one at which the document, cut after that line, already
// fails the same way: before it the document parses, or fails differently
// (a construct cut short). That line is at or after the printed one, and
// found by a galloping then binary search over the cuts.
func SyntaxError(src []byte, err error) (line int, msg string) {
	full := err.Error()
	msg = strings.TrimPrefix(full, "yaml: ")
	m := yamlLineRE.FindStringSubmatch(msg)
	if m == nil {
		return 0, msg
	}
	msg = msg[len(m[0]):]
	printed, _ := strconv.Atoi(m[1])
	ends := lineEnds(src)
	if printed < 1 || printed > len(ends) {
		return printed, msg
	}
	cut := func(l int) error {
		var n yaml.Node
		return yaml.NewDecoder(bytes.NewReader(src[:ends[l-1]])).Decode(&n)
	}
	same := func(l int) bool {
		if l >= len(ends) {
			return true // the whole document fails this way
		}
		err := cut(l)
		return err != nil && err.Error() == full
	}
	// Invariant: the cut after line lo does not fail the same way (lo =
	// printed-1 is assumed), the cut after hi does.
	lo, hi := printed-1, printed
	for step := 1; !same(hi); step *= 2 {
		lo, hi = hi, min(hi+step, len(ends))
	}
	for lo+1 < hi {
		mid := (lo + hi) / 2
		if same(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	// A quote left open runs on to the next quote of the same kind, and the
	// error shows where the text after that one fails to parse. Cut just
	// before, the document ends inside the quoted string, and yaml.v3 then
	// prints the line where the string begins: the likely mistake.
	if hi > 1 {
		if err := cut(hi - 1); err != nil {
			m := yamlLineRE.FindStringSubmatch(strings.TrimPrefix(err.Error(), "yaml: "))
			if m != nil && strings.HasSuffix(err.Error(), ": "+openQuoteMsg) {
				if q, _ := strconv.Atoi(m[1]); q >= 1 && q < hi {
					return q, fmt.Sprintf("%s (the quoted string that begins on this line ends on line %d: is a quote missing?)", msg, hi)
				}
			}
		}
	}
	return hi, msg
}

// openQuoteMsg is yaml.v3's error for a document that ends inside a quoted
// string (and for nothing else).
const openQuoteMsg = "found unexpected end of stream"

// lineEnds returns, for each line of src, the offset just past it (past
// its newline, if any).
func lineEnds(src []byte) []int {
	var ends []int
	for i, c := range src {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(src) > 0 && src[len(src)-1] != '\n' {
		ends = append(ends, len(src))
	}
	return ends
}
