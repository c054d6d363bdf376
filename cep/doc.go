// Package cep is Shrike's engine: it feeds events from sources into the
// matcher and sends what the matcher produces to sinks (docs/design.md#data-flow).
//
// Offline, FileReader streams recorded event files
// (JSON lines, gzip by the .gz extension, kcat -J envelope lines) and
// LineDecoder splits each line into event bytes and envelope fields. Replay
// runs such files through the matcher exactly as the engine runs a Kafka
// partition; `shrike run`, `shrike test` and the conformance tests all go
// through it.
//
// Invariants of Replay:
//
//   - Rulesets that read the same topic with the same key and time
//     expressions and watermark delay form one stream, with one
//     matcher.Program and one matcher.Partition for plain lines: each line
//     is decoded once (rules.ParseEvent) and each distinct condition
//     evaluated once, however many rules read it.
//   - Every key of plain lines lives in the one partition of its stream;
//     files replay in the order given, continuing one another's event time.
//     kcat envelopes that name a partition go to a matcher.Partition per
//     stream and (topic, partition), created at the partition's first
//     line, so each Kafka partition keeps its own watermark as on the
//     engine; a matcher.RunGauge counts a stream's partial matches over
//     all its Partitions.
//   - A record's position is its input's source name (the file's base name
//     unless Input.Source says otherwise) and 1-based line number, so alert
//     ids are the same on every replay of the same recording, wherever it
//     lies; reports name the file as given.
//   - Nothing is dropped silently: a line that cannot be decoded, keyed or
//     timed is dead-lettered (reported as file:line: reason and counted), a
//     late line goes to the late sink and is counted, and the replay goes on.
//     With ReplayOptions.MaxClockSkew, a line further ahead of its
//     partition's watermark than that is dead-lettered the same way.
//   - At the end of input the watermark goes to +∞, so every window closes
//     and absence and timeout alerts are emitted.
//   - Event bytes are copied once per line and never reused, because
//     partial matches keep the events they took.
//   - Replay decodes lines (read, envelope, routing, ParseEvent, key and
//     time) on a second goroutine ahead of the matcher, unless told to be
//     Sequential; matching, every write and every callback stay on the
//     caller's goroutine in line order, so both ways give the same bytes.
//     An event handed to the matcher is never touched by the decoder again.
//
// Online, Engine runs the rulesets over Kafka (`shrike serve`): one
// consumer group over the rulesets' topics, a worker goroutine per assigned
// partition, key state checkpointed into a Store (state.Redis, or
// state.Memory in tests), alerts, late and dead-lettered records produced
// to their topics. Invariants of the Engine:
//
//   - A Kafka record is decoded, routed, keyed, timed and dead-lettered by
//     the same code as a replayed line (decodeEvent), and rulesets are
//     grouped into streams alike (newStreams): the engine and Replay give
//     the same alerts for the same events, their ids differing only through
//     the positions (topic/partition and offset instead of file and line).
//   - Each stream of a partition has its own matcher.Partition and its own
//     watermark; a stream quiet for its idle_timeout (else
//     EngineOptions.IdleTimeout, 30 s by default) follows the wall clock
//     (EngineOptions.Clock) minus its max_out_of_orderness.
//   - An event further ahead of the wall clock than its stream's
//     max_clock_skew (else EngineOptions.MaxClockSkew, 5 min by default) is
//     dead-lettered before its time reaches the watermark, the Store loads
//     or the matcher: one future timestamp cannot make a partition late.
//   - A partition's matcher state is touched by its worker goroutine only.
//     Nothing calls the Store per event: keys not in memory are loaded in
//     one call per batch, state is written at checkpoints.
//   - A checkpoint first waits until every record the partition produced
//     is acknowledged, then commits the changed and emptied keys with the
//     resume offset (the oldest record still buffered, else the next), the
//     streams' watermarks and the changed buckets of the deadline index of
//     keys with open windows (deadlineindex.go), in one atomic Store
//     commit, and only then commits the same offset to Kafka. The Store, not Kafka, says where a new owner resumes.
//   - A new owner claims the partition with a higher fencing generation
//     before anything else; an older owner's later commits then fail, and
//     it stops working on the partition.
//   - After a restore, re-read records behind the restored watermark are
//     skipped (they were matched or reported late before the checkpoint),
//     and so are re-read dead letters: state is exactly-once, alerts are
//     at-least-once with deterministic ids.
//   - A key is never loaded while the matcher changed it since the last
//     checkpoint (the Store would give back a state it has lost); an
//     evicted key with an open window is loaded before the watermark
//     passes its deadline; a key with buffered records is never evicted.
//   - While the Store fails nothing is committed, the engine reports not
//     ready, and a partition stops taking records MaxUncommittedRecords
//     past its last checkpoint (fetching is paused once its queue is long);
//     it resumes when a checkpoint succeeds.
//
// Hot reload (docs/design.md#hot-reload) reaches the engine through
// Engine.SetRulesets, called by registry.Reloader. Invariants:
//
//   - The engine's rulesets are one immutable plan behind an atomic
//     pointer; a worker switches plans only between batches, so each record
//     is matched by exactly one plan, and SetRulesets returns once every
//     worker has switched. Unchanged rules keep their partial matches,
//     changed ones drain under their old version, removed ones drop theirs
//     (matcher.Partition.SetProgram); the keys of a dropped stream are
//     deleted by the partition's next checkpoint.
//
// The rules registry and its hot reload live in package registry, the
// API's alert feed and event publisher in package feed, and the `serve`
// configuration file in package config; docs/design.md maps them all.
package cep
