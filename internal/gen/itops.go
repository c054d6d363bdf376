package gen

import (
	"container/heap"
	"math"
	"strconv"
	"time"
)

// Scenario names of the itops stream ("incidents").
const (
	// ScenarioMissingHeartbeat is a service that hangs: after the labelled
	// heartbeat it sends nothing (no heartbeats, logs or latency samples)
	// for 5.5 to 6.5 minutes, then a watchdog restarts it and it logs so.
	ScenarioMissingHeartbeat = "missing_heartbeat"
	// ScenarioLatencySpikeAfterDeploy is a deploy after which, one to three minutes
	// later, three or four latency samples are three to five times the
	// service's usual p99.
	ScenarioLatencySpikeAfterDeploy = "latency_spike_after_deploy"
	// ScenarioErrorBurst is 20 to 40 error logs with one message from one
	// host of a service within 15 to 45 seconds.
	ScenarioErrorBurst = "error_burst"
	// ScenarioErrorRate is a sustained failure: 60 to 64 error logs with
	// one message from the hosts of a service, evenly spread over four and
	// a half minutes (never 20 within a minute, which would be an error
	// burst), at least 7% of the service's logs over five minutes.
	ScenarioErrorRate = "error_rate"
)

// itopsScenarios is in injection order, longest incident first, so that
// the default IncidentEvery fits one of each into ten minutes.
var itopsScenarios = []string{
	ScenarioMissingHeartbeat,
	ScenarioLatencySpikeAfterDeploy,
	ScenarioErrorRate,
	ScenarioErrorBurst,
}

// Event types of the itops stream.
const (
	TypeLog        = "log"
	TypeHeartbeat  = "heartbeat"
	TypeLatency    = "latency"
	TypeDeploy     = "deploy"
	TypeDeregister = "deregister"
)

// ITOpsPeriod is how often each service sends a heartbeat and, separately,
// a latency sample (each jittered by up to a second).
const ITOpsPeriod = 30 * time.Second

// itopsPeriodicRate is the events per second of the services' heartbeats
// and latency samples together.
func itopsPeriodicRate(keys int) float64 {
	return 2 * float64(keys) / ITOpsPeriod.Seconds()
}

// serviceNames name the first services; later ones get a number suffix.
var serviceNames = []string{
	"checkout", "cart", "search", "auth", "payments-api", "inventory",
	"shipping", "notifications", "recommendations", "gateway", "users", "catalog",
}

// ServiceName returns the service of key number i (0 ≤ i < Keys) of the
// itops stream.
func ServiceName(i int) string {
	name := serviceNames[i%len(serviceNames)]
	if i >= len(serviceNames) {
		name += "-" + strconv.Itoa(i/len(serviceNames)+1)
	}
	return name
}

var (
	infoMessages  = []string{"request served", "cache refreshed", "job completed", "config reloaded", "connection pool resized"}
	warnMessages  = []string{"slow query", "retrying upstream call", "queue depth high", "certificate expires in 20 days"}
	errorMessages = []string{"upstream timeout", "database connection refused", "nil pointer in handler", "provider returned 503", "disk quota exceeded"}
)

// service is one itops key's state.
type service struct {
	name    string
	hosts   []string
	base    float64 // usual p99 in ms
	version [3]int
	beats   int // heartbeats sent, to rotate the host that reports them

	// silenceAt arms a missing heartbeat: the first heartbeat at or after
	// it is labelled and the service then goes silent until silentUntil.
	silenceAt   int64
	silentUntil int64
	spikeFrom   int64 // the next spikeLeft latency samples from spikeFrom spike
	spikeLeft   int
	spikeFactor float64
	busyUntil   int64 // in an incident: no other incident starts
	// lastDeploy keeps background deploys away from a latency incident,
	// whose spike must pair with its own deploy only.
	lastDeploy   int64
	noDeployTill int64
	// ownErrorsTill turns the service's background errors into warnings
	// during an error rate incident, whose errors stand in for them.
	ownErrorsTill int64
}

