package state

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/shrike-cep/shrike/internal/testkit"
)

func TestNewOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string // error message; empty for success
	}{
		{"standalone", Options{Addrs: []string{"127.0.0.1:6379"}}, ""},
		{"cluster seeds", Options{Addrs: []string{"a:1", "b:2"}}, ""},
		{"one cluster seed", Options{Addrs: []string{"a:1"}, Cluster: true}, ""},
		{"standalone db", Options{Addrs: []string{"a:1"}, DB: 3}, ""},
		{"no address", Options{}, "redis state store: no address"},
		{"empty address", Options{Addrs: []string{"a:1", " "}}, "redis state store: empty address"},
		{"db on a cluster", Options{Addrs: []string{"a:1"}, Cluster: true, DB: 2}, "redis state store: db 2: a Redis Cluster has only database 0"},
		{
			"every error",
			Options{KeyPrefix: "s{x}", DB: -1, DialTimeout: -1, ReadTimeout: -2, PoolSize: -3, BatchSize: -4},
			"redis state store: no address\ndb -1: negative\nkey prefix \"s{x}\": must not contain '{' or '}'\ndial timeout -1ns: negative\nread timeout -2ns: negative\npool size -3: negative\nbatch size -4: negative",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.opts)
			if r != nil {
				defer func() {
					if err := r.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				}()
			}
			got := ""
			if err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if (r == nil) == (err == nil) {
				t.Errorf("New = %v, %v: want exactly one of them", r, err)
			}
		})
	}
}

// hashTag is the part of a key Redis Cluster hashes: between the first '{'
// and the first '}' after it, when that is not empty.
func hashTag(key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return key
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return key
	}
	return key[open+1 : open+1+end]
}

