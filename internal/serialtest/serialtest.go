// Package serialtest plays a USB P1 cable for tests: a pseudo-terminal pair
// whose slave side is reached through a symlink, as /dev/serial/by-id/…
// reaches a real cable, so that a test can unplug it (the link goes, the
// terminal hangs up) and plug it back (a new terminal, the same link).
// A pseudo-terminal ignores speed and parity: what a real cable does with
// them is tested through the serial source's open seam instead.
package serialtest

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// Device is one simulated cable. Its methods are safe for concurrent use.
type Device struct {
	// Path is the symlink to the current terminal, to be opened as
	// serial://Path.
	Path string

	mu            sync.Mutex
	master, slave *os.File
	plugs         int
}

// New plugs a Device in under a temporary directory of t; it is unplugged
// when the test ends.
func New(t testing.TB) *Device {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "by-id")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := &Device{Path: filepath.Join(dir, "usb-P1_Cable-if00-port0")}
	if err := d.Plug(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Unplug)
	return d
}

// Plug makes a new terminal, in raw mode (as the serial source sets it, so
// that bytes written before it opened pass unchanged), and points Path at
// it. It unplugs the current one first.
func (d *Device) Plug() error {
	d.Unplug()
	master, slave, err := pty.Open()
	if err != nil {
		return fmt.Errorf("open pty: %w", err)
	}
	if err := makeRaw(slave); err != nil {
		master.Close()
		slave.Close()
		return err
	}
	if err := os.Symlink(slave.Name(), d.Path); err != nil {
		master.Close()
		slave.Close()
		return err
	}
	d.mu.Lock()
	d.master, d.slave = master, slave
	d.plugs++
	d.mu.Unlock()
	return nil
}

// Unplug removes Path and closes the terminal: a reader of it gets an
// error, and opening Path fails as for a cable pulled out.
func (d *Device) Unplug() {
	d.mu.Lock()
	defer d.mu.Unlock()
	os.Remove(d.Path)
	if d.master != nil {
		d.master.Close()
		d.slave.Close()
		d.master, d.slave = nil, nil
	}
}

// Plugs returns how many times the device was plugged in.
func (d *Device) Plugs() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.plugs
}

// Write sends b as the meter would. It fails when the device is unplugged.
func (d *Device) Write(b []byte) error {
	d.mu.Lock()
	m := d.master
	d.mu.Unlock()
	if m == nil {
		return os.ErrClosed
	}
	_, err := m.Write(b)
	return err
}

// makeRaw sets f's terminal to raw mode, as cfmakeraw(3) does.
func makeRaw(f *os.File) error {
	fd := int(f.Fd())
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("get termios: %w", err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return fmt.Errorf("set termios: %w", err)
	}
	return nil
}
