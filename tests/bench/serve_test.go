package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/internal/gctune"
	"github.com/shrike-cep/shrike/internal/gen"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// servePartitions is the partition count of the benchmark's topic: the
// embedded broker's default.
const servePartitions = 3

// BenchmarkServe measures `shrike serve`'s engine end to end: the first
// SHRIKE_BENCH_SERVE_EVENTS events of the benchmark stream (default
// 300,000), produced beforehand into an in-process Kafka (kfake) keyed by
// account, are consumed by a cep.Engine with rulesets/payments.yaml, its
// state in a real redis-server when SHRIKE_REDIS_ADDR is set (sub-benchmark
// "redis") or else in miniredis ("miniredis"), and its alerts produced back
// into the broker, plainly ("eos=off") or in one Kafka transaction per
// checkpoint interval ("eos=on", cep.EngineOptions.ExactlyOnce). In the
// same iteration a consume-only baseline, a franz-go consumer group
// reading the same records and doing nothing else, is timed first.
//
// Both are timed from the moment every partition is assigned (and, for the
// engine, restored from the Store) until the last record is processed and,
// for the engine, every alert it produced is done: acknowledged by the
// broker in eos=off, read by a read_committed consumer of the alerts topic
// in eos=on, where an acknowledged alert stays invisible until its
// transaction commits. Group joins and the final checkpoint at shutdown
// are outside. Metrics:
//   - events/s and ns/event of the engine, consume-events/s of the
//     baseline, and engine/consume, the ratio of their times;
//     processed-events/s: the engine's rate up to the last record
//     processed, without the wait for its alerts;
//   - cpu-ns/event and consume-cpu-ns/event: the process's CPU time
//     (broker, clients, engine and, for miniredis, Redis: all in this
//     process; a real redis-server's is not counted) per event, over the
//     whole of each part including group joins and the engine's shutdown
//     checkpoint, steadier than wall time on a shared machine;
//   - alert-visible-p50-ms, alert-visible-p99-ms: from an alert's
//     emission, which happens as the watermark passes its last event, to
//     its arrival at a consumer of the alerts topic that was reading
//     before the engine started, at read_committed in eos=on and
//     read_uncommitted in eos=off: when users see it, in either mode;
//   - eos=off: alert-p50-ms, alert-p99-ms: from an alert's emission to
//     the broker's acknowledgement of its record (kgo produce hooks on the
//     engine's client); checkpoint-ns/key: the engine's checkpoint time
//     (outputs flushed, Store commit, offset commit) over the dirty keys it
//     committed, keys/checkpoint, and state-B/key, the mean encoded state
//     of a key put (deleted keys count as none), from its metrics;
//   - eos=on: barrier-ms, the mean time of a checkpoint barrier (workers
//     stopped, outputs flushed, checkpoints staged, the transaction ended,
//     checkpoints promoted), transactions and aborts per run, from the
//     engine's metrics.
//
// Every acknowledged alert must be read exactly once by the consumer
// (unless a transaction aborted, when the engine produces alerts again
// and the run ends once every distinct id is read).
func BenchmarkServe(b *testing.B) {
	defer gctune.ForServe()() // as `shrike serve` runs
	b.Run(serveStoreName(), func(b *testing.B) {
		for _, mode := range outputModes {
			b.Run(mode.name, func(b *testing.B) { benchServe(b, mode) })
		}
	})
}

// BenchmarkServeLatency measures the alert latency of BenchmarkServe's
// engine when it keeps up, rather than through a backlog: the events are
// produced while it runs, at SHRIKE_BENCH_SERVE_RATE events per second
// (default 20,000) by a producer in the same process, for
// SHRIKE_BENCH_SERVE_LATENCY_EVENTS events (default 100,000). The events
// are a payments stream of their own with 20 times the benchmark stream's
// fraud rate, so that enough alerts fire for a 99th percentile. It has
// BenchmarkServe's sub-benchmarks and reports the same alert latencies
// (alert-visible-p50-ms and alert-visible-p99-ms in both modes,
// alert-p50-ms and alert-p99-ms in eos=off), barrier-ms, transactions and
// aborts in eos=on, the rate achieved (events/s, up to the last alert
// done as in BenchmarkServe) and the process CPU per event.
func BenchmarkServeLatency(b *testing.B) {
	defer gctune.ForServe()()
	b.Run(serveStoreName(), func(b *testing.B) {
		for _, mode := range outputModes {
			b.Run(mode.name, func(b *testing.B) { benchServeLatency(b, mode) })
		}
	})
}

