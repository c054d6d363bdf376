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
	"strings"
	"time"
)

// Streams, each matching one example ruleset under rulesets/: the value is
// the ruleset's name and its stream topic.
const (
	// StreamPayments is card, login and transfer traffic keyed by
	// account_id (rulesets/payments.yaml).
	StreamPayments = "payments"
	// StreamAccountSecurity is an identity provider's audit events keyed by
	// user_id (rulesets/account_security.yaml).
	StreamAccountSecurity = "account_security"
	// StreamITOps is logs, heartbeats, latency samples and deploys keyed by
	// service (rulesets/itops.yaml).
	StreamITOps = "itops"
)

var allStreams = []string{StreamPayments, StreamAccountSecurity, StreamITOps}

// Streams returns the names of every stream the generator can produce.
func Streams() []string { return slices.Clone(allStreams) }

// Scenarios returns the names of the patterns the generator can inject
// into stream, in injection order, or nil for an unknown stream.
func Scenarios(stream string) []string {
	switch stream {
	case StreamPayments:
		return slices.Clone(paymentsScenarios)
	case StreamAccountSecurity:
		return slices.Clone(securityScenarios)
	case StreamITOps:
		return slices.Clone(itopsScenarios)
	}
	return nil
}

// Rule returns the id of the rule that catches scenario in the example
// ruleset of its stream (rulesets/<stream>.yaml, whose ruleset name and
// stream.topic are the stream's name): the scenario's name with dashes for
// underscores. Only that ruleset's rule counts: a rule of the same id in
// another ruleset reads another topic and never sees the stream.
func Rule(scenario string) string { return strings.ReplaceAll(scenario, "_", "-") }

// absenceWindows are the within of the rules that catch a scenario by the
// absence of an event (a pattern ending in a not step).
var absenceWindows = map[string]time.Duration{
	ScenarioResetWithout2FA:  15 * time.Minute,
	ScenarioMissingHeartbeat: 5 * time.Minute,
}

// AbsenceWindow returns, for a scenario whose rule alerts on the absence
// of an event, the rule's within: its alert comes only once the stream's
// event time has moved that far past the pattern's first event (at the
// end of a replay, or under serve as the watermark follows the wall
// clock), not with the pattern's last event. Zero for other scenarios.
func AbsenceWindow(scenario string) time.Duration { return absenceWindows[scenario] }

// TimeLayout is the layout of the ts field: RFC 3339, UTC, milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// DefaultStart is the event time of the first event when Options.Start is
// zero: a fixed epoch, so that the same options give the same bytes.
var DefaultStart = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// Options configure a Generator. Zero values are the documented defaults;
// some depend on the stream.
type Options struct {
	// Stream selects the kind of traffic (see Streams). Default
	// StreamPayments.
	Stream string
	// Seed makes the output reproducible: the same Options give the same
	// bytes. Default 0 (a valid seed like any other).
	Seed uint64
	// Events caps how many events to write. Default 10000, or no cap when
	// Duration is set. The payments and account_security streams write
	// exactly Events events unless Duration ends them first.
	Events int
	// Duration bounds event time: no event is later than Start+Duration.
	// Default: no bound (Events ends the stream).
	Duration time.Duration
	// Keys is the number of distinct keys: accounts (payments), users
	// (account_security) or services (itops). Default 10000, 10000 and 8.
	// Each account or user sees Rate/Keys events per second: keep that
	// well below 0.05, or rules such as velocity fire on ordinary traffic,
	// as they would on a real account that busy.
	Keys int
	// Rate is the traffic in events per second of event time. For
	// payments and account_security it is the background traffic, and
	// follow-up events of scenarios and of password resets come on top (a
	// few percent); for itops it is everything but incident bursts, and it
	// must exceed the two periodic events per service every 30s. Default
	// 100, 100 and 20.
	Rate float64
	// Start is the event time of the first event. Default DefaultStart.
	Start time.Time
	// OutOfOrder is the fraction of events (0..1) written later than their
	// event time says: they arrive after events up to MaxLateness newer.
	// Default 0.
	OutOfOrder float64
	// MaxLateness bounds how far behind the newest event time an
	// out-of-order event arrives. Default 1s (used only when OutOfOrder > 0).
	MaxLateness time.Duration
	// FraudRate is, for payments and account_security, the probability
	// that a background slot starts a scenario instead. Negative disables
	// injection in every stream. Default 0.001.
	FraudRate float64
	// IncidentEvery is, for itops, the event time between the starts of
	// two injected incidents; the first starts half an interval in, and
	// each start is jittered by up to an eighth of it. Negative disables
	// injection. Default 2m, which fits one incident of each kind into
	// the first ten minutes.
	IncidentEvery time.Duration
	// Scenarios restricts injection to these scenario names (see
	// Scenarios). Default: all of the stream's.
	Scenarios []string
}

