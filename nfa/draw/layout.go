package draw

import (
	"math"
	"sort"
)

// Geometry of the picture, in SVG user units (pixels at scale 1). The text
// is monospace, so a label's width is its length times the advance.
const (
	nodeW       = 156.0
	nodeH       = 46.0
	rowGap      = 72.0
	minColGap   = 72.0
	nameFont    = 12.0
	subFont     = 10.0
	labelFont   = 11.0
	charAdvance = 0.6 // of the font size, for common monospace faces
	labelPadX   = 4.0
	labelH      = labelFont + 5
	startArrow  = 36.0 // the start state's incoming arrow

	maxNameChars  = 19 // (nodeW - 2*padding) / (nameFont*charAdvance)
	maxSubChars   = 24
	maxLabelChars = 32
	maxTitleRunes = 2000
	maxDescRunes  = 160
)

type point struct{ x, y float64 }

// box is an axis-aligned rectangle: the labels' and nodes' footprints.
type box struct{ x0, y0, x1, y1 float64 }

func (b box) overlaps(o box) bool {
	return b.x0 < o.x1 && o.x0 < b.x1 && b.y0 < o.y1 && o.y0 < b.y1
}

// layout is the placed picture: a rank (column) and row per state, a curve
// and a label position per edge.
type layout struct {
	rank, row []int
	pos       []point // each state's top-left corner, by index in Graph.States
	curves    []curve // by index in Graph.Edges
	bounds    box
}

// curve is one edge's cubic Bézier and where its label goes.
type curve struct {
	p0, c1, c2, p3 point
	back, self     bool
	label          box
}

func textWidth(chars int, font float64) float64 {
	return float64(chars) * font * charAdvance
}

