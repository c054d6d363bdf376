package rules

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// mapPos turns a position inside an expression (CEL's 1-based line,
// 0-based column in runes) into a position in the ruleset file, and renders
// the caret snippet from the file's line.
//
// YAML changes the text of a scalar on its way to the expression: quotes
// and escapes, folded line breaks, block indentation. Rather than invert
// each rule of the YAML spec, the expression's runes are aligned greedily
// with the source runes from the start of the scalar: each expression rune
// is matched with the next equal source rune (an escape sequence counting
// as the rune it stands for). Removed characters (indentation, quotes,
// doubled single quotes, escaped line breaks) are skipped on the way.
func (c *compiler) mapPos(sp exprSpec, line, col int) (Pos, string) {
	expr := []rune(sp.src)
	off := runeOffset(expr, line, col)
	if end := trimTrailingBreaks(expr, off); end != off {
		// An error at the end of the text (CEL's <EOF>) lies past the
		// scalar's final line breaks, which a block scalar keeps: the line
		// after the expression, or after the file. Point at the end of the
		// expression's last line instead.
		off = end
		line, col = lineCol(expr, off)
	}
	if n, ok := c.rs.exprNodes[sp.pos]; ok && c.rs.src != nil {
		if c.lines == nil {
			c.lines = splitLines(c.rs.src)
		}
		full, at := expr, off
		if n.prefix != "" {
			prefix := []rune(n.prefix)
			full, at = append(prefix, expr...), len(prefix)+off
		}
		if l, cl, ok := align(c.lines, n, full, at); ok {
			pos := Pos{File: sp.pos.File, Line: l + 1, Col: cl + 1}
			return pos, snippet(c.lines[l], cl)
		}
		return sp.pos, ""
	}
	// A ruleset built in code: positions are relative to the expression's
	// Pos, the snippet comes from the expression itself.
	lines := splitLines([]byte(sp.src))
	pos := sp.pos
	if pos.Line > 0 {
		if line == 1 {
			pos.Col += col
		} else {
			pos.Line += line - 1
			pos.Col = col + 1
		}
	}
	if line-1 < len(lines) {
		return pos, snippet(lines[line-1], min(col, len(lines[line-1])))
	}
	return pos, ""
}

func runeOffset(expr []rune, line, col int) int {
	off := 0
	for l := 1; l < line && off < len(expr); off++ {
		if expr[off] == '\n' {
			l++
		}
	}
	return min(off+col, len(expr))
}

// trimTrailingBreaks moves an offset that only line breaks follow back
// before those breaks, when a line break precedes it.
func trimTrailingBreaks(expr []rune, off int) int {
	for _, r := range expr[off:] {
		if r != '\n' && r != '\r' {
			return off
		}
	}
	for off > 0 && (expr[off-1] == '\n' || expr[off-1] == '\r') {
		off--
	}
	return off
}

// lineCol is the inverse of runeOffset.
func lineCol(expr []rune, off int) (line, col int) {
	line = 1
	for _, r := range expr[:off] {
		col++
		if r == '\n' {
			line, col = line+1, 0
		}
	}
	return line, col
}

func splitLines(src []byte) [][]rune {
	parts := strings.Split(string(src), "\n")
	out := make([][]rune, len(parts))
	for i, p := range parts {
		out[i] = []rune(strings.TrimSuffix(p, "\r"))
	}
	return out
}

// maxSkip bounds how far the alignment looks for a rune before giving up
// (and falling back to the scalar's own position).
const maxSkip = 4096

// align returns the 0-based line and column of expression rune off.
func align(lines [][]rune, n exprNode, expr []rune, off int) (int, int, bool) {
	li, ci := n.line-1, n.col-1
	switch {
	case n.style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0:
		ci++ // past the opening quote
	case n.style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		li, ci = li+1, 0 // past the block header
	}
	dq := n.style&yaml.DoubleQuotedStyle != 0
	if li < 0 || li >= len(lines) {
		return 0, 0, false
	}
	for i := 0; i < len(expr); i++ {
		r := expr[i]
		skipped := 0
		for {
			if li >= len(lines) || skipped > maxSkip {
				return 0, 0, false
			}
			if ci >= len(lines[li]) {
				if r == '\n' {
					if i == off {
						return li, ci, true
					}
					li, ci = li+1, 0
					break
				}
				li, ci = li+1, 0
				skipped++
				continue
			}
			c := lines[li][ci]
			if dq && c == '\\' {
				if ci+1 >= len(lines[li]) { // escaped line break
					li, ci = li+1, 0
					continue
				}
				dec, n := yamlEscape(lines[li][ci+1:])
				if dec == r {
					if i == off {
						return li, ci, true
					}
					ci += 1 + n
					break
				}
				ci += 1 + n
				skipped++
				continue
			}
			if c == r {
				if i == off {
					return li, ci, true
				}
				ci++
				break
			}
			ci++
			skipped++
		}
	}
	// off is just past the expression (an error at its end).
	if li < len(lines) {
		return li, min(ci, len(lines[li])), true
	}
	return 0, 0, false
}

// yamlEscape decodes the escape after a backslash in a double-quoted
// scalar; n is the number of runes it spans after the backslash.
func yamlEscape(s []rune) (r rune, n int) {
	simple := map[rune]rune{
		'0': 0, 'a': '\a', 'b': '\b', 't': '\t', '\t': '\t', 'n': '\n', 'v': '\v',
		'f': '\f', 'r': '\r', 'e': 0x1b, ' ': ' ', '"': '"', '/': '/', '\\': '\\',
		'N': 0x85, '_': 0xa0, 'L': 0x2028, 'P': 0x2029,
	}
	if v, ok := simple[s[0]]; ok {
		return v, 1
	}
	width := map[rune]int{'x': 2, 'u': 4, 'U': 8}[s[0]]
	if width == 0 || len(s) < 1+width {
		return -1, 1
	}
	v, err := strconv.ParseUint(string(s[1:1+width]), 16, 32)
	if err != nil {
		return -1, 1
	}
	return rune(v), 1 + width
}

// snippet renders a source line and a caret under column col (0-based).
// Tabs before the column are kept so the caret lines up.
func snippet(line []rune, col int) string {
	var b strings.Builder
	b.WriteString(" | ")
	b.WriteString(string(line))
	b.WriteString("\n | ")
	for i := 0; i < col && i < len(line); i++ {
		if line[i] == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
	}
	b.WriteByte('^')
	return b.String()
}
