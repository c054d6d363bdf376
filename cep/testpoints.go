package cep

import "github.com/twmb/franz-go/pkg/kgo"

// Test points of the exactly-once protocol: the end-to-end crash tests
// build the binary with the build tag shrike_testhooks, whose
// testpoints_hooks.go sets these to kill or stop the process at a chosen
// point (tests/e2e/doc.go). In a normal build they do nothing.
var (
	// crashPoint is called at each named point of a checkpoint barrier.
	crashPoint = func(point string) {}
	// testKafkaOpts are extra client options (broker hooks) of the engine.
	testKafkaOpts = func() []kgo.Opt { return nil }
)
