package influxtest

import "syscall"

// sysProcAttr puts influxd in its own process group and has the kernel kill it
// when the test binary dies, so no server outlives a crashed or killed test.
// Pdeathsig fires when the forking OS thread exits; Go keeps its threads
// unless a goroutine exits while locked to one, which this package never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