func TestRedisKeys(t *testing.T) {
	tests := []struct {
		prefix   string
		p        PartitionID
		keys, cp string
	}{
		{"shrike", PartitionID{"shrike", "payments", 3}, "shrike:{shrike/payments/3}:keys", "shrike:{shrike/payments/3}:cp"},
		{"x:y", PartitionID{"fraud-team", "logins.v2", 11}, "x:y:{fraud-team/logins.v2/11}:keys", "x:y:{fraud-team/logins.v2/11}:cp"},
		{"s", PartitionID{"a/b", "c", 0}, "s:{a/b/c/0}:keys", "s:{a/b/c/0}:cp"},
		{"s", PartitionID{"a", "b/c", 0}, "s:{a/b%2Fc/0}:keys", "s:{a/b%2Fc/0}:cp"},
		{"s", PartitionID{"g}{", "t}%", 1}, "s:{g%7D%7B/t%7D%25/1}:keys", "s:{g%7D%7B/t%7D%25/1}:cp"},
		{"s", PartitionID{"", "", 0}, "s:{//0}:keys", "s:{//0}:cp"},
	}
	tags := map[string]PartitionID{}
	for _, tt := range tests {
		t.Run(tt.keys, func(t *testing.T) {
			keys, cp := redisKeys(tt.prefix, tt.p)
			if diff := cmp.Diff([]string{tt.keys, tt.cp}, []string{keys, cp}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			// One slot per partition, and a slot of its own.
			if hashTag(keys) != hashTag(cp) {
				t.Errorf("hash tags differ: %q, %q", hashTag(keys), hashTag(cp))
			}
			if other, ok := tags[hashTag(keys)]; ok {
				t.Errorf("partitions %+v and %+v share hash tag %q", other, tt.p, hashTag(keys))
			}
			tags[hashTag(keys)] = tt.p
		})
	}
}

// TestRedisLayout checks the keys as an operator sees them in Redis: after
// a commit, while a checkpoint is staged (a deleted key is an empty
// value), and after its promotion.
func TestRedisLayout(t *testing.T) {
	m := miniredis.RunT(t)
	r := newRedisT(t, Options{Addrs: []string{m.Addr()}, KeyPrefix: "prod"})
	const base = "prod:{shrike/payments/3}:"
	tests := []struct {
		after string
		do    func()
		keys  []string
		// hash and values: a hash key and its fields.
		hash   string
		values map[string]string
		// cp is the key of a checkpoint and its encoding.
		cp, enc string
	}{
		{
			after: "Commit",
			do: func() {
				commit(t, r, part, states("acct-1", "s1", "acct-2", "s2"), nil, Checkpoint{Offset: 5, Generation: 2, Streams: []byte("w")})
			},
			keys: []string{"cp", "keys"},
			hash: "keys", values: map[string]string{"acct-1": "s1", "acct-2": "s2"},
			// version 2, offset 5, generation 2, seq 0, streams
			cp: "cp", enc: "\x02\x0a\x04\x00\x01w",
		},
		{
			after: "Stage",
			do: func() {
				stage(t, r, part, states("acct-1", "t1", "acct-3", "t3"), []string{"acct-2"}, Checkpoint{Offset: 6, Generation: 2, Seq: 1, Streams: []byte("w")})
			},
			keys: []string{"cp", "keys", "pend", "pkeys"},
			hash: "pkeys", values: map[string]string{"acct-1": "t1", "acct-2": "", "acct-3": "t3"},
			// version 2, offset 6, generation 2, seq 1, streams
			cp: "pend", enc: "\x02\x0c\x04\x02\x01w",
		},
		{
			after: "Promote",
			do:    func() { promote(t, r, part, 2) },
			keys:  []string{"cp", "keys"},
			hash:  "keys", values: map[string]string{"acct-1": "t1", "acct-3": "t3"},
			cp: "cp", enc: "\x02\x0c\x04\x02\x01w",
		},
	}
	for _, tt := range tests {
		tt.do()
		var want []string
		for _, k := range tt.keys {
			want = append(want, base+k)
		}
		if diff := cmp.Diff(want, m.Keys()); diff != "" {
			t.Errorf("keys after %s (-want +got):\n%s", tt.after, diff)
		}
		fields, err := m.HKeys(base + tt.hash)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, f := range fields {
			got[f] = m.HGet(base+tt.hash, f)
		}
		if diff := cmp.Diff(tt.values, got); diff != "" {
			t.Errorf("%s after %s (-want +got):\n%s", tt.hash, tt.after, diff)
		}
		if enc, err := m.Get(base + tt.cp); err != nil || enc != tt.enc {
			t.Errorf("%s after %s = %q, %v; want %q", tt.cp, tt.after, enc, err, tt.enc)
		}
	}
}

// TestRedisCommitAtomic breaks the connection in the middle of commits and
// checks that nothing of them is visible, and that the same commit then
// succeeds once Redis is reachable.
func TestRedisCommitAtomic(t *testing.T) {
	tests := []struct {
		name   string
		mode   proxyMode
		budget int
	}{
		{"connection lost before EXEC", cutBeforeExec, 0},
		{"connection lost inside an HSET", cutAfterBytes, 50_000},
		{"connection lost inside WATCH", cutAfterBytes, 40},
		{"connection lost at the fencing check", cutAfterBytes, 150},
		{"redis down", refuse, 0},
	}
	// Old state: 3000 keys. The commit rewrites 2000 of them, adds 2000
	// and deletes 500, in several HSET commands (BatchSize 700).
	var old, put []KeyState
	var del []string
	for i := range 3000 {
		old = append(old, KeyState{Key: fmt.Sprintf("k%04d", i), State: fmt.Appendf(nil, "old %d", i)})
	}
	for i := 1000; i < 5000; i++ {
		put = append(put, KeyState{Key: fmt.Sprintf("k%04d", i), State: fmt.Appendf(nil, "new %d", i)})
	}
	for i := range 500 {
		del = append(del, fmt.Sprintf("k%04d", i))
	}
	oldCP := Checkpoint{Offset: 100, Generation: 3, Streams: []byte("old")}
	newCP := Checkpoint{Offset: 200, Generation: 3, Streams: []byte("new")}
	want := map[string][]byte{}
	for _, ks := range old[500:1000] {
		want[ks.Key] = ks.State
	}
	for _, ks := range put {
		want[ks.Key] = ks.State
	}

	for _, target := range standaloneTargets(t) {
		t.Run(target.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					prefix := "shrike-test-" + randHex(t)
					direct := newSharedRedisT(t, Options{Addrs: []string{target.addr}, KeyPrefix: prefix})
					proxy := newFaultProxy(t, target.addr)
					via := newRedisT(t, Options{Addrs: []string{proxy.addr()}, KeyPrefix: prefix, BatchSize: 700, PoolSize: 1})
					ctx := context.Background()

					commit(t, via, part, old, nil, oldCP)
					before := load(t, direct, part)
					proxy.set(tt.mode, tt.budget)
					err := via.Commit(ctx, part, put, del, newCP)
					if !errors.Is(err, ErrUnavailable) {
						t.Fatalf("Commit = %v, want ErrUnavailable", err)
					}
					if !strings.HasPrefix(err.Error(), "commit partition shrike/payments/3: state store unavailable: ") {
						t.Errorf("error %q does not name the operation and partition", err)
					}
					if diff := cmp.Diff(before, load(t, direct, part)); diff != "" {
						t.Fatalf("a failed commit changed the state (-before +after):\n%s", diff)
					}

					proxy.set(pass, 0)
					if err := via.Commit(ctx, part, put, del, newCP); err != nil {
						t.Fatalf("Commit once reachable: %v", err)
					}
					if diff := cmp.Diff(snapshot{Keys: want, CP: newCP, HasCP: true}, load(t, direct, part)); diff != "" {
						t.Errorf("after the retried commit (-want +got):\n%s", diff)
					}
				})
			}
		})
	}
}

