package ingest

import (
	"time"

	"github.com/p1logger/p1logger/internal/calendar"
	"github.com/p1logger/p1logger/internal/lineproto"
	"github.com/p1logger/p1logger/parser"
)

// encoder turns telegrams into line protocol (DESIGN.md: p1, p1_mbus,
// p1_peak, p1_gateway). It reuses its buffers: once warm, encoding a telegram
// allocates nothing.
type encoder struct {
	b   lineproto.Builder
	num []byte // scratch for decimal and time text
	loc *time.Location
}

// channelTags are the channel tag values, so that tagging allocates nothing.
var channelTags = [...]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

func channelTag(c uint8) string {
	if int(c) < len(channelTags) {
		return channelTags[c]
	}
	return "?"
}

// p1 appends the p1 line of t, received at at, and reports whether it had any
// field (a telegram without registers yields no line).
func (e *encoder) p1(gateway string, t *parser.Telegram, at time.Time) bool {
	has := false
	for f := parser.Field(0); int(f) < parser.NumP1Fields; f++ {
		if t.Has(f) {
			has = true
			break
		}
	}
	if !has {
		return false
	}
	b := &e.b
	b.Measurement("p1")
	b.Tag("gateway", gateway)
	// string(t.MeterID) does not escape Tag, so ids up to 32 bytes (all
	// real ones) are converted on the stack.
	b.Tag("meter_id", string(t.MeterID))
	for f := parser.Field(0); int(f) < parser.NumP1Fields; f++ {
		d, ok := t.Get(f)
		if !ok {
			continue
		}
		if f.IsInteger() {
			b.FieldInt(f.Name(), integer(d))
			continue
		}
		e.num = d.AppendText(e.num[:0])
		b.FieldDecimalText(f.Name(), e.num)
	}
	b.End(at)
	return true
}

// integer returns d truncated to an integer (integer registers are sent
// without decimals; this only guards against a meter that adds some).
func integer(d parser.Decimal) int64 {
	v := d.Int
	for s := d.Scale; s > 0; s-- {
		v /= 10
	}
	return v
}

// mbus appends a p1_mbus line for each device capture not written before:
// devices without a value or a capture time are skipped, since the point's
// time is the capture time.
func (e *encoder) mbus(gateway string, t *parser.Telegram, w *writtenState) int {
	n := 0
	for i := range t.MBus {
		m := &t.MBus[i]
		if !m.HasValue || m.Time.IsZero() {
			continue
		}
		if !w.mbusNew(m.Channel, m.Time.UnixNano()) {
			continue
		}
		b := &e.b
		b.Measurement("p1_mbus")
		b.Tag("channel", channelTag(m.Channel))
		b.Tag("gateway", gateway)
		b.Tag("kind", m.Kind.String())
		b.Tag("meter_id", string(m.ID))
		b.Tag("unit", string(m.Unit))
		e.num = m.Value.AppendText(e.num[:0])
		b.FieldDecimalText("value", e.num)
		b.End(m.Time)
		n++
	}
	return n
}

// peaks appends a p1_peak line for each monthly peak not written before (or
// changed since): the history 0-0:98.1.0 first, then the current month from
// 1-0:1.6.0, so that the current month wins if a meter sends both.
func (e *encoder) peaks(gateway string, t *parser.Telegram, w *writtenState) int {
	n := 0
	for i := range t.Peaks {
		p := &t.Peaks[i]
		if p.At.IsZero() { // no peak that month
			continue
		}
		if e.peak(gateway, p.Month, p.At, p.Value, w) {
			n++
		}
	}
	// The current month's peak needs its time to know its month; a meter
	// that sends 1-0:1.6.0 without one gives nothing to place.
	if v, ok := t.Get(parser.DemandMaxMonth); ok && !t.DemandMaxAt.IsZero() {
		month := calendar.MonthStart(t.DemandMaxAt, e.loc)
		if e.peak(gateway, month, t.DemandMaxAt, v, w) {
			n++
		}
	}
	return n
}

func (e *encoder) peak(gateway string, month, at time.Time, v parser.Decimal, w *writtenState) bool {
	if !w.peakNew(month.UnixNano(), at.UnixNano(), v) {
		return false
	}
	b := &e.b
	b.Measurement("p1_peak")
	b.Tag("gateway", gateway)
	e.num = v.AppendText(e.num[:0])
	b.FieldDecimalText("peak_w", e.num)
	e.num = at.In(e.loc).AppendFormat(e.num[:0], time.RFC3339)
	b.FieldString("peak_at", string(e.num))
	b.End(month)
	return true
}

// health appends the p1_gateway line of s at now.
func (e *encoder) health(s *GatewayStats, now time.Time) {
	b := &e.b
	b.Measurement("p1_gateway")
	b.Tag("gateway", s.Name)
	b.FieldBool("connected", s.Connected)
	b.FieldInt("telegrams", s.Telegrams)
	b.FieldInt("crc_errors", s.CRCErrors)
	b.FieldInt("parse_errors", s.ParseErrors)
	b.FieldInt("reconnects", s.Reconnects)
	b.End(now)
}
