//go:build !linux

package gctune

// adviseHugePages is Linux only: elsewhere the heap keeps the system's
// page size policy.
func adviseHugePages() (stop func()) { return func() {} }

// ReserveHugePages does nothing: see hugepages_linux.go.
func ReserveHugePages() {}