// standaloneTargets are standalone Redis servers a proxy can stand in
// front of: a fresh miniredis, and a real redis-server when
// SHRIKE_REDIS_ADDR is set. (A Cluster redirects clients to its nodes'
// own addresses, past any proxy.)
func standaloneTargets(t *testing.T) []struct{ name, addr string } {
	targets := []struct{ name, addr string }{{"miniredis", miniredis.RunT(t).Addr()}}
	if addr := os.Getenv("SHRIKE_REDIS_ADDR"); addr != "" {
		targets = append(targets, struct{ name, addr string }{"redis", addr})
	}
	return targets
}

func TestRedisUnavailableLoads(t *testing.T) {
	for _, target := range standaloneTargets(t) {
		t.Run(target.name, func(t *testing.T) {
			prefix := "shrike-test-" + randHex(t)
			_ = newSharedRedisT(t, Options{Addrs: []string{target.addr}, KeyPrefix: prefix})
			proxy := newFaultProxy(t, target.addr)
			via := newRedisT(t, Options{Addrs: []string{proxy.addr()}, KeyPrefix: prefix})
			ctx := context.Background()
			commit(t, via, part, states("a", "1"), nil, Checkpoint{Offset: 1})

			proxy.set(refuse, 0)
			errs := map[string]error{"Ping": via.Ping(ctx)}
			_, errs["LoadKeys"] = via.LoadKeys(ctx, part, []string{"a"})
			_, _, errs["LoadCheckpoint"] = via.LoadCheckpoint(ctx, part)
			_, errs["LoadAll"] = via.LoadAll(ctx, part)
			for name, err := range errs {
				if !errors.Is(err, ErrUnavailable) {
					t.Errorf("%s while Redis is down = %v, want ErrUnavailable", name, err)
				}
			}

			proxy.set(pass, 0)
			if err := via.Ping(ctx); err != nil {
				t.Errorf("Ping once Redis is back: %v", err)
			}
			got, err := via.LoadKeys(ctx, part, []string{"a"})
			if err != nil {
				t.Fatalf("LoadKeys once Redis is back: %v", err)
			}
			if diff := cmp.Diff(byteMap("a", "1"), got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestRedisClaimRace lets a second owner claim between a first owner's
// read of the checkpoint and its write: WATCH aborts the first claim, and
// its retry claims the generation after the second's, so the two never
// hold the same generation and the second owner's commits are fenced.
func TestRedisClaimRace(t *testing.T) {
	for _, b := range redisBackends() {
		t.Run(b.name, func(t *testing.T) {
			first := b.open(t, Options{KeyPrefix: "shrike-test-" + randHex(t)}).(*Redis)
			second := &Redis{client: first.client, prefix: first.prefix, batch: first.batch}
			ctx := context.Background()
			commit(t, first, part, states("a", "1"), nil, Checkpoint{Offset: 10, Generation: 3})

			var secondGen int64
			raced := 0
			first.beforeExec = func() {
				raced++
				if raced == 1 {
					_, _, c, err := second.Claim(ctx, part)
					if err != nil {
						t.Errorf("second Claim: %v", err)
					}
					secondGen = c.Generation
				}
			}
			_, _, claimed, err := first.Claim(ctx, part)
			if err != nil {
				t.Fatalf("first Claim: %v", err)
			}
			if raced != 2 {
				t.Errorf("the first claim's transaction ran %d times, want 2 (aborted once by the second claim)", raced)
			}
			if secondGen != 4 || claimed.Generation != 5 {
				t.Fatalf("claims got generations %d (second) and %d (first), want 4 and 5", secondGen, claimed.Generation)
			}
			if err := second.Commit(ctx, part, states("a", "2"), nil, Checkpoint{Offset: 20, Generation: secondGen}); !errors.Is(err, ErrFenced) {
				t.Errorf("commit of the owner that claimed first = %v, want ErrFenced", err)
			}
		})
	}
}

// TestRedisFencingRace lets another writer slip in between a call's
// checks and its transaction (a newer owner's commit or claim, or another
// staging): WATCH of both checkpoint keys aborts the transaction, and the
// retry's checks refuse it, writing nothing.
func TestRedisFencingRace(t *testing.T) {
	ctx := context.Background()
	claim := func(t *testing.T, other *Redis) {
		if _, _, _, err := other.Claim(ctx, part); err != nil {
			t.Errorf("racing Claim: %v", err)
		}
	}
	tests := []struct {
		name string
		// pending: a checkpoint is staged before the race.
		pending bool
		run     func(r *Redis) error
		race    func(t *testing.T, other *Redis)
		want    error
	}{
		{
			name: "a newer owner's commit before a commit's EXEC",
			run: func(r *Redis) error {
				return r.Commit(ctx, part, states("a", "stale", "c", "stale"), []string{"b"}, Checkpoint{Offset: 30, Generation: 1})
			},
			race: func(t *testing.T, other *Redis) {
				commit(t, other, part, states("a", "new"), nil, Checkpoint{Offset: 20, Generation: 2})
			},
			want: ErrFenced,
		},
		{
			name: "a claim before a promotion's EXEC", pending: true,
			run: func(r *Redis) error {
				_, err := r.Promote(ctx, part, 1)
				return err
			},
			race: claim, want: ErrFenced,
		},
		{
			name: "a claim before a discard's EXEC", pending: true,
			run:  func(r *Redis) error { return r.Discard(ctx, part, 1) },
			race: claim, want: ErrFenced,
		},
		{
			name: "a claim before a staging's EXEC",
			run: func(r *Redis) error {
				return r.Stage(ctx, part, states("a", "mine"), nil, Checkpoint{Offset: 30, Generation: 1, Seq: 1})
			},
			race: claim, want: ErrFenced,
		},
		{
			name: "a staging before a staging's EXEC",
			run: func(r *Redis) error {
				return r.Stage(ctx, part, states("a", "mine"), nil, Checkpoint{Offset: 30, Generation: 1, Seq: 1})
			},
			race: func(t *testing.T, other *Redis) {
				stage(t, other, part, states("a", "other"), nil, Checkpoint{Offset: 40, Generation: 1, Seq: 1})
			},
			want: ErrPending,
		},
		{
			name: "a staging before a commit's EXEC",
			run: func(r *Redis) error {
				return r.Commit(ctx, part, states("a", "mine"), nil, Checkpoint{Offset: 30, Generation: 1})
			},
			race: func(t *testing.T, other *Redis) {
				stage(t, other, part, states("a", "other"), nil, Checkpoint{Offset: 40, Generation: 1, Seq: 1})
			},
			want: ErrPending,
		},
	}
	for _, b := range redisBackends() {
		t.Run(b.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					r := b.open(t, Options{KeyPrefix: "shrike-test-" + randHex(t)}).(*Redis)
					other := &Redis{client: r.client, prefix: r.prefix, batch: r.batch}
					commit(t, r, part, states("a", "1", "b", "1"), nil, Checkpoint{Offset: 10, Generation: 1})
					if tt.pending {
						stage(t, r, part, states("a", "staged"), []string{"b"}, Checkpoint{Offset: 20, Generation: 1, Seq: 1})
					}
					var after snapshot
					raced := 0
					r.beforeExec = func() {
						raced++
						if raced == 1 {
							tt.race(t, other)
							after = load(t, other, part)
						}
					}
					err := tt.run(r)
					if !errors.Is(err, tt.want) || errors.Is(err, ErrUnavailable) {
						t.Fatalf("= %v, want %v", err, tt.want)
					}
					if raced != 1 {
						t.Errorf("the transaction ran %d times, want 1 (then the retry's check refused it)", raced)
					}
					if diff := cmp.Diff(after, load(t, r, part), cmpEmpty); diff != "" {
						t.Errorf("the refused call changed the state the racer left (-want +got):\n%s", diff)
					}
				})
			}
		})
	}
}

// TestRedisPromoteFails: when the staged keys cannot be moved (here the
// committed keys' hash is of the wrong type), Promote fails and leaves the
// pending checkpoint and the committed one as they were, to be promoted
// again once the cause is fixed: Redis rolls nothing back, so the script
// stores the checkpoint only after the move.
func TestRedisPromoteFails(t *testing.T) {
	for _, b := range redisBackends() {
		t.Run(b.name, func(t *testing.T) {
			r := b.open(t, Options{KeyPrefix: "shrike-test-" + randHex(t)}).(*Redis)
			ctx := context.Background()
			cp := Checkpoint{Offset: 10, Generation: 1}
			commit(t, r, part, nil, nil, cp)
			pend := Checkpoint{Offset: 20, Generation: 1, Seq: 1}
			stage(t, r, part, states("a", "2"), []string{"b"}, pend)
			keysKey, _ := redisKeys(r.prefix, part)
			if err := r.client.Set(ctx, keysKey, "not a hash", 0).Err(); err != nil {
				t.Fatal(err)
			}

			if _, err := r.Promote(ctx, part, 1); err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrFenced) {
				t.Fatalf("Promote over a wrong-type key = %v, want a permanent error", err)
			}
			got, _, err := r.LoadPending(ctx, part)
			if err != nil || !cmp.Equal(got, pend, cmpEmpty) {
				t.Errorf("pending checkpoint after the failed Promote = %+v, %v; want %+v", got, err, pend)
			}
			if got, _, err := r.LoadCheckpoint(ctx, part); err != nil || !cmp.Equal(got, cp, cmpEmpty) {
				t.Errorf("checkpoint after the failed Promote = %+v, %v; want %+v", got, err, cp)
			}

			if err := r.client.Del(ctx, keysKey).Err(); err != nil {
				t.Fatal(err)
			}
			promote(t, r, part, 1)
			if diff := cmp.Diff(snapshot{Keys: byteMap("a", "2"), CP: pend, HasCP: true}, load(t, r, part), cmpEmpty); diff != "" {
				t.Errorf("after the Promote once fixed (-want +got):\n%s", diff)
			}
			pendKey, pkeysKey := redisPendingKeys(r.prefix, part)
			if n, err := r.client.Exists(ctx, pendKey, pkeysKey).Result(); err != nil || n != 0 {
				t.Errorf("EXISTS of the pending keys after Promote = %d, %v; want 0", n, err)
			}
		})
	}
}