// serveStoreName names the serve benchmarks' Store: "redis" for the
// redis-server at SHRIKE_REDIS_ADDR, else "miniredis".
func serveStoreName() string {
	if os.Getenv("SHRIKE_REDIS_ADDR") != "" {
		return "redis"
	}
	return "miniredis"
}

func benchServeLatency(b *testing.B, mode outputMode) {
	n := envInt("SHRIKE_BENCH_SERVE_LATENCY_EVENTS", 100_000)
	rate := envInt("SHRIKE_BENCH_SERVE_RATE", 20_000)
	rs := paymentsRuleset(b)
	opts := streamOptions()
	opts.Events, opts.Keys, opts.FraudRate = n, 20_000, 0.01
	g, err := gen.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	var recs []*kgo.Record
	for {
		line, ok := g.Next()
		if !ok {
			break
		}
		recs = append(recs, keyedRecord(line, rs))
	}

	var elapsed time.Duration
	var cpu time.Duration
	var runs []engineRun
	for range b.N {
		brokers, stop := serveCluster(b, nil)
		cpu0 := processCPU()
		r := runEngine(b, brokers, rs, len(recs), mode, func(cl *kgo.Client) { producePaced(b, cl, recs, rate) })
		cpu += processCPU() - cpu0
		stop()
		elapsed += r.elapsed
		runs = append(runs, r)
	}
	events := float64(b.N) * float64(len(recs))
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(events/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/events, "cpu-ns/event")
	reportAlerts(b, mode, runs)
}

// producePaced produces recs at rate events per second, in a batch every
// 10 ms, and waits for the last acknowledgement.
func producePaced(b *testing.B, cl *kgo.Client, recs []*kgo.Record, rate int) {
	const tick = 10 * time.Millisecond
	per := max(1, rate/int(time.Second/tick))
	t := time.NewTicker(tick)
	defer t.Stop()
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for i := 0; i < len(recs); i += per {
		<-t.C
		for _, r := range recs[i:min(i+per, len(recs))] {
			wg.Add(1)
			cp := &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value}
			cl.Produce(context.Background(), cp, func(_ *kgo.Record, err error) {
				if err != nil {
					failed.CompareAndSwap(nil, &err)
				}
				wg.Done()
			})
		}
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Errorf("produce the benchmark events: %v", *err)
	}
}

