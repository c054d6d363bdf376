// Package rules is Shrike's ruleset language: it parses a ruleset YAML
// document into a model with file:line:col positions (Parse), validates
// everything a user can get wrong and reports all of it at once
// (ErrorList), and type-checks and compiles every CEL expression against
// the ruleset's schema and lists (Compile, Load). It also owns Event, the
// lazily decoded JSON event that expressions read.
//
// Invariants:
//
//   - A Compiled ruleset only holds expressions that type-checked; its
//     Rules are the enabled rules in source order.
//   - A where/until condition sees `event`, `lists` and the steps before
//     its own (plus its own step when that step loops); a summary sees every
//     step that holds events; when, key and time see only `event` and
//     `lists`. An aggregate rule's where and measure arguments see `event`
//     and `lists`; its having and summary also the measures, whose values
//     come from the MeasureVars the evaluation is given. Compile rejects
//     any other reference with its position.
//   - Errors point into the YAML file, also inside expressions (quoted,
//     folded and block scalars included), and come sorted by position.
//   - An Expr is safe for concurrent use; an Event is not: one goroutine
//     at a time evaluates over it, because field decoding is cached on it.
//   - ParseEvent accepts exactly the documents encoding/json accepts that
//     are objects, and decodes fields to the same values, but for what no
//     consumer can represent (ErrBadValue): invalid UTF-8, and numbers
//     beyond float64's range. Such an event is dead-lettered at decode
//     instead of poisoning the alerts made of it.
//
// Cost limit. CompileOptions.CostLimit is enforced statically first: at
// load, env.EstimateCost (with sizes: event fields up to 64 KiB, ruleset
// lists their length, looping steps their maximum count) rejects an
// expression whose minimum cost is over the limit, and an expression whose
// maximum is within it runs without runtime cost tracking. Only the rest
// (comprehensions over unbounded step lists, mostly) run under
// cel.CostLimit: runtime tracking costs an evaluation several times what
// the expression itself costs (BenchmarkEvalBool; the figures are in
// BENCHMARKS.md), so it is kept for what a static bound cannot clear.
// cel.InterruptCheckFrequency is not used: it only acts through
// ContextEval, and evaluations here take no context.
//
// Events (docs/design.md#performance). ParseEvent is one validating pass
// over the bytes that records the spans of the top-level keys and values in
// a FieldBuffer allocated with the Event (room for 16 fields); values decode
// on first access, strings without escapes share the raw bytes, and no
// encoding/json or map[string]any is on the path. Expr.Eval allocates
// nothing itself (activations are pooled; step lists wrap the caller's
// slice). BenchmarkParseEvent and BenchmarkEvalBool measure both;
// BENCHMARKS.md has the figures and the machine they come from.
//
// Imports: of Shrike, only internal/jsonstr (JSON string escaping) and
// internal/yamlnode (strict YAML decoding with positions); besides them
// cel-go, the YAML parser, xxhash and the standard library. Package rules
// does no I/O: its callers read the files.
package rules