// itops produces the itops stream: periodic heartbeats and latency
// samples per service, logs (and rare deploys) at the rest of Rate, and
// incidents at IncidentEvery. The stream ends with one deregister per
// service, as a planned maintenance window would: without it, every
// service's last heartbeat would look missing once a replay closes all
// windows at the end of the input.
type itops struct {
	g    *Generator
	svcs []service

	logRate     float64 // logs and background deploys, per second
	slot        int64   // log slots generated so far
	pErr        float64 // probability that a background log is an error
	pDeploy     float64 // probability that a log slot is a deploy instead
	nextInc     int64   // event time of the next incident, MaxInt64 for none
	incidents   int     // incidents started or skipped
	closing     bool
	closeAt     int64
	deregisters int
}

func newITOps(g *Generator) *itops {
	o := g.opts
	x := &itops{g: g, nextInc: math.MaxInt64}
	x.logRate = o.Rate - itopsPeriodicRate(o.Keys)
	perSvc := x.logRate * 60 / float64(o.Keys) // logs per service and minute
	// At most two background errors per service and minute: an error
	// burst (20 within a minute) or an error rate (60 within five minutes)
	// must not happen by chance.
	x.pErr = min(0.01, 2/perSvc)
	// A background deploy per service about every 40 minutes.
	x.pDeploy = float64(o.Keys) / (2400 * x.logRate)
	// The deregisters are part of the budget; without Duration the stream
	// ends about when the rest of the budget runs out at Rate.
	if o.Events < noCap {
		g.endMs = min(g.stopMs, g.startMs+int64(float64(o.Events-o.Keys)*1000/o.Rate))
	}
	if o.FraudRate >= 0 && o.IncidentEvery > 0 {
		x.nextInc = x.incidentTime(0)
	}
	x.svcs = make([]service, o.Keys)
	for i := range x.svcs {
		h := splitmix(g.keySalt ^ uint64(i)*0xbf58476d1ce4e5b9)
		s := &x.svcs[i]
		s.name = ServiceName(i)
		for j := range 2 + int(h%3) {
			s.hosts = append(s.hosts, s.name+"-"+strconv.FormatUint(splitmix(h+uint64(j))&0xfffff|0x10000, 16))
		}
		s.base = float64(60 + (h>>8)%340)
		s.version = [3]int{1, int(h>>20) % 20, int(h>>28) % 10}
		s.lastDeploy = math.MinInt64 / 2
		for _, typ := range []string{TypeHeartbeat, TypeLatency} {
			g.seq++
			g.schedule(&event{ts: g.startMs + g.rng.Int64N(ITOpsPeriod.Milliseconds()), seq: g.seq, typ: typ, key: int32(i), periodic: true})
		}
	}
	return x
}

// incidentTime is when incident n starts: IncidentEvery apart, the first
// half an interval in, each up to an eighth of it early or late.
func (x *itops) incidentTime(n int) int64 {
	every := x.g.opts.IncidentEvery.Milliseconds()
	return x.g.startMs + every*int64(n) + every/2 - every/8 + x.g.rng.Int64N(every/4+1)
}

func (x *itops) newEvent(ts int64, typ string, svc int32) *event {
	x.g.seq++
	s := &x.svcs[svc]
	return &event{ts: ts, seq: x.g.seq, typ: typ, key: svc, host: s.hosts[0], version: versionString(s.version)}
}

func versionString(v [3]int) string {
	return "v" + strconv.Itoa(v[0]) + "." + strconv.Itoa(v[1]) + "." + strconv.Itoa(v[2])
}

// produce returns the next event in event-time order, or nil at the end.
func (x *itops) produce() *event {
	g := x.g
	for {
		if x.closing {
			if x.deregisters == len(x.svcs) {
				return nil
			}
			i := int32(x.deregisters)
			x.deregisters++
			e := x.newEvent(x.closeAt, TypeDeregister, i)
			e.host, e.version = "", ""
			e.message = "planned maintenance"
			return e
		}
		logMs := g.startMs + int64(float64(x.slot)*1000/x.logRate)
		t := min(logMs, x.nextInc)
		if len(g.pending) > 0 {
			t = min(t, g.pending[0].ts)
		}
		if t >= g.endMs || g.produced >= g.opts.Events-len(x.svcs) {
			x.closing = true
			x.closeAt = max(g.frontier, min(t, g.endMs-1))
			continue
		}
		switch {
		case len(g.pending) > 0 && g.pending[0].ts == t:
			e := heap.Pop(&g.pending).(*event)
			if e.periodic {
				if e = x.periodic(e); e == nil {
					continue
				}
			}
			return e
		case x.nextInc == t:
			x.startIncident(t)
			x.incidents++
			x.nextInc = x.incidentTime(x.incidents)
		default:
			x.slot++
			if e := x.background(logMs); e != nil {
				return e
			}
		}
	}
}

