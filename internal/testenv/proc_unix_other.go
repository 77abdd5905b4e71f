//go:build unix && !linux

package testenv

import "syscall"

func setPdeathsig(*syscall.SysProcAttr) {}

func ownsListener(pid, port int) (owned, supported bool) { return false, false }