// ErrBadOptions is wrapped by every error New returns for invalid Options.
var ErrBadOptions = errors.New("bad generator options")

// noCap stands for "no cap on Events"; it is far from overflowing when
// counts are subtracted from it.
const noCap = math.MaxInt64 / 4

func (o *Options) fill() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrBadOptions}, args...)...))
	}
	if o.Stream == "" {
		o.Stream = StreamPayments
	}
	known := Scenarios(o.Stream)
	if known == nil {
		bad("unknown stream %q (known: %v)", o.Stream, allStreams)
	}
	if o.Events == 0 {
		o.Events = 10000
		if o.Duration > 0 {
			o.Events = noCap
		}
	}
	if o.Keys == 0 {
		o.Keys = 10000
		if o.Stream == StreamITOps {
			o.Keys = 8
		}
	}
	if o.Rate == 0 {
		o.Rate = 100
		if o.Stream == StreamITOps {
			o.Rate = 20
		}
	}
	if o.Start.IsZero() {
		o.Start = DefaultStart
	}
	if o.MaxLateness == 0 && o.OutOfOrder > 0 {
		o.MaxLateness = time.Second
	}
	if o.FraudRate == 0 {
		o.FraudRate = 0.001
	}
	if o.IncidentEvery == 0 {
		o.IncidentEvery = 2 * time.Minute
	}
	if len(o.Scenarios) == 0 {
		o.Scenarios = known
	}
	if o.Events < 0 {
		bad("events %d is negative", o.Events)
	}
	if o.Duration < 0 {
		bad("duration %v is negative", o.Duration)
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
		if known != nil && !slices.Contains(known, s) {
			bad("unknown scenario %q for stream %s (known: %v)", s, o.Stream, known)
		}
	}
	if o.Stream == StreamITOps && o.Keys > 0 && o.Rate > 0 {
		if periodic := itopsPeriodicRate(o.Keys); o.Rate <= periodic {
			bad("rate %v is too low for %d services: their heartbeats and latency samples alone are %.3g events/s", o.Rate, o.Keys, periodic)
		}
		if o.Events <= o.Keys {
			bad("events %d leave no room after the %d services' closing deregister events", o.Events, o.Keys)
		}
	}
	return errors.Join(errs...)
}

// Generator produces one stream of events. It is not safe for concurrent
// use.
type Generator struct {
	opts Options
	rng  *rand.Rand
	// keySalt decorrelates key profiles between seeds.
	keySalt uint64

	startMs int64
	// endMs is when the traffic will end: Start+Duration, or when Events
	// run out at Rate. Scenarios and follow-ups that would come later are
	// not started, so the stream does not trail off into a sparse tail of
	// scenario events.
	endMs int64
	// stopMs is Start+Duration, a hard bound on event time (MaxInt64
	// without Duration).
	stopMs   int64
	produced int // events produced in event-time order
	seq      uint64

	// slots and ops: exactly one is set, by stream.
	slots slotStream
	ops   *itops
	// The state of slotted streams (payments, account_security).
	slot         int64     // background slots generated so far
	pending      eventHeap // scheduled follow-ups, by event time
	busy         map[int32]int64
	nextScenario int

	held     eventHeap // produced events waiting to be written, by emit time
	frontier int64     // newest event time produced
	done     bool      // no more events to produce

	injected map[string]int
	written  int

	buf []byte
}

