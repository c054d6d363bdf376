package server_test

import (
	"context"
	"testing"

	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// startEngine runs the engine with the ruleset src until the test ends,
// with state in memory: the producer of the alerts the API serves.
func startEngine(t *testing.T, brokers []string, src string) {
	t.Helper()
	rs, err := rules.Load("payments.yaml", []byte(src), rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := cep.NewEngine(cep.EngineOptions{
		Brokers:     brokers,
		Rulesets:    []*rules.Compiled{rs},
		Store:       state.NewMemory(),
		AlertsTopic: alertsTopic,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine: %v", err)
		}
	})
}
