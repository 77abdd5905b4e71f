//go:build unix

package testenv

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in a process group of its own, so that killGroup
// reaches anything it spawns, and (on Linux) has the kernel kill it if the test
// binary dies without running its cleanups.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setPdeathsig(cmd.SysProcAttr)
}

// killGroup sends SIGKILL to the child's whole process group.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		_ = cmd.Process.Kill()
	}
}

// termGroup sends SIGTERM to the child's whole process group.
func termGroup(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM); err != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
}

// processExists reports whether a process with this pid exists (possibly a zombie).
func processExists(pid int) bool {
	return syscall.Kill(pid, 0) != syscall.ESRCH
}
