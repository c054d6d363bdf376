package cep

import (
	"context"
	"testing"
	"time"

	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// TestWorkerStopsWithRun: a worker lives within Run's ctx: when it ends,
// the worker drains and stops by itself, as when its partition is
// revoked, without waiting for the group to revoke it.
func TestWorkerStopsWithRun(t *testing.T) {
	store := state.NewMemory()
	e, err := NewEngine(EngineOptions{Brokers: []string{"127.0.0.1:1"}, Store: store, Rulesets: []*rules.Compiled{loadPayments(t)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// No Kafka client: a worker that has read nothing drains without one.
	w := newWorker(ctx, e, nil, "payments", 0)
	go w.run(ctx)
	select {
	case <-w.restored:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker did not restore its partition")
	}
	cancel()
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker did not stop when Run's ctx ended")
	}
	if !w.ckpt.draining {
		t.Error("the worker stopped without draining")
	}
	cp, ok, err := store.LoadCheckpoint(context.Background(), w.ckpt.pid)
	if err != nil || !ok || cp.Generation != 1 {
		t.Errorf("checkpoint %+v, %v, %v: want the claim of generation 1", cp, ok, err)
	}
}
