package parser

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// CRCState tells how a telegram's integrity was established.
type CRCState uint8

const (
	// CRCNone: the telegram carries no checksum (DSMR 2.2 and 3, some German
	// and gateway-converted meters). Only the framing vouches for it.
	CRCNone CRCState = iota
	// CRCOK: the CRC-16 after "!" matched the bytes.
	CRCOK
)

// String returns "none" or "ok", the values "p1logger decode" prints.
func (s CRCState) String() string {
	if s == CRCOK {
		return "ok"
	}
	return "none"
}

// OBIS is an object identifier A-B:C.D.E*F. F is 255 when the meter leaves
// it out, as almost all do.
type OBIS [6]uint8

// String formats the code as meters print it, "1-0:1.8.1", with "*F" only
// when F is not 255.
func (o OBIS) String() string { return string(o.AppendText(nil)) }

// AppendText appends the code's text to b.
func (o OBIS) AppendText(b []byte) []byte {
	b = strconv.AppendUint(b, uint64(o[0]), 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64(o[1]), 10)
	b = append(b, ':')
	b = strconv.AppendUint(b, uint64(o[2]), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(o[3]), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(o[4]), 10)
	if o[5] != 255 {
		b = append(b, '*')
		b = strconv.AppendUint(b, uint64(o[5]), 10)
	}
	return b
}

// MBusKind is what an M-Bus device measures, derived from its device type
// (0-n:24.1.0) and, when that is missing or unusual, its unit.
type MBusKind uint8

// M-Bus device kinds; their String values are the "kind" tag of p1_mbus.
const (
	KindOther MBusKind = iota
	KindGas
	KindWater
	KindHeat
)

// String returns "gas", "water", "heat" or "other".
func (k MBusKind) String() string {
	switch k {
	case KindGas:
		return "gas"
	case KindWater:
		return "water"
	case KindHeat:
		return "heat"
	}
	return "other"
}

// MBus is one device on the meter's M-Bus (gas, water, heat meters).
type MBus struct {
	Channel  uint8     // 1–4, the B of 0-B:24.2.1
	Type     int       // M-Bus device type from 0-n:24.1.0; -1 when not sent or empty
	Kind     MBusKind  // derived from Type and Unit
	ID       []byte    // equipment id 0-n:96.1.0 or 0-n:96.1.1, hex-decoded when it is hex ASCII
	EAN      []byte    // 0-n:96.1.2 (Belgian EAN-like id), hex-decoded like ID
	Value    Decimal   // the last capture, in Unit
	HasValue bool      // false when the device sent no reading
	Unit     []byte    // as sent ("m3", "GJ"); empty when the meter sent none
	Time     time.Time // capture time; zero when absent or a "not set" marker
	Valve    int       // 0-n:24.4.0 valve position; -1 when not sent
	Breaker  int       // 0-n:96.3.10 breaker state; -1 when not sent
}

// MonthPeak is one entry of the Belgian capacity-tariff history 0-0:98.1.0:
// the highest quarter-hour average demand of a month.
type MonthPeak struct {
	// Month is the local start of the month the peak belongs to. The meter
	// stamps each entry with the midnight that closed the month (the 1st of
	// the next month); Month is one calendar month before that stamp, as
	// internal/calendar defines a month's start (the jump, where the
	// clock skips midnight).
	Month time.Time
	At    time.Time // when the peak quarter-hour happened; zero when the month had none
	Value Decimal   // in W
}

// PowerFailure is one entry of the long power failure log 1-0:99.97.0.
type PowerFailure struct {
	End      time.Time // when power came back; zero for the meters' placeholder entries
	Duration time.Duration
	// NoData marks an entry the meter announced but sent with empty groups
	// ("1-0:99.97.0(1)()()()"): End and Duration are zero and mean nothing.
	NoData bool
}

// Object is a line the parser keeps without interpreting it: its code and the
// raw text after the code, parentheses included ("(000014.422*kvarh)").
type Object struct {
	OBIS OBIS
	Raw  []byte
}

