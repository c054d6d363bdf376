package gctune

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

func TestAnonymousMapping(t *testing.T) {
	for _, tc := range []struct {
		line       string
		start, end uintptr
		ok         bool
	}{
		{"3dbadf000000-3dbae5800000 rw-p 00000000 00:00 0 ", 0x3dbadf000000, 0x3dbae5800000, true},
		{"c000000000-c004000000 rw-p 00000000 00:00 0", 0xc000000000, 0xc004000000, true},
		{"3dbae5800000-3dbae8000000 ---p 00000000 00:00 0 ", 0, 0, false},              // reserved, not mapped
		{"0058e000-00599000 rw-p 0018e000 fe:00 9978104 /usr/bin/shrike", 0, 0, false}, // the binary's data
		{"7ffd1c5f3000-7ffd1c614000 rw-p 00000000 00:00 0                          [stack]", 0, 0, false},
		{"7f00-7e00 rw-p 00000000 00:00 0", 0, 0, false}, // empty range
		{"zz-7e00 rw-p 00000000 00:00 0", 0, 0, false},
		{"", 0, 0, false},
	} {
		start, end, ok := anonymousMapping(tc.line)
		if start != tc.start || end != tc.end || ok != tc.ok {
			t.Errorf("anonymousMapping(%q) = %#x, %#x, %v; want %#x, %#x, %v", tc.line, start, end, ok, tc.start, tc.end, tc.ok)
		}
	}
}

func TestNearHeap(t *testing.T) {
	heap := uintptr(unsafe.Pointer(new([1 << 20]byte)))
	if !nearHeap(heap, heap+4<<20) {
		t.Errorf("a heap object's own range is not near the heap")
	}
	if nearHeap(heap+2*heapReach, heap+2*heapReach+4<<20) {
		t.Errorf("a range two reaches above the heap counts as the heap's")
	}
}

func TestReserveSizeStaysWithinTheMemoryLimit(t *testing.T) {
	if got := reserveSize(); got%hugePageSize != 0 || got > reserveMax || got != 0 && got < reserveMin {
		t.Errorf("reserveSize() = %d, want a multiple of 2 MiB in [%d, %d] or 0", got, reserveMin, reserveMax)
	}
	t.Cleanup(func() { setMemoryLimit(t, -1) })
	setMemoryLimit(t, 3*reserveMin)
	if got := reserveSize(); got != 0 && got > 3*reserveMin/2 {
		t.Errorf("reserveSize() under a %d-byte limit = %d, want at most half of it", 3*reserveMin, got)
	}
	setMemoryLimit(t, reserveMin)
	if got := reserveSize(); got != 0 {
		t.Errorf("reserveSize() under a %d-byte limit = %d, want 0", reserveMin, got)
	}
}

// Under a limit on the address space the reservation would count against
// it, and a failed allocation ends the process: none is made. The limit is
// set in a process of its own, which then allocates as a replay would.
func TestNoReservationUnderAnAddressSpaceLimit(t *testing.T) {
	if !inOwnProcess(t) {
		return
	}
	var as syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_AS, &as); err != nil {
		t.Fatal(err)
	}
	as.Cur = 4 << 30 // below what the reservation would need on top of the runtime's
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, &as); err != nil {
		t.Skipf("cannot lower RLIMIT_AS: %v", err)
	}
	if n := reserveSize(); n != 0 {
		t.Fatalf("reserveSize() = %d under an address space limit, want 0", n)
	}
	ReserveHugePages()
	b := make([]byte, 64<<20)
	b[len(b)-1] = 1
}

// inOwnProcess reports whether the test runs in a process of its own. The
// first time it does not: it runs the test again in a child process (named
// in GCTUNE_CHILD), fails the test unless the child passed, and reports
// false; in the child it reports true.
func inOwnProcess(t *testing.T) bool {
	t.Helper()
	if os.Getenv("GCTUNE_CHILD") == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.v")
	cmd.Env = append(os.Environ(), "GCTUNE_CHILD="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Errorf("in a process of its own: %v\n%s", err, out)
	}
	return false
}

// setMemoryLimit sets the Go memory limit; -1 restores no limit.
func setMemoryLimit(t *testing.T, n int64) {
	t.Helper()
	if n < 0 {
		n = 1<<63 - 1
	}
	debug.SetMemoryLimit(n)
}

// The reservation's pages are marked, and a large allocation after it is
// served from them. It runs in a process of its own: in this one, other
// tests' watchers have marked the heap already.
func TestReservedHeapIsMarkedForHugePages(t *testing.T) {
	if !hugePagesAdvisable() {
		t.Skip("the kernel's transparent huge pages are not in madvise mode")
	}
	if !inOwnProcess(t) {
		return
	}
	if !reserveHugePages(reserveMin) {
		t.Fatalf("no reservation in a fresh process (%d collections)", collections())
	}
	b := make([]byte, reserveMin/2)
	// Its middle: the reservation's first and last partial huge
	// pages are not marked.
	addr := uintptr(unsafe.Pointer(&b[len(b)/2]))
	if !mappingHasFlag(t, addr, "hg") {
		t.Errorf("the mapping of a %d-byte allocation after the reservation is not marked for huge pages", len(b))
	}
}

// After a collection the reservation would be zeroed, touching every page:
// it is not made.
func TestNoReservationAfterACollection(t *testing.T) {
	runtime.GC()
	before := mappedBytes()
	if reserveHugePages(reserveMin) {
		t.Errorf("reserveHugePages reserved after a collection")
	}
	if grown := mappedBytes() - before; grown >= reserveMin {
		t.Errorf("the runtime mapped %d bytes more, want no reservation", grown)
	}
}

func mappedBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func TestAdviseMappingsMarksTheSelectedMappings(t *testing.T) {
	if !hugePagesAdvisable() {
		t.Skip("the kernel's transparent huge pages are not in madvise mode")
	}
	const size = 8 << 20
	m, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := syscall.Munmap(m); err != nil {
			t.Errorf("munmap: %v", err)
		}
	}()
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(m)))
	hi := lo + size
	if mappingHasFlag(t, lo, "hg") {
		t.Fatalf("a fresh mapping is already marked for huge pages")
	}
	advised := map[uintptr]uintptr{}
	adviseMappings(advised, func(start, end uintptr) bool { return start <= lo && hi <= end })
	if !mappingHasFlag(t, lo, "hg") {
		t.Errorf("the selected mapping is not marked for huge pages")
	}
	if len(advised) != 1 {
		t.Errorf("advised lists %d mappings, want the one selected", len(advised))
	}
}

// mappingHasFlag reports whether the mapping holding addr has flag among
// its VmFlags in /proc/self/smaps.
func mappingHasFlag(t *testing.T, addr uintptr, flag string) bool {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }() // read only: a Close error loses nothing
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if r, _, _ := strings.Cut(line, " "); !strings.HasSuffix(r, ":") {
			lo, hi, ok := addressRange(r) // a mapping's first line
			in = ok && lo <= addr && addr < hi
			continue
		}
		if in {
			if flags, ok := strings.CutPrefix(line, "VmFlags:"); ok {
				return strings.Contains(" "+flags+" ", " "+flag+" ")
			}
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return false
}
