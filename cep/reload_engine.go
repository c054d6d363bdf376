package cep

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// Hot reload in the engine (docs/design.md#hot-reload). The engine's rulesets are an
// immutable plan behind an atomic pointer. SetRulesets builds the next plan
// (the streams and their matcher.Programs), stores it and waits for the
// workers; each worker compares the pointer with its own between batches
// (one atomic load per batch, no lock on the hot path) and switches there:
// a stream that stays gets the new Program through
// matcher.Partition.SetProgram (unchanged rules keep their partial
// matches, changed ones drain under their old version, removed ones drop
// them), a new stream gets a new Partition, and a stream no ruleset reads
// any more is dropped with its keys. Every record of the partition is so
// matched by exactly one plan: the records of the batch before the switch
// by the old rules, the ones after by the new.

// enginePlan is one set of rulesets, planned.
type enginePlan struct {
	gen      int64 // 1 for NewEngine's, one more per SetRulesets
	rulesets []*rules.Compiled
	streams  []*stream // definitions: part is nil, workers copy them
	topics   []string  // sorted
}

// newPlan checks rs and plans its streams. An empty set is a plan that
// reads nothing.
func (e *Engine) newPlan(rs []*rules.Compiled, gen int64) (*enginePlan, error) {
	var errs []error
	for _, r := range rs {
		if r == nil || r.Ruleset == nil {
			return nil, errors.New("nil ruleset")
		}
		if err := e.CheckRuleset(r); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p := &enginePlan{gen: gen, rulesets: slices.Clone(rs)}
	if len(rs) == 0 {
		return p, nil
	}
	streams, err := newStreams(rs)
	if err != nil {
		return nil, err
	}
	p.streams = streams
	topics := map[string]bool{}
	for _, s := range streams {
		topics[s.topic] = true
	}
	p.topics = slices.Sorted(maps.Keys(topics))
	return p, nil
}

// CheckRuleset reports whether the engine can run rs: it must name the
// topic it reads, and that topic must not be one the engine writes (it
// would feed the engine its own output). A Reloader uses it to keep such a
// ruleset out of the set rather than have SetRulesets refuse the set.
func (e *Engine) CheckRuleset(rs *rules.Compiled) error {
	o := e.opts
	switch t := rs.Stream.Topic; t {
	case "":
		return fmt.Errorf("ruleset %q: no stream topic", rs.Name)
	case o.AlertsTopic, o.ShadowAlertsTopic, o.DeadLetterTopic, o.LateTopic:
		return fmt.Errorf("ruleset %q reads %q, an output topic of the engine", rs.Name, t)
	}
	return nil
}

// Rulesets returns the rulesets the engine runs (the last set given).
func (e *Engine) Rulesets() []*rules.Compiled {
	return slices.Clone(e.plan.Load().rulesets)
}

// SetRulesets replaces the running rulesets with rs, already compiled;
// their names must differ, and each must pass CheckRuleset, else nothing
// changes. Each partition worker switches at its next batch boundary
// (matcher.Partition.SetProgram: unchanged rules keep their partial
// matches, changed ones drain under the old version, removed ones drop
// theirs); topics no ruleset read before are subscribed to, topics no
// ruleset reads now are dropped (their partitions checkpoint and stop).
// It returns once every worker has switched, or with ctx's error when ctx
// ends first: the switch happens all the same. Calls are serialised.
func (e *Engine) SetRulesets(ctx context.Context, rs []*rules.Compiled) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	cur := e.plan.Load()
	p, err := e.newPlan(rs, cur.gen+1)
	if err != nil {
		return fmt.Errorf("engine: set rulesets: %w", err)
	}
	// A stream whose rulesets are the very same keeps its Program, so that
	// its partitions have nothing to do (SetProgram of the same Program).
	for _, s := range p.streams {
		for _, o := range cur.streams {
			if o.id == s.id && slices.Equal(o.rulesets, s.rulesets) {
				s.prog = o.prog
			}
		}
	}
	// Under mu: Run reads the plan's topics and sets cl under it too, so
	// that a plan stored while the client starts is subscribed either way.
	e.mu.Lock()
	old := e.plan.Swap(p)
	cl := e.cl
	stopped := e.stopped
	var ws []*worker
	for _, w := range e.workers {
		ws = append(ws, w)
	}
	e.mu.Unlock()
	var added, dropped []string
	for _, t := range p.topics {
		if !slices.Contains(old.topics, t) {
			added = append(added, t)
		}
	}
	for _, t := range old.topics {
		if !slices.Contains(p.topics, t) {
			dropped = append(dropped, t)
		}
	}
	e.log.Info("rulesets set", "rulesets", len(rs), "topics", p.topics, "added_topics", added, "dropped_topics", dropped)
	// The series of what p dropped go once no worker counts under the old
	// plan any more (or, for a worker slow to switch, at the next call).
	defer e.metrics.retire(p)
	if cl == nil || stopped {
		return nil // Run starts (or started) with the plan
	}
	cl.AddConsumeTopics(added...)
	if len(dropped) > 0 {
		// Purged first, so that no poll hands the dropped partitions'
		// records to a worker that is stopping; then their workers
		// checkpoint and stop as if revoked.
		cl.PurgeTopicsFromConsuming(dropped...)
		parts := map[string][]int32{}
		kept := ws[:0]
		for _, w := range ws {
			if slices.Contains(dropped, w.topic) {
				parts[w.topic] = append(parts[w.topic], w.part)
			} else {
				kept = append(kept, w)
			}
		}
		ws = kept
		if e.txn != nil {
			// The stopped workers' outputs since the last barrier are in
			// the open transaction, without a checkpoint staged for them.
			e.txn.abortNext.Store(true)
		}
		e.stopWorkers(parts, true)
	}
	for _, w := range ws {
		w.poke()
	}
	waiting := 0
	for _, w := range ws {
	wait:
		for w.planGen.Load() < p.gen {
			select {
			case <-w.switched:
			case <-w.done:
				break wait
			case <-ctx.Done():
				waiting++
				break wait
			}
		}
	}
	if waiting > 0 {
		return fmt.Errorf("engine: set rulesets: %d partitions not switched yet: %w", waiting, ctx.Err())
	}
	return nil
}

