// Package ruletest runs rule unit tests: YAML files that name rulesets,
// give events (inline, as Kafka records, or a recorded file) and list the
// alerts the rules must raise (docs/testing.md). It is what
// `shrike test` runs, with the format of Prometheus' `promtool test rules`
// in mind: Load reads and checks a file, File.Run replays each test and
// compares alerts, WriteReport prints the outcome for people and
// WriteJUnit for CI systems.
//
// Invariants:
//
//   - Events go through cep.Replay, the path `shrike run` and the engine
//     take: a rule behaves in a test as it does in production, with the
//     ruleset's own stream settings (key, time, watermark delay).
//   - A file is checked as a whole before anything runs: every problem of
//     the test file and of its rulesets is reported with file:line:col,
//     and an expectation may only name rules, steps and events that exist.
//   - Each ruleset is compiled once per file; each test replays on its own,
//     so no state crosses from one test to the next.
//   - Results are deterministic: alerts are stamped by a fixed clock and
//     compared without wall-clock time, and each expected alert is paired
//     with at most one actual alert by a maximum matching, so the verdict
//     does not depend on the order expectations are written in.
//   - A test fails when an event it gives is dead-lettered: a test whose
//     input was not read proves nothing.
//   - Events are numbered as the matcher positions them: the 1-based index
//     of an inline event or record, the line number in an events file.
package ruletest
