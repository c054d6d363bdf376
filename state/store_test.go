package state

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The tests in this file run against every store (allBackends): they are
// the contract of cep.Store as the engine relies on it.

func TestStoreRoundTrip(t *testing.T) {
	for _, b := range allBackends() {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t, Options{})
			ctx := context.Background()

			if got := load(t, s, part); got.HasCP || len(got.Keys) != 0 {
				t.Fatalf("fresh partition: got %+v, want nothing", got)
			}
			cp := Checkpoint{Offset: 1234, Generation: 7, Streams: []byte{1, 2, 0, 3}}
			// Keys and values are arbitrary bytes: braces, separators,
			// protocol characters, NUL, non-UTF-8 and empty.
			put := states("acct-1", "s1", "{x}", "a\r\nb", "", "empty key", "k\x00\xff", "\x00\x01\xfe", "acct-2", "")
			commit(t, s, part, put, nil, cp)

			want := snapshot{Keys: byteMap("acct-1", "s1", "{x}", "a\r\nb", "", "empty key", "k\x00\xff", "\x00\x01\xfe", "acct-2", ""), CP: cp, HasCP: true}
			if diff := cmp.Diff(want, load(t, s, part), cmpEmpty); diff != "" {
				t.Errorf("after commit (-want +got):\n%s", diff)
			}
			got, err := s.LoadKeys(ctx, part, []string{"acct-1", "missing", "{x}", "acct-1", "acct-2"})
			if err != nil {
				t.Fatalf("LoadKeys: %v", err)
			}
			if diff := cmp.Diff(byteMap("acct-1", "s1", "{x}", "a\r\nb", "acct-2", ""), got, cmpEmpty); diff != "" {
				t.Errorf("LoadKeys (-want +got):\n%s", diff)
			}
			got, err = s.LoadKeys(ctx, part, nil)
			if err != nil || len(got) != 0 {
				t.Errorf("LoadKeys(nil) = %v, %v; want empty, nil", got, err)
			}
		})
	}
}

func TestStoreUpdatesAndDeletes(t *testing.T) {
	type step struct {
		put []KeyState
		del []string
	}
	tests := []struct {
		name  string
		steps []step
		want  map[string][]byte
	}{
		{"overwrite", []step{{put: states("a", "1", "b", "1")}, {put: states("a", "2")}}, byteMap("a", "2", "b", "1")},
		{"delete", []step{{put: states("a", "1", "b", "1", "c", "1")}, {del: []string{"b"}}}, byteMap("a", "1", "c", "1")},
		{"delete missing key", []step{{put: states("a", "1")}, {del: []string{"zz"}}}, byteMap("a", "1")},
		{"delete all", []step{{put: states("a", "1", "b", "1")}, {del: []string{"a", "b"}}}, nil},
		{"put and delete in one commit", []step{{put: states("a", "1", "b", "1"), del: []string{"b", "c"}}}, byteMap("a", "1")},
		{"delete then put again", []step{{put: states("a", "1")}, {del: []string{"a"}}, {put: states("a", "3")}}, byteMap("a", "3")},
		{"checkpoint only", []step{{put: states("a", "1")}, {}}, byteMap("a", "1")},
	}
	for _, b := range allBackends() {
		t.Run(b.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					s := b.open(t, Options{})
					var cp Checkpoint
					for i, st := range tt.steps {
						cp = Checkpoint{Offset: int64(10 * (i + 1)), Generation: 1, Streams: []byte{byte(i)}}
						commit(t, s, part, st.put, st.del, cp)
					}
					want := snapshot{Keys: tt.want, CP: cp, HasCP: true}
					if diff := cmp.Diff(want, load(t, s, part), cmpEmpty); diff != "" {
						t.Errorf("(-want +got):\n%s", diff)
					}
				})
			}
		})
	}
}

func TestStoreFencing(t *testing.T) {
	tests := []struct {
		name    string
		gen     int64
		wantErr bool
	}{
		{"older generation is fenced", 4, true},
		{"much older generation is fenced", -1, true},
		{"same generation commits", 5, false},
		{"newer generation commits", 6, false},
	}
	for _, b := range allBackends() {
		t.Run(b.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					s := b.open(t, Options{})
					stored := Checkpoint{Offset: 100, Generation: 5, Streams: []byte("five")}
					commit(t, s, part, states("a", "1", "b", "1"), nil, stored)
					before := load(t, s, part)

					cp := Checkpoint{Offset: 200, Generation: tt.gen}
					err := s.Commit(context.Background(), part, states("a", "2", "c", "2"), []string{"b"}, cp)
					if tt.wantErr {
						if !errors.Is(err, ErrFenced) {
							t.Fatalf("Commit = %v, want ErrFenced", err)
						}
						if errors.Is(err, ErrUnavailable) {
							t.Errorf("Commit = %v: fenced must not read as retryable", err)
						}
						if diff := cmp.Diff(before, load(t, s, part), cmpEmpty); diff != "" {
							t.Errorf("a fenced commit changed the state (-want +got):\n%s", diff)
						}
						return
					}
					if err != nil {
						t.Fatalf("Commit: %v", err)
					}
					want := snapshot{Keys: byteMap("a", "2", "c", "2"), CP: cp, HasCP: true}
					if diff := cmp.Diff(want, load(t, s, part), cmpEmpty); diff != "" {
						t.Errorf("(-want +got):\n%s", diff)
					}
				})
			}
		})
	}
}

