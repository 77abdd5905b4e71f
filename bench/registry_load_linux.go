package bench

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes cmd's process get SIGKILL when this process exits, so that an
// aborted benchmark leaves no caddy running.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
