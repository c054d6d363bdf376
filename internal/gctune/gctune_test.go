package gctune

import (
	"runtime/debug"
	"testing"
)

func TestForServeSetsPercentUnlessGOGCIsSet(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	restore := ForServe()
	if got := debug.SetGCPercent(ServePercent); got != ServePercent {
		t.Errorf("GOGC after ForServe = %d, want %d", got, ServePercent)
	}
	restore()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC after restore = %d, want 100", got)
	}

	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150)
	defer ForReplay()()
	if got := debug.SetGCPercent(150); got != 150 {
		t.Errorf("GOGC with the variable set = %d, want the user's 150", got)
	}
}