// TestRedisBadStoredCheckpoint: a checkpoint or pending checkpoint this
// Shrike cannot read (a newer Shrike wrote it, or it was damaged) fails its
// load and refuses every write, which could otherwise undo its owner's
// fencing or lose its staged keys.
func TestRedisBadStoredCheckpoint(t *testing.T) {
	ctx := context.Background()
	calls := map[string]func(r *Redis) error{
		"LoadCheckpoint": func(r *Redis) error { _, _, err := r.LoadCheckpoint(ctx, part); return err },
		"LoadPending":    func(r *Redis) error { _, _, err := r.LoadPending(ctx, part); return err },
		"Commit": func(r *Redis) error {
			return r.Commit(ctx, part, states("a", "2"), nil, Checkpoint{Offset: 2, Generation: 99})
		},
		"Stage": func(r *Redis) error {
			return r.Stage(ctx, part, states("a", "2"), nil, Checkpoint{Offset: 2, Generation: 99, Seq: 1})
		},
		"Promote": func(r *Redis) error { _, err := r.Promote(ctx, part, 99); return err },
		"Discard": func(r *Redis) error { return r.Discard(ctx, part, 99) },
	}
	tests := []struct {
		name string
		key  func(r *Redis) string
		fail []string
	}{
		{"checkpoint", func(r *Redis) string { _, k := redisKeys(r.prefix, part); return k }, []string{"LoadCheckpoint", "Commit", "Stage", "Promote", "Discard"}},
		{"pending checkpoint", func(r *Redis) string { k, _ := redisPendingKeys(r.prefix, part); return k }, []string{"LoadPending", "Commit", "Stage", "Promote", "Discard"}},
	}
	for _, b := range redisBackends() {
		t.Run(b.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					r := b.open(t, Options{KeyPrefix: "shrike-test-" + randHex(t)}).(*Redis)
					commit(t, r, part, states("a", "1"), nil, Checkpoint{Offset: 1})
					const bad = "\x09from the future"
					if err := r.client.Set(ctx, tt.key(r), bad, 0).Err(); err != nil {
						t.Fatal(err)
					}
					for _, name := range tt.fail {
						if err := calls[name](r); !errors.Is(err, ErrBadCheckpoint) || errors.Is(err, ErrUnavailable) {
							t.Errorf("%s = %v, want ErrBadCheckpoint", name, err)
						}
					}
					keys, err := r.LoadAll(ctx, part)
					if err != nil {
						t.Fatal(err)
					}
					if diff := cmp.Diff(byteMap("a", "1"), keys); diff != "" {
						t.Errorf("a refused write changed keys (-want +got):\n%s", diff)
					}
					if got, err := r.client.Get(ctx, tt.key(r)).Result(); err != nil || got != bad {
						t.Errorf("the unreadable %s = %q, %v; want it untouched", tt.name, got, err)
					}
				})
			}
		})
	}
}

