package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.bug.st/serial"

	"github.com/p1logger/p1logger/parser"
)

const serialForm = "want serial:///dev/ttyUSB0[?baud=115200&bits=8&parity=none&stop=1]"

func init() { Register("serial", newSerial) }

// SerialMode is a serial line's speed and framing.
type SerialMode struct {
	Baud   int
	Bits   int           // 7 or 8
	Parity serial.Parity // serial.NoParity, EvenParity or OddParity
	Stop   int           // 1 or 2
}

// String returns the mode as it is usually written: "115200 8N1".
func (m SerialMode) String() string {
	p := "N"
	switch m.Parity {
	case serial.EvenParity:
		p = "E"
	case serial.OddParity:
		p = "O"
	}
	return fmt.Sprintf("%d %d%s%d", m.Baud, m.Bits, p, m.Stop)
}

func (m SerialMode) serial() *serial.Mode {
	stop := serial.OneStopBit
	if m.Stop == 2 {
		stop = serial.TwoStopBits
	}
	return &serial.Mode{BaudRate: m.Baud, DataBits: m.Bits, Parity: m.Parity, StopBits: stop}
}

// serialModes are the settings P1 ports use, in the order they are tried.
//
// 115200 8N1 first: DSMR 5, Belgian e-MUCS and Luxembourg Smarty, the
// meters in most homes today, send it, once a second, so they are found
// within about two seconds. 115200 7E1 next: DSMR 4, which sends every ten
// seconds; read as 8N1, its bytes are right but for the parity bit on top,
// so the first try sees that and moves on at once instead of waiting out
// its time. 9600 7E1 last: DSMR 2.2 and 3, the oldest meters, being
// replaced. The setting that worked is remembered and tried first when the
// device is opened again.
var serialModes = []SerialMode{
	{115200, 8, serial.NoParity, 1},
	{115200, 7, serial.EvenParity, 1},
	{9600, 7, serial.EvenParity, 1},
}

// serialTryTime is how long one setting is tried without a good telegram:
// DSMR 2.2 to 4 send every 10 s, and the first telegram seen may have
// started before the device was opened, so a try must cover a whole second
// interval, plus the second a 1 KB telegram takes at 9600 baud.
const serialTryTime = 12 * time.Second

// serialGiveUp ends a try early: this many complete frames failed, or this
// many bytes came without a good telegram (garbage at a wrong speed).
const (
	serialBadFrames = 3
	serialBadBytes  = 16 << 10
)

// Serial is the "serial" kind: a USB or serial P1 cable, serial:///dev/ttyUSB0
// (a /dev/serial/by-id/ path keeps its name across replugs). Without
// options in the address, the speed and framing are found by trying
// serialModes until a telegram with a valid CRC arrives (or, from a DSMR
// 2.2/3 meter, one without a CRC that parses); the options fix them, or
// narrow the search (?bits=7 tries only the 7E1 modes).
type Serial struct {
	path  string
	modes []SerialMode // the candidates; one means no search

	// open opens the device; a seam for tests, since a pseudo-terminal
	// ignores speed and parity.
	open    func(path string, mode *serial.Mode) (serial.Port, error)
	tryTime time.Duration

	mu    sync.Mutex
	known *SerialMode // the mode that worked last
}

func newSerial(u *url.URL, _ Options) (Source, error) {
	switch {
	case u.Opaque != "":
		return nil, errors.New("is not a device path; " + serialForm)
	case u.Host != "":
		return nil, fmt.Errorf("has %q where the path should start (three slashes: serial:///dev/…); %s", u.Host, serialForm)
	case u.User != nil:
		return nil, errors.New("has user information, which a serial device does not use; " + serialForm)
	case u.Path == "" || u.Path == "/":
		return nil, errors.New("has no device path; " + serialForm)
	case u.Fragment != "":
		return nil, errors.New("has a fragment (#…); " + serialForm)
	}
	modes, err := serialOptions(u.Query())
	if err != nil {
		return nil, err
	}
	return &Serial{path: u.Path, modes: modes, open: serial.Open, tryTime: serialTryTime}, nil
}