// New returns a Generator for opts, or an error wrapping ErrBadOptions.
func New(opts Options) (*Generator, error) {
	opts.Scenarios = slices.Clone(opts.Scenarios)
	if err := opts.fill(); err != nil {
		return nil, err
	}
	g := &Generator{
		opts:     opts,
		rng:      rand.New(rand.NewPCG(opts.Seed, 0x5368726b65)),
		keySalt:  splitmix(opts.Seed ^ 0x9e3779b97f4a7c15),
		startMs:  opts.Start.UnixMilli(),
		stopMs:   math.MaxInt64,
		frontier: math.MinInt64,
		busy:     make(map[int32]int64),
		injected: make(map[string]int),
	}
	g.endMs = math.MaxInt64
	if opts.Events < noCap {
		g.endMs = g.startMs + int64(float64(opts.Events)*1000/opts.Rate)
	}
	if opts.Duration > 0 {
		g.stopMs = g.startMs + opts.Duration.Milliseconds()
		g.endMs = min(g.endMs, g.stopMs)
	}
	switch opts.Stream {
	case StreamPayments:
		g.slots = payments{}
	case StreamAccountSecurity:
		g.slots = security{}
	case StreamITOps:
		g.ops = newITOps(g)
	}
	return g, nil
}

// Next returns the next event as one JSON object without a trailing
// newline, or ok=false when the stream is complete. The slice is valid until
// the next call.
func (g *Generator) Next() (line []byte, ok bool) {
	for {
		if len(g.held) > 0 && (g.done || g.held[0].emitAt <= g.frontier) {
			e := heap.Pop(&g.held).(*event)
			if g.ops != nil {
				g.buf = g.ops.appendJSON(g.buf[:0], e)
			} else {
				g.buf = g.slots.appendJSON(g.buf[:0], g, e)
			}
			g.written++
			return g.buf, true
		}
		if g.done {
			return nil, false
		}
		var e *event
		if g.ops != nil {
			e = g.ops.produce()
		} else {
			e = g.produceSlotted()
		}
		if e == nil {
			g.done = true
			continue
		}
		g.produced++
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

// Options returns the options in effect, defaults filled in.
func (g *Generator) Options() Options {
	o := g.opts
	o.Scenarios = slices.Clone(o.Scenarios)
	return o
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

// budget is how many more events may be produced and scheduled.
func (g *Generator) budget() int {
	return g.opts.Events - g.produced - len(g.pending)
}

// slotStream is a stream of random background events at Rate, one per
// slot, into which whole scenario instances are injected: payments and
// account_security. Its methods are called by the Generator's slot
// machinery (slotted.go).
type slotStream interface {
	// background draws one ordinary event at ts; budget is how many more
	// events the stream may produce, follow-ups included.
	background(g *Generator, ts int64, budget int) *event
	// scenario returns the events of one instance of the named scenario
	// starting at ts, in event-time order, each labelled with name.
	scenario(g *Generator, name string, ts int64) []*event
	// quietAfter is how long the key stays out of background traffic after
	// the instance's last event.
	quietAfter(name string) time.Duration
	appendJSON(b []byte, g *Generator, e *event) []byte
}

// event is one generated event of any stream: a stream uses the fields it
// needs, and its appendJSON writes its own fixed set of them.
type event struct {
	ts     int64 // event time, Unix ms
	emitAt int64 // when it may be written, Unix ms of event time
	seq    uint64

	typ      string
	key      int32 // account, user or service number
	scenario string

	// payments and account_security
	amount   float64
	currency string
	country  string
	ip       string
	device   string
	success  bool
	merchant string
	cardID   string
	lat, lon float64

	// itops
	host    string
	level   string
	message string
	version string
	p99     float64
	// periodic marks an itops heartbeat or latency sample whose content is
	// decided when it is produced, and which schedules its successor.
	periodic bool
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

// appendKey writes prefix and i as seven digits: acct-0000042.
func appendKey(b []byte, prefix string, i int32) []byte {
	b = append(b, prefix...)
	var digits [7]byte
	v := int(i)
	for j := len(digits) - 1; j >= 0; j-- {
		digits[j] = byte('0' + v%10)
		v /= 10
	}
	return append(b, digits[:]...)
}

// appendTime writes ms as a JSON string in TimeLayout.
func appendTime(b []byte, ms int64) []byte {
	b = append(b, '"')
	b = time.UnixMilli(ms).UTC().AppendFormat(b, TimeLayout)
	return append(b, '"')
}

// appendScenario closes the object, with the scenario label when e has one.
func appendScenario(b []byte, e *event) []byte {
	if e.scenario != "" {
		b = append(b, `,"scenario":"`...)
		b = append(b, e.scenario...)
		b = append(b, '"')
	}
	return append(b, '}')
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