// TestRedisClusterSlots runs on a real Redis Cluster only: each partition's
// two keys share a slot, partitions get slots of their own, and partitions
// spread over the nodes, where commits and loads find them.
func TestRedisClusterSlots(t *testing.T) {
	seeds := os.Getenv("SHRIKE_REDIS_CLUSTER")
	if seeds == "" {
		t.Skip("SHRIKE_REDIS_CLUSTER is not set (comma-separated seed addresses of a Redis Cluster)")
	}
	r := newSharedRedisT(t, Options{Addrs: strings.Split(seeds, ",")})
	cc := r.client.(*redis.ClusterClient)
	ctx := context.Background()
	slots := map[int64]PartitionID{}
	nodes := map[string]bool{}
	for n := range int32(8) {
		p := PartitionID{Group: "shrike", Topic: "payments", Partition: n}
		commit(t, r, p, states("acct", fmt.Sprint(n)), nil, Checkpoint{Offset: int64(n)})
		keys, cp := redisKeys(r.prefix, p)
		ks, err := cc.ClusterKeySlot(ctx, keys).Result()
		if err != nil {
			t.Fatal(err)
		}
		cs, err := cc.ClusterKeySlot(ctx, cp).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ks != cs {
			t.Errorf("partition %d: keys in slot %d, checkpoint in slot %d", n, ks, cs)
		}
		if other, ok := slots[ks]; ok {
			t.Errorf("partitions %d and %d share slot %d", other.Partition, n, ks)
		}
		slots[ks] = p
		node, err := cc.MasterForKey(ctx, keys)
		if err != nil {
			t.Fatal(err)
		}
		nodes[node.Options().Addr] = true
		if got, err := node.HGet(ctx, keys, "acct").Result(); err != nil || got != fmt.Sprint(n) {
			t.Errorf("partition %d on its slot's master %s: HGET = %q, %v", n, node.Options().Addr, got, err)
		}
	}
	if len(nodes) < 2 {
		t.Errorf("8 partitions landed on %d node(s) %v, want them spread", len(nodes), slices.Sorted(maps.Keys(nodes)))
	}
}

