package gen

import (
	"bufio"
	"container/heap"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
)

// Scenario names, as written in the "scenario" field of injected events.
const (
	// ScenarioAccountTakeover is three to five failed logins from fresh IPs,
	// a successful login from yet another IP, then a transfer above 1000.
	ScenarioAccountTakeover = "account_takeover"
	// ScenarioCardTesting is three to six consecutive card authorisations
	// below 2.00 on one card at different merchants.
	ScenarioCardTesting = "card_testing"
	// ScenarioImpossibleTravel is a login at home and, minutes later, a login
	// from a city thousands of kilometres away.
	ScenarioImpossibleTravel = "impossible_travel"
	// ScenarioResetWithout2FA is a password reset that no 2fa_verified
	// follows, then a login from a new IP.
	ScenarioResetWithout2FA = "reset_without_2fa"
	// ScenarioStructuring is three to five transfers just below 10000 within
	// the hour.
	ScenarioStructuring = "structuring"
	// ScenarioBigForeignTransfer is one transfer above 10000 to a high-risk
	// country.
	ScenarioBigForeignTransfer = "big_foreign_transfer"
	// ScenarioLargeCardAuth is one card authorisation above 5000.
	ScenarioLargeCardAuth = "large_card_auth"
)

// allScenarios is in injection order: instances cycle through it, so a run
// whose first len(allScenarios) instances all fit before the end of the
// stream contains every scenario.
var allScenarios = []string{
	ScenarioAccountTakeover,
	ScenarioCardTesting,
	ScenarioImpossibleTravel,
	ScenarioResetWithout2FA,
	ScenarioStructuring,
	ScenarioBigForeignTransfer,
	ScenarioLargeCardAuth,
}

// Scenarios returns the names of every fraud scenario the generator can
// inject, in injection order.
func Scenarios() []string { return slices.Clone(allScenarios) }

// Event types the generator writes.
const (
	TypeLogin         = "login"
	TypeLogout        = "logout"
	TypeTransfer      = "transfer"
	TypeCardAuth      = "card_auth"
	TypePasswordReset = "password_reset"
	Type2FAVerified   = "2fa_verified"
)

// TimeLayout is the layout of the ts field: RFC 3339, UTC, milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// Options configure a Generator. Zero values are the documented defaults.
type Options struct {
	// Seed makes the output reproducible: the same Options give the same
	// bytes. Default 0 (a valid seed like any other).
	Seed uint64
	// Events is how many events to write. Default 10000.
	Events int
	// Keys is the number of distinct accounts (account_id values). Default
	// 1000.
	Keys int
	// Rate is the background traffic in events per second of event time;
	// follow-up events of scenarios and of password resets come on top
	// (a few percent). Default 1000.
	Rate float64
	// Start is the event time of the first event. Default
	// 2026-11-20T10:00:00Z.
	Start time.Time
	// OutOfOrder is the fraction of events (0..1) written later than their
	// event time says: they arrive after events up to MaxLateness newer.
	// Default 0.
	OutOfOrder float64
	// MaxLateness bounds how far behind the newest event time an
	// out-of-order event arrives. Default 1s (used only when OutOfOrder > 0).
	MaxLateness time.Duration
	// FraudRate is the probability that a background slot starts a fraud
	// scenario instead. Negative disables injection. Default 0.001.
	FraudRate float64
	// Scenarios restricts injection to these scenario names (see
	// Scenarios). Default: all.
	Scenarios []string
}

// ErrBadOptions is wrapped by every error New returns for invalid Options.
var ErrBadOptions = errors.New("bad generator options")

func (o *Options) fill() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrBadOptions}, args...)...))
	}
	if o.Events == 0 {
		o.Events = 10000
	}
	if o.Keys == 0 {
		o.Keys = 1000
	}
	if o.Rate == 0 {
		o.Rate = 1000
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	}
	if o.MaxLateness == 0 && o.OutOfOrder > 0 {
		o.MaxLateness = time.Second
	}
	if o.FraudRate == 0 {
		o.FraudRate = 0.001
	}
	if len(o.Scenarios) == 0 {
		o.Scenarios = allScenarios
	}
	if o.Events < 0 {
		bad("events %d is negative", o.Events)
	}
	if o.Keys < 0 || o.Keys > 9_999_999 {
		bad("keys %d is outside 1..9999999", o.Keys)
	}
	if o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0) {
		bad("rate %v is not a positive number", o.Rate)
	}
	if o.OutOfOrder < 0 || o.OutOfOrder > 1 || math.IsNaN(o.OutOfOrder) {
		bad("out-of-order fraction %v is outside 0..1", o.OutOfOrder)
	}
	if o.MaxLateness < 0 {
		bad("max lateness %v is negative", o.MaxLateness)
	}
	if o.FraudRate > 1 || math.IsNaN(o.FraudRate) {
		bad("fraud rate %v is above 1", o.FraudRate)
	}
	for _, s := range o.Scenarios {
		if !slices.Contains(allScenarios, s) {
			bad("unknown scenario %q (known: %v)", s, allScenarios)
		}
	}
	return errors.Join(errs...)
}

