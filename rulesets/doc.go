// Package rulesets holds no Go code of its own: it is the folder of
// example rulesets users start from (payments.yaml, account_security.yaml,
// itops.yaml), each with its rule unit tests (NAME_test.yaml) and a
// recorded event stream under testdata/ (see README.md).
//
// Invariants, held by rulesets_test.go:
//   - Every ruleset compiles, and is tested by a *_test.yaml file here.
//   - Every rule has at least one test in which it must fire and one in
//     which its alerts are compared and it must not.
//   - Every test passes, through the same runner as `shrike test`.
//   - The recordings under testdata/ are what internal/gen writes for the
//     options its TestRecordings names, so they can be regenerated.
package rulesets
