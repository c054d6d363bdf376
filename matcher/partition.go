package matcher

import "github.com/shrike-cep/shrike/rules"

// Program is the matching plan for a set of rulesets that share one keyed
// stream (same key and time expressions): every enabled rule compiled to an
// automaton, and the conditions numbered so that each is evaluated at most
// once per event.
type Program struct {
	rulesets []*rules.Compiled
}

// NewProgram builds the plan for rulesets. Their rules must have compiled.
func NewProgram(rulesets []*rules.Compiled) (*Program, error) {
	return &Program{rulesets: rulesets}, nil
}

// Partition runs a Program over the keys of one source partition: it buffers
// records until the watermark passes them, then feeds each key's automata in
// event-time order (ties in arrival order). It is not safe for concurrent use.
type Partition struct {
	prog *Program
	out  Output
	opts Options
}

// NewPartition returns a Partition that sends its results to out.
func NewPartition(prog *Program, out Output, opts Options) (*Partition, error) {
	return &Partition{prog: prog, out: out, opts: opts}, nil
}

// Push adds one record. It assigns r.Seq, raises the watermark to the newest
// event time minus MaxOutOfOrderness, and matches every buffered record the
// watermark has passed. A record behind the watermark goes to Output.Late.
func (p *Partition) Push(r *Record) { panic("matcher: not implemented") }

// Advance raises the watermark to wm (Unix ns) without a record, as idle
// partitions and the end of input do: records with Time < wm are matched,
// then windows that closed by wm time out. Advance(math.MaxInt64) closes all.
func (p *Partition) Advance(wm int64) { panic("matcher: not implemented") }

// Watermark returns the current watermark (Unix ns); records with a Time
// below it are late.
func (p *Partition) Watermark() int64 { panic("matcher: not implemented") }

// Stats returns the Partition's counters.
func (p *Partition) Stats() Stats { panic("matcher: not implemented") }
