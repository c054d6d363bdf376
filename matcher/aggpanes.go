package matcher

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/shrike-cep/shrike/rules"
)

// Past Options.MaxRunsPerKey entries, an aggregate rule's key summarizes
// its oldest events instead of dropping them: each leaves the entries into
// a pane, one of aggPanes time buckets of the window's length divided by
// aggPanes, aligned to multiples of that length in event time. A pane
// keeps the count of its events and, per column, what the measures need:
// the count of values, their sum, min and max for a number; a
// HyperLogLog sketch of the hashes for count_distinct. count, sum, avg,
// min and max stay exact (a pane's sums add in another order); a pane
// leaves the window when its end does, so that near the window's start it
// holds events up to one pane length older than the window; count_distinct
// becomes an estimate once a pane holds a hash.

// aggPanes is the number of panes a window's length divides into. The
// panes a key holds span at most aggPanes+1 pane lengths (the window's
// start falls inside the oldest).
const aggPanes = 64

// maxPanes bounds the panes of a key's window.
const maxPanes = aggPanes + 1

// aggPane is the summary of the events of one pane.
type aggPane struct {
	start int64
	n     int64
	cols  []paneCol
}

// paneCol is one column of a pane: for a number, the count of values
// (missing ones left out), their sum, min and max; for count_distinct, a
// sketch of the hashes, nil until one is not missing (k stays 0).
type paneCol struct {
	k           int64
	sum, lo, hi float64
	hll         *hllSketch
}

// paneLen is the length of a pane of the rule's window.
func (a *aggPlan) paneLen() int64 {
	return max((a.window+aggPanes-1)/aggPanes, 1)
}

// fold summarizes the oldest entry into its pane and makes it leave the
// entries.
func (s *aggState) fold(a *aggPlan) {
	t := s.times[s.head]
	// Entries are newer than the panes, so start is at or after the last
	// pane's; a restored state that says otherwise folds into the last
	// pane rather than growing the panes out of order.
	if start := windowStart(t, a.paneLen()); len(s.panes) == 0 || start > s.panes[len(s.panes)-1].start {
		s.panes = append(s.panes, aggPane{start: start, cols: make([]paneCol, a.cols)})
	}
	pn := &s.panes[len(s.panes)-1]
	pn.n++
	vals := s.vals[s.head*a.cols : (s.head+1)*a.cols]
	for i, f := range a.funcs {
		col := a.col[i]
		if col < 0 {
			continue
		}
		pc, v := &pn.cols[col], vals[col]
		if f == rules.CountDistinct {
			if v == missingHash {
				continue
			}
			if pc.hll == nil {
				pc.hll = new(hllSketch)
			}
			pc.hll.add(v)
			continue
		}
		x := math.Float64frombits(v)
		if math.IsNaN(x) {
			continue
		}
		pc.add(x)
	}
	s.dropTo(s.head+1, a.cols)
}

// add counts x into a number column.
func (pc *paneCol) add(x float64) {
	if pc.k == 0 || x < pc.lo {
		pc.lo = x
	}
	if pc.k == 0 || x > pc.hi {
		pc.hi = x
	}
	pc.sum += x
	pc.k++
}

// dropPanesBefore makes the panes that end at or before t leave.
func (s *aggState) dropPanesBefore(t int64, a *aggPlan) {
	l := a.paneLen()
	n := 0
	for n < len(s.panes) && s.panes[n].start <= t-l {
		n++
	}
	if n == 0 {
		return
	}
	s.slid = true
	s.panes = s.panes[:copy(s.panes, s.panes[n:])]
}

// paneCount is the count of the events the panes hold.
func (s *aggState) paneCount() int64 {
	var n int64
	for i := range s.panes {
		n += s.panes[i].n
	}
	return n
}

// hllBits is the number of a hash's top bits that pick a register.
const hllBits = 8

// maxRank is the largest rank a register holds: that of a hash whose bits
// past the register's are all 0.
const maxRank = 64 - hllBits + 1

// hllSketch is a HyperLogLog sketch of 2^hllBits one-byte registers: a
// standard error of 1.04/√256, about 6.5%.
type hllSketch [1 << hllBits]uint8

// add counts a hash. It is mixed first: hashValue's hashes of small
// values (booleans) differ in their low bits only.
func (h *hllSketch) add(x uint64) {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	i := x >> (64 - hllBits)
	rank := uint8(min(bits.LeadingZeros64(x<<hllBits)+1, maxRank))
	if rank > h[i] {
		h[i] = rank
	}
}

// merge makes h the sketch of the union of h and o.
func (h *hllSketch) merge(o *hllSketch) {
	for i, r := range o {
		if r > h[i] {
			h[i] = r
		}
	}
}