// TestStoreClaim: a claim returns the last checkpoint and stores it again
// with the next generation, keys untouched; the previous owner's commits
// are then fenced, and a partition never checkpointed is claimed at
// generation 1 from Kafka's offset (-1).
func TestStoreClaim(t *testing.T) {
	for _, b := range allBackends() {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t, Options{})
			ctx := context.Background()
			prev, ok, claimed, err := s.Claim(ctx, part)
			if err != nil || ok {
				t.Fatalf("Claim of a new partition = ok %v, %v; want no previous checkpoint", ok, err)
			}
			if want := (Checkpoint{Offset: -1, Generation: 1}); !cmp.Equal(claimed, want, cmpEmpty) || prev.Generation != 0 {
				t.Errorf("Claim of a new partition claimed %+v, want %+v", claimed, want)
			}

			stored := Checkpoint{Offset: 100, Generation: 5, Streams: []byte("five")}
			commit(t, s, part, states("a", "1"), nil, stored)
			prev, ok, claimed, err = s.Claim(ctx, part)
			if err != nil || !ok {
				t.Fatalf("Claim = ok %v, %v", ok, err)
			}
			if !cmp.Equal(prev, stored, cmpEmpty) {
				t.Errorf("Claim returned %+v as the previous checkpoint, want %+v", prev, stored)
			}
			want := Checkpoint{Offset: 100, Generation: 6, Streams: []byte("five")}
			if !cmp.Equal(claimed, want, cmpEmpty) {
				t.Errorf("Claim claimed %+v, want %+v", claimed, want)
			}
			if diff := cmp.Diff(snapshot{Keys: byteMap("a", "1"), CP: want, HasCP: true}, load(t, s, part), cmpEmpty); diff != "" {
				t.Errorf("after the claim (-want +got):\n%s", diff)
			}
			if err := s.Commit(ctx, part, states("a", "2"), nil, Checkpoint{Offset: 200, Generation: 5}); !errors.Is(err, ErrFenced) {
				t.Errorf("the previous owner's commit after a claim = %v, want ErrFenced", err)
			}
		})
	}
}

func TestStorePartitionsAreSeparate(t *testing.T) {
	parts := []PartitionID{
		part,
		{Group: part.Group, Topic: part.Topic, Partition: 4},
		{Group: part.Group, Topic: "logins", Partition: 3},
		{Group: "other", Topic: part.Topic, Partition: 3},
		// Names that would collide or leave the hash tag unescaped.
		{Group: "a/b", Topic: "c", Partition: 1},
		{Group: "a", Topic: "b/c", Partition: 1},
		{Group: "g}x", Topic: "t{", Partition: 1},
		{Group: "g%7Dx", Topic: "t%7B", Partition: 1},
		{Group: "", Topic: "", Partition: 0},
	}
	for _, b := range allBackends() {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t, Options{})
			for i, p := range parts {
				commit(t, s, p, states("shared-key", strconv.Itoa(i), fmt.Sprintf("own-%d", i), "x"), nil, Checkpoint{Offset: int64(i), Generation: int64(i)})
			}
			// Fencing is per partition too: partition 0 at generation 0
			// is not fenced by the others' higher generations.
			commit(t, s, parts[0], nil, []string{"own-0"}, Checkpoint{Offset: 99})
			for i, p := range parts {
				want := snapshot{Keys: byteMap("shared-key", strconv.Itoa(i), fmt.Sprintf("own-%d", i), "x"), CP: Checkpoint{Offset: int64(i), Generation: int64(i)}, HasCP: true}
				if i == 0 {
					want = snapshot{Keys: byteMap("shared-key", "0"), CP: Checkpoint{Offset: 99}, HasCP: true}
				}
				if diff := cmp.Diff(want, load(t, s, p), cmpEmpty); diff != "" {
					t.Errorf("partition %+v (-want +got):\n%s", p, diff)
				}
			}
		})
	}
}

