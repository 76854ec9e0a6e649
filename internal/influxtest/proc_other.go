//go:build unix && !linux

package influxtest

import "syscall"

// sysProcAttr puts influxd in its own process group. Outside Linux there is no
// Pdeathsig: a test binary that is killed leaves its influxd running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
