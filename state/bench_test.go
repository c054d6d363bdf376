package state

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Benchmarks of the checkpoint path: the cost of a commit per dirty key,
// on miniredis always and on a real Redis (Cluster) when
// SHRIKE_REDIS_ADDR (SHRIKE_REDIS_CLUSTER) is set. Client and server share
// the machine, so ns/key is the cost to both. Run with
//
//	SHRIKE_REDIS_ADDR=127.0.0.1:6391 go test ./state -run '^$' -bench . -benchtime 20x

// benchKeys builds a commit of n keys with states of size bytes (a few
// partial matches and their events).
func benchKeys(n, size int) ([]KeyState, []string) {
	put := make([]KeyState, n)
	keys := make([]string, n)
	for i := range put {
		keys[i] = fmt.Sprintf("acct-%07d", i)
		st := make([]byte, size)
		for j := range st {
			st[j] = byte(i + j)
		}
		put[i] = KeyState{Key: keys[i], State: st}
	}
	return put, keys
}

func BenchmarkCommit(b *testing.B) {
	benchCheckpoints(b, func(ctx context.Context, s testStore, put []KeyState, i int) error {
		return s.Commit(ctx, part, put, nil, Checkpoint{Offset: int64(i), Generation: 1})
	})
}

// BenchmarkStagePromote measures the two-step checkpoint of exactly-once
// mode against BenchmarkCommit's one step, with the same keys: Stage writes
// them to the staged-keys hash, then Promote's script moves them into the
// committed one.
func BenchmarkStagePromote(b *testing.B) {
	benchCheckpoints(b, func(ctx context.Context, s testStore, put []KeyState, i int) error {
		if err := s.Stage(ctx, part, put, nil, Checkpoint{Offset: int64(i), Generation: 1, Seq: int64(i + 1)}); err != nil {
			return err
		}
		_, err := s.Promote(ctx, part, 1)
		return err
	})
}

// benchCheckpoints runs checkpoint i of 10k keys of 200 bytes (write) for
// every Redis backend and batch size.
func benchCheckpoints(b *testing.B, write func(ctx context.Context, s testStore, put []KeyState, i int) error) {
	const keys, size = 10_000, 200
	put, _ := benchKeys(keys, size)
	for _, be := range redisBackends() {
		for _, batch := range []int{100, 1000, 10_000} {
			b.Run(fmt.Sprintf("%s/batch=%d", be.name, batch), func(b *testing.B) {
				s := be.open(b, Options{BatchSize: batch, KeyPrefix: "shrike-bench-" + randHex(b)})
				ctx := context.Background()
				b.ReportAllocs()
				b.SetBytes(int64(keys * size))
				for i := 0; b.Loop(); i++ {
					if err := write(ctx, s, put, i); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*keys), "ns/key")
			})
		}
	}
}

// BenchmarkCommitLua measures the alternative to MULTI/EXEC: one EVALSHA
// carrying every field, whose script HSETs them in chunks (Lua's unpack
// takes a few thousand values at most). The fencing check is left out; it
// costs the same either way.
func BenchmarkCommitLua(b *testing.B) {
	const keys, size = 10_000, 200
	put, _ := benchKeys(keys, size)
	script := redis.NewScript(`
local n = tonumber(ARGV[2])
local last = 2 + 2 * n
local step = 2 * tonumber(ARGV[3])
for i = 3, last, step do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + step - 1, last)))
end
redis.call('SET', KEYS[2], ARGV[1])
return n`)
	for _, be := range redisBackends() {
		for _, batch := range []int{500, 1000} {
			b.Run(fmt.Sprintf("%s/batch=%d", be.name, batch), func(b *testing.B) {
				r := be.open(b, Options{KeyPrefix: "shrike-bench-" + randHex(b)}).(*Redis)
				ctx := context.Background()
				keysKey, cpKey := redisKeys(r.prefix, part)
				b.ReportAllocs()
				b.SetBytes(int64(keys * size))
				for i := 0; b.Loop(); i++ {
					args := make([]any, 0, 3+2*len(put))
					args = append(args, appendCheckpoint(nil, Checkpoint{Offset: int64(i), Generation: 1}), len(put), batch)
					for _, ks := range put {
						args = append(args, ks.Key, ks.State)
					}
					if err := script.Run(ctx, r.client, []string{keysKey, cpKey}, args...).Err(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*keys), "ns/key")
			})
		}
	}
}

func BenchmarkLoadKeys(b *testing.B) {
	const keys, size = 10_000, 200
	put, names := benchKeys(keys, size)
	for _, be := range redisBackends() {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b, Options{KeyPrefix: "shrike-bench-" + randHex(b)})
			ctx := context.Background()
			if err := s.Commit(ctx, part, put, nil, Checkpoint{}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(keys * size))
			for b.Loop() {
				got, err := s.LoadKeys(ctx, part, names)
				if err != nil || len(got) != keys {
					b.Fatalf("LoadKeys: %d keys, %v", len(got), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*keys), "ns/key")
		})
	}
}

// BenchmarkRedisMemoryPerKey measures what a key's checkpointed state costs
// in a real redis-server's memory (SHRIKE_REDIS_ADDR): used_memory after
// committing 100,000 keys, minus before, per key, for states of the sizes
// tests/bench's BenchmarkPartialMatchMemory reports (B/key-state): a key
// with one open partial match of a payments event is about 330 bytes. The
// overhead is Redis's own (a hash field of the partition's hash) and the
// key's name. It is a measurement; its ns/op means nothing. miniredis
// does not account memory, so without a real server it reports nothing.
func BenchmarkRedisMemoryPerKey(b *testing.B) {
	addr := os.Getenv("SHRIKE_REDIS_ADDR")
	if addr == "" {
		b.Skip("SHRIKE_REDIS_ADDR is not set: Redis memory is measured on a real redis-server")
	}
	const keys = 100_000
	for _, size := range []int{100, 330, 1000} {
		b.Run(fmt.Sprintf("state=%dB", size), func(b *testing.B) {
			put, _ := benchKeys(keys, size)
			ctx := context.Background()
			var perKey float64
			for b.Loop() {
				s := newSharedRedisT(b, Options{Addrs: []string{addr}, KeyPrefix: "shrike-bench-" + randHex(b)})
				before := usedMemory(b, s)
				if err := s.Commit(ctx, part, put, nil, Checkpoint{Offset: 1, Generation: 1}); err != nil {
					b.Fatal(err)
				}
				perKey = float64(usedMemory(b, s)-before) / keys
			}
			b.ReportMetric(perKey, "redis-B/key")
			b.ReportMetric(perKey-float64(size), "overhead-B/key")
		})
	}
}

// usedMemory is the server's used_memory (INFO memory).
func usedMemory(tb testing.TB, r *Redis) int64 {
	info, err := r.client.Info(context.Background(), "memory").Result()
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				tb.Fatalf("used_memory %q: %v", v, err)
			}
			return n
		}
	}
	tb.Fatal("INFO memory has no used_memory")
	return 0
}
