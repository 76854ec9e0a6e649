package source

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/bits"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.bug.st/serial"

	"github.com/p1logger/p1logger/internal/serialtest"
	"github.com/p1logger/p1logger/parser"
	"github.com/p1logger/p1logger/sim"
)

func TestParseSerial(t *testing.T) {
	all := "115200 8N1, 115200 7E1, 9600 7E1"
	tests := []struct {
		addr, want string // want: the modes, or the error
	}{
		{"serial:///dev/ttyUSB0", all},
		{"SERIAL:///dev/serial/by-id/usb-x-if00", all},
		{"serial:///dev/ttyUSB0?baud=115200", "115200 8N1, 115200 7E1"},
		{"serial:///dev/ttyUSB0?bits=7", "115200 7E1, 9600 7E1"},
		{"serial:///dev/ttyUSB0?baud=9600", "9600 7E1"},
		{"serial:///dev/ttyUSB0?baud=115200&bits=8&parity=none&stop=1", "115200 8N1"},
		{"serial:///dev/ttyAMA0?baud=38400", "38400 8N1"},
		{"serial:///dev/ttyS0?baud=9600&bits=8", "9600 8N1"},
		{"serial:///dev/ttyS0?baud=1200&parity=odd&stop=2", "1200 8O2"},
		{"serial://dev/ttyUSB0", `has "dev" where the path should start (three slashes: serial:///dev/…); ` + serialForm},
		{"serial://", "has no device path; " + serialForm},
		{"serial:///dev/ttyUSB0?baud=fast", `has a bad baud "fast"; want a speed such as 9600 or 115200`},
		{"serial:///dev/ttyUSB0?bits=6", `has bad bits "6"; want 7 or 8`},
		{"serial:///dev/ttyUSB0?parity=mark", `has a bad parity "mark"; want none, even or odd`},
		{"serial:///dev/ttyUSB0?stop=3", `has bad stop bits "3"; want 1 or 2`},
		{"serial:///dev/ttyUSB0?speed=9600", `has an unknown option "speed"; ` + serialForm},
	}
	for _, tt := range tests {
		s, err := Parse(tt.addr, Options{})
		var got string
		if err != nil {
			got = err.Error()
		} else {
			ser := s.(*Serial)
			var names []string
			for _, m := range ser.modes {
				names = append(names, m.String())
			}
			got = strings.Join(names, ", ")
			if s.Kind() != "serial" || !strings.HasPrefix(s.String(), "serial:///dev/") || strings.Contains(s.String(), "?") {
				t.Errorf("%q: kind %q, string %q", tt.addr, s.Kind(), s.String())
			}
		}
		if got != tt.want {
			t.Errorf("%q:\ngot  %s\nwant %s", tt.addr, got, tt.want)
		}
	}
}

// fakePort is a meter on a serial line at mode meter, read at mode open:
// at the right mode it reads the telegrams as sent; 7-bit data read as
// 8-bit has the even-parity bit on top of each byte; at another speed it
// reads noise.
type fakePort struct {
	serial.Port // not called
	data        []byte
	closed      bool
}

func newFakePort(meter SerialMode, open *serial.Mode, telegrams []byte) *fakePort {
	p := &fakePort{}
	switch {
	case open.BaudRate != meter.Baud:
		// What a UART makes of the wrong speed: bytes, few of them text.
		for i := range 3000 {
			p.data = append(p.data, byte(i*131+7)|0x80)
		}
	case open.DataBits == 8 && meter.Bits == 7:
		for _, c := range telegrams {
			if bits.OnesCount8(c)%2 == 1 {
				c |= 0x80 // even parity over the 7 bits
			}
			p.data = append(p.data, c)
		}
	case open.DataBits == meter.Bits && open.Parity == meter.Parity:
		p.data = bytes.Clone(telegrams)
	default: // 8-bit data read as 7E1: framing and parity errors
		for _, c := range telegrams {
			p.data = append(p.data, c&0x3f)
		}
	}
	return p
}

