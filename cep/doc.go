// Package cep is Shrike's engine: it feeds events from sources into the
// matcher and sends what the matcher produces to sinks (DESIGN.md §1, §3, §5).
//
// The offline path is here today. FileReader streams recorded event files
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
//     matcher.Program and one matcher.Partition: each line is decoded once
//     (rules.ParseEvent) and each distinct condition evaluated once, however
//     many rules read it.
//   - Every key of a file replay lives in the one partition of its stream;
//     files replay in the order given, continuing one another's event time.
//   - A record's position is its file name (as given) and 1-based line
//     number, so alert ids are the same on every replay of the same files.
//   - Nothing is dropped silently: a line that cannot be decoded, keyed or
//     timed is dead-lettered (reported as file:line: reason and counted), a
//     late line goes to the late sink and is counted, and the replay goes on.
//   - At the end of input the watermark goes to +∞, so every window closes
//     and absence and timeout alerts are emitted.
//   - Event bytes are copied once per line and never reused, because
//     partial matches keep the events they took.
//   - Replay decodes lines (read, envelope, routing, ParseEvent, key and
//     time) on a second goroutine ahead of the matcher, unless told to be
//     Sequential; matching, every write and every callback stay on the
//     caller's goroutine in line order, so both ways give the same bytes.
//     An event handed to the matcher is never touched by the decoder again.
package cep
