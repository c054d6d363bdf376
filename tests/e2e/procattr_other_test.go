//go:build !linux

package e2e

import "os/exec"

// dieWithParent does nothing here: only Linux has a parent-death signal;
// children of a test process that dies are left to the cleanup functions.
func dieWithParent(*exec.Cmd) {}
