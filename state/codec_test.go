package state

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// checkpointFixtures are checkpoints as each version of Shrike wrote them.
// They are never regenerated: a newer Shrike must keep reading every one.
// Adding a version means adding its fixtures here (TestCheckpointFixtures
// fails until the current version has one).
var checkpointFixtures = []struct {
	file    string
	version int
	want    Checkpoint
}{
	{"checkpoint-v1.bin", 1, Checkpoint{Offset: 1234567, Generation: 42, Streams: []byte("\x02\x00matcher checkpoint bytes\xff")}},
	{"checkpoint-v1-zero.bin", 1, Checkpoint{}},
	{"checkpoint-v2.bin", 2, Checkpoint{Offset: 1234567, Generation: 42, Seq: 9876, Streams: []byte("\x02\x00matcher checkpoint bytes\xff")}},
}

func TestCheckpointFixtures(t *testing.T) {
	current := false
	for _, f := range checkpointFixtures {
		t.Run(f.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", f.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeCheckpoint(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if diff := cmp.Diff(f.want, got); diff != "" {
				t.Errorf("decode (-want +got):\n%s", diff)
			}
			if f.version == checkpointVersion {
				current = true
				// The fixture of the current version is what the encoder
				// writes today, byte for byte.
				if diff := cmp.Diff(b, appendCheckpoint(nil, f.want)); diff != "" {
					t.Errorf("encode (-fixture +got):\n%s", diff)
				}
			}
		})
	}
	if !current {
		t.Errorf("no fixture of the current checkpoint version %d in testdata/", checkpointVersion)
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	tests := []Checkpoint{
		{},
		{Offset: 1, Generation: 1, Streams: []byte{0}},
		{Offset: -1, Generation: -2, Seq: -3},
		{Offset: 5, Generation: 2, Seq: 7, Streams: []byte("w")},
		{Offset: math.MaxInt64, Generation: math.MinInt64, Seq: math.MaxInt64, Streams: make([]byte, 1<<16)},
	}
	for i, cp := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			b := appendCheckpoint([]byte("prefix"), cp)
			if string(b[:6]) != "prefix" {
				t.Fatalf("append overwrote dst: %q", b[:6])
			}
			got, err := decodeCheckpoint(b[6:])
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if diff := cmp.Diff(cp, got, cmpEmpty); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckpointDecodeErrors(t *testing.T) {
	// Each varint of 300 takes two bytes.
	valid := appendCheckpoint(nil, Checkpoint{Offset: 300, Generation: 300, Seq: 300, Streams: []byte("abc")})
	v1 := []byte{1, 0xd8, 0x04, 0xd8, 0x04, 3, 'a', 'b', 'c'}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "bad checkpoint: empty"},
		{"version 0", []byte{0, 0, 0, 0}, "bad checkpoint: version 0 is not known to this version of Shrike (it reads 1 to 2)"},
		{"newer version", append([]byte{3}, valid[1:]...), "bad checkpoint: version 3 is not known to this version of Shrike (it reads 1 to 2)"},
		{"no offset", valid[:1], "bad checkpoint: offset"},
		{"offset cut", valid[:2], "bad checkpoint: offset"},
		{"no generation", valid[:3], "bad checkpoint: generation"},
		{"no seq", valid[:5], "bad checkpoint: seq"},
		{"seq cut", valid[:6], "bad checkpoint: seq"},
		{"no streams length", valid[:7], "bad checkpoint: streams length"},
		{"streams cut", valid[:len(valid)-1], "bad checkpoint: streams length 3, 2 bytes left"},
		{"trailing bytes", append(append([]byte{}, valid...), 0), "bad checkpoint: streams length 3, 4 bytes left"},
		{"varint overflow", []byte{2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "bad checkpoint: offset"},
		// Version 1 has no seq: what follows the generation is the
		// streams length.
		{"version 1 no streams length", v1[:5], "bad checkpoint: streams length"},
		{"version 1 streams cut", v1[:len(v1)-1], "bad checkpoint: streams length 3, 2 bytes left"},
		{"version 1 with a seq", append([]byte{1, 0xd8, 0x04, 0xd8, 0x04, 0xd8, 0x04}, v1[5:]...), "bad checkpoint: streams length 600, 4 bytes left"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeCheckpoint(tt.in)
			if !errors.Is(err, ErrBadCheckpoint) {
				t.Fatalf("decode = %v, want ErrBadCheckpoint", err)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzDecodeCheckpoint(f *testing.F) {
	for _, fx := range checkpointFixtures {
		b, err := os.ReadFile(filepath.Join("testdata", fx.file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := decodeCheckpoint(b)
		if err != nil {
			if !errors.Is(err, ErrBadCheckpoint) {
				t.Fatalf("decode error %v is not ErrBadCheckpoint", err)
			}
			return
		}
		// Whatever decodes re-encodes to a checkpoint that decodes the
		// same (the bytes may differ: varints have longer spellings).
		again, err := decodeCheckpoint(appendCheckpoint(nil, cp))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if diff := cmp.Diff(cp, again, cmpEmpty); diff != "" {
			t.Errorf("(-first +again):\n%s", diff)
		}
		if len(b) > 0 && len(cp.Streams) > 0 && &cp.Streams[0] == &b[len(b)-len(cp.Streams)] {
			t.Errorf("Streams aliases the input")
		}
	})
}
