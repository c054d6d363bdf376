package cep

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// benchEvents is the size of the benchmarks' topic: big enough that the
// group join and restore (tens of milliseconds) stay a small part.
const benchEvents = 200_000

// benchTopic fills an in-process Kafka with the payments stream once per
// benchmark.
func benchTopic(b *testing.B) ([]string, *rules.Compiled) {
	b.Helper()
	brokers := cluster(b, "payments")
	rs := loadPayments(b)
	prod := produce(b, brokers, "payments", rs, paymentsEvents(b, benchEvents, 20_000, 0.05))
	if len(prod.pos) != benchEvents {
		b.Fatalf("produced %d events", len(prod.pos))
	}
	return brokers, rs
}

// BenchmarkEngineKafka measures the engine end to end: records fetched
// from an in-process kfake broker, decoded, matched, alerts produced back,
// and state checkpointed every second into Redis through state.Redis: a
// real redis-server when SHRIKE_REDIS_ADDR is set, else miniredis in
// process (which then competes for the CPU). Each iteration is a new
// consumer group reading the whole topic; events/s is the throughput.
func BenchmarkEngineKafka(b *testing.B) {
	brokers, rs := benchTopic(b)
	var store Store
	if addr := os.Getenv("SHRIKE_REDIS_ADDR"); addr != "" {
		store = openRedis(b, state.Options{Addrs: []string{addr}}, true)
	} else {
		store = openRedis(b, state.Options{Addrs: []string{miniredis.RunT(b).Addr()}}, false)
	}
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		e, err := NewEngine(EngineOptions{
			Brokers: brokers, Group: fmt.Sprintf("bench-%d", i), Rulesets: []*rules.Compiled{rs}, Store: store,
			KafkaOptions: []kgo.Opt{kgo.FetchMaxWait(20 * time.Millisecond)},
		})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- e.Run(ctx) }()
		for processed(e) < benchEvents {
			time.Sleep(time.Millisecond)
		}
		total += time.Since(start)
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchEvents*b.N)/total.Seconds(), "events/s")
}

// BenchmarkConsumeKafka is the baseline of BenchmarkEngineKafka: the same
// records consumed by a group that does nothing with them.
func BenchmarkConsumeKafka(b *testing.B) {
	brokers, _ := benchTopic(b)
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(fmt.Sprintf("base-%d", i)),
			kgo.ConsumeTopics("payments"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchMaxWait(20*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for n < benchEvents {
			fs := cl.PollRecords(context.Background(), DefaultPollRecords)
			if err := fs.Err0(); err != nil {
				b.Fatal(err)
			}
			n += fs.NumRecords()
		}
		total += time.Since(start)
		cl.Close()
	}
	b.ReportMetric(float64(benchEvents*b.N)/total.Seconds(), "events/s")
}
