package gctune

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// A replay's heap is hundreds of megabytes read at random: a key's state,
// its partial matches and the events they took lie wherever they were
// allocated. With 4 KiB pages nearly every such read also misses the TLB,
// and every page of the growing heap costs a page fault; on the payments
// benchmark the replay ran 10-20% longer than with transparent huge pages,
// and the kernel's page faults were a tenth of its CPU time.
//
// Go maps its heap without asking for huge pages, and many Linux systems
// give them only to memory that asks (the "madvise" setting of
// /sys/kernel/mm/transparent_hugepage/enabled). So a replay asks, as the
// JVM does for its heap with -XX:+UseTransparentHugePages:
//
//   - Up front it reserves heap address space marked MADV_HUGEPAGE: one
//     large allocation, marked and freed at once, whose untouched pages
//     the allocations that follow reuse, each 2 MiB region faulted in as
//     one huge page. This works only before the first collection: the
//     runtime zeroes an allocation that takes any page freed before, and
//     zeroing the reservation would touch every page of it (4 KiB pages,
//     before the advice). `shrike run` reserves before it loads a ruleset;
//     the benchmarks, in TestMain.
//   - Beyond the reservation, a watcher marks the mappings the runtime adds
//     as the heap grows. It runs a little behind, so the first pages of
//     each new mapping may stay small.
//
// GODEBUG=disablethp=1, Go's own switch to keep huge pages off its heap,
// turns both off. Where the system setting is "always" nothing is needed,
// and where it is "never" nothing can be done.

const (
	// hugePageSize is the size of an x86-64 or arm64 (4 KiB granule) huge
	// page: a smaller mapping cannot hold one.
	hugePageSize = 2 << 20
	// reserveMax bounds the reservation, which costs address space only
	// (its pages are not touched); it covers the payments benchmark's
	// heap. reserveMin is the least worth making.
	reserveMax = 1 << 30
	reserveMin = 64 << 20
	// heapReach bounds how far from a heap object a mapping may lie to be
	// the heap's. The runtime grows the heap upward from one base in steps
	// of a few megabytes; memory it maps elsewhere (metadata, thread
	// stacks) lies in the system's mmap area, terabytes away.
	heapReach = 1 << 40
	// growthPoll is how often the watcher checks whether the runtime
	// mapped more memory.
	growthPoll = 2 * time.Millisecond

	madvHugepage = 14 // MADV_HUGEPAGE

	rlimInfinity = ^uint64(0) // RLIM_INFINITY
)

// heapProbe is a heap object: its address tells where the heap lies.
var heapProbe = new([512]byte)

var reserveOnce sync.Once // ReserveHugePages

func adviseHugePages() (stop func()) {
	if !hugePagesAdvisable() {
		return func() {}
	}
	ReserveHugePages()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		watchHeapGrowth(done)
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// hugePagesAdvisable reports whether the kernel gives huge pages only to
// memory that asks, and the user has not turned them off for Go's heap.
func hugePagesAdvisable() bool {
	if strings.Contains(os.Getenv("GODEBUG"), "disablethp=1") {
		return false
	}
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	return err == nil && bytes.Contains(b, []byte("[madvise]"))
}

// reserveSize is reserveMax, or less where memory is short: a quarter of
// the memory available, half of the Go memory limit. It is 0 under strict
// overcommit accounting, which would charge the untouched reservation, and
// under a limit on the address space (ulimit -v), which it would count
// against: the runtime cannot fail an allocation, it ends the process.
func reserveSize() int {
	if b, err := os.ReadFile("/proc/sys/vm/overcommit_memory"); err != nil || strings.TrimSpace(string(b)) == "2" {
		return 0
	}
	var as syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_AS, &as); err != nil || as.Cur != rlimInfinity {
		return 0
	}
	n := int64(reserveMax)
	if avail, ok := memAvailable(); ok {
		n = min(n, avail/4)
	}
	n = min(n, debug.SetMemoryLimit(-1)/2)
	if n < reserveMin {
		return 0
	}
	return int(n &^ (hugePageSize - 1))
}