// periodic fills in a heartbeat or latency sample as it comes due and
// schedules the next one; it returns nil when the service is silent.
func (x *itops) periodic(e *event) *event {
	g := x.g
	s := &x.svcs[e.key]
	g.seq++
	next := &event{ts: e.ts + ITOpsPeriod.Milliseconds() - 1000 + g.rng.Int64N(2001), seq: g.seq, typ: e.typ, key: e.key, periodic: true}
	g.schedule(next)
	if e.ts < s.silentUntil {
		return nil
	}
	out := x.newEvent(e.ts, e.typ, e.key)
	switch e.typ {
	case TypeHeartbeat:
		out.host = s.hosts[s.beats%len(s.hosts)]
		s.beats++
		if s.silenceAt != 0 && e.ts >= s.silenceAt {
			out.scenario = ScenarioMissingHeartbeat
			s.silenceAt = 0
			s.silentUntil = e.ts + 330_000 + g.rng.Int64N(60_001)
			// The watchdog restarts the service; heartbeats resume on
			// their own schedule.
			g.seq++
			g.schedule(&event{
				ts: s.silentUntil, seq: g.seq, typ: TypeLog, key: e.key, host: out.host, version: out.version,
				level: "warn", message: "restarted by watchdog after heartbeat timeout", scenario: ScenarioMissingHeartbeat,
			})
		}
	case TypeLatency:
		// ±10% around the usual value: a steady baseline never doubles.
		out.p99 = s.base * (0.9 + 0.2*g.rng.Float64())
		if s.spikeLeft > 0 && e.ts >= s.spikeFrom {
			s.spikeLeft--
			out.p99 *= s.spikeFactor
			out.scenario = ScenarioLatencySpikeAfterDeploy
		}
		out.p99 = math.Round(out.p99*10) / 10
	}
	return out
}

// background draws one log line (or, rarely, a deploy) at ts of a service
// that is not silent; it returns nil when it found none.
func (x *itops) background(ts int64) *event {
	g := x.g
	r := g.rng
	var svc int32 = -1
	for range 8 {
		i := int32(r.IntN(len(x.svcs)))
		if ts >= x.svcs[i].silentUntil {
			svc = i
			break
		}
	}
	if svc < 0 {
		return nil
	}
	s := &x.svcs[svc]
	if r.Float64() < x.pDeploy && ts >= s.busyUntil && ts >= s.noDeployTill {
		return x.deploy(ts, svc)
	}
	e := x.newEvent(ts, TypeLog, svc)
	e.host = s.hosts[r.IntN(len(s.hosts))]
	switch y := r.Float64(); {
	case y < x.pErr && ts >= s.ownErrorsTill:
		e.level, e.message = "error", errorMessages[r.IntN(len(errorMessages))]
	case y < 0.08:
		e.level, e.message = "warn", warnMessages[r.IntN(len(warnMessages))]
	default:
		e.level, e.message = "info", infoMessages[r.IntN(len(infoMessages))]
	}
	return e
}

// deploy rolls a new version of svc out at ts.
func (x *itops) deploy(ts int64, svc int32) *event {
	s := &x.svcs[svc]
	if x.g.rng.IntN(3) == 0 {
		s.version[1]++
		s.version[2] = 0
	} else {
		s.version[2]++
	}
	s.lastDeploy = ts
	e := x.newEvent(ts, TypeDeploy, svc)
	e.message = "rolling deploy to " + strconv.Itoa(len(s.hosts)) + " hosts"
	return e
}

