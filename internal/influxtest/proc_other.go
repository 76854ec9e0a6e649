//go:build unix && !linux

package influxtest

import (
	"syscall"
	"time"
)

// sysProcAttr puts influxd in its own process group. Outside Linux there is no
// Pdeathsig: a test binary that is killed leaves its influxd running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// waitStopped has no portable way to see a stopped process outside Linux;
// SIGSTOP there is trusted to take effect at once.
func waitStopped(pid int, timeout time.Duration) error { return nil }