func benchServe(b *testing.B, mode outputMode) {
	path, lines := benchStream(b)
	n := min(lines, envInt("SHRIKE_BENCH_SERVE_EVENTS", 300_000))
	rs := paymentsRuleset(b)
	recs := keyedRecords(b, path, n, rs)

	var engineTime, processedTime, consumeTime, engineCPU, consumeCPU time.Duration
	var runs []engineRun
	for range b.N {
		brokers, stop := serveCluster(b, recs)
		cpu0 := processCPU()
		consumeTime += consumeOnly(b, brokers, len(recs))
		cpu1 := processCPU()
		stopProfile := startEngineProfile(b)
		r := runEngine(b, brokers, rs, len(recs), mode, nil)
		stopProfile()
		cpu2 := processCPU()
		stop()
		consumeCPU += cpu1 - cpu0
		engineCPU += cpu2 - cpu1
		engineTime += r.elapsed
		processedTime += r.processed
		runs = append(runs, r)
	}
	events := float64(b.N) * float64(len(recs))
	b.ReportMetric(float64(engineTime.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(float64(engineTime.Nanoseconds())/events, "ns/event")
	b.ReportMetric(events/engineTime.Seconds(), "events/s")
	b.ReportMetric(events/processedTime.Seconds(), "processed-events/s")
	b.ReportMetric(events/consumeTime.Seconds(), "consume-events/s")
	b.ReportMetric(engineTime.Seconds()/consumeTime.Seconds(), "engine/consume")
	b.ReportMetric(float64(engineCPU.Nanoseconds())/events, "cpu-ns/event")
	b.ReportMetric(float64(consumeCPU.Nanoseconds())/events, "consume-cpu-ns/event")
	reportAlerts(b, mode, runs)
}

// startEngineProfile starts a CPU profile of the engine's part of an
// iteration into SHRIKE_BENCH_SERVE_CPUPROFILE, when it is set, leaving out
// the stream's generation, the broker's seeding and the consume-only
// baseline; the function returned stops it. The file holds the last
// iteration's profile. It cannot be combined with -test.cpuprofile.
func startEngineProfile(b *testing.B) func() {
	path := os.Getenv("SHRIKE_BENCH_SERVE_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatalf("engine profile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		b.Fatalf("engine profile %s: %v", path, err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Errorf("engine profile %s: %v", path, err)
		}
	}
}

// reportAlerts reports what the runs measured of the alerts and of the
// checkpoints (BenchmarkServe's doc lists the metrics of each mode).
func reportAlerts(b *testing.B, mode outputMode, runs []engineRun) {
	var lat, visible []time.Duration
	var alerts int64
	var cpNs, cpKeys, cpBytes, cpCount, barrierSec, barriers, txns, aborts float64
	for _, r := range runs {
		lat = append(lat, r.latencies...)
		visible = append(visible, r.visible...)
		alerts += r.alerts
		cpNs += r.checkpointSeconds * 1e9
		cpKeys += r.committedKeys
		cpBytes += r.committedBytes
		cpCount += r.checkpoints
		barrierSec += r.barrierSeconds
		barriers += r.barriers
		txns += r.committedTxns + r.abortedTxns
		aborts += r.abortedTxns
	}
	iters := float64(len(runs))
	b.ReportMetric(float64(alerts)/iters, "alerts")
	if len(visible) > 0 {
		slices.Sort(visible)
		b.ReportMetric(ms(percentile(visible, 0.50)), "alert-visible-p50-ms")
		b.ReportMetric(ms(percentile(visible, 0.99)), "alert-visible-p99-ms")
	}
	if mode.exactlyOnce {
		if barriers > 0 {
			b.ReportMetric(barrierSec*1e3/barriers, "barrier-ms")
		}
		b.ReportMetric(txns/iters, "transactions")
		b.ReportMetric(aborts/iters, "aborts")
		return
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(ms(percentile(lat, 0.50)), "alert-p50-ms")
		b.ReportMetric(ms(percentile(lat, 0.99)), "alert-p99-ms")
	}
	if cpKeys > 0 {
		b.ReportMetric(cpNs/cpKeys, "checkpoint-ns/key")
		b.ReportMetric(cpKeys/cpCount, "keys/checkpoint")
		b.ReportMetric(cpBytes/cpKeys, "state-B/key")
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile returns the q-quantile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// keyedRecords reads the first n events of the stream as Kafka records of
// the payments topic, keyed by the ruleset's key expression as a producer
// keyed by account would.
func keyedRecords(b *testing.B, path string, n int, rs *rules.Compiled) []*kgo.Record {
	b.Helper()
	recs := make([]*kgo.Record, 0, n)
	err := readLines(path, func(line []byte) {
		if len(recs) == n {
			return
		}
		recs = append(recs, keyedRecord(line, rs))
	})
	if err != nil {
		b.Fatal(err)
	}
	return recs
}

// keyedRecord is a record of the payments topic holding a copy of line,
// keyed by the ruleset's key expression.
func keyedRecord(line []byte, rs *rules.Compiled) *kgo.Record {
	r := &kgo.Record{Topic: "payments", Value: bytes.Clone(line)}
	if ev, err := rules.ParseEvent(bytes.Clone(line)); err == nil {
		if k, err := rs.Key.EvalKey(ev); err == nil {
			r.Key = []byte(k)
		}
	}
	return r
}

// serveCluster starts an in-process Kafka holding recs (none: empty
// topics), produced outside any measurement, and returns its addresses and
// how to stop it.
func serveCluster(b *testing.B, recs []*kgo.Record) ([]string, func()) {
	b.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(),
		kfake.SeedTopics(servePartitions, "payments", cep.DefaultAlertsTopic, cep.DefaultDeadLetterTopic, cep.DefaultLateTopic))
	if err != nil {
		b.Fatal(err)
	}
	brokers := c.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for _, r := range recs {
		wg.Add(1)
		// Records are reused across iterations: a copy keeps the produced
		// offsets from one cluster out of the next.
		cp := &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value}
		cl.Produce(context.Background(), cp, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatalf("produce the benchmark events: %v", *err)
	}
	return brokers, c.Close
}

// consumeOnly reads n records of the payments topic with a franz-go
// consumer group and returns the time from assignment to the last record.
func consumeOnly(b *testing.B, brokers []string, n int) time.Duration {
	b.Helper()
	var assigned atomic.Int64
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup("bench-consume-only"),
		kgo.ConsumeTopics("payments"),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			assigned.CompareAndSwap(0, time.Now().UnixNano())
		}),
	)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	got := 0
	for got < n {
		fs := cl.PollRecords(ctx, cep.DefaultPollRecords)
		if err := ctx.Err(); err != nil {
			b.Fatalf("consume-only: %d of %d records: %v", got, n, err)
		}
		fs.EachError(func(t string, p int32, err error) { b.Fatalf("consume-only: fetch %s/%d: %v", t, p, err) })
		got += fs.NumRecords()
	}
	return time.Since(time.Unix(0, assigned.Load()))
}

