// Package draw turns a compiled rule's automaton (nfa.Compile's output) into
// a picture: Describe gives its graph (states, edges with their actions and
// conditions, windows) and SVG renders that graph as a self-contained SVG
// document. Both are read off the automaton the matcher runs, so what the
// picture shows is what runs: one box per State, one arrow per Edge, each
// edge labelled with its action and its condition as CEL text (the leaves'
// sources combined with ! and &&, true when unconditional).
//
// The layout is layered, left to right: a state's column is its longest
// path from the start state over forward edges (an edge that closes a
// cycle, found by a depth-first walk from the start in edge order, is a
// back edge and does not count); within a column, states are ordered by
// the mean row of their predecessors. Forward edges are drawn as curves
// from the right side of a state to the left side of the next, back edges
// as arcs under the states, self-loops as arcs above their state. Nothing
// depends on map order or the clock, so the same automaton gives the same
// bytes.
//
// The SVG is meant both to be served as a file and to be inlined in the
// console's pages: it has no ids (arrowheads are drawn per edge rather than
// as shared markers, so two pictures on one page do not clash), no
// scripts, no external fonts or style sheets, and its colours are
// presentation attributes, which any CSS rule overrides. The hooks for
// scripts, tests and CSS are classes and data attributes:
//
//	<svg class="shrike-automaton" role="img" data-rule="ID" data-states="N" data-edges="M">
//	  <title>…</title> <desc>…</desc>
//	  <g class="caption"> <text class="caption-rule"> <text class="caption-legend"> </g>
//	  <g class="edges">
//	    <g class="edge" data-from="ID" data-to="ID" data-action="take|ignore|proceed"
//	       data-condition="CEL" [data-self="true" | data-back="true"]>
//	      <title>full label</title> <path class="edge-line"> <path class="edge-arrow">
//	      <rect class="edge-label-bg"> <text class="edge-label">
//	  <g class="states">
//	    <g class="state" data-state="ID" data-name="STEP" data-kind="normal|final|stop|pending"
//	       [data-start="true"] [data-group="true"] [data-window="5m"]>
//	      <title>…</title> [<path class="start-arrow"> <circle class="start-dot">]
//	      <rect class="state-box"> [<rect class="state-inner"> (final)]
//	      <text class="state-name"> [<text class="state-note">]
//	  [<g class="pending-matches">
//	    <g class="pending-match" data-from="ID" data-to="ID">
//	      <title>…</title> <path class="pending-line"> <path class="pending-arrow">
//	      <rect class="pending-label-bg"> <text class="pending-label">]
//
// There is one state group per automaton state and one edge group per
// edge, in the order of Graph.States and Graph.Edges; their classes are
// exactly "state" and "edge", the rest is in data attributes (CSS:
// g.state[data-kind="stop"], g.edge[data-action="ignore"]). A pending state,
// whose runs become matches when their window closes rather than by an
// edge, is linked to the final state by a pending-match group, which is
// not an edge of the automaton. Every text (step names and conditions are the rule author's) is
// XML-escaped; long labels are shortened with the full text in a <title>.
//
// An automaton of more than MaxStates states is refused (Describe's
// error): the rule compiler bounds a pattern's states at some million, far
// more than a readable picture or a response holds.
//
// Invariants: no I/O, no clock, no goroutines; the package imports only
// nfa, rules and the standard library.
package draw