func (p *fakePort) SetReadTimeout(time.Duration) error { return nil }
func (p *fakePort) Close() error                       { p.closed = true; return nil }
func (p *fakePort) Read(b []byte) (int, error) {
	if len(p.data) == 0 {
		time.Sleep(time.Millisecond) // a timeout, with nothing
		return 0, nil
	}
	n := copy(b, p.data[:min(len(p.data), 700)])
	p.data = p.data[n:]
	return n, nil
}

// meterFrames returns n telegrams of a simulated meter, one second apart.
func meterFrames(t *testing.T, n int) []byte {
	t.Helper()
	m, err := sim.NewMeter(sim.MeterConfig{Name: "serial"})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 14, 18, 0, 0, 0, time.UTC)
	var b []byte
	for i := range n {
		b = append(b, m.Render(at.Add(time.Duration(i)*time.Second)).Frame...)
	}
	return b
}

// TestSerialDetect: the modes are tried in order until one reads a good
// telegram; the setting found is remembered and tried first on the next
// open; the Conn delivers the telegram that settled it.
func TestSerialDetect(t *testing.T) {
	frames := meterFrames(t, 2)
	// A try starts mid-telegram, as when the cable is plugged in while
	// the meter sends.
	stream := append(bytes.Clone(frames[300:]), frames...)
	tests := []struct {
		name  string
		meter SerialMode
		tries string // the modes opened, in order
		quick bool   // found without waiting out a whole try
	}{
		{"DSMR 5", serialModes[0], "115200 8N1", true},
		{"DSMR 4 7E1", serialModes[1], "115200 8N1, 115200 7E1", true},
		{"DSMR 2.2", serialModes[2], "115200 8N1, 115200 7E1, 9600 7E1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse("serial:///dev/ttyUSB9", Options{})
			if err != nil {
				t.Fatal(err)
			}
			ser := s.(*Serial)
			ser.tryTime = 300 * time.Millisecond
			var mu sync.Mutex
			var tried []string
			ser.open = func(path string, m *serial.Mode) (serial.Port, error) {
				mu.Lock()
				defer mu.Unlock()
				tried = append(tried, SerialMode{m.BaudRate, m.DataBits, m.Parity, 1}.String())
				return newFakePort(tt.meter, m, stream), nil
			}
			t0 := time.Now()
			c, err := s.Open(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Since(t0); tt.quick && d >= ser.tryTime {
				t.Errorf("found after %s, want before one try's %s", d, ser.tryTime)
			}
			if got := strings.Join(tried, ", "); got != tt.tries {
				t.Errorf("tried %s, want %s", got, tt.tries)
			}
			if m, ok := ser.Mode(); !ok || m != tt.meter {
				t.Errorf("mode %v %v, want %v", m, ok, tt.meter)
			}
			// The bytes read while trying come first, then the rest.
			c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			got, err := io.ReadAll(c)
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("read ended with %v, want a deadline", err)
			}
			if tt.meter.Bits == 8 || tt.meter.Baud == 9600 {
				if !bytes.Equal(got, stream) {
					t.Errorf("read %d bytes, want the %d sent", len(got), len(stream))
				}
			}
			c.Close()

			tried = nil
			c, err = s.Open(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			if got, want := strings.Join(tried, ", "), tt.meter.String(); got != want {
				t.Errorf("reopen tried %s, want the remembered %s", got, want)
			}
		})
	}
}

func TestSerialNothingWorks(t *testing.T) {
	s, _ := Parse("serial:///dev/ttyUSB9", Options{})
	ser := s.(*Serial)
	ser.tryTime = 50 * time.Millisecond
	ser.open = func(string, *serial.Mode) (serial.Port, error) { return &fakePort{}, nil }
	_, err := s.Open(context.Background())
	want := "serial device /dev/ttyUSB9: no telegram with a valid CRC at 115200 8N1, 115200 7E1, 9600 7E1 (50ms each); check the cable"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err %v\nwant %s…", err, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Open(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled open: %v, want context.Canceled", err)
	}
}

