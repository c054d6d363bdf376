// Package nfa compiles the pattern of a sequence rule (a rules.CompiledRule)
// into an automaton that package matcher runs (docs/design.md#the-matcher).
// Compile builds it as Flink CEP's NFACompiler does, state for state, so
// that a pattern matches what it matches in Flink: the steps are walked
// from the last to the first, and each becomes one or more States whose
// take, ignore and proceed Edges encode contiguity, quantifiers,
// optionality, greed, until conditions and negations; a group of steps
// (Flink's GroupPattern) becomes the states of its steps, copied per round.
// An Edge's guard is a Cond, a small boolean tree whose leaves are the
// rule's compiled CEL expressions; a conjunction is split into its
// conjuncts, cheapest first, so that the matcher can cache the ones that
// read the event alone and stop at the first that is false.
// docs/semantics.md says what a pattern matches.
//
// Invariants:
//
//   - No I/O, no clock, no goroutines: the package imports only rules and
//     the standard library, and Compile is a pure function of the rule.
//   - Compile is deterministic: the same rule compiles to the same states,
//     numbered (State.ID) in the same order, with the same edges in the
//     same order. Key states that matcher stores and Partition.SetProgram
//     refer to a run's state by its ID within the rule's version, so a
//     change to the construction that renumbers the states of an existing
//     rule would make stored partial matches resume in the wrong state; the
//     golden files under testdata/ show every such change.
//   - An Automaton is not modified after Compile returns, except for
//     Cond.Slot, which the matcher's planner numbers once while it builds
//     its Program and before anything runs; automata are then shared
//     read-only by every Partition of the Program.
//   - A run that reaches a Final state is a match, one that reaches a Stop
//     state is discarded (a forbidden event arrived), and one waiting in a
//     Pending state becomes a match when its window closes (a pattern
//     ending in a not step with a window).
//
// Start reading at Compile (compile.go), then the types of nfa.go; the
// golden files (testdata/*.golden, rewritten by go test -update) show the
// automaton of each pattern form as Automaton.String prints it, and
// package nfa/draw draws it as a picture (nfa/draw/testdata/golden/*.svg).
package nfa
