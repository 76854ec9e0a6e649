package sim

import (
	"time"

	"github.com/p1logger/p1logger/parser"
)

// Reading is what one rendered telegram says, in the form parser.Parse
// reports it: registers as exact [parser.Decimal]s with units normalised
// (kW to W, kWh kept), times resolved in the meter's location. A test can
// compare a decoded telegram, or what reached InfluxDB, with it field by field.
type Reading struct {
	Profile Profile
	Header  string    // identification line without "/"
	Version string    // 0-0:96.1.4 or 1-3:0.2.8; empty for nl22
	MeterID string    // equipment identifier as text (the telegram carries it hex-encoded)
	Time    time.Time // meter clock 0-0:1.0.0, whole seconds; zero for nl22, which sends no clock
	CRC     bool      // whether the telegram ends with a CRC

	DemandMaxAt time.Time             // start of the quarter-hour of 1-0:1.6.0; Belgian profiles only
	Peaks       []parser.MonthPeak    // 0-0:98.1.0, oldest first; shared, never modified
	FailureLog  []parser.PowerFailure // 1-0:99.97.0 (nl5); shared, never modified

	Gas   MBusReading // M-Bus channel 1
	Water MBusReading // M-Bus channel 2; Channel is 0 when the meter has no water meter

	regs [parser.NumFields]parser.Decimal
	set  uint64
}

// MBusReading is the last capture of one M-Bus device.
type MBusReading struct {
	Channel uint8 // 1–4; 0 means no device
	Type    int   // M-Bus device type (3 gas, 7 water)
	Kind    parser.MBusKind
	ID      string         // equipment id as text
	Value   parser.Decimal // in Unit
	Unit    string         // "m3"
	Time    time.Time      // capture time
}

// Get returns register f and whether the telegram carries it. Derived
// registers (Taken, Injected, PowerNet) are present exactly when parser.Parse
// derives them.
func (r *Reading) Get(f parser.Field) (parser.Decimal, bool) {
	if int(f) >= parser.NumFields || r.set&(1<<f) == 0 {
		return parser.Decimal{}, false
	}
	return r.regs[f], true
}

// Fields returns the registers the telegram carries, in Field order.
func (r *Reading) Fields() []parser.Field {
	var fs []parser.Field
	for f := range parser.Field(parser.NumFields) {
		if r.set&(1<<f) != 0 {
			fs = append(fs, f)
		}
	}
	return fs
}

func (r *Reading) put(f parser.Field, v int64, scale uint8) {
	r.regs[f] = parser.Decimal{Int: v, Scale: scale}
	r.set |= 1 << f
}

// Sent records one telegram as it went out: the values it carries, the exact
// bytes, and what faults did to it.
type Sent struct {
	Reading

	Conn   uint64    // server connection number, 1-based in accept order; 0 from Meter.Render
	Remote string    // the client's address as the server sees it (the client's LocalAddr)
	Seq    uint64    // telegrams on this connection (or from this meter), this one included
	At     time.Time // the clock reading the telegram was rendered for

	// Frame is the telegram, after a BadCRC corruption if any. It is never
	// modified after the record is handed out.
	Frame   []byte
	Written int    // bytes of Frame written; less than len(Frame) when Cut or on a write error
	Garbage []byte // noise written just before Frame
	BadCRC  bool   // a digit was changed after the CRC was computed
	FlipAt  int    // index in Frame of the changed byte when BadCRC; -1 otherwise
	Cut     bool   // the frame was cut off after Written bytes on purpose
	Drip    bool   // the frame was written one byte at a time
	Err     error  // the write error, if the connection failed
}

// Corrupt reports whether the client cannot have received this telegram
// intact: a changed digit, a cut, or a failed write.
func (s *Sent) Corrupt() bool { return s.BadCRC || s.Written < len(s.Frame) }