func TestSerialOpenErrors(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{syscall.ENOENT, "serial device /dev/ttyUSB9 does not exist (unplugged? ls /dev/serial/by-id/ lists the cables plugged in)"},
		{syscall.EACCES, "serial device /dev/ttyUSB9: permission denied; add the user p1logger runs as to group dialout (sudo usermod -aG dialout USER, then log in again)"},
		{&serial.PortError{}, "serial device /dev/ttyUSB9 is in use by another program"}, // the zero code is PortBusy
	}
	for _, tt := range tests {
		s, _ := Parse("serial:///dev/ttyUSB9?baud=115200&bits=8", Options{})
		s.(*Serial).open = func(string, *serial.Mode) (serial.Port, error) { return nil, tt.err }
		_, err := s.Open(context.Background())
		if err == nil || err.Error() != tt.want {
			t.Errorf("%v: got %v\nwant %s", tt.err, err, tt.want)
		}
	}
	// The real library on a path that does not exist.
	s, _ := Parse("serial:///nonexistent/ttyUSB9", Options{})
	if _, err := s.Open(context.Background()); err == nil || !strings.Contains(err.Error(), "does not exist (unplugged?") {
		t.Errorf("missing device: %v", err)
	}
	// A file that is not a terminal.
	f := t.TempDir() + "/file"
	os.WriteFile(f, []byte("x"), 0o600)
	s, _ = Parse("serial://"+f+"?baud=9600", Options{})
	if _, err := s.Open(context.Background()); err == nil || !strings.Contains(err.Error(), "is not a serial device") {
		t.Errorf("regular file: %v", err)
	}
}

// TestSerialPTY: through the real library on a pseudo-terminal, the mode
// is found from the telegrams and they arrive whole; unplugging ends the
// read with an error naming the device, and the deadline is honoured.
func TestSerialPTY(t *testing.T) {
	dev := serialtest.New(t)
	frames := meterFrames(t, 3)
	s, err := Parse("serial://"+dev.Path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range 50 {
			if dev.Write(frames) != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := s.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if m, _ := s.(*Serial).Mode(); m != serialModes[0] {
		t.Errorf("mode %v, want the first tried (a pty takes any)", m)
	}
	var got []byte
	buf := make([]byte, 4096)
	for len(got) < 2*len(frames) {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Contains(got, frames) {
		t.Error("the telegrams did not arrive whole")
	}
	dev.Unplug()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	for range 100 {
		if _, err = c.Read(buf); err != nil {
			break
		}
	}
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), dev.Path) {
		t.Errorf("read after unplug: %v, want an error naming the device", err)
	}
}

// TestGoodTelegram: what settles a serial setting. A DSMR 2.2 telegram
// has no CRC and counts when it parses; a frame with a CRC counts only when
// it matches; a frame of noise does not count.
func TestGoodTelegram(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile("../../testdata/telegrams/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	crcOK := meterFrames(t, 1)
	badCRC := bytes.Replace(crcOK, []byte("1-0:1.8.1(0"), []byte("1-0:1.8.1(9"), 1)
	if bytes.Equal(badCRC, crcOK) {
		t.Fatal("no register changed")
	}
	tests := []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"DSMR 5, CRC ok", crcOK, true},
		{"CRC mismatch", badCRC, false},
		{"DSMR 2.2 without CRC", read("nl-dsmr22-kamstrup-ka6u-export-gas.txt"), true},
		{"header only", []byte("/\x00\x9c\x01\n!\n"), false},
		{"noise lines", []byte("/ab\r\n\r\nxx\x80yy\r\n!\r\n"), false},
	}
	for _, tt := range tests {
		var tg parser.Telegram
		if got := goodTelegram(&tg, tt.frame); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
