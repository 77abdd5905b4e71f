//go:build !unix

package testenv

import "os/exec"

func setProcAttr(*exec.Cmd) {}

func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}

func termGroup(cmd *exec.Cmd) { killGroup(cmd) }

func ownsListener(pid, port int) (owned, supported bool) { return false, false }

func processExists(pid int) bool { return false }
