package state

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
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
// committing 100,000 keys, minus before, per key. The states are those the
// matcher encodes (matcher.Partition.AppendKeyState) for accounts that
// each saw one payments event opening partial matches (matcher/login: a
// successful login, which opens impossible-travel; matcher/transfer: a
// transfer of 9,500, which opens structuring and velocity), and synthetic
// ones of a few fixed sizes. The overhead is Redis's own (a hash field of
// the partition's hash) and the key's name. It is a measurement; its
// ns/op means nothing. miniredis does not account memory, so without a
// real server it reports nothing.
func BenchmarkRedisMemoryPerKey(b *testing.B) {
	addr := os.Getenv("SHRIKE_REDIS_ADDR")
	if addr == "" {
		b.Skip("SHRIKE_REDIS_ADDR is not set: Redis memory is measured on a real redis-server")
	}
	const keys = 100_000
	type states struct {
		name string
		put  func() []KeyState
	}
	all := []states{
		{"matcher/login", func() []KeyState { return matcherKeyStates(b, keys, loginEvent) }},
		{"matcher/transfer", func() []KeyState { return matcherKeyStates(b, keys, transferEvent) }},
	}
	for _, size := range []int{100, 330, 1000} {
		all = append(all, states{fmt.Sprintf("state=%dB", size), func() []KeyState {
			put, _ := benchKeys(keys, size)
			return put
		}})
	}
	for _, st := range all {
		b.Run(st.name, func(b *testing.B) {
			put := st.put()
			stateBytes := 0
			for _, ks := range put {
				stateBytes += len(ks.State)
			}
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
			meanState := float64(stateBytes) / keys
			b.ReportMetric(meanState, "state-B/key")
			b.ReportMetric(perKey, "redis-B/key")
			b.ReportMetric(perKey-meanState, "overhead-B/key")
		})
	}
}

// Payments events (%d: account, %s: time) as tests/bench's openers: each
// opens partial matches of rulesets/payments.yaml for its account.
const (
	loginEvent    = `{"type":"login","account_id":"acct-%07d","amount":0.00,"currency":"EUR","country":"DE","ip":"84.23.101.7","device":"ios-3f9a2c","success":true,"merchant":"","card_id":"","lat":52.5200,"lon":13.4050,"ts":"%s"}`
	transferEvent = `{"type":"transfer","account_id":"acct-%07d","amount":9500.00,"currency":"EUR","country":"DE","ip":"84.23.101.7","device":"ios-3f9a2c","success":true,"merchant":"","card_id":"","lat":52.5200,"lon":13.4050,"ts":"%s"}`
)

// matcherKeyStates returns the states of n accounts as the matcher encodes
// them after each saw one event of format, a millisecond apart, from a
// Kafka partition at offsets in the millions.
func matcherKeyStates(tb testing.TB, n int, format string) []KeyState {
	tb.Helper()
	src, err := os.ReadFile(filepath.Join("..", "rulesets", "payments.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	rs, err := rules.Load("payments.yaml", src, rules.CompileOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	prog, err := matcher.NewProgram([]*rules.Compiled{rs})
	if err != nil {
		tb.Fatal(err)
	}
	p, err := matcher.NewPartition(prog, discardOutput{}, matcher.Options{MaxOutOfOrderness: rs.Stream.MaxOutOfOrderness})
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	var last int64
	for i := range n {
		ts := start.Add(time.Duration(i) * time.Millisecond).Format("2006-01-02T15:04:05.000Z")
		ev, err := rules.ParseEvent(fmt.Appendf(nil, format, i, ts))
		if err != nil {
			tb.Fatal(err)
		}
		key, err := rs.Key.EvalKey(ev)
		if err != nil {
			tb.Fatal(err)
		}
		t, err := rs.Time.EvalTime(ev)
		if err != nil {
			tb.Fatal(err)
		}
		p.Push(&matcher.Record{Event: ev, Key: key, Time: t, Pos: matcher.Position{Source: "payments/3", Offset: 48_213_977 + int64(i)}})
		last = t
	}
	p.Advance(last + 1)
	changed, _ := p.Changes()
	if len(changed) != n {
		tb.Fatalf("%d of %d accounts hold state", len(changed), n)
	}
	put := make([]KeyState, 0, n)
	for _, k := range changed {
		st, _ := p.AppendKeyState(nil, k)
		put = append(put, KeyState{Key: k, State: st})
	}
	return put
}

type discardOutput struct{}

func (discardOutput) Alert(*matcher.Alert) {}
func (discardOutput) Late(*matcher.Record) {}

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
