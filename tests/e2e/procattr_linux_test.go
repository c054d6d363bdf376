package e2e

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the child when the test process
// dies, so that a test binary stopped by -timeout or a crash leaves no
// broker, Redis or engine behind.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
