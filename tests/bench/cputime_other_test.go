//go:build !unix

package bench

import "time"

// processCPU is not measured on this platform; cpu-ns/event then reads 0.
func processCPU() time.Duration { return 0 }