// memAvailable reads MemAvailable from /proc/meminfo, in bytes.
func memAvailable() (int64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

// ReserveHugePages reserves heap address space for huge pages (see
// above), once per process, if the system gives huge pages to memory that
// asks and no collection has run yet; otherwise it does nothing.
func ReserveHugePages() {
	reserveOnce.Do(func() {
		if hugePagesAdvisable() {
			reserveHugePages(reserveSize())
		}
	})
}

// reserveHugePages grows the heap by n bytes of address space marked for
// huge pages, and frees it untouched for the allocations that follow. It
// reports false, having done nothing, when n is 0 or a collection ran.
func reserveHugePages(n int) bool {
	if n == 0 || collections() > 0 {
		return false
	}
	b := make([]byte, n)
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	madviseHuge(start, start+uintptr(n))
	// b is dead here: collecting frees its pages now rather than at the
	// next cycle, whose goal it would also have raised.
	runtime.GC()
	return true
}

// collections is the number of garbage collections completed.
func collections() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// madviseHuge marks the whole huge pages within [start, end).
func madviseHuge(start, end uintptr) bool {
	lo := (start + hugePageSize - 1) &^ (hugePageSize - 1)
	hi := end &^ (hugePageSize - 1)
	if lo >= hi {
		return false
	}
	_, _, errno := syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, madvHugepage)
	return errno == 0
}

// watchHeapGrowth marks the heap's new mappings until done is closed.
func watchHeapGrowth(done <-chan struct{}) {
	sample := []metrics.Sample{{Name: "/memory/classes/total:bytes"}}
	var mapped uint64
	advised := map[uintptr]uintptr{} // start -> end of the mappings marked
	tick := time.NewTicker(growthPoll)
	defer tick.Stop()
	for {
		metrics.Read(sample)
		if now := sample[0].Value.Uint64(); now > mapped {
			mapped = now
			adviseMappings(advised, nearHeap)
		}
		select {
		case <-done:
			return
		case <-tick.C:
		}
	}
}

// adviseMappings marks the anonymous read-write mappings that include
// selects and advised does not list, and lists them.
func adviseMappings(advised map[uintptr]uintptr, include func(start, end uintptr) bool) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	// Read only: a Close error loses nothing, and the advice is best
	// effort anyway.
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		start, end, ok := anonymousMapping(sc.Text())
		if !ok || advised[start] == end || !include(start, end) {
			continue
		}
		if madviseHuge(start, end) {
			advised[start] = end
		}
	}
}

// nearHeap reports whether [start, end) lies within heapReach of the heap.
func nearHeap(start, end uintptr) bool {
	probe := uintptr(unsafe.Pointer(heapProbe))
	return end > probe-min(probe, heapReach) && start < probe+heapReach
}

// anonymousMapping parses a line of /proc/self/maps, returning the range
// of a private read-write mapping backed by no file.
func anonymousMapping(line string) (start, end uintptr, ok bool) {
	fields := strings.Fields(line)
	if len(fields) != 5 || fields[1] != "rw-p" || fields[4] != "0" {
		return 0, 0, false // a file, a name such as [stack], or other permissions
	}
	return addressRange(fields[0])
}

// addressRange parses the "start-end" (hexadecimal) that begins a mapping
// in /proc/self/maps and smaps.
func addressRange(r string) (start, end uintptr, ok bool) {
	lo, hi, found := strings.Cut(r, "-")
	if !found {
		return 0, 0, false
	}
	s, err1 := strconv.ParseUint(lo, 16, 64)
	e, err2 := strconv.ParseUint(hi, 16, 64)
	if err1 != nil || err2 != nil || e <= s {
		return 0, 0, false
	}
	return uintptr(s), uintptr(e), true
}
