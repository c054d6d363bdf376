// Package conformance checks Shrike against Apache Flink CEP's own test
// suite: for every pattern the language can express, Shrike emits the
// matches Flink does (docs/semantics.md).
//
// testdata/cases.json holds the facts of 96 Flink test methods: a pattern
// written as steps with CEL conditions, the input events and the expected
// matches and timeouts; testdata/added-cases.json and group-cases.json hold
// more in the same format, the latter with groups of steps (Flink's
// GroupPattern). The test converts every case into a ruleset YAML
// document and a recorded event file (JSON lines), runs both through the same
// replay path as `shrike run`, and compares the alerts with the expectation.
// README.md in this folder describes the mapping and the results.
//
// Invariants:
//   - The test reads nothing outside this folder: testdata/cases.json is a
//     copy of the shared case file, so a change there is a reviewed commit.
//   - Shrike is driven only through its public replay path, never by calling
//     into the automaton, so what passes here is what a user gets from
//     `shrike run` on the generated files (-shrike.dump writes them out).
//   - Comparisons are never relaxed per case. The only tolerance is the one
//     documented in compare_test.go for end-of-input alerts in NFA-level
//     cases, which Flink's tests could not observe, and it is logged.
//   - One case failing, or panicking inside Shrike, never hides the result of
//     the others: every case runs in its own subtest named by its id.
package conformance
