// Package gen generates deterministic synthetic payments and login events as
// JSON lines, with labelled fraud patterns injected into realistic background
// traffic. It feeds the example recordings under rulesets/testdata, the
// end-to-end benchmarks under tests/bench, and `shrike gen --scenario
// payments`.
//
// Invariants:
//   - The output is a pure function of Options: the same Options (Seed
//     included) give the same bytes, on every platform and Go version that
//     keeps math/rand/v2's PCG stream stable.
//   - Every event injected by a fraud scenario carries a "scenario" field
//     naming it; background events never do. A scenario's name is the id of
//     the rule that must catch it with underscores for dashes
//     (account_takeover: rule account-takeover of rulesets/payments.yaml);
//     tests/bench relies on it. Background traffic is shaped so
//     that it does not, by itself, look like any scenario (see the comments on
//     the amount bands), so the scenario labels say what a ruleset should
//     catch.
//   - Events are produced in event-time order and then, for a configured
//     fraction, held back by up to MaxLateness before being written: event
//     times are never rewritten, so patterns keep their timing and only the
//     arrival order changes. An event's lateness (the newest event time
//     written before it minus its own) never exceeds MaxLateness.
//   - Memory is bounded by the keys' busy marks, the scheduled follow-up
//     events and the events held back, never by the number of events.
//   - Every event has the same fields (type, account_id, amount, currency,
//     country, ip, device, success, merchant, card_id, lat, lon, ts), with
//     zero values where a field does not apply, so that typed schemas and
//     struct decoders see one shape. ts is RFC 3339 in UTC with milliseconds.
package gen
