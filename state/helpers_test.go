package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"

	"github.com/shrike-cep/shrike/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testStore is cep.Store plus LoadAll (package state cannot import cep
// in its own tests: cep imports state).
type testStore interface {
	LoadCheckpoint(ctx context.Context, p PartitionID) (Checkpoint, bool, error)
	LoadKeys(ctx context.Context, p PartitionID, keys []string) (map[string][]byte, error)
	LoadAll(ctx context.Context, p PartitionID) (map[string][]byte, error)
	Commit(ctx context.Context, p PartitionID, put []KeyState, del []string, cp Checkpoint) error
	Claim(ctx context.Context, p PartitionID) (prev Checkpoint, ok bool, claimed Checkpoint, err error)
	Stage(ctx context.Context, p PartitionID, put []KeyState, del []string, pend Checkpoint) error
	LoadPending(ctx context.Context, p PartitionID) (Checkpoint, bool, error)
	Promote(ctx context.Context, p PartitionID, gen int64) (Checkpoint, error)
	Discard(ctx context.Context, p PartitionID, gen int64) error
	Close() error
}

// backend opens fresh, empty stores of one kind.
type backend struct {
	name string
	// open returns an empty store; the test's cleanup closes it and
	// removes what it wrote.
	open func(t testing.TB, opts Options) testStore
}

// redisBackends are the Redis deployments tests run against: miniredis as
// a standalone server and as a one-node Cluster (always), a real
// redis-server when SHRIKE_REDIS_ADDR is set and a real Redis Cluster when
// SHRIKE_REDIS_CLUSTER (comma-separated seeds) is set.
func redisBackends() []backend {
	bs := []backend{
		{"miniredis", func(t testing.TB, opts Options) testStore {
			m := miniredis.RunT(t)
			opts.Addrs = []string{m.Addr()}
			return newRedisT(t, opts)
		}},
		{"miniredis-cluster", func(t testing.TB, opts Options) testStore {
			m := miniredis.RunT(t)
			opts.Addrs, opts.Cluster = []string{m.Addr()}, true
			return newRedisT(t, opts)
		}},
	}
	if addr := os.Getenv("SHRIKE_REDIS_ADDR"); addr != "" {
		bs = append(bs, backend{"redis", func(t testing.TB, opts Options) testStore {
			opts.Addrs = []string{addr}
			return newSharedRedisT(t, opts)
		}})
	}
	if seeds := os.Getenv("SHRIKE_REDIS_CLUSTER"); seeds != "" {
		bs = append(bs, backend{"redis-cluster", func(t testing.TB, opts Options) testStore {
			opts.Addrs = strings.Split(seeds, ",")
			return newSharedRedisT(t, opts)
		}})
	}
	return bs
}

// allBackends adds Memory to the Redis backends.
func allBackends() []backend {
	mem := backend{"memory", func(t testing.TB, _ Options) testStore {
		m := NewMemory()
		t.Cleanup(func() { _ = m.Close() })
		return m
	}}
	return append([]backend{mem}, redisBackends()...)
}

func newRedisT(t testing.TB, opts Options) *Redis {
	t.Helper()
	r, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// newSharedRedisT opens a store on a Redis that other tests (and runs)
// share: it writes under a key prefix of its own, deleted at cleanup.
func newSharedRedisT(t testing.TB, opts Options) *Redis {
	t.Helper()
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = "shrike-test-" + randHex(t)
	}
	r := newRedisT(t, opts)
	prefix := opts.KeyPrefix
	t.Cleanup(func() { testkit.DeleteRedisKeys(t, opts.Addrs, false, prefix+":*") })
	return r
}

// randHex is 12 random hex digits, for names no other test or run uses.
func randHex(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// part is the partition most tests store under.
var part = PartitionID{Group: "shrike", Topic: "payments", Partition: 3}

// snapshot is everything stored for a partition that the Store shows
// (staged key states show only once promoted).
type snapshot struct {
	Keys    map[string][]byte
	CP      Checkpoint
	HasCP   bool
	Pend    Checkpoint
	HasPend bool
}

// load returns everything stored for partition p.
func load(t *testing.T, s testStore, p PartitionID) snapshot {
	t.Helper()
	ctx := context.Background()
	keys, err := s.LoadAll(ctx, p)
	if err != nil {
		t.Fatalf("LoadAll: %v", err)
	}
	cp, ok, err := s.LoadCheckpoint(ctx, p)
	if err != nil {
		t.Fatalf("LoadCheckpoint: %v", err)
	}
	pend, hasPend, err := s.LoadPending(ctx, p)
	if err != nil {
		t.Fatalf("LoadPending: %v", err)
	}
	return snapshot{Keys: keys, CP: cp, HasCP: ok, Pend: pend, HasPend: hasPend}
}

// commit commits to s and fails the test on an error.
func commit(t *testing.T, s testStore, p PartitionID, put []KeyState, del []string, cp Checkpoint) {
	t.Helper()
	if err := s.Commit(context.Background(), p, put, del, cp); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// stage stages in s and fails the test on an error.
func stage(t *testing.T, s testStore, p PartitionID, put []KeyState, del []string, pend Checkpoint) {
	t.Helper()
	if err := s.Stage(context.Background(), p, put, del, pend); err != nil {
		t.Fatalf("Stage: %v", err)
	}
}

// promote promotes in s, fails the test on an error, and returns the
// committed checkpoint.
func promote(t *testing.T, s testStore, p PartitionID, gen int64) Checkpoint {
	t.Helper()
	cp, err := s.Promote(context.Background(), p, gen)
	if err != nil {
		t.Fatalf("Promote: %v", err)
	}
	return cp
}

// states pairs its arguments into key states: key, state, key, state, ….
func states(kv ...string) []KeyState {
	var out []KeyState
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, KeyState{Key: kv[i], State: []byte(kv[i+1])})
	}
	return out
}

// byteMap pairs its arguments into a map: key, value, key, value, ….
func byteMap(kv ...string) map[string][]byte {
	out := map[string][]byte{}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = []byte(kv[i+1])
	}
	return out
}

// cmpEmpty makes go-cmp take a nil map or slice for an empty one.
var cmpEmpty = cmpopts.EquateEmpty()