// engineRun is what one engine run measured.
type engineRun struct {
	elapsed   time.Duration // from restored to done (see runEngine)
	processed time.Duration // from restored to the last record processed
	// processedAt is when the last record was processed; heapInuse the
	// live heap then (engineSetup.measureHeap).
	processedAt time.Time
	heapInuse   uint64
	latencies   []time.Duration
	visible     []time.Duration
	alerts      int64

	checkpointSeconds float64
	checkpoints       float64
	committedKeys     float64
	committedBytes    float64
	loadedKeys        float64
	evictedKeys       float64

	barrierSeconds float64
	barriers       float64
	committedTxns  float64
	abortedTxns    float64
}

// runEngine runs a cep.Engine over the payments topic in mode until it
// processed n records and every alert is done, then shuts it down. An
// alert is done when the broker acknowledged it (eos=off) or when an
// alertReader at read_committed read it (eos=on: an acknowledged record
// is invisible until its transaction commits). In eos=off the run also
// waits, untimed, for a read_uncommitted alertReader to read every alert,
// for the visible latencies. When feed is not nil it runs once the
// partitions are restored, with a producer client of its own, alongside
// the engine.
func runEngine(b *testing.B, brokers []string, rs *rules.Compiled, n int, mode outputMode, feed func(*kgo.Client)) engineRun {
	return runEngineWith(b, brokers, rs, n, mode, feed, engineSetup{})
}

// engineSetup adjusts runEngineWith's engine; every field may be nil.
type engineSetup struct {
	options func(*cep.EngineOptions)        // the engine's options
	store   func(cep.Store) cep.Store       // wraps benchStore's Store
	during  func(*cep.Engine) (stop func()) // started once restored, stopped once processed
	// measureHeap: engineRun.heapInuse is measured once every record is
	// processed.
	measureHeap bool
}