// Telegram is one decoded P1 telegram. Byte slices in it point into storage
// the Telegram owns and are valid until the next ParseInto into the same
// Telegram; copy them (or call the String helpers) to keep them longer.
type Telegram struct {
	Header  []byte    // identification line without "/" ("ISK5\2M550T-1012")
	Version []byte    // P1 version: 1-3:0.2.8, or 0-0:96.1.4 on Belgian meters; empty on DSMR 2.2/3
	CRC     CRCState  // whether the checksum was present and matched
	Time    time.Time // 0-0:1.0.0 in the caller's location; zero when absent or the clock is unset
	MeterID []byte    // 0-0:96.1.1, else 0-0:42.0.0, 0-0:96.1.0, 0-0:96.1.255 or 1-0:0.0.0; hex-decoded
	EAN     []byte    // 0-0:96.1.2, hex-decoded

	// DemandMaxAt is when the quarter-hour of DemandMaxMonth (1-0:1.6.0) happened.
	DemandMaxAt time.Time
	Peaks       []MonthPeak    // 0-0:98.1.0, Belgian monthly peaks, oldest first as sent
	FailureLog  []PowerFailure // 1-0:99.97.0
	TextCode    []byte         // 0-0:96.13.1, hex-decoded
	TextMessage []byte         // 0-0:96.13.0, hex-decoded
	MBus        []MBus         // one per channel that sent any 0-n:24.x/96.x line, in order of appearance
	Other       []Object       // every line not interpreted above (an id that lost to a better one is added when it lost)

	values [NumFields]Decimal
	set    uint64 // bit f set when values[f] holds a register

	buf  []byte      // the frame, copied; raw slices point here
	dec  []byte      // hex-decoded texts
	ends []int       // offsets in buf of the line ends ('\n') up to the end line
	lp   *lineParser // reused by every ParseInto into this Telegram
}

// LineErrors returns the lines the last ParseInto could not decode, in
// order: the *SyntaxError values its error joins. It is empty when the
// telegram had none, or failed as a whole (CRC or frame error) before its
// lines were read. The slice is valid until the next ParseInto.
func (t *Telegram) LineErrors() []error {
	if t.lp == nil {
		return nil
	}
	return t.lp.errs
}

// Get returns the register f and whether the telegram carried it.
func (t *Telegram) Get(f Field) (Decimal, bool) {
	if int(f) >= NumFields || t.set&(1<<f) == 0 {
		return Decimal{}, false
	}
	return t.values[f], true
}

// Has reports whether the telegram carried register f.
func (t *Telegram) Has(f Field) bool { return int(f) < NumFields && t.set&(1<<f) != 0 }

// Set stores register f, for builders of telegrams such as tests and the simulator.
func (t *Telegram) Set(f Field, d Decimal) {
	t.values[f] = d
	t.set |= 1 << f
}

// GasMBus returns the first M-Bus device of kind gas that carries a value, or nil.
func (t *Telegram) GasMBus() *MBus {
	for i := range t.MBus {
		if t.MBus[i].Kind == KindGas && t.MBus[i].HasValue {
			return &t.MBus[i]
		}
	}
	return nil
}

// Errors. CRC and frame errors mean nothing in the Telegram can be trusted.
// Syntax errors concern single lines; every other line was decoded.
var (
	// ErrCRC: the checksum after "!" does not match the bytes (see [CRCError]).
	ErrCRC = errors.New("crc mismatch")
	// ErrFrame: the bytes are not one whole telegram (see [FrameError]).
	ErrFrame = errors.New("bad frame")
	// ErrSyntax: a line could not be decoded (see [SyntaxError]).
	ErrSyntax = errors.New("bad line")
)

// CRCError reports a checksum mismatch. errors.Is(err, ErrCRC) holds.
type CRCError struct {
	Sent     uint16 // the CRC printed after "!"
	Computed uint16 // the CRC of the bytes received
}

func (e *CRCError) Error() string {
	return fmt.Sprintf("crc mismatch: telegram says %04X, bytes give %04X", e.Sent, e.Computed)
}

// Is makes errors.Is(err, ErrCRC) true.
func (e *CRCError) Is(target error) bool { return target == ErrCRC }

// FrameError reports bytes that are not a whole telegram: no "/" header, no
// "!" end line (a telegram cut by a reconnect or exceeding MaxTelegramSize),
// or an unreadable checksum field. errors.Is(err, ErrFrame) holds.
type FrameError struct {
	Offset int    // byte offset in the frame where the problem was seen
	Msg    string // what was expected
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("bad frame at byte %d: %s", e.Offset, e.Msg)
}

// Is makes errors.Is(err, ErrFrame) true.
func (e *FrameError) Is(target error) bool { return target == ErrFrame }

// SyntaxError reports one line that could not be decoded. The rest of the
// telegram was decoded; the line is also kept in Telegram.Other.
// errors.Is(err, ErrSyntax) holds.
type SyntaxError struct {
	Line   int    // 1-based line number within the telegram (the header is line 1)
	Offset int    // byte offset of the problem within the frame
	Text   string // the line, shortened to 80 bytes
	Msg    string // what was expected
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("line %d %q at byte %d: %s", e.Line, e.Text, e.Offset, e.Msg)
}

// Is makes errors.Is(err, ErrSyntax) true.
func (e *SyntaxError) Is(target error) bool { return target == ErrSyntax }

// MaxTelegramSize bounds one frame. The longest real telegrams are about
// 2.5 KB (13 months of peak history, long failure logs); 16 KiB leaves room
// for every variant while keeping a garbage stream from holding memory.
const MaxTelegramSize = 16 << 10