// poke wakes the worker so that an idle one switches plans soon.
func (w *worker) poke() { w.q.poke() }

// initStreams makes the worker's streams those of plan p that read its
// topic, without partitions yet (restore creates them).
func (w *worker) initStreams(p *enginePlan) {
	w.plan = p
	w.streams, w.sps = nil, nil
	w.byPart = map[*stream]*streamPart{}
	for _, s := range p.streams {
		if s.topic == w.topic {
			w.addStream(w.newStreamPart(s))
		}
	}
	w.ack()
}

// newStreamPart is the worker's state of stream s: a copy of the
// definition, its part set by the caller.
func (w *worker) newStreamPart(s *stream) *streamPart {
	c := *s
	sp := &streamPart{s: &c, keys: newKeyCache(streamNamespace(s.id))}
	sp.ooo = int64(s.rulesets[0].Stream.MaxOutOfOrderness)
	sp.idle = idleTimeout(s, w.e.opts.IdleTimeout)
	sp.skew = maxClockSkew(s, w.e.opts.MaxClockSkew)
	return sp
}

// maxClockSkew is the stream's bound on event times ahead of the wall
// clock: a ruleset that sets none has the engine's default
// (EngineOptions.MaxClockSkew), and as the rulesets of a stream share its
// watermark, the tightest bound wins, so that a ruleset that turns the
// bound off does not expose the others. Zero: no bound.
func maxClockSkew(s *stream, def time.Duration) (skew time.Duration) {
	for _, rs := range s.rulesets {
		d := rs.Stream.MaxClockSkew
		if d == 0 {
			d = def
		}
		if d > 0 && (skew == 0 || d < skew) {
			skew = d
		}
	}
	return skew
}

