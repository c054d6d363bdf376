package draw

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Colours, as presentation attributes: a style sheet overrides them.
var (
	actionStroke = map[string]string{ActionTake: "#1f5fa8", ActionIgnore: "#8a8a8a", ActionProceed: "#2e7d32"}
	actionDash   = map[string]string{ActionTake: "", ActionIgnore: "5 3", ActionProceed: "2 3"}
	kindFill     = map[string]string{KindNormal: "#ffffff", KindFinal: "#e8f5e9", KindStop: "#fdecea", KindPending: "#fff3e0"}
	kindStroke   = map[string]string{KindNormal: "#37474f", KindFinal: "#2e7d32", KindStop: "#c62828", KindPending: "#ef6c00"}
)

const fontFamily = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace"

// SVG renders g as a self-contained SVG document. The same graph gives the
// same bytes.
func SVG(g *Graph) []byte {
	edges := append(slices.Clip(g.Edges), pendingLinks(g)...)
	labels := make([]string, len(edges))
	for i, e := range edges {
		labels[i] = truncate(edgeLabel(e), maxLabelChars)
	}
	l := place(g, edges, labels)
	names := make(map[int]string, len(g.States))
	for _, s := range g.States {
		names[s.ID] = stateName(s)
	}

	caption := "rule " + oneLine(g.Rule)
	if g.Window != "" {
		caption += " · within " + g.Window
	}
	caption = truncate(caption, 80)
	const legend = "take: the event joins the match · ignore: the event is skipped · proceed: a move without an event"
	captionH := 2*labelFont + 22.0
	pad := 16.0
	x0, y0 := l.bounds.x0-pad, l.bounds.y0-pad-captionH
	w := math.Max(l.bounds.x1-l.bounds.x0, textWidth(len([]rune(legend)), labelFont)) + 2*pad
	h := l.bounds.y1 - l.bounds.y0 + 2*pad + captionH

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="shrike-automaton" role="img" viewBox="%s %s %s %s" width="%s" height="%s" font-family="%s" data-rule="%s" data-states="%d" data-edges="%d">`+"\n",
		num(x0), num(y0), num(w), num(h), num(w), num(h), fontFamily, esc(g.Rule), len(g.States), len(g.Edges))
	fmt.Fprintf(&b, "<title>%s</title>\n", esc(truncate("Automaton of rule "+oneLine(g.Rule), maxTitleRunes)))
	fmt.Fprintf(&b, "<desc>%s</desc>\n", esc(describe(g, names)))
	fmt.Fprintf(&b, `<g class="caption"><text class="caption-rule" x="%s" y="%s" font-size="%s" font-weight="bold" fill="#263238">%s</text>`,
		num(x0+pad), num(y0+pad+labelFont), num(nameFont), esc(caption))
	fmt.Fprintf(&b, `<text class="caption-legend" x="%s" y="%s" font-size="%s" fill="#607d8b">%s</text></g>`+"\n",
		num(x0+pad), num(y0+pad+2*labelFont+6), num(labelFont), esc(legend))

	b.WriteString(`<g class="edges">` + "\n")
	for i, e := range g.Edges {
		writeEdge(&b, e, &l.curves[i], labels[i], names)
	}
	b.WriteString("</g>\n")
	if len(edges) > len(g.Edges) {
		b.WriteString(`<g class="pending-matches">` + "\n")
		for i := len(g.Edges); i < len(edges); i++ {
			writePendingLink(&b, edges[i], &l.curves[i], labels[i], names)
		}
		b.WriteString("</g>\n")
	}

	b.WriteString(`<g class="states">` + "\n")
	for i, s := range g.States {
		writeState(&b, s, l.pos[i])
	}
	b.WriteString("</g>\n</svg>\n")
	return b.Bytes()
}

// pendingMatch is the action of the picture's links from a pending state
// to the final one: not an edge of the automaton, but what the matcher
// does with a run waiting in a pending state when its window closes.
const pendingMatch = "window closes"

// pendingLinks are the links from g's pending states to its final state.
func pendingLinks(g *Graph) []Edge {
	final := -1
	for _, s := range g.States {
		if s.Kind == KindFinal {
			final = s.ID
		}
	}
	var out []Edge
	for _, s := range g.States {
		if s.Kind == KindPending && final >= 0 {
			out = append(out, Edge{From: s.ID, To: final, Action: pendingMatch, Condition: "true"})
		}
	}
	return out
}

func writeEdge(b *bytes.Buffer, e Edge, c *curve, label string, names map[int]string) {
	shape := ""
	switch {
	case c.self:
		shape = ` data-self="true"`
	case c.back:
		shape = ` data-back="true"`
	}
	stroke := actionStroke[e.Action]
	fmt.Fprintf(b, `<g class="edge" data-from="%d" data-to="%d" data-action="%s" data-condition="%s"%s>`,
		e.From, e.To, e.Action, esc(e.Condition), shape)
	title := fmt.Sprintf("%s, from state %d (%s) to state %d (%s)", edgeLabel(e), e.From, names[e.From], e.To, names[e.To])
	fmt.Fprintf(b, "<title>%s</title>", esc(truncate(title, maxTitleRunes)))
	dash := ""
	if d := actionDash[e.Action]; d != "" {
		dash = fmt.Sprintf(` stroke-dasharray="%s"`, d)
	}
	fmt.Fprintf(b, `<path class="edge-line" d="M%s %s C%s %s %s %s %s %s" fill="none" stroke="%s" stroke-width="1.4"%s/>`,
		num(c.p0.x), num(c.p0.y), num(c.c1.x), num(c.c1.y), num(c.c2.x), num(c.c2.y), num(c.p3.x), num(c.p3.y), stroke, dash)
	writeArrow(b, c, stroke, "edge-arrow")
	writeLabel(b, c, label, stroke, "edge-label")
	b.WriteString("</g>\n")
}

// writeArrow draws the arrowhead of curve c, pointing along its last
// control segment.
func writeArrow(b *bytes.Buffer, c *curve, fill, class string) {
	from := c.c2
	if from == c.p3 {
		from = c.p0
	}
	dx, dy := c.p3.x-from.x, c.p3.y-from.y
	if n := math.Hypot(dx, dy); n > 0 {
		dx, dy = dx/n, dy/n
	}
	const length, half = 9.0, 4.0
	bx, by := c.p3.x-length*dx, c.p3.y-length*dy
	fmt.Fprintf(b, `<path class="%s" d="M%s %s L%s %s L%s %s Z" fill="%s"/>`,
		class, num(c.p3.x), num(c.p3.y), num(bx-half*dy), num(by+half*dx), num(bx+half*dy), num(by-half*dx), fill)
}

// writeLabel writes an edge's label on a background that hides the lines
// under it.
func writeLabel(b *bytes.Buffer, c *curve, label, fill, class string) {
	lb := c.label
	fmt.Fprintf(b, `<rect class="%s-bg" x="%s" y="%s" width="%s" height="%s" rx="3" fill="#ffffff" fill-opacity="0.9"/>`,
		class, num(lb.x0), num(lb.y0), num(lb.x1-lb.x0), num(lb.y1-lb.y0))
	fmt.Fprintf(b, `<text class="%s" x="%s" y="%s" text-anchor="middle" font-size="%s" fill="%s">%s</text>`,
		class, num((lb.x0+lb.x1)/2), num(lb.y1-4.5), num(labelFont), fill, esc(label))
}

// writePendingLink draws a link from a pending state to the final state:
// a dashed line, not an edge (no class "edge").
func writePendingLink(b *bytes.Buffer, e Edge, c *curve, label string, names map[int]string) {
	const stroke = "#ef6c00"
	fmt.Fprintf(b, `<g class="pending-match" data-from="%d" data-to="%d">`, e.From, e.To)
	title := fmt.Sprintf("a run waiting in state %d (%s) is a match when its window closes without the forbidden event", e.From, names[e.From])
	fmt.Fprintf(b, "<title>%s</title>", esc(title))
	fmt.Fprintf(b, `<path class="pending-line" d="M%s %s C%s %s %s %s %s %s" fill="none" stroke="%s" stroke-width="1.4" stroke-dasharray="6 4"/>`,
		num(c.p0.x), num(c.p0.y), num(c.c1.x), num(c.c1.y), num(c.c2.x), num(c.c2.y), num(c.p3.x), num(c.p3.y), stroke)
	writeArrow(b, c, stroke, "pending-arrow")
	writeLabel(b, c, label, stroke, "pending-label")
	b.WriteString("</g>\n")
}

func writeState(b *bytes.Buffer, s State, p point) {
	attrs := ""
	if s.Start {
		attrs += ` data-start="true"`
	}
	if s.Group {
		attrs += ` data-group="true"`
	}
	if s.Window != "" {
		attrs += fmt.Sprintf(` data-window="%s"`, esc(s.Window))
	}
	fmt.Fprintf(b, `<g class="state" data-state="%d" data-name="%s" data-kind="%s"%s>`, s.ID, esc(s.Name), s.Kind, attrs)
	fmt.Fprintf(b, "<title>%s</title>", esc(truncate(stateTitle(s), maxTitleRunes)))
	stroke, fill := kindStroke[s.Kind], kindFill[s.Kind]
	if s.Start {
		// An arrow from a dot into the state, as automata are drawn.
		y := p.y + nodeH/2
		fmt.Fprintf(b, `<path class="start-arrow" d="M%s %s L%s %s M%s %s L%s %s L%s %s Z" stroke="#263238" stroke-width="1.4" fill="#263238"/>`,
			num(p.x-startArrow+2), num(y), num(p.x-9), num(y), num(p.x), num(y), num(p.x-9), num(y-4), num(p.x-9), num(y+4))
		fmt.Fprintf(b, `<circle class="start-dot" cx="%s" cy="%s" r="3.5" fill="#263238"/>`, num(p.x-startArrow), num(y))
	}
	dash := ""
	if s.Kind == KindPending || s.Group {
		dash = ` stroke-dasharray="5 3"`
	}
	width := "1.6"
	if s.Kind == KindStop {
		width = "2.2"
	}
	fmt.Fprintf(b, `<rect class="state-box" x="%s" y="%s" width="%s" height="%s" rx="8" fill="%s" stroke="%s" stroke-width="%s"%s/>`,
		num(p.x), num(p.y), num(nodeW), num(nodeH), fill, stroke, width, dash)
	if s.Kind == KindFinal {
		fmt.Fprintf(b, `<rect class="state-inner" x="%s" y="%s" width="%s" height="%s" rx="5" fill="none" stroke="%s" stroke-width="1.2"/>`,
			num(p.x+3.5), num(p.y+3.5), num(nodeW-7), num(nodeH-7), stroke)
	}
	nameColour := "#263238"
	if s.Kind == KindStop {
		nameColour = stroke
	}
	note := stateNote(s)
	nameY := p.y + nodeH/2 + nameFont*0.35
	if note != "" {
		nameY = p.y + 19
	}
	fmt.Fprintf(b, `<text class="state-name" x="%s" y="%s" text-anchor="middle" font-size="%s" font-weight="bold" fill="%s">%s</text>`,
		num(p.x+nodeW/2), num(nameY), num(nameFont), nameColour, esc(truncate(stateName(s), maxNameChars)))
	if note != "" {
		fmt.Fprintf(b, `<text class="state-note" x="%s" y="%s" text-anchor="middle" font-size="%s" fill="#546e7a">%s</text>`,
			num(p.x+nodeW/2), num(p.y+35), num(subFont), esc(truncate(note, maxSubChars)))
	}
	b.WriteString("</g>\n")
}

// stateName is the state's label: its step's name, "not NAME" for a not
// step's stop state, "match" for the final state.
func stateName(s State) string {
	switch s.Kind {
	case KindFinal:
		return "match"
	case KindStop:
		return "not " + oneLine(s.Name)
	}
	return oneLine(s.Name)
}

// stateNote is the line under the name: start, group loop, pending, the
// step's window.
func stateNote(s State) string {
	var parts []string
	if s.Start {
		parts = append(parts, "start")
	}
	if s.Group {
		parts = append(parts, "group loop")
	}
	switch s.Kind {
	case KindPending:
		parts = append(parts, "pending")
	case KindStop:
		parts = append(parts, "discards the run")
	}
	if s.Window != "" {
		parts = append(parts, "within "+s.Window)
	}
	return strings.Join(parts, " · ")
}

func stateTitle(s State) string {
	t := fmt.Sprintf("state %d: ", s.ID)
	switch {
	case s.Kind == KindFinal:
		t += "the match is complete"
	case s.Kind == KindStop:
		t += fmt.Sprintf("not step %s: a run here is discarded, the forbidden event arrived", s.Name)
	case s.Group:
		t += fmt.Sprintf("group %s: from the end of a round back to its first step", s.Name)
	default:
		t += "step " + s.Name
	}
	if s.Kind == KindPending {
		t += "; pending: a run waiting here matches when its window closes"
	}
	if s.Start {
		t += "; a run starts here"
	}
	if s.Window != "" {
		t += "; within " + s.Window + " of the run's previous event"
	}
	return t
}

// edgeLabel is "ACTION: CONDITION", or the action alone when unconditional.
func edgeLabel(e Edge) string {
	if e.Condition == "true" {
		return e.Action
	}
	return e.Action + ": " + oneLine(e.Condition)
}

// describe is the picture's <desc>: a summary, then, for automata small
// enough to read aloud, one sentence per state.
func describe(g *Graph, names map[int]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Automaton of rule %s: %d states, %d edges", oneLine(g.Rule), len(g.States), len(g.Edges))
	if g.Window != "" {
		fmt.Fprintf(&b, ", within %s", g.Window)
	}
	fmt.Fprintf(&b, "; a run starts in state %d (%s).", g.Start, names[g.Start])
	if len(g.States) > 40 {
		return truncate(b.String(), maxTitleRunes)
	}
	from := map[int][]Edge{}
	for _, e := range g.Edges {
		from[e.From] = append(from[e.From], e)
	}
	for _, s := range g.States {
		fmt.Fprintf(&b, " State %d (%s)", s.ID, names[s.ID])
		if s.Kind != KindNormal {
			fmt.Fprintf(&b, ", %s", s.Kind)
		}
		if s.Window != "" {
			fmt.Fprintf(&b, ", within %s", s.Window)
		}
		if len(from[s.ID]) == 0 {
			b.WriteString(": no edges.")
			continue
		}
		b.WriteString(":")
		for i, e := range from[s.ID] {
			if i > 0 {
				b.WriteString(";")
			}
			fmt.Fprintf(&b, " %s to state %d", truncate(edgeLabel(e), maxDescRunes), e.To)
		}
		b.WriteString(".")
	}
	return b.String()
}

// oneLine folds runs of white space (a condition written over several YAML
// lines) into one space.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// truncate shortens s to max runes, ending it with an ellipsis.
func truncate(s string, limit int) string {
	r := []rune(s)
	if len(r) <= limit {
		return s
	}
	return string(r[:limit-1]) + "…"
}

// esc escapes s for XML text and attribute values; characters XML cannot
// hold become U+FFFD.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
	return b.String()
}

// num writes a coordinate with at most one decimal.
func num(v float64) string {
	v = math.Round(v*10) / 10
	if v == 0 {
		v = 0 // no "-0"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