// TestRedisConnectionOptions connects with TLS, a user and password, and a
// database number, and checks where the state lands.
func TestRedisConnectionOptions(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	m, err := miniredis.RunTLS(serverTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	m.RequireUserAuth("shrike", "s3cret")

	r := newRedisT(t, Options{Addrs: []string{m.Addr()}, TLS: clientTLS, Username: "shrike", Password: "s3cret", DB: 2})
	ctx := context.Background()
	if err := r.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	commit(t, r, part, states("a", "1"), nil, Checkpoint{Offset: 1})
	if diff := cmp.Diff([]string{"shrike:{shrike/payments/3}:cp", "shrike:{shrike/payments/3}:keys"}, m.DB(2).Keys()); diff != "" {
		t.Errorf("keys in db 2 (-want +got):\n%s", diff)
	}
	if keys := m.DB(0).Keys(); len(keys) != 0 {
		t.Errorf("keys in db 0: %v, want none", keys)
	}

	wrong := newRedisT(t, Options{Addrs: []string{m.Addr()}, TLS: clientTLS, Username: "shrike", Password: "wrong"})
	err = wrong.Ping(ctx)
	if err == nil || errors.Is(err, ErrUnavailable) {
		t.Errorf("Ping with a wrong password = %v, want a permanent error", err)
	}
}

// testTLS returns a server configuration with a fresh self-signed
// certificate for 127.0.0.1, and a client configuration trusting it.
func testTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	cert, pool := testkit.SelfSignedTLS(t)
	server = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	client = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return server, client
}
