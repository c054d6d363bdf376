//go:build amd64 || arm64

package matcher

import "unsafe"

// prefetch asks the CPU to bring the cache line at addr closer without
// waiting for it. It never faults, whatever addr is.
//
//go:noescape
func prefetch(addr unsafe.Pointer)
