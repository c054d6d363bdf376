package state_test

import (
	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/state"
)

// Both stores are what the engine needs.
var (
	_ cep.Store = (*state.Memory)(nil)
	_ cep.Store = (*state.Redis)(nil)
)
