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
//     `lists`. Compile rejects any other reference with its position.
//   - Errors point into the YAML file, also inside expressions (quoted,
//     folded and block scalars included), and come sorted by position.
//   - An Expr is safe for concurrent use; an Event is not: one goroutine
//     at a time evaluates over it, because field decoding is cached on it.
//   - ParseEvent accepts exactly the documents encoding/json accepts that
//     are objects, and decodes fields to the same values.
//
// The package imports only cel-go, the YAML parser, xxhash and the
// standard library: it is the bottom of Shrike's import graph.
package rules
