package testenv

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// setPdeathsig makes the kernel SIGKILL the child when the thread that started it
// exits, which covers a test binary killed by a signal or a timeout panic. Go's
// runtime retires a thread only when a goroutine locked to it exits, which this
// package never does, so the signal fires only when the test process goes away.
func setPdeathsig(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }

// ownsListener reports whether process pid holds a socket listening on TCP port
// (IPv4 or IPv6, any address). supported is false if /proc could not be read, in
// which case the caller falls back to dialling.
//
// A successful dial alone is not enough: when two servers race for a port, the
// loser's readiness check would connect to the winner.
//
// The socket table is read from /proc/self/net (children share the test's network
// namespace; a zombie child has no readable /proc/PID/net), then the child's fds are
// searched for one of the listening sockets' inodes.
func ownsListener(pid, port int) (owned, supported bool) {
	inodes := map[string]bool{}
	for _, name := range []string{"tcp", "tcp6"} {
		f, err := os.Open("/proc/self/net/" + name)
		if err != nil {
			if os.IsNotExist(err) && name == "tcp6" {
				continue // no IPv6 in this kernel
			}
			return false, false
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != "0A" { // 0A = TCP_LISTEN
				continue
			}
			i := strings.LastIndexByte(fs[1], ':')
			if p, err := strconv.ParseUint(fs[1][i+1:], 16, 16); err == nil && int(p) == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
		f.Close()
	}
	if len(inodes) == 0 {
		return false, true
	}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid)) // none once it has exited
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && inodes[l] {
			return true, true
		}
	}
	return false, true
}
