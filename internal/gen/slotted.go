package gen

import (
	"container/heap"
)

// produceSlotted returns the next event of a slotted stream (payments,
// account_security) in event-time order, or nil at the end. Background
// slots come at Rate; each may instead start a scenario instance, whose
// later events wait in pending with the follow-ups of background events.
func (g *Generator) produceSlotted() *event {
	if g.produced >= g.opts.Events {
		return nil
	}
	slotMs := g.slotTime()
	// Follow-ups due by the next slot go first, so output stays in event
	// time order; once the budget is all scheduled, or Duration is over,
	// drain them.
	if len(g.pending) > 0 && (g.pending[0].ts <= slotMs || g.budget() <= 0 || slotMs >= g.stopMs) {
		return heap.Pop(&g.pending).(*event)
	}
	if slotMs >= g.stopMs {
		return nil
	}
	g.slot++
	budget := g.budget()
	if g.opts.FraudRate > 0 && g.rng.Float64() < g.opts.FraudRate {
		if e := g.startScenario(slotMs, budget); e != nil {
			return e
		}
	}
	return g.slots.background(g, slotMs, budget)
}

func (g *Generator) slotTime() int64 {
	return g.startMs + int64(float64(g.slot)*1000/g.opts.Rate)
}

// startScenario starts the next scenario instance at ts: it returns the
// first event and schedules the rest. It returns nil when the remaining
// budget or time cannot hold the instance.
func (g *Generator) startScenario(ts int64, budget int) *event {
	name := g.opts.Scenarios[g.nextScenario%len(g.opts.Scenarios)]
	evs := g.slots.scenario(g, name, ts)
	g.nextScenario++
	if len(evs) > budget || evs[len(evs)-1].ts >= g.endMs {
		// Skip it rather than retry it: a long scenario that no longer
		// fits before the end must not keep the short ones out.
		return nil
	}
	g.injected[name]++
	for _, e := range evs[1:] {
		g.schedule(e)
	}
	g.markBusy(evs[0].key, evs[len(evs)-1].ts+g.slots.quietAfter(name).Milliseconds())
	return evs[0]
}

// newEvent returns an event of key at ts with the key's usual attributes
// (home city, IP, device), so that a caller only sets what differs.
func (g *Generator) newEvent(ts int64, typ string, key int32) *event {
	g.seq++
	p := g.profile(key)
	return &event{
		ts: ts, seq: g.seq, typ: typ, key: key,
		currency: p.city.currency, country: p.city.country,
		ip: p.ip, device: p.device, success: true,
		lat: p.city.lat, lon: p.city.lon,
	}
}

func (g *Generator) schedule(e *event) { heap.Push(&g.pending, e) }

// pickKey draws a key that is not busy at ts. It gives up after a few
// tries and returns a busy one rather than loop: with few keys and many
// scenarios that keeps the generator total, at the cost of some overlap.
func (g *Generator) pickKey(ts int64) int32 {
	var a int32
	for range 16 {
		a = int32(g.rng.IntN(g.opts.Keys))
		until, ok := g.busy[a]
		if !ok {
			return a
		}
		if until < ts {
			delete(g.busy, a)
			return a
		}
	}
	return a
}

func (g *Generator) markBusy(a int32, until int64) {
	if until > g.busy[a] {
		g.busy[a] = until
	}
}

func (g *Generator) jitterHome(e *event) { g.jitter(e, 0.02) }

func (g *Generator) jitter(e *event, deg float64) {
	e.lat = round4(e.lat + (g.rng.Float64()*2-1)*deg)
	e.lon = round4(e.lon + (g.rng.Float64()*2-1)*deg)
}