func TestStoreCopiesValues(t *testing.T) {
	for _, b := range allBackends() {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t, Options{})
			ctx := context.Background()
			state, streams := []byte("state"), []byte("streams")
			commit(t, s, part, []KeyState{{Key: "a", State: state}}, nil, Checkpoint{Streams: streams})
			// The caller reuses its buffers.
			copy(state, "XXXXX")
			copy(streams, "XXXXXXX")

			got, err := s.LoadKeys(ctx, part, []string{"a"})
			if err != nil {
				t.Fatal(err)
			}
			got["a"][0] = 'Y'
			cp, _, err := s.LoadCheckpoint(ctx, part)
			if err != nil {
				t.Fatal(err)
			}
			cp.Streams[0] = 'Y'

			want := snapshot{Keys: byteMap("a", "state"), CP: Checkpoint{Streams: []byte("streams")}, HasCP: true}
			if diff := cmp.Diff(want, load(t, s, part), cmpEmpty); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestStoreLargeCommit writes 100k keys in one commit (a checkpoint after a
// burst over many accounts), then deletes most of them in another.
func TestStoreLargeCommit(t *testing.T) {
	const n = 100_000
	put := make([]KeyState, n)
	keys := make([]string, n)
	for i := range put {
		keys[i] = fmt.Sprintf("acct-%06d", i)
		put[i] = KeyState{Key: keys[i], State: fmt.Appendf(nil, "state of %d", i)}
	}
	for _, b := range allBackends() {
		t.Run(b.name, func(t *testing.T) {
			// 999 does not divide n: the last HSET and HMGET are partial.
			s := b.open(t, Options{BatchSize: 999})
			ctx := context.Background()
			commit(t, s, part, put, nil, Checkpoint{Offset: n, Generation: 1})
			got, err := s.LoadKeys(ctx, part, keys)
			if err != nil {
				t.Fatalf("LoadKeys: %v", err)
			}
			if len(got) != n {
				t.Fatalf("LoadKeys: %d keys, want %d", len(got), n)
			}
			for _, ks := range put {
				if string(got[ks.Key]) != string(ks.State) {
					t.Fatalf("key %s = %q, want %q", ks.Key, got[ks.Key], ks.State)
				}
			}

			commit(t, s, part, put[:10], keys[10:], Checkpoint{Offset: 2 * n, Generation: 1})
			all, err := s.LoadAll(ctx, part)
			if err != nil {
				t.Fatalf("LoadAll: %v", err)
			}
			want := map[string][]byte{}
			for _, ks := range put[:10] {
				want[ks.Key] = ks.State
			}
			if diff := cmp.Diff(want, all); diff != "" {
				t.Errorf("after deleting all but 10 (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStoreCancelledContext(t *testing.T) {
	for _, b := range allBackends() {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t, Options{})
			commit(t, s, part, states("a", "1"), nil, Checkpoint{Offset: 1})
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			calls := map[string]error{
				"Commit": s.Commit(ctx, part, states("a", "2"), nil, Checkpoint{Offset: 2}),
			}
			_, calls["LoadKeys"] = s.LoadKeys(ctx, part, []string{"a"})
			_, _, calls["LoadCheckpoint"] = s.LoadCheckpoint(ctx, part)
			for name, err := range calls {
				if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
					t.Errorf("%s = %v, want context.Canceled and not ErrUnavailable", name, err)
				}
			}
			want := snapshot{Keys: byteMap("a", "1"), CP: Checkpoint{Offset: 1}, HasCP: true}
			if diff := cmp.Diff(want, load(t, s, part), cmpEmpty); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestStoreClosed(t *testing.T) {
	for _, b := range allBackends() {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t, Options{})
			ctx := context.Background()
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			calls := map[string]error{
				"Commit": s.Commit(ctx, part, states("a", "2"), nil, Checkpoint{}),
			}
			_, calls["LoadKeys"] = s.LoadKeys(ctx, part, []string{"a"})
			_, _, calls["LoadCheckpoint"] = s.LoadCheckpoint(ctx, part)
			_, calls["LoadAll"] = s.LoadAll(ctx, part)
			for name, err := range calls {
				if !errors.Is(err, ErrClosed) || errors.Is(err, ErrUnavailable) {
					t.Errorf("%s = %v, want ErrClosed and not ErrUnavailable", name, err)
				}
			}
		})
	}
}

// TestStoreConcurrentPartitions has one goroutine per partition commit and
// load at once, as the engine's partition workers do.
func TestStoreConcurrentPartitions(t *testing.T) {
	const parts, rounds = 6, 20
	for _, b := range allBackends() {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t, Options{})
			ctx := context.Background()
			errs := make(chan error, parts)
			for n := range int32(parts) {
				go func() {
					p := PartitionID{Group: "g", Topic: "t", Partition: n}
					for i := range rounds {
						st := fmt.Sprintf("p%d r%d", n, i)
						if err := s.Commit(ctx, p, states("k", st, fmt.Sprint("k", i), st), nil, Checkpoint{Offset: int64(i), Generation: 1}); err != nil {
							errs <- err
							return
						}
						got, err := s.LoadKeys(ctx, p, []string{"k"})
						if err != nil {
							errs <- err
							return
						}
						if string(got["k"]) != st {
							errs <- fmt.Errorf("partition %d round %d: k = %q, want %q", n, i, got["k"], st)
							return
						}
					}
					errs <- nil
				}()
			}
			for range parts {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
			for n := range int32(parts) {
				p := PartitionID{Group: "g", Topic: "t", Partition: n}
				if got := load(t, s, p); len(got.Keys) != rounds+1 || got.CP.Offset != rounds-1 {
					t.Errorf("partition %d: %d keys, offset %d; want %d keys, offset %d", n, len(got.Keys), got.CP.Offset, rounds+1, rounds-1)
				}
			}
		})
	}
}
