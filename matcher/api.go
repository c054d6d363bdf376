package matcher

import (
	"log/slog"
	"time"

	"github.com/shrike-cep/shrike/rules"
)

// Record is one event as the matcher sees it: decoded, keyed and timed.
type Record struct {
	Event *rules.Event
	Key   string
	// Time is the event time in Unix nanoseconds.
	Time int64
	// Pos locates the record in its source; alert ids are built from it.
	Pos Position
	// Seq is the arrival order within a Partition, assigned by Push; it breaks
	// ties between records of equal Time.
	Seq uint64

	pre prepared // see Program.Prepare
}

// prepared holds the conditions Program.Prepare evaluated: bit i of known
// is set when the condition in cache slot i was evaluated without error,
// and bit i of val is its value.
type prepared struct {
	prog       *Program
	known, val uint64
	keyHash    uint64 // hashKey(Record.Key)
	// mayStart has bit i clear when rule i of prog cannot start a match on
	// the record (the conditions it starts on are false): a key without
	// state for the rule then skips it.
	mayStart uint64
}

// Position locates a record in its source.
type Position struct {
	// Source is the file name in offline mode, or "topic/partition" on Kafka.
	Source string
	// Offset is the 1-based line number in a file, or the Kafka offset.
	Offset int64
}

// Output receives what a Partition produces. Calls are made on the goroutine
// that called Push or Advance, in the order the results arise.
type Output interface {
	// Alert receives a match (or a timed-out partial match, with Timeout set).
	Alert(a *Alert)
	// Late receives a record that arrived behind the watermark; it is not
	// matched.
	Late(r *Record)
}

// Options configure a Partition. Zero values are the documented defaults.
type Options struct {
	// MaxOutOfOrderness is how far behind the newest event time an event may
	// arrive and still be matched. Default 0.
	MaxOutOfOrderness time.Duration
	// MaxRunsPerKey caps the partial matches one rule may hold for one key;
	// past it the oldest are dropped and counted. It caps as well the
	// events an aggregate rule keeps for one key as they are; past it the
	// oldest are summarized in panes (docs/semantics.md#aggregates), not
	// dropped. Default 10000.
	MaxRunsPerKey int
	// Clock stamps DetectedAt. Default time.Now.
	Clock func() time.Time
	// Logger receives rare operational messages (cap overflow, once per key).
	// Default: discard.
	Logger *slog.Logger
	// Tracer, when set, follows one key through the Partition (`shrike
	// explain`). Default: none, and tracing costs nothing.
	Tracer *Tracer
	// NoCheckpoints says the runtime never takes the partition's changes
	// (a replay): the partition then keeps no list of the keys that
	// changed, which would grow with every key that ever held state.
	NoCheckpoints bool
	// Recycle, when set, is handed each pushed record once the partition
	// is done with it: matched (partial matches keep copies of what they
	// take), and not referred to by the Output (a late record; one whose
	// matching emitted an alert the Output may keep, whose key or records
	// may point into it: see ReuseAlerts). The runtime may then reuse
	// the record, its event and the event's bytes. It is not called under a
	// Tracer.
	Recycle func(*Record)
	// ReuseAlerts says the Output is done with an alert, and with
	// everything it points to (its records, their events, its id and
	// summary), when its Alert call returns: it writes the alert out and
	// keeps nothing of it. The partition then builds every alert in the
	// same memory, and an alert allocates nothing. It has no effect under
	// a Tracer, which keeps the alerts.
	ReuseAlerts bool
	// PoisonReusedAlerts, for tests, overwrites a reused alert, its id,
	// summary and records once the Output returned from it, so that an
	// Output that kept any of it would show it.
	PoisonReusedAlerts bool
}

// Stats are a Partition's counters since it was created.
type Stats struct {
	Events uint64 // records pushed
	Late   uint64 // records behind the watermark
	Alerts uint64 // alerts emitted, timeouts included
	// Suppressed counts the alerts alert.suppress dropped (not in Alerts).
	Suppressed uint64
	Timeouts   uint64 // partial matches that timed out (emitted or not)
	Dropped    uint64 // partial matches dropped by MaxRunsPerKey
	LiveRuns   int    // open partial matches now
	PeakRuns   int    // most open partial matches at any time
	Keys       int    // keys with state now
	Buffered   int    // records waiting for the watermark now
	// ByRule counts per rule.
	ByRule map[RuleID]RuleStats
}

// RuleID names a rule in Stats. Version is empty for a rule the Program
// runs, and the rule's version for an earlier version kept after
// SetProgram until its partial matches end, so that the two count apart.
// It is a struct, not a "ruleset/rule@version" string, so that callers
// never split a name to find its parts.
type RuleID struct {
	Ruleset, Rule, Version string
}

// String formats id as "ruleset/rule", or "ruleset/rule@version" for a
// draining version: for messages, not for parsing back.
func (id RuleID) String() string {
	if id.Version == "" {
		return id.Ruleset + "/" + id.Rule
	}
	return id.Ruleset + "/" + id.Rule + "@" + id.Version
}

// RuleStats are per-rule counters.
type RuleStats struct {
	Alerts    uint64
	Timeouts  uint64
	Dropped   uint64
	CELErrors uint64
	// Suppressed counts the alerts alert.suppress dropped (not in Alerts).
	Suppressed uint64
	PeakRuns   int // most open partial matches of the rule at any time
	// LiveRuns counts the rule's open partial matches now (Stats sets
	// it), as Stats.LiveRuns counts the Partition's.
	LiveRuns int
	live     int
}