// estimate is the sketch's estimate of the count of distinct hashes, with
// linear counting while it is small.
func (h *hllSketch) estimate() float64 {
	const m = float64(len(h))
	const alpha = 0.7213 / (1 + 1.079/m)
	sum, zeros := 0.0, 0
	for _, r := range h {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	e := alpha * m * m / sum
	if e <= 2.5*m && zeros > 0 {
		e = m * math.Log(m/float64(zeros))
	}
	return e
}

// countDistinctPanes estimates the distinct values of one column over the
// entries and the panes, with the Partition's scratch sketch; ok is false
// when no pane holds a hash of it (so that the exact count stands).
func (p *Partition) countDistinctPanes(s *aggState, cols, col int) (int, bool) {
	if len(s.panes) == 0 {
		return 0, false
	}
	if p.aggSketch == nil {
		p.aggSketch = new(hllSketch)
	}
	h, sketched := p.aggSketch, false
	for i := range s.panes {
		if pc := s.panes[i].cols[col]; pc.hll != nil {
			if !sketched {
				*h, sketched = *pc.hll, true
				continue
			}
			h.merge(pc.hll)
		}
	}
	if !sketched {
		return 0, false
	}
	for j := s.head; j < len(s.times); j++ {
		if v := s.vals[j*cols+col]; v != missingHash {
			h.add(v)
		}
	}
	return int(math.Round(h.estimate())), true
}

// colKind is the kind of value (as appendPanes writes it) a pane holds in
// column col of the rule's entries.
func colKind(a *aggPlan, col int) byte {
	for i, c := range a.col {
		if c == col && a.funcs[i] == rules.CountDistinct {
			return 2
		}
	}
	return 1
}

// appendPanes encodes the panes of a window: their count; per pane its
// start (signed) as the difference from the previous pane's (from 0 for
// the first) and its count of events; then per column a kind byte (0: no
// value; 1: numbers; 2: a sketch) and, for numbers, the count of values
// and the sum, min and max as float64 bits, 8 bytes little-endian each;
// for a sketch, its 256 registers.
func appendPanes(dst []byte, panes []aggPane) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(panes)))
	prev := int64(0)
	for i := range panes {
		pn := &panes[i]
		dst = binary.AppendVarint(dst, pn.start-prev)
		prev = pn.start
		dst = binary.AppendUvarint(dst, uint64(pn.n))
		for _, pc := range pn.cols {
			switch {
			case pc.hll != nil:
				dst = append(dst, 2)
				dst = append(dst, pc.hll[:]...)
			case pc.k > 0:
				dst = append(dst, 1)
				dst = binary.AppendUvarint(dst, uint64(pc.k))
				for _, x := range [3]float64{pc.sum, pc.lo, pc.hi} {
					dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(x))
				}
			default:
				dst = append(dst, 0)
			}
		}
	}
	return dst
}

// maxPaneEvents bounds a pane's count of events, so that the counts of a
// window's panes add up without overflow.
const maxPaneEvents = 1 << 48

// readPanes decodes what appendPanes wrote, for a window of cols values
// per event. a is the rule's plan, nil when the rule is gone.
func readPanes(d *snapDecoder, cols int, a *aggPlan) []aggPane {
	n := d.count()
	if d.err == nil && n > maxPanes {
		d.fail(fmt.Sprintf("%d panes, at most %d", n, maxPanes))
	}
	// A pane takes at least two bytes and one per column.
	if d.err == nil && n*(2+cols) > len(d.b) {
		d.fail(fmt.Sprintf("%d panes of %d values, %d bytes left", n, cols, len(d.b)))
	}
	if d.err != nil {
		return nil
	}
	panes := make([]aggPane, n)
	prev := int64(0)
	for i := range panes {
		delta := d.varint()
		if d.err == nil && (i > 0 && delta <= 0 || delta > 0 && prev > math.MaxInt64-delta) {
			d.fail(fmt.Sprintf("pane %d of %d: start %+d from the previous pane's", i+1, n, delta))
		}
		pn := &panes[i]
		pn.start = prev + delta
		prev = pn.start
		if d.err == nil && a != nil && windowStart(pn.start, a.paneLen()) != pn.start {
			d.fail(fmt.Sprintf("pane %d of %d: start %d is not a multiple of the pane length %d", i+1, n, pn.start, a.paneLen()))
		}
		events := d.uvarint()
		if d.err == nil && (events == 0 || events > maxPaneEvents) {
			d.fail(fmt.Sprintf("pane %d of %d: %d events", i+1, n, events))
		}
		pn.n = int64(events)
		pn.cols = make([]paneCol, cols)
		for j := range pn.cols {
			if d.err != nil {
				return nil
			}
			if len(d.b) == 0 {
				d.fail(fmt.Sprintf("pane %d of %d: no value kind", i+1, n))
				return nil
			}
			kind := d.b[0]
			d.b = d.b[1:]
			if kind != 0 && a != nil && kind != colKind(a, j) {
				d.fail(fmt.Sprintf("pane %d of %d: value kind %d in column %d of kind %d", i+1, n, kind, j, colKind(a, j)))
				return nil
			}
			pc := &pn.cols[j]
			switch kind {
			case 0:
			case 1:
				k := d.uvarint()
				pc.sum = math.Float64frombits(d.fixed64())
				pc.lo = math.Float64frombits(d.fixed64())
				pc.hi = math.Float64frombits(d.fixed64())
				if d.err == nil && (k == 0 || k > events) {
					d.fail(fmt.Sprintf("pane %d of %d: %d values of %d events", i+1, n, k, events))
				}
				pc.k = int64(k)
			case 2:
				if len(d.b) < len(hllSketch{}) {
					d.fail(fmt.Sprintf("pane %d of %d: a sketch of %d registers, %d bytes left", i+1, n, len(hllSketch{}), len(d.b)))
					return nil
				}
				pc.hll = new(hllSketch)
				d.b = d.b[copy(pc.hll[:], d.b):]
				if r := slices.Max(pc.hll[:]); r > maxRank {
					d.fail(fmt.Sprintf("pane %d of %d: a sketch register of rank %d, at most %d", i+1, n, r, maxRank))
				}
			default:
				d.fail(fmt.Sprintf("pane %d of %d: unknown value kind %d", i+1, n, kind))
			}
		}
	}
	if d.err != nil {
		return nil
	}
	return panes
}