// Generator produces one stream of events. It is not safe for concurrent
// use.
type Generator struct {
	opts Options
	rng  *rand.Rand
	// keySalt decorrelates account profiles between seeds.
	keySalt uint64

	startMs int64
	// endMs is when the background traffic will end; follow-ups that
	// would come later are not started, so the stream does not trail off
	// into a sparse tail of scenario events.
	endMs    int64
	slot     int64 // background slots generated so far
	produced int   // events produced in event-time order (incl. pending)
	seq      uint64

	pending  eventHeap // scheduled follow-ups, by event time
	held     eventHeap // produced events waiting to be written, by emit time
	frontier int64     // newest event time produced
	done     bool      // no more events to produce

	// busy marks accounts in the middle of a scenario or a reset, until the
	// given event time (ms), so that background traffic does not interleave
	// with them and blur a pattern (strict contiguity in card testing).
	busy map[int32]int64

	nextScenario int
	injected     map[string]int
	written      int

	buf []byte
}

// New returns a Generator for opts, or an error wrapping ErrBadOptions.
func New(opts Options) (*Generator, error) {
	opts.Scenarios = slices.Clone(opts.Scenarios)
	if err := opts.fill(); err != nil {
		return nil, err
	}
	return &Generator{
		opts:     opts,
		rng:      rand.New(rand.NewPCG(opts.Seed, 0x5368726b65)),
		keySalt:  splitmix(opts.Seed ^ 0x9e3779b97f4a7c15),
		startMs:  opts.Start.UnixMilli(),
		endMs:    opts.Start.UnixMilli() + int64(float64(opts.Events)*1000/opts.Rate),
		frontier: math.MinInt64,
		busy:     make(map[int32]int64),
		injected: make(map[string]int),
	}, nil
}

// Next returns the next event as one JSON object without a trailing
// newline, or ok=false when the stream is complete. The slice is valid until
// the next call.
func (g *Generator) Next() (line []byte, ok bool) {
	for {
		if len(g.held) > 0 && (g.done || g.held[0].emitAt <= g.frontier) {
			e := heap.Pop(&g.held).(*event)
			g.buf = e.appendJSON(g.buf[:0], g)
			g.written++
			return g.buf, true
		}
		if g.done {
			return nil, false
		}
		e := g.produce()
		if e == nil {
			g.done = true
			continue
		}
		g.frontier = e.ts
		e.emitAt = e.ts
		if g.opts.OutOfOrder > 0 && g.rng.Float64() < g.opts.OutOfOrder {
			maxMs := max(g.opts.MaxLateness.Milliseconds(), 1)
			e.emitAt = e.ts + 1 + g.rng.Int64N(maxMs)
		}
		heap.Push(&g.held, e)
	}
}

