package cep

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// TestStreamNamespace pins the Store key prefix of the payments stream: it
// is part of the stored format, so a change orphans every stored key.
func TestStreamNamespace(t *testing.T) {
	src := loadPayments(t)
	if got, want := streamNamespace(streamID(src)), "615b26aa:"; got != want {
		t.Errorf("namespace %q, want %q", got, want)
	}
}

// checkpointStreams are a worker's two streams over one topic, as the
// checkpoint encoding sees them.
func checkpointStreams(t testing.TB) []*streamPart {
	t.Helper()
	a := load(t, "a.yaml", "ruleset: a\nstream: {topic: t, key: event.k, time: event.ts}\nrules:\n  - id: r\n    when: event.x == 1\n")
	b := load(t, "b.yaml", "ruleset: b\nstream: {topic: t, key: event.j, time: event.ts}\nrules:\n  - id: r\n    when: event.x == 1\n")
	streams, err := newStreams([]*rules.Compiled{a, b})
	if err != nil {
		t.Fatal(err)
	}
	var sps []*streamPart
	for _, s := range streams {
		part, err := matcher.NewPartition(s.prog, &worker{}, matcher.Options{})
		if err != nil {
			t.Fatal(err)
		}
		c := *s
		c.part = part
		keys := newKeyCache(streamNamespace(s.id))
		keys.reset(part)
		sps = append(sps, &streamPart{s: &c, keys: keys})
	}
	return sps
}

func TestStreamsRoundTrip(t *testing.T) {
	sps := checkpointStreams(t)
	if err := sps[0].s.part.Restore(matcher.Checkpoint{Watermark: 1000, MaxTime: 6000, Seq: 7}); err != nil {
		t.Fatal(err)
	}
	var buckets []int64
	for k, d := range map[string]int64{"k1": 5000, "k2": 4000, "k3": 5000, "": math.MaxInt64 - 1} {
		sps[0].keys.setDeadline(k, d, true)
		buckets = append(buckets, deadlineBucket(k, d))
	}
	slices.Sort(buckets)
	buckets = slices.Compact(buckets)
	sps[1].keys.setDeadline("neg", -20, true)
	b := encodeStreams(sps, 42)
	got, err := decodeStreams(b)
	if err != nil {
		t.Fatal(err)
	}
	want := savedStreams{readTo: 42, streams: map[string]savedStream{
		sps[0].keys.ns: {cp: matcher.Checkpoint{Watermark: 1000, MaxTime: 6000, Seq: 7}, buckets: buckets},
		sps[1].keys.ns: {cp: matcher.Checkpoint{Watermark: math.MinInt64, MaxTime: math.MinInt64}, buckets: []int64{deadlineBucket("neg", -20)}},
	}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(savedStreams{}, savedStream{})); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	// Map order does not leak into the bytes.
	if again := encodeStreams(sps, 42); !cmp.Equal(b, again) {
		t.Error("two encodings of the same state differ")
	}
}

// TestStreamsVersion2 decodes a fixed version 2 encoding.
func TestStreamsVersion2(t *testing.T) {
	// version 2, readTo 42, one stream "ab:" (wm 1000, maxTime 6000, seq
	// 7), seconds of 1 s split in 16, buckets -1 and 2.
	b, _ := hex.DecodeString("02540103" + "61623a" + "d00fe05d07" + "8094ebdc03" + "10" + "02" + "01" + "06")
	got, err := decodeStreams(b)
	if err != nil {
		t.Fatal(err)
	}
	want := savedStreams{readTo: 42, streams: map[string]savedStream{
		"ab:": {cp: matcher.Checkpoint{Watermark: 1000, MaxTime: 6000, Seq: 7}, buckets: []int64{-1, 2}},
	}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(savedStreams{}, savedStream{})); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
}

// TestStreamsVersion1 decodes a fixed version 1 encoding: a newer Shrike
// must still read it.
func TestStreamsVersion1(t *testing.T) {
	// version 1, readTo 42, one stream "ab:" (wm 1000, maxTime 6000, seq
	// 7) with deadlines k2@4000, k1@5000.
	b, _ := hex.DecodeString("01540103" + "61623a" + "d00fe05d07" + "02" + "026b32c03e" + "026b31d00f")
	got, err := decodeStreams(b)
	if err != nil {
		t.Fatal(err)
	}
	want := savedStreams{readTo: 42, streams: map[string]savedStream{
		"ab:": {cp: matcher.Checkpoint{Watermark: 1000, MaxTime: 6000, Seq: 7}, deadlines: map[string]int64{"k1": 5000, "k2": 4000}},
	}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(savedStreams{}, savedStream{})); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
}