// idleTimeout is the stream's idle timeout: rulesets of one stream may
// differ in it (it is not part of the stream's identity), a ruleset that
// sets none has the engine's default (EngineOptions.IdleTimeout), and the
// most eager one wins. Zero: the stream never follows the wall clock.
func idleTimeout(s *stream, def time.Duration) (idle time.Duration) {
	for _, rs := range s.rulesets {
		d := rs.Stream.IdleTimeout
		if d <= 0 {
			d = def
		}
		if d > 0 && (idle == 0 || d < idle) {
			idle = d
		}
	}
	return idle
}

func (w *worker) addStream(sp *streamPart) {
	w.streams = append(w.streams, sp.s)
	w.sps = append(w.sps, sp)
	w.byPart[sp.s] = sp
}

// ack records that the worker runs its plan, for SetRulesets.
func (w *worker) ack() {
	w.planGen.Store(w.plan.gen)
	select {
	case w.switched <- struct{}{}:
	default:
	}
}

// maybeSwitch switches to the engine's plan when it changed. It runs on
// the worker's goroutine between batches, after the restore.
func (w *worker) maybeSwitch() {
	p := w.e.plan.Load()
	if p == w.plan {
		return
	}
	// Counted up to here under the old rules: the stats of rules that
	// carry on, drain or start afresh are then the baselines.
	w.observe()
	old := make(map[string]*streamPart, len(w.sps))
	for _, sp := range w.sps {
		old[sp.s.id] = sp
	}
	w.plan = p
	w.streams, w.sps = nil, nil
	w.byPart = map[*stream]*streamPart{}
	now := w.e.opts.Clock()
	for _, s := range p.streams {
		if s.topic != w.topic {
			continue
		}
		sp, ok := old[s.id]
		delete(old, s.id)
		if ok {
			// The same stream: the Partition carries on with the new
			// Program.
			part := sp.s.part
			c := *s
			c.part = part
			sp.s = &c
			sp.idle = idleTimeout(s, w.e.opts.IdleTimeout)
			sp.skew = maxClockSkew(s, w.e.opts.MaxClockSkew)
			part.SetProgram(c.prog)
		} else {
			sp = w.newStreamPart(s)
			part, err := matcher.NewPartition(s.prog, w, w.matcherOptions(sp))
			if err != nil {
				// NewPartition fails only on options the engine checked.
				w.log.Error("new stream: not run", "err", err)
				continue
			}
			sp.s.part = part
			sp.resetKeys()
			sp.lastSeen = now
			// Its keys start empty: nothing of it is in the Store to load.
			sp.keys.fresh = true
		}
		w.addStream(sp)
	}
	for _, sp := range old {
		w.dropStream(sp)
	}
	streams := make([]*stream, len(w.sps))
	for i, sp := range w.sps {
		streams[i] = sp.s
	}
	w.m.rebase(streams)
	w.log.Debug("rulesets switched", "streams", len(w.sps))
	w.ack()
}

// dropStream lets go of a stream no ruleset reads: its partial matches
// and buffered records go, and its keys are deleted from the Store at the
// next checkpoint (those the worker knows of: in memory, evicted, or
// changed since the last checkpoint).
func (w *worker) dropStream(sp *streamPart) {
	keys := sp.keys.storeKeys()
	w.ckpt.drop = append(w.ckpt.drop, keys...)
	w.log.Info("stream dropped: no ruleset reads it", "keys", len(keys))
}

// matcherOptions are the options of a stream's matcher.Partition.
func (w *worker) matcherOptions(sp *streamPart) matcher.Options {
	return matcher.Options{
		MaxOutOfOrderness: sp.s.rulesets[0].Stream.MaxOutOfOrderness,
		MaxRunsPerKey:     w.e.opts.MaxRunsPerKey,
		Clock:             w.e.opts.Clock,
		Logger:            w.log,
	}
}

// resetKeys empties what the worker knows of the stream's keys, for its
// new Partition (sp.s.part), which holds none.
func (sp *streamPart) resetKeys() {
	sp.keys.reset(sp.s.part)
	sp.skipBelow = math.MinInt64
}