// WriteTo writes the remaining events to w, one per line, and returns the
// bytes written. It buffers its writes, so w need not.
func (g *Generator) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	var n int64
	for {
		line, ok := g.Next()
		if !ok {
			break
		}
		line = append(line, '\n')
		g.buf = line // keep the grown buffer
		m, err := bw.Write(line)
		n += int64(m)
		if err != nil {
			return n, fmt.Errorf("write events: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("write events: %w", err)
	}
	return n, nil
}

// Injected returns how many instances of each scenario were started so far.
func (g *Generator) Injected() map[string]int {
	m := make(map[string]int, len(g.injected))
	for k, v := range g.injected {
		m[k] = v
	}
	return m
}

// Written returns how many events Next has returned so far.
func (g *Generator) Written() int { return g.written }

// AccountID returns the account_id of key number i (0 ≤ i < Keys).
func AccountID(i int) string {
	b := make([]byte, 0, 12)
	return string(appendAccountID(b, int32(i)))
}

func appendAccountID(b []byte, i int32) []byte {
	b = append(b, "acct-"...)
	var digits [7]byte
	v := int(i)
	for j := len(digits) - 1; j >= 0; j-- {
		digits[j] = byte('0' + v%10)
		v /= 10
	}
	return append(b, digits[:]...)
}

// produce returns the next event in event-time order, or nil at the end.
func (g *Generator) produce() *event {
	if g.produced >= g.opts.Events {
		return nil
	}
	slotMs := g.slotTime()
	// Follow-ups due by the next slot go first, so output stays in event
	// time order; once the budget is all scheduled, drain them.
	if len(g.pending) > 0 && (g.pending[0].ts <= slotMs || g.produced+len(g.pending) >= g.opts.Events) {
		g.produced++
		return heap.Pop(&g.pending).(*event)
	}
	g.slot++
	budget := g.opts.Events - g.produced - len(g.pending)
	if g.opts.FraudRate > 0 && g.rng.Float64() < g.opts.FraudRate {
		if e := g.startScenario(slotMs, budget); e != nil {
			g.produced++
			return e
		}
	}
	g.produced++
	return g.background(slotMs, budget)
}

func (g *Generator) slotTime() int64 {
	return g.startMs + int64(float64(g.slot)*1000/g.opts.Rate)
}

func (g *Generator) newEvent(ts int64, typ string, acct int32) *event {
	g.seq++
	p := g.profile(acct)
	return &event{
		ts: ts, seq: g.seq, typ: typ, account: acct,
		currency: p.city.currency, country: p.city.country,
		ip: p.ip, device: p.device, success: true,
		lat: p.city.lat, lon: p.city.lon,
	}
}

func (g *Generator) schedule(e *event) { heap.Push(&g.pending, e) }

// pickAccount draws an account that is not busy at ts. It gives up after a
// few tries and returns a busy one rather than loop: with few keys and many
// scenarios that keeps the generator total, at the cost of some overlap.
func (g *Generator) pickAccount(ts int64) int32 {
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

// background draws one ordinary event at ts. The amount bands are chosen so
// that ordinary traffic does not look like fraud: card auths are at least
// 3.00 (card testing is below 2.00) and at most 3000 (large auths are above
// 5000); transfers stay below 8500 (structuring is 9000..9999) or are
// domestic above 10000 (big foreign transfers go to high-risk countries).
func (g *Generator) background(ts int64, budget int) *event {
	r := g.rng
	acct := g.pickAccount(ts)
	p := g.profile(acct)
	x := r.Float64()
	if x < 0.01 && (budget < 2 || ts+255_000 > g.endMs) {
		x = 0.5 // no room for the reset's 2fa follow-up
	}
	switch {
	case x < 0.01:
		// A user resets the password and confirms with 2fa: the absence
		// rule must not fire on it.
		e := g.newEvent(ts, TypePasswordReset, acct)
		g.jitterHome(e)
		v := g.newEvent(ts+15_000+r.Int64N(240_000), Type2FAVerified, acct)
		g.jitterHome(v)
		g.schedule(v)
		g.markBusy(acct, v.ts)
		return e
	case x < 0.51:
		e := g.newEvent(ts, TypeCardAuth, acct)
		e.amount = clamp(logNormal(r, 35, 0.9), 3, 3000)
		e.merchant = merchant(r.IntN(5000))
		e.cardID = p.cardID
		e.success = r.Float64() < 0.98
		if r.Float64() < 0.05 {
			c := homeCities[r.IntN(len(homeCities))]
			e.country, e.lat, e.lon = c.country, c.lat, c.lon
		}
		g.jitter(e, 0.05)
		return e
	case x < 0.78:
		e := g.newEvent(ts, TypeLogin, acct)
		e.success = r.Float64() < 0.97
		if r.Float64() < 0.2 {
			e.ip = p.ip2
		}
		g.jitterHome(e)
		return e
	case x < 0.93:
		e := g.newEvent(ts, TypeTransfer, acct)
		if r.Float64() < 0.01 {
			e.amount = round2(10000 + r.Float64()*30000)
		} else {
			e.amount = clamp(logNormal(r, 250, 1.1), 5, 8500)
			if r.Float64() < 0.05 {
				c := homeCities[r.IntN(len(homeCities))]
				e.country = c.country
			}
		}
		g.jitterHome(e)
		return e
	case x < 0.97:
		e := g.newEvent(ts, Type2FAVerified, acct)
		g.jitterHome(e)
		return e
	default:
		e := g.newEvent(ts, TypeLogout, acct)
		g.jitterHome(e)
		return e
	}
}

func (g *Generator) jitterHome(e *event) { g.jitter(e, 0.02) }

func (g *Generator) jitter(e *event, deg float64) {
	e.lat = round4(e.lat + (g.rng.Float64()*2-1)*deg)
	e.lon = round4(e.lon + (g.rng.Float64()*2-1)*deg)
}

// startScenario starts the next scenario instance at ts: it returns the
// first event and schedules the rest. It returns nil when the remaining
// budget cannot hold the instance.
func (g *Generator) startScenario(ts int64, budget int) *event {
	name := g.opts.Scenarios[g.nextScenario%len(g.opts.Scenarios)]
	evs := g.scenarioEvents(name, ts)
	g.nextScenario++
	if len(evs) > budget || evs[len(evs)-1].ts > g.endMs {
		// Skip it rather than retry it: a long scenario that no longer
		// fits before the end must not keep the short ones out.
		return nil
	}
	g.injected[name]++
	for _, e := range evs[1:] {
		g.schedule(e)
	}
	g.markBusy(evs[0].account, evs[len(evs)-1].ts+quietAfter[name].Milliseconds())
	return evs[0]
}

// quietAfter is how long an account stays out of background traffic after
// its scenario's last event: the window in which an ordinary event could
// spoil the pattern (a 2fa_verified after a reset without one) or pair with
// it into a second match (a login at home after a far-away one).
var quietAfter = map[string]time.Duration{
	ScenarioAccountTakeover:    10 * time.Minute,
	ScenarioCardTesting:        10 * time.Minute,
	ScenarioImpossibleTravel:   30 * time.Minute,
	ScenarioResetWithout2FA:    16 * time.Minute,
	ScenarioStructuring:        time.Hour,
	ScenarioBigForeignTransfer: time.Minute,
	ScenarioLargeCardAuth:      time.Minute,
}

func (g *Generator) scenarioEvents(name string, ts int64) []*event {
	r := g.rng
	acct := g.pickAccount(ts)
	p := g.profile(acct)
	var evs []*event
	add := func(at int64, typ string) *event {
		e := g.newEvent(at, typ, acct)
		e.scenario = name
		evs = append(evs, e)
		return e
	}
	switch name {
	case ScenarioAccountTakeover:
		// Credential stuffing through residential proxies: new IPs, but
		// geolocated near home so that travel rules stay quiet.
		t := ts
		for range 3 + r.IntN(3) {
			e := add(t, TypeLogin)
			e.success = false
			e.ip = randomIP(r)
			e.device = randomDevice(r)
			g.jitterHome(e)
			t += 5_000 + r.Int64N(25_000)
		}
		t += 30_000 + r.Int64N(90_000)
		login := add(t, TypeLogin)
		login.ip = randomIP(r)
		login.device = randomDevice(r)
		g.jitterHome(login)
		t += 60_000 + r.Int64N(240_000)
		drain := add(t, TypeTransfer)
		drain.ip, drain.device = login.ip, login.device
		drain.amount = round2(1500 + r.Float64()*7000)
		g.jitterHome(drain)
	case ScenarioCardTesting:
		t := ts
		for range 3 + r.IntN(4) {
			e := add(t, TypeCardAuth)
			e.amount = round2(0.5 + r.Float64()*1.49)
			e.merchant = merchant(r.IntN(5000))
			e.cardID = p.cardID
			e.success = r.Float64() < 0.5
			g.jitter(e, 0.05)
			t += 2_000 + r.Int64N(20_000)
		}
	case ScenarioImpossibleTravel:
		home := add(ts, TypeLogin)
		g.jitterHome(home)
		far := add(ts+240_000+r.Int64N(960_000), TypeLogin)
		c := farCity(r, p.city)
		far.country, far.currency, far.lat, far.lon = c.country, c.currency, c.lat, c.lon
		far.ip = randomIP(r)
		g.jitterHome(far)
	case ScenarioResetWithout2FA:
		reset := add(ts, TypePasswordReset)
		reset.ip = randomIP(r)
		g.jitterHome(reset)
		login := add(ts+60_000+r.Int64N(120_000), TypeLogin)
		login.ip = reset.ip
		login.device = randomDevice(r)
		g.jitterHome(login)
	case ScenarioStructuring:
		t := ts
		for range 3 + r.IntN(3) {
			e := add(t, TypeTransfer)
			e.amount = round2(9000 + r.Float64()*990)
			g.jitterHome(e)
			t += 60_000 + r.Int64N(300_000)
		}
	case ScenarioBigForeignTransfer:
		e := add(ts, TypeTransfer)
		c := highRiskCities[r.IntN(len(highRiskCities))]
		e.country = c.country
		e.currency = "USD"
		e.amount = round2(12000 + r.Float64()*78000)
		g.jitterHome(e)
	case ScenarioLargeCardAuth:
		e := add(ts, TypeCardAuth)
		e.amount = round2(5200 + r.Float64()*19800)
		e.merchant = merchant(r.IntN(5000))
		e.cardID = p.cardID
		g.jitter(e, 0.05)
	}
	return evs
}

type event struct {
	ts     int64 // event time, Unix ms
	emitAt int64 // when it may be written, Unix ms of event time
	seq    uint64

	typ      string
	account  int32
	amount   float64
	currency string
	country  string
	ip       string
	device   string
	success  bool
	merchant string
	cardID   string
	lat, lon float64
	scenario string
}

func (e *event) appendJSON(b []byte, g *Generator) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, e.typ...)
	b = append(b, `","account_id":"`...)
	b = appendAccountID(b, e.account)
	b = append(b, `","amount":`...)
	b = strconv.AppendFloat(b, e.amount, 'f', 2, 64)
	b = append(b, `,"currency":"`...)
	b = append(b, e.currency...)
	b = append(b, `","country":"`...)
	b = append(b, e.country...)
	b = append(b, `","ip":"`...)
	b = append(b, e.ip...)
	b = append(b, `","device":"`...)
	b = append(b, e.device...)
	b = append(b, `","success":`...)
	b = strconv.AppendBool(b, e.success)
	b = append(b, `,"merchant":"`...)
	b = append(b, e.merchant...)
	b = append(b, `","card_id":"`...)
	b = append(b, e.cardID...)
	b = append(b, `","lat":`...)
	b = strconv.AppendFloat(b, e.lat, 'f', 4, 64)
	b = append(b, `,"lon":`...)
	b = strconv.AppendFloat(b, e.lon, 'f', 4, 64)
	b = append(b, `,"ts":"`...)
	b = time.UnixMilli(e.ts).UTC().AppendFormat(b, TimeLayout)
	b = append(b, '"')
	if e.scenario != "" {
		b = append(b, `,"scenario":"`...)
		b = append(b, e.scenario...)
		b = append(b, '"')
	}
	return append(b, '}')
}

