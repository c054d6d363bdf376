// Package state persists key state and partition checkpoints for the
// engine (DESIGN.md §5): an in-memory store for tests and a Redis store
// (standalone or Cluster) for production. It imports nothing of Shrike's
// above matcher; the engine (package cep) declares the Store interface it
// needs and these types satisfy it.
package state