// serialOptions returns the candidate modes the options leave.
func serialOptions(q url.Values) ([]SerialMode, error) {
	var want SerialMode // zero fields: not given
	parity := -1
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "baud":
			n, err := strconv.Atoi(v)
			if err != nil || n < 50 || n > 4000000 {
				return nil, fmt.Errorf("has a bad baud %q; want a speed such as 9600 or 115200", v)
			}
			want.Baud = n
		case "bits":
			if v != "7" && v != "8" {
				return nil, fmt.Errorf("has bad bits %q; want 7 or 8", v)
			}
			want.Bits = int(v[0] - '0')
		case "parity":
			switch strings.ToLower(v) {
			case "none", "n":
				parity = int(serial.NoParity)
			case "even", "e":
				parity = int(serial.EvenParity)
			case "odd", "o":
				parity = int(serial.OddParity)
			default:
				return nil, fmt.Errorf("has a bad parity %q; want none, even or odd", v)
			}
		case "stop":
			if v != "1" && v != "2" {
				return nil, fmt.Errorf("has bad stop bits %q; want 1 or 2", v)
			}
			want.Stop = int(v[0] - '0')
		default:
			return nil, fmt.Errorf("has an unknown option %q; %s", k, serialForm)
		}
	}
	var out []SerialMode
	for _, m := range serialModes {
		if (want.Baud == 0 || want.Baud == m.Baud) && (want.Bits == 0 || want.Bits == m.Bits) &&
			(parity < 0 || serial.Parity(parity) == m.Parity) && (want.Stop == 0 || want.Stop == m.Stop) {
			out = append(out, m)
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	// Not a P1 standard setting: exactly what was asked, 8N1 where not said.
	m := SerialMode{Baud: want.Baud, Bits: want.Bits, Parity: serial.NoParity, Stop: want.Stop}
	if m.Baud == 0 {
		m.Baud = 115200
	}
	if m.Bits == 0 {
		m.Bits = 8
	}
	if parity >= 0 {
		m.Parity = serial.Parity(parity)
	}
	if m.Stop == 0 {
		m.Stop = 1
	}
	return []SerialMode{m}, nil
}

// String returns serial://PATH: the address without its options.
func (s *Serial) String() string { return "serial://" + s.path }

// Kind returns "serial".
func (s *Serial) Kind() string { return "serial" }

// Mode returns the setting that worked last, and false before any did.
func (s *Serial) Mode() (SerialMode, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.known == nil {
		return SerialMode{}, false
	}
	return *s.known, true
}

// Open opens the device. With one candidate mode it returns at once;
// otherwise it tries the modes (the one that worked before first), each
// until a good telegram arrives or for up to 12 s, and returns a Conn that
// delivers the bytes read while trying first, so the telegram that settled
// it is not lost. Its errors say what to do: the device does not exist
// (unplugged?), the user lacks permission (group dialout), it is in use, or
// no setting gave a telegram. It returns ctx's error when ctx is done.
func (s *Serial) Open(ctx context.Context) (Conn, error) {
	modes := s.order()
	if len(modes) == 1 {
		p, err := s.openMode(modes[0])
		if err != nil {
			return nil, err
		}
		s.remember(modes[0])
		return &serialConn{port: p, path: s.path}, nil
	}
	for _, m := range modes {
		p, err := s.openMode(m)
		if err != nil {
			return nil, err
		}
		got, ok, err := s.try(ctx, p, m)
		if err != nil {
			p.Close()
			return nil, err
		}
		if ok {
			s.remember(m)
			return &serialConn{port: p, path: s.path, prefix: got}, nil
		}
		p.Close()
	}
	names := make([]string, len(modes))
	for i, m := range modes {
		names[i] = m.String()
	}
	return nil, fmt.Errorf("serial device %s: no telegram with a valid CRC at %s (%s each); check the cable and that the meter's P1 port is enabled, or fix the setting with ?baud=&bits=&parity=&stop=",
		s.path, strings.Join(names, ", "), s.tryTime)
}

// order returns the candidate modes, the one that worked before first.
func (s *Serial) order() []SerialMode {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.known == nil || len(s.modes) == 1 {
		return s.modes
	}
	out := []SerialMode{*s.known}
	for _, m := range s.modes {
		if m != *s.known {
			out = append(out, m)
		}
	}
	return out
}

func (s *Serial) remember(m SerialMode) {
	s.mu.Lock()
	s.known = &m
	s.mu.Unlock()
}

func (s *Serial) openMode(m SerialMode) (serial.Port, error) {
	p, err := s.open(s.path, m.serial())
	if err == nil {
		return p, nil
	}
	var pe *serial.PortError
	switch {
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("serial device %s does not exist (unplugged? ls /dev/serial/by-id/ lists the cables plugged in)", s.path)
	case errors.As(err, &pe) && pe.Code() == serial.PermissionDenied, errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("serial device %s: permission denied; add the user p1logger runs as to group dialout (sudo usermod -aG dialout USER, then log in again)", s.path)
	case errors.As(err, &pe) && pe.Code() == serial.PortBusy:
		return nil, fmt.Errorf("serial device %s is in use by another program", s.path)
	case errors.As(err, &pe) && pe.Code() == serial.InvalidSerialPort:
		return nil, fmt.Errorf("%s is not a serial device: %w", s.path, err)
	}
	return nil, fmt.Errorf("open serial device %s at %s: %w", s.path, m, err)
}

// try reads p, opened at m, until a good telegram arrives, and returns the
// bytes read and true; false when the try's time passed, or what came shows
// that m is wrong. 7-bit data read as 8 bits has the parity bit on top of
// some bytes ("/" among them, so it does not even frame): when the bytes
// with their top bit cleared hold a good telegram and the bytes as read do
// not, m is wrong, and a 7E1 mode is the right one.
func (s *Serial) try(ctx context.Context, p serial.Port, m SerialMode) ([]byte, bool, error) {
	end := time.Now().Add(s.tryTime)
	var (
		got, got7 []byte
		sp, sp7   parser.Splitter
		off, off7 int // got[:off] and got7[:off7] are framed
		t         parser.Telegram
		bad       int
	)
	buf := make([]byte, 2048)
	for {
		left := time.Until(end)
		if left <= 0 {
			return nil, false, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		if err := p.SetReadTimeout(min(100*time.Millisecond, left)); err != nil {
			return nil, false, err
		}
		n, err := p.Read(buf)
		if err != nil {
			return nil, false, fmt.Errorf("read serial device %s: %w", s.path, err)
		}
		got = append(got, buf[:n]...)
		var good bool
		if off, good, bad = frameCheck(&sp, &t, got, off, bad); good {
			return got, true, nil
		}
		if m.Bits == 8 {
			for _, c := range buf[:n] {
				got7 = append(got7, c&0x7f)
			}
			if off7, good, _ = frameCheck(&sp7, &t, got7, off7, 0); good {
				return nil, false, nil
			}
		}
		if bad >= serialBadFrames || len(got) >= serialBadBytes {
			return nil, false, nil
		}
	}
}

// frameCheck frames b from off on and reports whether a good telegram is
// among the frames, and how many bad ones there were, added to bad.
func frameCheck(sp *parser.Splitter, t *parser.Telegram, b []byte, off, bad int) (int, bool, int) {
	for off < len(b) {
		adv, tok, _ := sp.Split(b[off:], false)
		if adv == 0 && tok == nil {
			break
		}
		off += adv
		if tok == nil {
			continue
		}
		if goodTelegram(t, tok) {
			return off, true, bad
		}
		bad++
	}
	return off, false, bad
}

// goodTelegram reports whether frame is a telegram the settings must have
// read right: its CRC matched, or it has none (DSMR 2.2/3) and parsed
// without an error into at least one register or a meter id.
func goodTelegram(t *parser.Telegram, frame []byte) bool {
	err := parser.ParseInto(t, frame, time.UTC)
	if t.CRC == parser.CRCOK {
		return err == nil || errors.Is(err, parser.ErrSyntax)
	}
	if err != nil {
		return false
	}
	if len(t.MeterID) > 0 {
		return true
	}
	for f := range parser.NumP1Fields {
		if t.Has(parser.Field(f)) {
			return true
		}
	}
	return false
}

// serialConn is an open serial device as a Conn: go.bug.st/serial has a
// read timeout, not a deadline, and says "timeout" with 0 bytes and no
// error, so Read turns the deadline into timeouts and their end into
// os.ErrDeadlineExceeded.
type serialConn struct {
	port     serial.Port
	path     string
	prefix   []byte // read while the mode was being found; delivered first
	deadline time.Time
}

// SetReadDeadline sets when a Read waiting for bytes gives up.
func (c *serialConn) SetReadDeadline(t time.Time) error {
	c.deadline = t
	return nil
}

// Read returns the next bytes. It returns os.ErrDeadlineExceeded once the
// deadline passes with none, and an error naming the device when it is
// gone (unplugged) or closed.
func (c *serialConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	for {
		timeout := serial.NoTimeout
		if !c.deadline.IsZero() {
			if timeout = time.Until(c.deadline); timeout <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
		}
		if err := c.port.SetReadTimeout(timeout); err != nil {
			return 0, err
		}
		n, err := c.port.Read(b)
		switch {
		case err != nil:
			var pe *serial.PortError
			if errors.As(err, &pe) && pe.Code() == serial.PortClosed {
				// Also what the library says when the device vanished.
				return n, fmt.Errorf("serial device %s closed or gone (unplugged?): %w", c.path, io.EOF)
			}
			return n, fmt.Errorf("read serial device %s (unplugged?): %w", c.path, err)
		case n > 0:
			return n, nil
		}
	}
}

// Close closes the device, ending a Read in progress.
func (c *serialConn) Close() error { return c.port.Close() }