// runEngineWith is runEngine with its engine adjusted by setup.
func runEngineWith(b *testing.B, brokers []string, rs *rules.Compiled, n int, mode outputMode, feed func(*kgo.Client), setup engineSetup) engineRun {
	b.Helper()
	store := benchStore(b)
	if setup.store != nil {
		store = setup.store(store)
	}
	defer func() {
		if err := store.Close(); err != nil {
			b.Errorf("close store: %v", err)
		}
	}()
	hooks := &alertHooks{topic: cep.DefaultAlertsTopic}
	// The reader starts before the engine, as a downstream consumer
	// already running would.
	reader, err := startAlertReader(brokers, cep.DefaultAlertsTopic, mode.exactlyOnce, hooks)
	if err != nil {
		b.Fatal(err)
	}
	var visible []time.Duration
	var readerStopped bool
	stopReader := func() {
		if !readerStopped {
			readerStopped = true
			visible = reader.stop()
		}
	}
	defer stopReader()
	reg := prometheus.NewRegistry()
	opts := cep.EngineOptions{
		Brokers:      brokers,
		Group:        "bench-serve",
		Rulesets:     []*rules.Compiled{rs},
		Store:        store,
		Registerer:   reg,
		KafkaOptions: []kgo.Opt{kgo.WithHooks(hooks)},
	}
	if mode.exactlyOnce {
		opts.ExactlyOnce = true
		// A transactional id of its own, so that no earlier run's
		// transactions are fenced or waited for.
		opts.TransactionalID = "bench-" + randHex(b)
	}
	if setup.options != nil {
		setup.options(&opts)
	}
	e, err := cep.NewEngine(opts)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	// stop shuts the engine down (its last checkpoint included) once, also
	// when the benchmark fails half way.
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			cancel()
			if err := <-done; err != nil {
				b.Errorf("engine: %v", err)
			}
		})
	}
	defer stop()

	// Ten minutes, and a minute more for every 100,000 events past the
	// first million.
	deadline := time.Now().Add(10*time.Minute + time.Duration(max(0, n-1_000_000)/100_000)*time.Minute)
	poll := func(what string, cond func(cep.EngineStatus) bool) time.Time {
		for {
			st := e.Status()
			if cond(st) {
				return time.Now()
			}
			if time.Now().After(deadline) {
				records, distinct, _, _ := reader.alertsRead()
				b.Fatalf("engine (%s): timed out waiting for %s: %d alerts emitted (%d ids), %d acknowledged, %d read (%d ids): %+v",
					mode.name, what, hooks.buffered.Load(), hooks.ids.Load(), hooks.acked.Load(), records, distinct, st)
			}
			time.Sleep(time.Millisecond)
		}
	}
	start := poll("every partition to be restored", func(st cep.EngineStatus) bool {
		if len(st.Partitions) != servePartitions {
			return false
		}
		for _, p := range st.Partitions {
			if !p.Restored {
				return false
			}
		}
		return true
	})
	if feed != nil {
		pcl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
		if err != nil {
			b.Fatal(err)
		}
		defer pcl.Close()
		fed := make(chan struct{})
		go func() {
			defer close(fed)
			feed(pcl)
		}()
		defer func() { <-fed }()
	}
	stopDuring := func() {}
	if setup.during != nil {
		stopDuring = sync.OnceFunc(setup.during(e))
		defer stopDuring()
	}
	processed := poll("every record to be processed", func(st cep.EngineStatus) bool {
		var records uint64
		for _, p := range st.Partitions {
			records += p.Records
		}
		return records >= uint64(n)
	})
	stopDuring()
	var heap uint64
	if setup.measureHeap {
		heap = heapInuse()
	}
	acked := func(cep.EngineStatus) bool { return hooks.acked.Load() == hooks.buffered.Load() }
	// Distinct ids rather than records: after an aborted transaction the
	// engine produces the alerts again, and only the latest copy commits.
	read := func(st cep.EngineStatus) bool { return acked(st) && reader.distinct() >= hooks.ids.Load() }
	var end time.Time
	if mode.exactlyOnce {
		end = poll("every alert to be read at read_committed", read)
	} else {
		end = poll("every alert to be acknowledged", acked)
		poll("every alert to be read at read_uncommitted", read)
	}
	emitted, ackedAlerts := hooks.buffered.Load(), hooks.acked.Load()
	readRecords, _, unknown, readErr := reader.alertsRead()
	stopReader()
	stop()
	if readErr != nil {
		b.Error(readErr)
	}
	if unknown > 0 {
		b.Errorf("alerts topic (%s): %d records whose id the engine did not emit", mode.name, unknown)
	}

	r := engineRun{elapsed: end.Sub(start), processed: processed.Sub(start), processedAt: processed, heapInuse: heap, alerts: emitted, visible: visible}
	hooks.mu.Lock()
	r.latencies = hooks.latencies
	hooks.mu.Unlock()
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "shrike_state_checkpoint_duration_seconds":
				r.checkpointSeconds += m.GetHistogram().GetSampleSum()
				r.checkpoints += float64(m.GetHistogram().GetSampleCount())
			case "shrike_state_committed_keys_total":
				r.committedKeys += m.GetCounter().GetValue()
			case "shrike_state_committed_bytes_total":
				r.committedBytes += m.GetCounter().GetValue()
			case "shrike_state_loaded_keys_total":
				r.loadedKeys += m.GetCounter().GetValue()
			case "shrike_state_evicted_keys_total":
				r.evictedKeys += m.GetCounter().GetValue()
			case "shrike_engine_barrier_duration_seconds":
				r.barrierSeconds += m.GetHistogram().GetSampleSum()
				r.barriers += float64(m.GetHistogram().GetSampleCount())
			case "shrike_engine_transactions_total":
				for _, l := range m.GetLabel() {
					if l.GetName() != "outcome" {
						continue
					}
					switch l.GetValue() {
					case "committed":
						r.committedTxns += m.GetCounter().GetValue()
					case "aborted":
						r.abortedTxns += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	// Without aborts every acknowledged alert is read exactly once, in
	// either mode: more is a duplicate, fewer a loss.
	if r.abortedTxns == 0 && readRecords != ackedAlerts {
		b.Errorf("alerts topic (%s): %d records read, %d acknowledged, no transaction aborted", mode.name, readRecords, ackedAlerts)
	}
	return r
}

// benchStore opens the Store of `shrike serve`: state.Redis on the real
// redis-server at SHRIKE_REDIS_ADDR under a key prefix of its own (deleted
// at Close), or on a fresh miniredis.
func benchStore(b *testing.B) cep.Store {
	b.Helper()
	if addr := os.Getenv("SHRIKE_REDIS_ADDR"); addr != "" {
		prefix := "shrike-bench-" + randHex(b)
		s, err := state.New(state.Options{Addrs: []string{addr}, KeyPrefix: prefix})
		if err != nil {
			b.Fatal(err)
		}
		return &cleanedStore{Store: s, addr: addr, prefix: prefix}
	}
	m, err := miniredis.Run()
	if err != nil {
		b.Fatal(err)
	}
	s, err := state.New(state.Options{Addrs: []string{m.Addr()}})
	if err != nil {
		m.Close()
		b.Fatal(err)
	}
	return &cleanedStore{Store: s, mini: m}
}

// cleanedStore releases what benchStore set up once the Store is closed.
type cleanedStore struct {
	cep.Store
	mini   *miniredis.Miniredis
	addr   string
	prefix string
}

func (c *cleanedStore) Close() error {
	err := c.Store.Close()
	if c.mini != nil {
		c.mini.Close()
	}
	if c.addr != "" {
		rc := redis.NewClient(&redis.Options{Addr: c.addr})
		ctx := context.Background()
		iter := rc.Scan(ctx, 0, c.prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			if derr := rc.Del(ctx, iter.Val()).Err(); derr != nil && err == nil {
				err = derr
			}
		}
		if ierr := iter.Err(); ierr != nil && err == nil {
			err = ierr
		}
		if cerr := rc.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("close bench store: %w", err)
	}
	return nil
}

func randHex(b *testing.B) string {
	buf := make([]byte, 6)
	if _, err := rand.Read(buf); err != nil {
		b.Fatal(err)
	}
	return hex.EncodeToString(buf)
}

// alertHooks times each alert record of the engine's client from Produce
// (called as the matcher emits the alert, when the watermark passes its
// last event) to the broker's acknowledgement, and records each alert id's
// latest emission for alertReader.
type alertHooks struct {
	topic    string
	start    sync.Map // *kgo.Record → time.Time
	buffered atomic.Int64
	acked    atomic.Int64

	// emitted holds each alert id's latest emission: an alert produced
	// again after an aborted transaction becomes visible as its latest
	// record. ids counts the distinct ids.
	emitted sync.Map // string → time.Time
	ids     atomic.Int64

	mu        sync.Mutex
	latencies []time.Duration
}

func (h *alertHooks) OnProduceRecordBuffered(r *kgo.Record) {
	if r.Topic != h.topic {
		return
	}
	now := time.Now()
	h.start.Store(r, now)
	if _, loaded := h.emitted.Swap(string(r.Key), now); !loaded {
		h.ids.Add(1)
	}
	h.buffered.Add(1)
}

func (h *alertHooks) OnProduceRecordUnbuffered(r *kgo.Record, err error) {
	if r.Topic != h.topic {
		return
	}
	v, ok := h.start.LoadAndDelete(r)
	if ok && err == nil {
		d := time.Since(v.(time.Time))
		h.mu.Lock()
		h.latencies = append(h.latencies, d)
		h.mu.Unlock()
	}
	h.acked.Add(1)
}