func TestStreamsCorrupt(t *testing.T) {
	sps := checkpointStreams(t)
	sps[0].keys.setDeadline("k1", 5000, true)
	sps[0].keys.setDeadline("k2", 4e9, true)
	good := encodeStreams(sps, 42)
	for cut := range len(good) {
		if _, err := decodeStreams(good[:cut]); !errors.Is(err, errStreams) {
			t.Errorf("cut at %d: error %v, want errStreams", cut, err)
		}
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"future version", append([]byte{3}, good[1:]...)},
		{"version 0", append([]byte{0}, good[1:]...)},
		{"trailing bytes", append(append([]byte{}, good...), 0)},
		{"huge count", []byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"other bucket width", []byte{2, 0, 1, 0, 0, 0, 0, 1, 16, 0}},
		{"other bucket split", []byte{2, 0, 1, 0, 0, 0, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03, 8, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeStreams(tc.b); !errors.Is(err, errStreams) {
				t.Errorf("error %v, want errStreams", err)
			}
		})
	}
}

func FuzzDecodeStreams(f *testing.F) {
	f.Add([]byte{1, 0, 0})
	f.Add([]byte{2, 0x54, 1, 3, 'a', 'b', ':', 0xd0, 0x0f, 0xe0, 0x5d, 7, 0x80, 0x94, 0xeb, 0xdc, 0x03, 0x10, 2, 1, 6})
	f.Add([]byte{1, 0x54, 1, 3, 'a', 'b', ':', 0xd0, 0x0f, 0xe0, 0x5d, 7, 1, 2, 'k', '1', 0xd0, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := decodeStreams(b); err != nil && !errors.Is(err, errStreams) {
			t.Fatalf("error %v does not wrap errStreams", err)
		}
	})
}

// BenchmarkEncodeStreams writes the deadline index of a partition holding
// 300,000 keys with open windows, spread over ten minutes of deadlines, as
// one with a million accounts and ten-minute windows does, at checkpoints
// 1 s apart: each brings 2,000 keys with new deadlines at the far end and
// takes away as many whose windows closed. It reports the bytes of the
// checkpoint record and of the index buckets written.
func BenchmarkEncodeStreams(b *testing.B) {
	sps := checkpointStreams(b)[:1]
	c := sps[0].keys
	const keys, perCheckpoint = 300_000, 2_000
	const start = int64(1_800_000_000) * deadlineBucketWidth
	step := 600 * deadlineBucketWidth / keys
	for i := range keys {
		c.setDeadline(fmt.Sprintf("acct-%07d", i), start+int64(i)*step, true)
	}
	clear(c.dirty)
	next := keys
	var record, index int
	for b.Loop() {
		for j := range perCheckpoint {
			c.setDeadline(fmt.Sprintf("acct-%07d", next-keys+j), 0, false)
			c.setDeadline(fmt.Sprintf("acct-%07d", next+j), start+int64(next+j)*step, true)
		}
		next += perCheckpoint
		var arena stateArena
		put, _, _, _ := c.appendCommit(&arena, nil, nil)
		record = len(encodeStreams(sps, 42))
		index = 0
		for _, ks := range put {
			index += len(ks.State)
		}
		arena.release()
		c.committed()
	}
	b.ReportMetric(float64(record), "B/record")
	b.ReportMetric(float64(index), "B/index-written")
}

// TestDeadlineBucketRoundTrip: a bucket decodes to the keys and deadlines
// it was encoded from, before the epoch too; a key in the wrong bucket or
// a cut encoding is an error.
func TestDeadlineBucketRoundTrip(t *testing.T) {
	for _, d := range []int64{-1, -20, 0, 999_999_999, 1_800_000_000_123_456_789, math.MaxInt64 - 1} {
		deadlines := map[string]int64{}
		members := map[string]struct{}{}
		for i := range 200 {
			k := fmt.Sprintf("k%d", i)
			if deadlineBucket(k, d) != deadlineBucket("k0", d) {
				continue
			}
			deadlines[k] = d - int64(i%3)
			members[k] = struct{}{}
		}
		for k, kd := range deadlines {
			if deadlineBucket(k, kd) != deadlineBucket("k0", d) {
				delete(deadlines, k)
				delete(members, k)
			}
		}
		b := deadlineBucket("k0", d)
		enc := encodeDeadlineBucket(b, members, deadlines)
		got := map[string]int64{}
		if err := decodeDeadlineBucket(b, enc, got); err != nil {
			t.Fatalf("deadline %d: %v", d, err)
		}
		if diff := cmp.Diff(deadlines, got); diff != "" {
			t.Errorf("deadline %d: decoded (-want +got):\n%s", d, diff)
		}
		if err := decodeDeadlineBucket(b+1, enc, map[string]int64{}); !errors.Is(err, errDeadlineBucket) {
			t.Errorf("deadline %d: decoded as another bucket: error %v, want errDeadlineBucket", d, err)
		}
		if err := decodeDeadlineBucket(b, enc[:len(enc)-1], map[string]int64{}); !errors.Is(err, errDeadlineBucket) {
			t.Errorf("deadline %d: cut: error %v, want errDeadlineBucket", d, err)
		}
	}
}