// startIncident injects the next incident at t into a service that is
// free, or skips it when none is or when it would not end well before the
// stream does.
func (x *itops) startIncident(t int64) {
	g := x.g
	r := g.rng
	name := g.opts.Scenarios[x.incidents%len(g.opts.Scenarios)]
	// The stream ends at endMs, or earlier when the event budget runs out
	// at Rate from here.
	end := g.endMs
	if g.opts.Events < noCap {
		left := g.opts.Events - len(x.svcs) - g.produced - len(g.pending)
		end = min(end, t+int64(float64(left)*1000/g.opts.Rate))
	}
	var svc int32 = -1
	for range 16 {
		i := int32(r.IntN(len(x.svcs)))
		s := &x.svcs[i]
		if t >= s.busyUntil && t >= s.silentUntil && (name != ScenarioLatencySpikeAfterDeploy || t-s.lastDeploy > 15*time.Minute.Milliseconds()) {
			svc = i
			break
		}
	}
	if svc < 0 {
		return
	}
	s := &x.svcs[svc]
	switch name {
	case ScenarioMissingHeartbeat:
		// The heartbeat after t is the last; 6.5 minutes of silence at
		// most, and the restart must come a minute before the stream's
		// end.
		until := t + ITOpsPeriod.Milliseconds() + 1000 + 390_000 + 60_000
		if until >= end {
			return
		}
		s.silenceAt = t
		s.busyUntil = until
	case ScenarioLatencySpikeAfterDeploy:
		delay := 60_000 + r.Int64N(120_001)
		n := 3 + r.IntN(2)
		// The last spiking sample comes by then: periods are at most 31s.
		until := t + delay + int64(n+1)*31_000
		// The baseline needs five samples before the deploy: the fifth
		// comes at most 30s + 4 × 31s after the start.
		if t < g.startMs+165_000 || until+ITOpsPeriod.Milliseconds() >= end {
			return
		}
		e := x.deploy(t, svc)
		e.scenario = name
		g.schedule(e)
		s.spikeFrom, s.spikeLeft = t+delay, n
		s.spikeFactor = 3 + 2*r.Float64()
		s.busyUntil = until + 60_000
		s.noDeployTill = until + 15*time.Minute.Milliseconds()
	case ScenarioErrorBurst:
		n := 20 + r.IntN(21)
		span := 15_000 + r.Int64N(30_001)
		if t+span >= end {
			return
		}
		host := s.hosts[r.IntN(len(s.hosts))]
		msg := errorMessages[r.IntN(len(errorMessages))]
		for i := range n {
			at := t
			if i > 0 {
				at += r.Int64N(span + 1)
			}
			e := x.newEvent(at, TypeLog, svc)
			e.host, e.level, e.message, e.scenario = host, "error", msg, name
			g.schedule(e)
		}
		s.busyUntil = t + span + 60_000
	case ScenarioErrorRate:
		n := 60 + r.IntN(5)
		const span = 270_000
		// The errors must be well over 5% of the service's logs in five
		// minutes; a service that logs too much for that without a burst
		// gets none.
		perMin := x.logRate * 60 / float64(len(x.svcs))
		if t+span >= end || float64(n)/(5*perMin+float64(n)) < 0.07 {
			return
		}
		msg := errorMessages[r.IntN(len(errorMessages))]
		for i := range n {
			e := x.newEvent(t+int64(i)*span/int64(n-1), TypeLog, svc)
			e.host, e.level, e.message, e.scenario = s.hosts[r.IntN(len(s.hosts))], "error", msg, name
			g.schedule(e)
		}
		s.ownErrorsTill = t + span + 60_000
		// Until the incident's errors have left a five-minute window.
		s.busyUntil = t + span + 6*time.Minute.Milliseconds()
	}
	g.injected[name]++
}

func (x *itops) appendJSON(b []byte, e *event) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, e.typ...)
	b = append(b, `","service":"`...)
	b = append(b, x.svcs[e.key].name...)
	b = append(b, `","host":"`...)
	b = append(b, e.host...)
	b = append(b, `","level":"`...)
	b = append(b, e.level...)
	b = append(b, `","message":"`...)
	b = append(b, e.message...)
	b = append(b, `","version":"`...)
	b = append(b, e.version...)
	b = append(b, `","p99_ms":`...)
	b = strconv.AppendFloat(b, e.p99, 'f', 1, 64)
	b = append(b, `,"ts":`...)
	b = appendTime(b, e.ts)
	return appendScenario(b, e)
}
