package matcher

import (
	"testing"
	"unsafe"
)

// TestStateSizes pins the sizes of what every key with an open partial
// match holds, which fill the size classes of Go's allocator (112, 80, 48
// and 24 bytes): a field more moves a struct to the next class, and a
// replay holding half a million keys pays it half a million times. The
// inline runBuf and ruleBuf are what make a key with one partial match of
// one rule cost no slice allocations.
func TestStateSizes(t *testing.T) {
	for _, c := range []struct {
		name      string
		size, max uintptr
	}{
		{"keyState", unsafe.Sizeof(keyState{}), 112},
		{"ruleKey", unsafe.Sizeof(ruleKey{}), 64},
		{"run", unsafe.Sizeof(run{}), 48},
		{"node", unsafe.Sizeof(node{}), 24},
	} {
		if c.size > c.max {
			t.Errorf("%s is %d bytes, more than the %d of its size class", c.name, c.size, c.max)
		}
	}
}

// TestOneRunInline checks that a key's first partial match lives in the
// ruleKey's own runBuf and a second one moves the runs out, without either
// being lost.
func TestOneRunInline(t *testing.T) {
	p, c := newPartition(t, abRule, Options{})
	push(t, p, []ev{{1, "", 0, "a"}})
	p.Advance(1 * ms)
	ks := p.residentState("k")
	if ks == nil || len(ks.rules) != 1 || &ks.rules[0] != &ks.ruleBuf[0] {
		t.Fatalf("key state %+v: want its one rule in ruleBuf", ks)
	}
	rk := ks.rules[0]
	if len(rk.runs) != 1 || &rk.runs[0] != &rk.runBuf[0] {
		t.Fatalf("runs %v: want one run in runBuf", rk.runs)
	}
	push(t, p, []ev{{2, "", 1, "a"}, {3, "", 2, "b"}})
	p.Advance(3 * ms)
	want := []string{"ab k a=[1] b=[3]", "ab k a=[2] b=[3]"}
	if got := c.matches(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("alerts %v, want %v", got, want)
	}
}
