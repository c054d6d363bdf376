package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/internal/gctune"
	"github.com/shrike-cep/shrike/internal/gen"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// BenchmarkServeKeys measures BenchmarkServe's engine (eos=off) over many
// more keys than it may keep in memory, at a steady rate, against the real
// redis-server at SHRIKE_REDIS_ADDR. It runs only when
// SHRIKE_BENCH_SERVE_KEYS is set, to the number of accounts (at most
// 9,999,999, the generator's limit):
//
//	SHRIKE_BENCH_SERVE_KEYS=1000000 go test -run '^$' -bench ServeKeys -benchtime 1x -timeout 0 ./tests/bench/
//
// A payments stream over that many accounts, SHRIKE_BENCH_SERVE_KEYS_EVENTS
// events long (default twice the keys), is generated while it runs and
// produced at SHRIKE_BENCH_SERVE_KEYS_RATE events per second (default
// 50,000) in a batch every 10 ms, its event time advancing at the same
// rate, so that windows close as they would in production. Each of the
// servePartitions workers keeps at most SHRIKE_BENCH_SERVE_RESIDENT_KEYS
// keys in memory (cep.EngineOptions.MaxResidentKeys, default a tenth of
// the keys over the partitions): the rest are evicted to Redis at
// checkpoints and loaded back when an event of theirs comes or their
// window closes. The broker deletes the records below the engine's
// committed offsets every few seconds (its log segments are 8 MiB), so
// that the embedded Kafka holds little more than the backlog.
//
// Metrics, besides BenchmarkServe's checkpoint ones:
//   - events/s: events over the time from restored to the last record
//     processed; feed-events/s, the rate the producer achieved; behind-ms,
//     how long after the last record was produced the engine processed it
//     (near the batch interval when it keeps up);
//   - key-hit-ratio: the share of events the engine processed without
//     asking the Store for a key (1 − keys asked / events; keys asked for
//     because their windows close count as misses too); found-ratio: the
//     share of keys asked for that the Store held;
//   - redis-MB and redis-B/key: the growth of the redis-server's
//     used_memory (INFO memory) over the run, measured after the last
//     checkpoint, and over the keys it then holds (stored-keys, the
//     fields of the partitions' key hashes, the deadline index's buckets
//     among them); checkpoint-B, the mean encoded checkpoint record
//     (offsets, watermarks and the list of the deadline index's buckets),
//     and index-B, the mean bytes of deadline index buckets a checkpoint
//     writes beside the key states (only those whose keys changed);
//   - heap-MB: the process's live heap once every record is processed;
//   - cpu-ns/event: the process's CPU per event, the producer's
//     generation of the stream included.
func BenchmarkServeKeys(b *testing.B) {
	keys := envInt("SHRIKE_BENCH_SERVE_KEYS", 0)
	addr := os.Getenv("SHRIKE_REDIS_ADDR")
	if keys == 0 || addr == "" {
		b.Skip("set SHRIKE_BENCH_SERVE_KEYS (accounts) and SHRIKE_REDIS_ADDR (a real redis-server) to run")
	}
	defer gctune.ForServe()()
	events := envInt("SHRIKE_BENCH_SERVE_KEYS_EVENTS", 2*keys)
	rate := envInt("SHRIKE_BENCH_SERVE_KEYS_RATE", 50_000)
	resident := envInt("SHRIKE_BENCH_SERVE_RESIDENT_KEYS", max(1, keys/10/servePartitions))
	rs := paymentsRuleset(b)
	opts := streamOptions()
	opts.Events, opts.Keys, opts.Rate = events, keys, float64(rate)
	if _, err := gen.New(opts); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(keys), "keys")
	b.ReportMetric(float64(resident*servePartitions), "resident-cap")

	for range b.N {
		brokers, stopCluster := serveCluster(b, nil)
		smallSegments(b, brokers)
		counted := &countingStore{}
		var fedAt atomic.Int64 // when the last record was acknowledged
		var fedRate atomic.Uint64
		feed := func(cl *kgo.Client) {
			g, err := gen.New(opts)
			if err != nil {
				b.Error(err)
				return
			}
			start := time.Now()
			n := produceGenerated(b, cl, g, rs, rate)
			fedAt.Store(time.Now().UnixNano())
			fedRate.Store(uint64(float64(n) / time.Since(start).Seconds()))
		}
		setup := engineSetup{
			options: func(o *cep.EngineOptions) { o.MaxResidentKeys = resident },
			store: func(s cep.Store) cep.Store {
				counted.Store = s
				counted.rc = redis.NewClient(&redis.Options{Addr: addr})
				counted.prefix = s.(*cleanedStore).prefix
				counted.before = usedMemory(b, counted.rc)
				return counted
			},
			during:      func(e *cep.Engine) func() { return trimConsumed(b, brokers, e) },
			measureHeap: true,
		}
		cpu0 := processCPU()
		stopProfile := startEngineProfile(b)
		r := runEngineWith(b, brokers, rs, events, outputModes[0], feed, setup)
		stopProfile()
		cpu := processCPU() - cpu0
		stopCluster()

		asked, found := counted.asked.Load(), counted.found.Load()
		b.ReportMetric(float64(events)/r.processed.Seconds(), "events/s")
		b.ReportMetric(float64(fedRate.Load()), "feed-events/s")
		b.ReportMetric(ms(r.processedAt.Sub(time.Unix(0, fedAt.Load()))), "behind-ms")
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(events), "cpu-ns/event")
		b.ReportMetric(1-float64(asked)/float64(events), "key-hit-ratio")
		if asked > 0 {
			b.ReportMetric(float64(found)/float64(asked), "found-ratio")
		}
		b.ReportMetric(r.evictedKeys, "evicted-keys")
		b.ReportMetric(float64(r.heapInuse)/(1<<20), "heap-MB")
		b.ReportMetric(float64(counted.grown)/(1<<20), "redis-MB")
		b.ReportMetric(float64(counted.stored), "stored-keys")
		if counted.stored > 0 {
			b.ReportMetric(float64(counted.grown)/float64(counted.stored), "redis-B/key")
		}
		if c := counted.checkpoints.Load(); c > 0 {
			b.ReportMetric(float64(counted.checkpointBytes.Load())/float64(c), "checkpoint-B")
			b.ReportMetric(float64(counted.indexBytes.Load())/float64(c), "index-B")
		}
		if r.committedKeys > 0 {
			b.ReportMetric(r.checkpointSeconds*1e9/r.committedKeys, "checkpoint-ns/key")
			b.ReportMetric(r.committedKeys/r.checkpoints, "keys/checkpoint")
			b.ReportMetric(r.committedBytes/r.committedKeys, "state-B/key")
		}
	}
}

