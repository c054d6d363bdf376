// Package matcher runs compiled rules over keyed, timed events: it finds
// the matches of each rule's pattern per key, in event time, and reports
// them as Alerts (docs/design.md#the-matcher, docs/semantics.md). It is
// the one matching code of Shrike: the Kafka engine, `shrike run`,
// `shrike test`, the API's TestRuleset and the Flink conformance tests all
// drive it.
//
// A Program is the plan for the rulesets of one stream (rulesets that share
// the key and time expressions): every rule's automaton (nfa.Compile) and
// its conditions, numbered so that a condition that reads only the event is
// evaluated at most once per event, however many rules and partial matches
// ask. NewProgram builds it; Program.Prepare evaluates the leading
// conditions of a Record ahead of matching, on any goroutine.
//
// A Partition holds the state of every key of one stream in one source
// partition (a Kafka partition, or a file): a reorder buffer of records
// waiting for the watermark, and per key the partial matches (runs) of
// each rule, which share the events they took. Push adds a Record,
// Advance moves the watermark without one; what they produce goes to the
// Partition's Output, synchronously. Checkpoint, Changes, AppendKeyState,
// RestoreKey and Evict let a caller keep key state outside the process
// (snapshot.go); SetProgram changes the rules under load (reload.go).
//
// Invariants:
//
//   - No I/O: nothing here reads a file, opens a connection or starts a
//     goroutine. Time comes from the records (event time) and, for
//     DetectedAt only, from Options.Clock. The caller brings events and
//     stored key states in and takes alerts and encoded key states out.
//   - Event-time order: a key's rules see its records in order of Time,
//     ties in order of arrival (Record.Seq), once the watermark (the newest
//     Time seen minus MaxOutOfOrderness, or what Advance set) has passed
//     them; a record behind the watermark goes to Output.Late unmatched.
//     Windows close, and timeouts fire, as the watermark passes their
//     deadline, for keys that see no further record too.
//   - A Program is immutable once built and may be shared by Partitions
//     and goroutines. A Partition is not safe for concurrent use: one
//     goroutine pushes to it, and its Output is called on that goroutine,
//     in the order the results arise.
//   - Results depend only on the Program and the records pushed, not on
//     how they were batched, nor on keys evicted and restored in between
//     (each restored before the watermark passes its KeyDeadline): alert
//     ids hash the ruleset, rule, rule version, key, timeout flag and the
//     matched records' positions, and nothing else.
//   - Snapshots: AppendKeyState's encoding starts with a version
//     (snapshotVersion) and RestoreKey reads every version up to its own,
//     so a release reads the key states an earlier one stored; a change of
//     layout bumps the version and keeps reading the old ones
//     (testdata/keystate holds what each version wrote). Runs refer
//     to automaton states by ID, and are restored only for a rule whose
//     name and version are unchanged (the automaton is then the same;
//     package nfa keeps its numbering stable). A corrupt or truncated
//     encoding fails with an error wrapping ErrSnapshot and never panics.
//   - A key without partial matches takes no memory, and a key whose last
//     one ends is dropped (and listed by Changes as emptied).
//   - A partial match refers to no pushed Record: it keeps a copy of each
//     event it took (retain.go), so that the runtime may reuse a record
//     once Options.Recycle hands it back.
//   - Rule groups (group.go) change no result: rules of one template that
//     share their partial matches give the alerts (ids and order), counters,
//     key states and snapshots they give stepped apart.
//
// Start reading at NewProgram (program.go), then Partition.Push, advance
// and process (partition.go), step and nextRuns (run.go, Flink's
// NFA.doProcess and computeNextStates), and emit (emit.go);
// TestPartitionMatching shows small patterns with the alerts they give.
package matcher