// eventHeap orders events by emitAt when used for held events and by ts
// for pending ones: pending events keep emitAt == 0 until produced, so one
// ordering on (emitAt, ts, seq) serves both.
type eventHeap []*event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if a.emitAt != b.emitAt {
		return a.emitAt < b.emitAt
	}
	if a.ts != b.ts {
		return a.ts < b.ts
	}
	return a.seq < b.seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(*event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

func logNormal(r *rand.Rand, median, sigma float64) float64 {
	return median * math.Exp(sigma*r.NormFloat64())
}

func clamp(v, lo, hi float64) float64 { return round2(min(max(v, lo), hi)) }

func round2(v float64) float64 { return math.Round(v*100) / 100 }

func round4(v float64) float64 { return math.Round(v*10000) / 10000 }

func merchant(i int) string { return "m-" + strconv.Itoa(10000+i) }

func randomIP(r *rand.Rand) string {
	// Public-looking first octets only; the generator never needs to avoid
	// a real network, it just should not look like a LAN address.
	firsts := [...]int{31, 45, 62, 77, 89, 91, 103, 138, 176, 185, 193, 212}
	b := strconv.AppendInt(nil, int64(firsts[r.IntN(len(firsts))]), 10)
	for range 3 {
		b = append(b, '.')
		b = strconv.AppendInt(b, int64(r.IntN(254)+1), 10)
	}
	return string(b)
}

func randomDevice(r *rand.Rand) string {
	return deviceName(r.Uint64())
}

func deviceName(h uint64) string {
	kinds := [...]string{"ios-", "android-", "web-"}
	b := []byte(kinds[h%3])
	return string(strconv.AppendUint(b, (h>>8)&0xffffff, 16))
}
