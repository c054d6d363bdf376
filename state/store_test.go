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

// TestStoreLargeCommit writes 100k keys in one checkpoint (after a burst
// over many accounts), then deletes most of them in another: by Commit, and
// by Stage and Promote (whose script moves them in chunks).
func TestStoreLargeCommit(t *testing.T) {
	const n = 100_000
	put := make([]KeyState, n)
	keys := make([]string, n)
	for i := range put {
		keys[i] = fmt.Sprintf("acct-%06d", i)
		put[i] = KeyState{Key: keys[i], State: fmt.Appendf(nil, "state of %d", i)}
	}
	writes := []struct {
		name  string
		write func(t *testing.T, s testStore, put []KeyState, del []string, seq int64)
	}{
		{"commit", func(t *testing.T, s testStore, put []KeyState, del []string, seq int64) {
			commit(t, s, part, put, del, Checkpoint{Offset: seq * n, Generation: 1})
		}},
		{"stage and promote", func(t *testing.T, s testStore, put []KeyState, del []string, seq int64) {
			stage(t, s, part, put, del, Checkpoint{Offset: seq * n, Generation: 1, Seq: seq})
			promote(t, s, part, 1)
		}},
	}
	for _, b := range allBackends() {
		for _, w := range writes {
			t.Run(b.name+"/"+w.name, func(t *testing.T) {
				// 999 does not divide n: the last HSET and HMGET are partial.
				s := b.open(t, Options{BatchSize: 999})
				ctx := context.Background()
				w.write(t, s, put, nil, 1)
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

				w.write(t, s, put[:10], keys[10:], 2)
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
}

func TestStoreCancelledContext(t *testing.T) {
	for _, b := range allBackends() {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t, Options{})
			commit(t, s, part, states("a", "1"), nil, Checkpoint{Offset: 1})
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			calls := map[string]error{
				"Commit":  s.Commit(ctx, part, states("a", "2"), nil, Checkpoint{Offset: 2}),
				"Stage":   s.Stage(ctx, part, states("a", "2"), nil, Checkpoint{Offset: 2, Seq: 1}),
				"Discard": s.Discard(ctx, part, 0),
			}
			_, calls["LoadKeys"] = s.LoadKeys(ctx, part, []string{"a"})
			_, _, calls["LoadCheckpoint"] = s.LoadCheckpoint(ctx, part)
			_, _, calls["LoadPending"] = s.LoadPending(ctx, part)
			_, calls["Promote"] = s.Promote(ctx, part, 0)
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
				"Commit":  s.Commit(ctx, part, states("a", "2"), nil, Checkpoint{}),
				"Stage":   s.Stage(ctx, part, states("a", "2"), nil, Checkpoint{Seq: 1}),
				"Discard": s.Discard(ctx, part, 0),
			}
			_, calls["LoadKeys"] = s.LoadKeys(ctx, part, []string{"a"})
			_, _, calls["LoadCheckpoint"] = s.LoadCheckpoint(ctx, part)
			_, calls["LoadAll"] = s.LoadAll(ctx, part)
			_, _, calls["LoadPending"] = s.LoadPending(ctx, part)
			_, calls["Promote"] = s.Promote(ctx, part, 0)
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

// TestStoreStagePromote: a staged checkpoint changes nothing committed
// (what a crash between Stage and Promote leaves), and its promotion makes
// its keys and checkpoint the committed ones at once. A promotion retried
// changes nothing more, and the next staging follows its Seq.
func TestStoreStagePromote(t *testing.T) {
	for _, b := range allBackends() {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t, Options{})
			ctx := context.Background()
			base := Checkpoint{Offset: 100, Generation: 2, Streams: []byte("base")}
			commit(t, s, part, states("a", "1", "b", "1", "c", "1"), nil, base)
			before := load(t, s, part)

			pend := Checkpoint{Offset: 150, Generation: 2, Seq: 1, Streams: []byte("staged")}
			stage(t, s, part, states("a", "2", "d", "2", "e", "2"), []string{"b", "e", "missing"}, pend)
			want := before
			want.Pend, want.HasPend = pend, true
			if diff := cmp.Diff(want, load(t, s, part), cmpEmpty); diff != "" {
				t.Fatalf("after Stage, the committed state changed (-want +got):\n%s", diff)
			}
			if got, err := s.LoadKeys(ctx, part, []string{"a", "b", "d"}); err != nil || !cmp.Equal(byteMap("a", "1", "b", "1"), got) {
				t.Errorf("LoadKeys after Stage = %q, %v; want the committed states", got, err)
			}

			cp := promote(t, s, part, 2)
			want = snapshot{Keys: byteMap("a", "2", "c", "1", "d", "2"), CP: pend, HasCP: true}
			if !cmp.Equal(cp, pend, cmpEmpty) {
				t.Errorf("Promote returned %+v, want %+v", cp, pend)
			}
			if diff := cmp.Diff(want, load(t, s, part), cmpEmpty); diff != "" {
				t.Errorf("after Promote (-want +got):\n%s", diff)
			}

			// The reply was lost: the retry finds nothing pending.
			if cp := promote(t, s, part, 2); !cmp.Equal(cp, pend, cmpEmpty) {
				t.Errorf("retried Promote returned %+v, want %+v", cp, pend)
			}
			if diff := cmp.Diff(want, load(t, s, part), cmpEmpty); diff != "" {
				t.Errorf("after the retried Promote (-want +got):\n%s", diff)
			}

			next := Checkpoint{Offset: 180, Generation: 2, Seq: 2}
			stage(t, s, part, nil, []string{"a", "c", "d"}, next)
			promote(t, s, part, 2)
			if diff := cmp.Diff(snapshot{CP: next, HasCP: true}, load(t, s, part), cmpEmpty); diff != "" {
				t.Errorf("after a second Stage and Promote deleting every key (-want +got):\n%s", diff)
			}

			// Outputs without a key change (an absence alert of the idle
			// watermark) stage the checkpoint alone.
			idle := Checkpoint{Offset: 180, Generation: 2, Seq: 3, Streams: []byte("idle")}
			stage(t, s, part, nil, nil, idle)
			promote(t, s, part, 2)
			if diff := cmp.Diff(snapshot{CP: idle, HasCP: true}, load(t, s, part), cmpEmpty); diff != "" {
				t.Errorf("after a Stage and Promote of no key (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStorePromoteAfterClaim is the recovery of a crash between Stage and
// Promote whose transaction committed: the new owner's claim keeps the
// pending checkpoint and Seq, and its promotion stores the pending
// checkpoint under the new generation.
func TestStorePromoteAfterClaim(t *testing.T) {
	for _, b := range allBackends() {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t, Options{})
			ctx := context.Background()
			commit(t, s, part, states("a", "1"), nil, Checkpoint{Offset: 10, Generation: 4, Seq: 6})
			pend := Checkpoint{Offset: 20, Generation: 4, Seq: 7, Streams: []byte("p")}
			stage(t, s, part, states("a", "2"), nil, pend)

			_, _, claimed, err := s.Claim(ctx, part)
			if err != nil {
				t.Fatalf("Claim: %v", err)
			}
			if want := (Checkpoint{Offset: 10, Generation: 5, Seq: 6}); !cmp.Equal(claimed, want, cmpEmpty) {
				t.Errorf("Claim claimed %+v, want %+v (Seq kept)", claimed, want)
			}
			if got, ok, err := s.LoadPending(ctx, part); err != nil || !ok || !cmp.Equal(got, pend, cmpEmpty) {
				t.Fatalf("LoadPending after the claim = %+v, %v, %v; want %+v", got, ok, err, pend)
			}
			want := pend
			want.Generation = 5
			if cp := promote(t, s, part, 5); !cmp.Equal(cp, want, cmpEmpty) {
				t.Errorf("Promote returned %+v, want %+v", cp, want)
			}
			if diff := cmp.Diff(snapshot{Keys: byteMap("a", "2"), CP: want, HasCP: true}, load(t, s, part), cmpEmpty); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestStoreDiscard: a discarded staging leaves the committed keys, offset
// and streams, but burns its Seq, so the next staging needs the one after;
// a partition never committed gets a checkpoint holding the Seq.
func TestStoreDiscard(t *testing.T) {
	for _, b := range allBackends() {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t, Options{})
			ctx := context.Background()
			base := Checkpoint{Offset: 100, Generation: 3, Seq: 4, Streams: []byte("base")}
			commit(t, s, part, states("a", "1", "b", "1"), nil, base)
			if err := s.Discard(ctx, part, 3); err != nil {
				t.Fatalf("Discard with nothing pending: %v", err)
			}
			if diff := cmp.Diff(snapshot{Keys: byteMap("a", "1", "b", "1"), CP: base, HasCP: true}, load(t, s, part), cmpEmpty); diff != "" {
				t.Fatalf("Discard with nothing pending changed the state (-want +got):\n%s", diff)
			}

			stage(t, s, part, states("a", "2", "c", "2"), []string{"b"}, Checkpoint{Offset: 200, Generation: 3, Seq: 5})
			if err := s.Discard(ctx, part, 3); err != nil {
				t.Fatalf("Discard: %v", err)
			}
			burnt := base
			burnt.Seq = 5
			want := snapshot{Keys: byteMap("a", "1", "b", "1"), CP: burnt, HasCP: true}
			if diff := cmp.Diff(want, load(t, s, part), cmpEmpty); diff != "" {
				t.Errorf("after Discard (-want +got):\n%s", diff)
			}
			// Nothing of the discarded staging comes back with a promotion.
			if cp := promote(t, s, part, 3); !cmp.Equal(cp, burnt, cmpEmpty) {
				t.Errorf("Promote after Discard returned %+v, want %+v", cp, burnt)
			}
			err := s.Stage(ctx, part, states("a", "3"), nil, Checkpoint{Offset: 300, Generation: 3, Seq: 5})
			if err == nil || errors.Is(err, ErrPending) || errors.Is(err, ErrFenced) {
				t.Errorf("Stage reusing the discarded Seq = %v, want a sequence error", err)
			}
			stage(t, s, part, states("a", "3"), nil, Checkpoint{Offset: 300, Generation: 3, Seq: 6})
			promote(t, s, part, 3)
			want = snapshot{Keys: byteMap("a", "3", "b", "1"), CP: Checkpoint{Offset: 300, Generation: 3, Seq: 6}, HasCP: true}
			if diff := cmp.Diff(want, load(t, s, part), cmpEmpty); diff != "" {
				t.Errorf("after the next Stage and Promote (-want +got):\n%s", diff)
			}

			// A partition whose first staging is discarded gets the
			// checkpoint a claim would store, with the Seq burnt.
			fresh := PartitionID{Group: part.Group, Topic: part.Topic, Partition: part.Partition + 1}
			stage(t, s, fresh, states("a", "1"), nil, Checkpoint{Offset: 7, Generation: 1, Seq: 1})
			if err := s.Discard(ctx, fresh, 1); err != nil {
				t.Fatalf("Discard of a partition never committed: %v", err)
			}
			want = snapshot{CP: Checkpoint{Offset: -1, Generation: 1, Seq: 1}, HasCP: true}
			if diff := cmp.Diff(want, load(t, s, fresh), cmpEmpty); diff != "" {
				t.Errorf("a partition never committed, after Discard (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStoreStagedFencing: Stage, Promote and Discard of an owner whose
// generation a newer owner's claim passed fail with ErrFenced and write
// nothing; at the stored generation they succeed.
func TestStoreStagedFencing(t *testing.T) {
	ops := []struct {
		name string
		// pending: a checkpoint is staged (at generation 5) before the
		// claim that fences generation 5.
		pending bool
		run     func(s testStore, gen int64) error
	}{
		{"stage", false, func(s testStore, gen int64) error {
			return s.Stage(context.Background(), part, states("a", "2"), []string{"b"}, Checkpoint{Offset: 200, Generation: gen, Seq: 2})
		}},
		{"promote", true, func(s testStore, gen int64) error {
			_, err := s.Promote(context.Background(), part, gen)
			return err
		}},
		{"discard", true, func(s testStore, gen int64) error {
			return s.Discard(context.Background(), part, gen)
		}},
	}
	for _, b := range allBackends() {
		t.Run(b.name, func(t *testing.T) {
			for _, op := range ops {
				t.Run(op.name, func(t *testing.T) {
					s := b.open(t, Options{})
					commit(t, s, part, states("a", "1", "b", "1"), nil, Checkpoint{Offset: 100, Generation: 5, Seq: 1})
					if op.pending {
						stage(t, s, part, states("a", "staged"), []string{"b"}, Checkpoint{Offset: 150, Generation: 5, Seq: 2})
					}
					if _, _, _, err := s.Claim(context.Background(), part); err != nil {
						t.Fatalf("Claim: %v", err)
					}
					before := load(t, s, part)
					err := op.run(s, 5)
					if !errors.Is(err, ErrFenced) || errors.Is(err, ErrUnavailable) {
						t.Fatalf("%s at generation 5 after a claim of 6 = %v, want ErrFenced", op.name, err)
					}
					if diff := cmp.Diff(before, load(t, s, part), cmpEmpty); diff != "" {
						t.Errorf("a fenced %s changed the state (-want +got):\n%s", op.name, diff)
					}
					if err := op.run(s, 6); err != nil {
						t.Errorf("%s at the stored generation 6: %v", op.name, err)
					}
				})
			}
		})
	}
}

// TestStorePending: while a checkpoint is pending, neither a second
// staging nor a direct commit may go in (the staged keys would be lost or
// overwritten); both write nothing.
func TestStorePending(t *testing.T) {
	for _, b := range allBackends() {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t, Options{})
			ctx := context.Background()
			commit(t, s, part, states("a", "1"), nil, Checkpoint{Offset: 100, Generation: 1})
			pend := Checkpoint{Offset: 200, Generation: 1, Seq: 1}
			stage(t, s, part, states("a", "staged"), nil, pend)
			before := load(t, s, part)

			errs := map[string]error{
				"Stage":  s.Stage(ctx, part, states("a", "again"), nil, Checkpoint{Offset: 300, Generation: 1, Seq: 1}),
				"Commit": s.Commit(ctx, part, states("a", "direct"), nil, Checkpoint{Offset: 300, Generation: 1}),
			}
			for name, err := range errs {
				if !errors.Is(err, ErrPending) || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrFenced) {
					t.Errorf("%s with a pending checkpoint = %v, want ErrPending", name, err)
				}
			}
			if diff := cmp.Diff(before, load(t, s, part), cmpEmpty); diff != "" {
				t.Errorf("a refused call changed the state (-want +got):\n%s", diff)
			}
			// The first staging is intact.
			promote(t, s, part, 1)
			if diff := cmp.Diff(snapshot{Keys: byteMap("a", "staged"), CP: pend, HasCP: true}, load(t, s, part), cmpEmpty); diff != "" {
				t.Errorf("after Promote (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStoreStageRefused: a staging out of sequence, or with an empty key
// state (which Redis keeps for a deleted key), is refused with an error
// naming it, and writes nothing.
func TestStoreStageRefused(t *testing.T) {
	tests := []struct {
		name string
		put  []KeyState
		seq  int64
		want string
	}{
		{"seq repeated", states("a", "2"), 3, "stage partition shrike/payments/3: sequence 3, want 4 (the committed one's plus one)"},
		{"seq skipped", states("a", "2"), 5, "stage partition shrike/payments/3: sequence 5, want 4 (the committed one's plus one)"},
		{"seq zero", states("a", "2"), 0, "stage partition shrike/payments/3: sequence 0, want 4 (the committed one's plus one)"},
		{"empty state", states("a", "2", "b", ""), 4, `stage partition shrike/payments/3: key "b": empty state (a key without state is deleted, not staged)`},
	}
	for _, b := range allBackends() {
		t.Run(b.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					s := b.open(t, Options{})
					commit(t, s, part, states("a", "1"), nil, Checkpoint{Offset: 100, Generation: 1, Seq: 3})
					before := load(t, s, part)
					err := s.Stage(context.Background(), part, tt.put, nil, Checkpoint{Offset: 200, Generation: 1, Seq: tt.seq})
					if err == nil {
						t.Fatal("Stage succeeded, want an error")
					}
					if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
						t.Errorf("error (-want +got):\n%s", diff)
					}
					if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrFenced) || errors.Is(err, ErrPending) {
						t.Errorf("Stage = %v: want neither retryable, fenced nor pending", err)
					}
					if diff := cmp.Diff(before, load(t, s, part), cmpEmpty); diff != "" {
						t.Errorf("a refused Stage changed the state (-want +got):\n%s", diff)
					}
				})
			}
		})
	}
}