// produceGenerated produces g's events as records of the payments topic,
// keyed by account, at rate events per second in a batch every 10 ms,
// waits for the last acknowledgement and returns how many it produced.
func produceGenerated(b *testing.B, cl *kgo.Client, g *gen.Generator, rs *rules.Compiled, rate int) int {
	const tick = 10 * time.Millisecond
	per := max(1, rate/int(time.Second/tick))
	t := time.NewTicker(tick)
	defer t.Stop()
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	n := 0
	for more := true; more && failed.Load() == nil; {
		<-t.C
		for range per {
			line, ok := g.Next()
			if !ok {
				more = false
				break
			}
			wg.Add(1)
			n++
			cl.Produce(context.Background(), accountRecord(line, rs), func(_ *kgo.Record, err error) {
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
	return n
}

// accountRecord is keyedRecord for the generator's payments events, whose
// account_id it finds without parsing the event: at the rates of
// BenchmarkServeKeys the producer's parsing took a fifth of the process's
// CPU. Another line goes through keyedRecord.
func accountRecord(line []byte, rs *rules.Compiled) *kgo.Record {
	const field = `"account_id":"`
	i := bytes.Index(line, []byte(field))
	if i < 0 {
		return keyedRecord(line, rs)
	}
	rest := line[i+len(field):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return keyedRecord(line, rs)
	}
	return &kgo.Record{Topic: "payments", Key: bytes.Clone(rest[:j]), Value: bytes.Clone(line)}
}

// countingStore counts the keys the engine asks its Store for and the
// checkpoints it writes, and, at Close, before the Store it wraps deletes
// the run's keys, measures how much the redis-server's memory grew and
// how many keys it holds.
type countingStore struct {
	cep.Store
	rc     *redis.Client
	prefix string
	before int64 // used_memory before the engine started

	asked, found                 atomic.Int64
	checkpoints, checkpointBytes atomic.Int64
	indexBytes                   atomic.Int64 // deadline index buckets put

	grown  int64 // used_memory at Close minus before
	stored int64 // fields of the key hashes at Close
}

func (c *countingStore) LoadKeys(ctx context.Context, p state.PartitionID, keys []string) (map[string][]byte, error) {
	got, err := c.Store.LoadKeys(ctx, p, keys)
	if err == nil {
		// Event keys only: a restore also reads the deadline index.
		for _, k := range keys {
			if strings.HasPrefix(k, deadlineIndexPrefix) {
				continue
			}
			c.asked.Add(1)
			if _, ok := got[k]; ok {
				c.found.Add(1)
			}
		}
	}
	return got, err
}

// deadlineIndexPrefix starts the Store names of the engine's deadline
// index buckets (cep/deadlineindex.go).
const deadlineIndexPrefix = "!deadlines:"

func (c *countingStore) Commit(ctx context.Context, p state.PartitionID, put []state.KeyState, del []string, cp state.Checkpoint) error {
	err := c.Store.Commit(ctx, p, put, del, cp)
	if err == nil {
		c.checkpoints.Add(1)
		c.checkpointBytes.Add(int64(len(cp.Streams)))
		for _, ks := range put {
			if strings.HasPrefix(ks.Key, deadlineIndexPrefix) {
				c.indexBytes.Add(int64(len(ks.State)))
			}
		}
	}
	return err
}

func (c *countingStore) Close() error {
	ctx := context.Background()
	var err error
	if c.grown, err = usedMemoryErr(ctx, c.rc); err == nil {
		c.grown -= c.before
		iter := c.rc.Scan(ctx, 0, c.prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			if t, terr := c.rc.Type(ctx, iter.Val()).Result(); terr == nil && t == "hash" {
				n, herr := c.rc.HLen(ctx, iter.Val()).Result()
				if herr != nil {
					err = herr
					break
				}
				c.stored += n
			}
		}
		if err == nil {
			err = iter.Err()
		}
	}
	cerr := c.Store.Close()
	if rerr := c.rc.Close(); err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("measure redis memory: %w", err)
	}
	return cerr
}

// usedMemory returns the redis-server's used_memory (INFO memory).
func usedMemory(b *testing.B, rc *redis.Client) int64 {
	n, err := usedMemoryErr(context.Background(), rc)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func usedMemoryErr(ctx context.Context, rc *redis.Client) (int64, error) {
	info, err := rc.Info(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("redis INFO memory: %w", err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("redis INFO memory: used_memory %q: %w", v, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("redis INFO memory: no used_memory in %q", info)
}

// trimConsumed deletes, every 2 s, the payments records below the offsets
// the engine committed, as a broker's retention would, so that the
// embedded broker's memory holds the records not yet checkpointed. The
// function returned stops it.
func trimConsumed(b *testing.B, brokers []string, e *cep.Engine) func() {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			offsets := kadm.Offsets{}
			for _, p := range e.Status().Partitions {
				if p.Topic == "payments" && p.CommittedOffset > 0 {
					offsets.AddOffset(p.Topic, p.Partition, p.CommittedOffset, -1)
				}
			}
			if len(offsets) == 0 {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			resp, err := adm.DeleteRecords(ctx, offsets)
			cancel()
			if err == nil {
				err = resp.Error()
			}
			if err != nil {
				b.Errorf("delete consumed records: %v", err)
			}
		}
	})
	return func() {
		close(stop)
		wg.Wait()
		cl.Close()
	}
}

// smallSegments gives the payments topic 8 MiB log segments, so that
// trimConsumed frees its records soon after the engine committed them:
// the embedded broker deletes whole segments only (default 100 MiB).
func smallSegments(b *testing.B, brokers []string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	seg := strconv.Itoa(8 << 20)
	resp, err := kadm.NewClient(cl).AlterTopicConfigs(context.Background(),
		[]kadm.AlterConfig{{Op: kadm.SetConfig, Name: "segment.bytes", Value: &seg}}, "payments")
	if err == nil {
		for _, r := range resp {
			if r.Err != nil {
				err = r.Err
			}
		}
	}
	if err != nil {
		b.Fatalf("payments topic segment.bytes: %v", err)
	}
}

// heapInuse is the process's live heap, after a collection.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
