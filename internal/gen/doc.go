// Package gen generates deterministic synthetic event streams as JSON
// lines, one per example ruleset under rulesets/, with labelled attack and
// incident patterns ("scenarios") injected into realistic ordinary traffic:
//
//   - payments (StreamPayments): logins, card authorisations and transfers
//     keyed by account_id, with account takeover, card testing, impossible
//     travel, password reset without 2fa, structuring, big foreign
//     transfers, large card authorisations, velocity and card sprees;
//   - account_security (StreamAccountSecurity): identity audit events keyed
//     by user_id, with password reset without 2fa, new device then email
//     change, and MFA fatigue;
//   - itops (StreamITOps): logs, heartbeats, latency samples and deploys
//     keyed by service, with missing heartbeats, latency spikes after a
//     deploy, error bursts and sustained error rates.
//
// It feeds the example recordings under rulesets/testdata, the end-to-end
// benchmarks under tests/bench, and `shrike gen`. It writes to an
// io.Writer or line by line (Next), so other targets (Kafka) can be added
// by its callers.
//
// Invariants:
//   - The output is a pure function of Options: the same Options (Seed
//     included) give the same bytes, on every platform and Go version that
//     keeps math/rand/v2's PCG stream stable.
//   - Every event injected by a scenario carries a "scenario" field naming
//     it; ordinary events never do. A scenario's name is the id of the rule
//     of the stream's example ruleset that must catch it, with underscores
//     for dashes (account_takeover: rule account-takeover of
//     rulesets/payments.yaml); tests/bench and this package's tests rely
//     on it. Ordinary traffic is shaped so that it
//     does not, by itself, match any rule of the stream's example ruleset
//     (see the comments on each stream's background), so the labels say
//     exactly what the ruleset should catch; the tests replay the streams
//     through the rulesets to hold this. An instance is only injected when
//     it fits before the end of the stream.
//   - Events are produced in event-time order and then, for a configured
//     fraction, held back by up to MaxLateness before being written: event
//     times are never rewritten, so patterns keep their timing and only the
//     arrival order changes. An event's lateness (the newest event time
//     written before it minus its own) never exceeds MaxLateness.
//   - No event time is before Start or at or after Start+Duration.
//   - Memory is bounded by the keys (busy marks; per-service state for
//     itops), the scheduled follow-up events and the events held back,
//     never by the number of events.
//   - Every event of a stream has the same fields, with zero values where a
//     field does not apply, so that typed schemas and struct decoders see
//     one shape. ts is RFC 3339 in UTC with milliseconds.
//   - The itops stream ends with one deregister event per service, so that
//     a replay, which closes every window at the end of its input, does not
//     take the end of the recording for missing heartbeats.
package gen