// place lays out g's states and the edges given (g's own, then the
// picture's links from pending states to the final one), labelled with
// labels. States are referred to by their index in g.States, which
// Describe makes equal to their id.
func place(g *Graph, edges []Edge, labels []string) *layout {
	n := len(g.States)
	index := make(map[int]int, n)
	for i, s := range g.States {
		index[s.ID] = i
	}
	out := make([][]int, n) // edge indexes by source
	for i, e := range edges {
		out[index[e.From]] = append(out[index[e.From]], i)
	}

	// Depth-first from the start, then from every state not reached, in
	// id order: an edge to a state on the walk's stack is a back edge.
	const (
		unseen = iota
		onStack
		done
	)
	color := make([]int, n)
	back := make([]bool, len(edges))
	var post, discovery []int
	var visit func(v int)
	visit = func(v int) {
		color[v] = onStack
		discovery = append(discovery, v)
		for _, ei := range out[v] {
			w := index[edges[ei].To]
			switch color[w] {
			case unseen:
				visit(w)
			case onStack:
				back[ei] = true
			}
		}
		color[v] = done
		post = append(post, v)
	}
	if s, ok := index[g.Start]; ok {
		visit(s)
	}
	for v := range n {
		if color[v] == unseen {
			visit(v)
		}
	}
	order := make([]int, n) // discovery position, for ties
	for i, v := range discovery {
		order[v] = i
	}

	// Rank: the longest path over forward edges, in topological order
	// (reverse post-order).
	rank := make([]int, n)
	preds := make([][]int, n)
	for i := len(post) - 1; i >= 0; i-- {
		v := post[i]
		for _, ei := range out[v] {
			w := index[edges[ei].To]
			if back[ei] || w == v {
				continue
			}
			rank[w] = max(rank[w], rank[v]+1)
			preds[w] = append(preds[w], v)
		}
	}
	ranks := 0
	for _, r := range rank {
		ranks = max(ranks, r+1)
	}
	columns := make([][]int, ranks)
	for _, v := range discovery {
		columns[rank[v]] = append(columns[rank[v]], v)
	}

	// Rows: column by column, each state as near the mean row of its
	// predecessors as the states above it allow.
	row := make([]int, n)
	for _, col := range columns {
		bary := make(map[int]float64, len(col))
		for _, v := range col {
			if len(preds[v]) == 0 {
				continue // a root: first, in discovery order
			}
			sum := 0.0
			for _, p := range preds[v] {
				sum += float64(row[p])
			}
			bary[v] = sum / float64(len(preds[v]))
		}
		sort.SliceStable(col, func(i, j int) bool {
			if bary[col[i]] != bary[col[j]] {
				return bary[col[i]] < bary[col[j]]
			}
			return order[col[i]] < order[col[j]]
		})
		next := 0
		for _, v := range col {
			row[v] = max(next, int(math.Round(bary[v])))
			next = row[v] + 1
		}
	}

	// Columns are as far apart as the widest label of an edge between
	// neighbouring columns needs.
	gaps := make([]float64, ranks)
	for i := range gaps {
		gaps[i] = minColGap
	}
	for i, e := range edges {
		v, w := index[e.From], index[e.To]
		if !back[i] && v != w && rank[w] == rank[v]+1 {
			gaps[rank[v]] = max(gaps[rank[v]], textWidth(len([]rune(labels[i])), labelFont)+2*labelPadX+24)
		}
	}
	colX := make([]float64, ranks)
	for r := 1; r < ranks; r++ {
		colX[r] = colX[r-1] + nodeW + gaps[r-1]
	}
	l := &layout{rank: rank, row: row, pos: make([]point, n), curves: make([]curve, len(edges))}
	var taken []box
	for v := range n {
		p := point{colX[rank[v]], float64(row[v]) * (nodeH + rowGap)}
		l.pos[v] = p
		l.grow(box{p.x, p.y, p.x + nodeW, p.y + nodeH})
		if g.States[v].Start {
			l.grow(box{p.x - startArrow - 4, p.y, p.x, p.y + nodeH})
		}
		// A label keeps a margin from the states, so that it is not
		// read as theirs.
		taken = append(taken, box{p.x - 6, p.y - 6, p.x + nodeW + 6, p.y + nodeH + 6})
	}

	// Curves: forward edges between neighbouring columns run from side to
	// side, longer forward edges arc over the states, back edges under
	// them, self-loops over their state. Parallel edges bend further.
	parallel := map[[2]int]int{}
	for i, e := range edges {
		v, w := index[e.From], index[e.To]
		k := parallel[[2]int{v, w}]
		parallel[[2]int{v, w}]++
		a, b := l.pos[v], l.pos[w]
		span := rank[w] - rank[v]
		c := curve{back: back[i], self: v == w}
		switch {
		case c.self:
			h := 40 + 18*float64(k)
			c.p0 = point{a.x + nodeW*0.38, a.y}
			c.p3 = point{a.x + nodeW*0.62, a.y}
			c.c1 = point{a.x + nodeW*0.2, a.y - h}
			c.c2 = point{a.x + nodeW*0.8, a.y - h}
		case !back[i] && span == 1:
			// Parallel edges fan out: below, above, further below, …
			level := float64((k + 1) / 2)
			if k%2 == 0 {
				level = -level
			}
			end := math.Max(-nodeH/2+6, math.Min(nodeH/2-6, 10*level))
			c.p0 = point{a.x + nodeW, a.y + nodeH/2 + end}
			c.p3 = point{b.x, b.y + nodeH/2 + end}
			dx := (c.p3.x - c.p0.x) / 2
			bend := 18 * level
			c.c1 = point{c.p0.x + dx, c.p0.y + bend}
			c.c2 = point{c.p3.x - dx, c.p3.y + bend}
		case !back[i]:
			h := 34 + 14*float64(span-1) + 18*float64(k)
			c.p0 = point{a.x + nodeW*0.75, a.y}
			c.p3 = point{b.x + nodeW*0.25, b.y}
			top := math.Min(a.y, b.y) - h
			c.c1 = point{c.p0.x, top}
			c.c2 = point{c.p3.x, top}
		default:
			h := 34 + 14*float64(max(-span, 0)) + 18*float64(k)
			c.p0 = point{a.x + nodeW*0.25, a.y + nodeH}
			c.p3 = point{b.x + nodeW*0.75, b.y + nodeH}
			bottom := math.Max(a.y, b.y) + nodeH + h
			c.c1 = point{c.p0.x, bottom}
			c.c2 = point{c.p3.x, bottom}
		}
		for _, p := range []point{c.p0, c.c1, c.c2, c.p3} {
			l.grow(box{p.x, p.y, p.x, p.y})
		}
		l.curves[i] = c
	}

	// Labels at their curve's middle (over a self-loop, above it), moved
	// down or up a line at a time until they cover no state and no label
	// placed before them.
	for i := range edges {
		c := &l.curves[i]
		mid := bezier(c, 0.5)
		w := textWidth(len([]rune(labels[i])), labelFont) + 2*labelPadX
		if c.self {
			// Beside the loop, right of its top, clear of the edges
			// that come in from the left.
			mid.x = math.Max(c.c1.x, c.c2.x) - 4 + w/2
		}
		at := func(dy float64) box {
			return box{mid.x - w/2, mid.y + dy - labelH/2, mid.x + w/2, mid.y + dy + labelH/2}
		}
		c.label = at(0)
	search:
		for step := range 24 {
			dy := float64((step+1)/2) * (labelH + 2)
			if step%2 == 1 {
				dy = -dy
			}
			cand := at(dy)
			for _, t := range taken {
				if cand.overlaps(t) {
					continue search
				}
			}
			c.label = cand
			break
		}
		taken = append(taken, c.label)
		l.grow(c.label)
	}
	return l
}

func (l *layout) grow(b box) {
	l.bounds.x0 = math.Min(l.bounds.x0, b.x0)
	l.bounds.y0 = math.Min(l.bounds.y0, b.y0)
	l.bounds.x1 = math.Max(l.bounds.x1, b.x1)
	l.bounds.y1 = math.Max(l.bounds.y1, b.y1)
}

// bezier is the point of c's curve at t.
func bezier(c *curve, t float64) point {
	u := 1 - t
	a, b, cc, d := u*u*u, 3*u*u*t, 3*u*t*t, t*t*t
	return point{
		a*c.p0.x + b*c.c1.x + cc*c.c2.x + d*c.p3.x,
		a*c.p0.y + b*c.c1.y + cc*c.c2.y + d*c.p3.y,
	}
}
