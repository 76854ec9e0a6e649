package parser

import (
	"bytes"
	"encoding/binary"
	"math"
	"time"

	"github.com/p1logger/p1logger/internal/calendar"
)

// timeOnly stores the single timestamp group of o into *dst.
func (p *lineParser) timeOnly(dst *time.Time, o OBIS) bool {
	if !p.one() {
		return false
	}
	tm, ok := p.timestamp(0)
	if !ok {
		return false
	}
	*dst = tm
	return true
}

// timestamp parses group i as YYMMDDhhmmss with an optional S/W flag.
// Meters mark "no time" with an all-zero stamp, DSMR's 632525252525 or a
// clock that restarted at 2000 or 1970 (000000000000W, 632525252525W,
// 000101010000W, 700101010000W): those give the zero time and no error. Any
// other stamp that is not a date and time (month 13, hour 99, 30 February)
// is a syntax error, not a silent "no time".
func (p *lineParser) timestamp(i int) (time.Time, bool) {
	tm, _, ok := p.timestampWall(i)
	return tm, ok
}

// timestampWall is timestamp that also reports whether the wall clock of
// the time it returns is the one the text names (see [zoneCache.parse]).
func (p *lineParser) timestampWall(i int) (time.Time, bool, bool) {
	g := p.group(i)
	tm, asSent, fault := p.zones.parse(g, p.loc)
	switch fault {
	case tsOK:
		return tm, asSent, true
	case tsSyntax:
		p.fail(p.g[i][0], "want a timestamp YYMMDDhhmmss followed by S or W, got %q", g)
	default:
		p.fail(p.g[i][0], "want a timestamp YYMMDDhhmmssX, got %q: %s", g, tsFaults[fault])
	}
	return tm, asSent, false
}

// tsFault is what is wrong with a timestamp's text.
type tsFault uint8

const (
	tsOK     tsFault = iota
	tsSyntax         // not 12 digits and an optional S or W
	tsMonth
	tsDay
	tsHour
	tsMinute
	tsSecond
)

var tsFaults = [...]string{
	tsMonth:  "the month is not 01-12",
	tsDay:    "the month has no such day",
	tsHour:   "the hour is not 00-23",
	tsMinute: "the minute is not 00-59",
	tsSecond: "the second is not 00-59",
}

// parseTimestamp reads "YYMMDDhhmmss" plus an optional S/W flag as wall
// clock time in loc. It returns a zero time and true for the meters' "not
// set" markers, and false when g is not a timestamp.
func parseTimestamp(g []byte, loc *time.Location) (time.Time, bool) {
	var z zoneCache
	return z.parseTimestamp(g, loc)
}

// zoneCache remembers a few stretches of time over which a location keeps
// one UTC offset. A telegram carries up to 40 timestamps (13 months of peak
// history, the failure log), and time.Date searches the zone's transitions
// for each one; with the stretch known, a wall-clock time inside it converts
// with arithmetic alone.
type zoneCache struct {
	spans [4]zoneSpan
	next  int
}

type zoneSpan struct {
	loc        *time.Location
	start, end int64 // unix seconds, [start, end)
	off        int64 // seconds east of UTC
}

func (z *zoneCache) parseTimestamp(g []byte, loc *time.Location) (time.Time, bool) {
	tm, _, fault := z.parse(g, loc)
	return tm, fault == tsOK
}

// parse is parseTimestamp, with the reason when g is not a timestamp.
// asSent reports that tm, in loc, is known to show the wall clock g names:
// true for every time the zone cache converted, false when time.Date did,
// as it moves a clock time that does not exist (the spring-forward hour); a
// caller that needs the date then asks tm.
func (z *zoneCache) parse(g []byte, loc *time.Location) (tm time.Time, asSent bool, fault tsFault) {
	if len(g) != 12 && len(g) != 13 {
		return time.Time{}, false, tsSyntax
	}
	// YYMMDDhh, then mmss.
	date, ok1 := digitPairs(binary.LittleEndian.Uint64(g))
	clock, ok2 := digitPairs(uint64(binary.LittleEndian.Uint32(g[8:])) | 0x3030303000000000) // mmss, then "0000"
	if !ok1 || !ok2 {
		return time.Time{}, false, tsSyntax
	}
	flag := byte(0)
	if len(g) == 13 {
		flag = g[12] | 0x20 // lower case
		if flag != 's' && flag != 'w' {
			return time.Time{}, false, tsSyntax
		}
	}
	if date == 0 && clock == 0 || string(g[:12]) == "632525252525" {
		return time.Time{}, false, tsOK // an unset clock: a "not set" marker, not an error
	}
	yy, mo, d, h := int(date&0xff), int(date>>16&0xff), int(date>>32&0xff), int(date>>48&0xff)
	mi, s := int(clock&0xff), int(clock>>16&0xff)
	switch {
	case mo < 1 || mo > 12:
		return time.Time{}, false, tsMonth
	case d < 1 || d > daysIn(mo, 2000+yy):
		return time.Time{}, false, tsDay
	case h > 23:
		return time.Time{}, false, tsHour
	case mi > 59:
		return time.Time{}, false, tsMinute
	case s > 59:
		return time.Time{}, false, tsSecond
	}
	if (yy == 0 || yy == 70) && mo == 1 && d == 1 {
		return time.Time{}, false, tsOK // a clock restarted from 2000 or 1970, or an empty log entry
	}
	wall := days2000(yy, mo, d)*86400 + int64(h*3600+mi*60+s)
	if t, ok := z.fast(wall, loc); ok {
		return t, true, tsOK
	}
	t := resolve(time.Date(2000+yy, time.Month(mo), d, h, mi, s, 0, loc), flag)
	z.learn(t, loc)
	return t, false, tsOK
}

// digitPairs reads eight ASCII digits packed little-endian in w (the first
// digit in the low byte) as four two-digit numbers, one in the low byte of
// each 16-bit lane. ok is false when a byte is not a digit.
func digitPairs(w uint64) (pairs uint64, ok bool) {
	const (
		highNibbles = 0xf0f0f0f0f0f0f0f0
		lowNibbles  = 0x0f0f0f0f0f0f0f0f
	)
	// '0'-'9' are 0x30-0x39: high nibble 3, and a low nibble that stays
	// below 16 when 6 is added.
	if w&highNibbles != 0x3030303030303030 || (w&lowNibbles+0x0606060606060606)&highNibbles != 0 {
		return 0, false
	}
	v := w & lowNibbles
	// Each byte becomes ten times itself plus the next digit: no lane
	// exceeds 99, so nothing carries into its neighbour.
	return (v*10 + v>>8) & 0x00ff00ff00ff00ff, true
}

// days2000 is daysSinceEpoch(2000+yy, m, d) for yy 0-99, where every fourth
// year, 2000 included, is a leap year.
func days2000(yy, m, d int) int64 {
	n := 10957 + 365*yy + (yy+3)/4 + int(daysBefore[m]) + d - 1 // 10957: 1970 to 2000
	if m > 2 && yy%4 == 0 {
		n++
	}
	return int64(n)
}

// daysBefore[m] counts the days of a common year before month m (1-12).
var daysBefore = [13]uint16{0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334}

// fast converts the wall clock wall (seconds since 1970 as if in UTC) to an
// instant in loc, when a remembered stretch gives the answer time.Date and
// resolve would give. That holds when the instant wall minus the stretch's
// offset lies at least spanMargin inside the stretch: no other offset of
// the zone can then name the same wall clock (no zone's offset changes by
// more than a day), so the time is neither repeated nor skipped and the
// S/W flag has nothing to choose.
func (z *zoneCache) fast(wall int64, loc *time.Location) (time.Time, bool) {
	for i := range z.spans {
		sp := &z.spans[i]
		if sp.loc != loc {
			continue
		}
		u := wall - sp.off
		if u-spanMargin >= sp.start && u+spanMargin < sp.end {
			return time.Unix(u, 0).In(loc), true
		}
	}
	return time.Time{}, false
}

// spanMargin is more than the largest change of a zone's UTC offset in
// tzdata (Pacific/Apia skipped 30 December 2011: 24 hours).
const spanMargin = 26 * 3600

// monthBefore returns the start of the month before y-m in loc, as
// [calendar.Midnight] defines it. The zone cache answers when the month's
// first midnight lies well inside a remembered stretch of one offset (it
// then exists exactly once, and is the wall clock minus the offset); other
// months, near a change of offset, are asked of calendar.
func (z *zoneCache) monthBefore(y int, m time.Month, loc *time.Location) time.Time {
	if m == time.January {
		y, m = y-1, time.December
	} else {
		m--
	}
	if t, ok := z.fast(daysSinceEpoch(y, int(m), 1)*86400, loc); ok {
		return t
	}
	t := calendar.Midnight(y, m, 1, loc)
	z.learn(t, loc)
	return t
}

// learn remembers the stretch of loc's zone that holds t, unless it is
// remembered already.
func (z *zoneCache) learn(t time.Time, loc *time.Location) {
	start, end := t.ZoneBounds()
	_, off := t.Zone()
	sp := zoneSpan{loc: loc, start: math.MinInt64 / 2, end: math.MaxInt64 / 2, off: int64(off)}
	if !start.IsZero() {
		sp.start = start.Unix()
	}
	if !end.IsZero() {
		sp.end = end.Unix()
	}
	for _, have := range z.spans {
		if have == sp {
			return
		}
	}
	z.spans[z.next] = sp
	z.next = (z.next + 1) % len(z.spans)
}

// daysSinceEpoch returns the days from 1970-01-01 to y-m-d in the proleptic
// Gregorian calendar (y ≥ 1).
func daysSinceEpoch(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400                     // [0, 399]
	doy := (153*((m+9)%12)+2)/5 + d - 1    // [0, 365], from March 1st
	doe := yoe*365 + yoe/4 - yoe/100 + doy // [0, 146096]
	return int64(era*146097+doe) - 719468
}

func daysIn(m, y int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// resolve picks, for a wall-clock time that occurs twice (the autumn hour),
// the instant the meter's flag names: 's' for summer time, 'w' for winter
// time. Summer is the larger UTC offset of the two, winter the smaller. That
// is not always what time.Time.IsDST says: Go's tzdata models Irish winter
// time (GMT, Europe/Dublin) as a negative daylight saving from IST, so
// IsDST is true in winter there. Without a flag, or for a time that occurs
// once, the wall clock decides alone.
func resolve(t time.Time, flag byte) time.Time {
	if flag == 0 {
		return t
	}
	_, off := t.Zone()
	start, end := t.ZoneBounds()
	best, bestOff := t, off
	// The same wall clock in the zone period before t's, and in the one after.
	for _, at := range [2]time.Time{start.Add(-time.Second), end} {
		if at.Year() <= 1 { // no transition that side (a zero ZoneBounds)
			continue
		}
		_, o := at.Zone()
		if o == off {
			continue
		}
		c := t.Add(time.Duration(off-o) * time.Second)
		if _, co := c.Zone(); co != o {
			continue // that wall clock does not occur in the other period
		}
		if flag == 's' && o > bestOff || flag == 'w' && o < bestOff {
			best, bestOff = c, o
		}
	}
	return best
}

// decodeText returns raw decoded from hex when it is hex-encoded text
// (DSMR encodes ids and messages as hex ASCII), else raw itself. Ids must
// decode to printable ASCII; messages may also hold tabs and line breaks.
func (p *lineParser) decodeText(raw []byte, message bool) []byte {
	if len(raw) == 0 || len(raw)%2 != 0 {
		return raw
	}
	// Decoded straight into t.dec, and taken back when the text turns out
	// not to be hex or not printable.
	start := len(p.t.dec)
	for i := 0; i < len(raw); i += 2 {
		hi, lo := hexVal(raw[i]), hexVal(raw[i+1])
		c := byte(hi<<4 | lo)
		if hi < 0 || lo < 0 || (c < 0x20 || c > 0x7e) && !(message && (c == '\t' || c == '\n' || c == '\r')) {
			p.t.dec = p.t.dec[:start]
			return raw
		}
		p.t.dec = append(p.t.dec, c)
	}
	out := p.t.dec[start:len(p.t.dec):len(p.t.dec)]
	if !message {
		// Ids are padded to a fixed width by some meters (Kamstrup: " KA6U…").
		out = bytes.TrimSpace(out)
	}
	return out
}

// ident decodes group i as an identifier (meter id, EAN) and checks that it
// is printable ASCII, as every meter's is. Ids and units become InfluxDB
// tags, where a control character or a byte that is not UTF-8 cannot stay
// as sent: decode would print one id and the daemon write another, so such
// a line is an error instead, naming the first byte that does not fit.
func (p *lineParser) ident(i int) ([]byte, bool) {
	id := p.decodeText(p.group(i), false)
	if !p.printable(i, "an identifier", id) {
		return nil, false
	}
	return id, true
}

// printable checks that text, read from group i, is printable ASCII, and
// records a syntax error naming what it is when it is not.
func (p *lineParser) printable(i int, what string, text []byte) bool {
	if bad := firstUnprintable(text); bad >= 0 {
		p.fail(p.g[i][0], "want %s in printable ASCII, got byte %#02x in %q", what, text[bad], p.group(i))
		return false
	}
	return true
}

// demandMax: 1-0:1.6.0(ts)(value*kW), this month's highest quarter-hour.
func (p *lineParser) demandMax(o OBIS) bool {
	if p.ng != 2 {
		p.fail(p.g[0][0]-1, "want (timestamp)(value*kW), got %d groups", p.ng)
		return false
	}
	at, ok := p.timestamp(0)
	if !ok || !p.setValue(DemandMaxMonth, unitW, 1) {
		return false
	}
	p.t.DemandMaxAt = at
	return true
}

// peaks: the Belgian 0-0:98.1.0(N)(1-0:1.6.0)(1-0:1.6.0)(stamp)(at)(value*kW)…
// Other meters (Hungary) use 98.1.0 for a billing snapshot of another shape;
// that stays in Other.
//
// A meter with no past month yet (installed this month) sends N = 0, with or
// without one empty group after the two column codes:
// "(0)(1-0:1.6.0)(1-0:1.6.0)()" is what Fluvius meters print for the empty
// profile, "(0)(1-0:1.6.0)(1-0:1.6.0)" what the e-MUCS grammar gives. Both
// are an empty history, not a line error.
func (p *lineParser) peaks(o OBIS) bool {
	if p.ng < 3 || !allDigits(p.group(0)) || bytes.IndexByte(p.group(1), ':') < 0 {
		return false
	}
	n, ok := parseDecimal(p.group(0))
	if !ok {
		// More than 18 digits: not "0", whatever its groups say.
		p.fail(p.g[0][0], "peak history announces %q entries, want at most %d digits", p.group(0), MaxDigits)
		return false
	}
	if n.Int == 0 && p.ng == 4 && len(p.group(3)) == 0 {
		return true
	}
	if p.ng != 3+3*int(n.Int) {
		p.fail(p.g[0][0], "peak history announces %d entries but has %d groups (want %d)", n.Int, p.ng, 3+3*n.Int)
		return false
	}
	start := len(p.t.Peaks)
	for i := 3; i < p.ng; i += 3 {
		stamp, asSent, ok1 := p.timestampWall(i)
		at, ok2 := p.timestamp(i + 1)
		if !ok1 || !ok2 {
			p.t.Peaks = p.t.Peaks[:start]
			return false
		}
		d, ok3 := p.value(i+2, unitW, demandLimit)
		if !ok3 {
			p.t.Peaks = p.t.Peaks[:start]
			return false
		}
		var month time.Time
		if !stamp.IsZero() {
			// The stamp's date as sent, unless time.Date moved it.
			g := p.group(i)
			y, m := 2000+int(g[0]-'0')*10+int(g[1]-'0'), time.Month(int(g[2]-'0')*10+int(g[3]-'0'))
			if !asSent {
				y, m, _ = stamp.Date()
			}
			month = p.zones.monthBefore(y, m, p.loc)
		}
		p.t.Peaks = append(p.t.Peaks, MonthPeak{Month: month, At: at, Value: d})
	}
	return true
}

// failureLog: 1-0:99.97.0(N)(0-0:96.7.19)(end)(duration*s)…
//
// Meters without a failure yet send "1-0:99.97.0()" (Iskra AM550), an empty
// log. Some send a count with empty groups, "1-0:99.97.0(1)()()()": the
// entry is there but holds no data; it is kept as a PowerFailure with
// NoData set, so the count stays visible. An entry with only one of its two
// groups empty is still a line error.
func (p *lineParser) failureLog(o OBIS) bool {
	if p.ng == 1 && len(p.group(0)) == 0 {
		return true
	}
	if p.ng < 2 || !allDigits(p.group(0)) {
		p.fail(p.g[0][0], "want (count)(0-0:96.7.19) at the start of the power failure log")
		return false
	}
	n, ok := parseDecimal(p.group(0))
	if !ok {
		p.fail(p.g[0][0], "failure log announces %q entries, want at most %d digits", p.group(0), MaxDigits)
		return false
	}
	if p.ng != 2+2*int(n.Int) {
		p.fail(p.g[0][0], "failure log announces %d entries but has %d groups (want %d)", n.Int, p.ng, 2+2*n.Int)
		return false
	}
	start := len(p.t.FailureLog)
	for i := 2; i < p.ng; i += 2 {
		if len(p.group(i)) == 0 && len(p.group(i+1)) == 0 {
			p.t.FailureLog = append(p.t.FailureLog, PowerFailure{NoData: true})
			continue
		}
		end, ok := p.timestamp(i)
		d, unit, ok2 := splitValue(p.group(i + 1))
		if !ok {
			p.t.FailureLog = p.t.FailureLog[:start]
			return false
		}
		// Some meters (MCS) leave the unit out; seconds is the only one the
		// standard allows.
		// A time.Duration holds 292 years: more seconds would wrap to a
		// negative duration (ten digits are sent, 9999999999 is 317 years).
		if !ok2 || d.Scale != 0 || d.Int < 0 || d.Int > maxFailureSeconds || (len(unit) > 0 && string(unit) != "s") {
			p.fail(p.g[i+1][0], "want a duration in whole seconds, at most %d, got %q", maxFailureSeconds, p.group(i+1))
			p.t.FailureLog = p.t.FailureLog[:start]
			return false
		}
		p.t.FailureLog = append(p.t.FailureLog, PowerFailure{End: end, Duration: time.Duration(d.Int) * time.Second})
	}
	return true
}

// maxFailureSeconds is the longest power failure a time.Duration holds.
const maxFailureSeconds = int64(math.MaxInt64 / time.Second)

func allDigits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// mbusDev returns the device on channel ch, adding it on first sight.
//
// Not inlined: each of mbus's seven calls would otherwise reserve its own
// MBus on the stack, 1.3 KB of frame on every goroutine that decodes.
//
//go:noinline
func (p *lineParser) mbusDev(ch uint8) *MBus {
	for i := range p.t.MBus {
		if p.t.MBus[i].Channel == ch {
			return &p.t.MBus[i]
		}
	}
	p.t.MBus = append(p.t.MBus, MBus{Channel: ch, Type: -1, Valve: -1, Breaker: -1})
	return &p.t.MBus[len(p.t.MBus)-1]
}

// cde holds the C, D and E groups of an M-Bus object's code.
type cde [3]uint8

// mbus interprets 0-n:24.x.x and 0-n:96.x.x objects of M-Bus channel n. A
// line that decodes puts its channel in t.MBus, whatever it carries (see
// [lineParser.finish]); a line that does not is a syntax error, kept in
// Other, and adds no device.
func (p *lineParser) mbus(o OBIS) bool {
	ch := o[1]
	switch (cde{o[2], o[3], o[4]}) {
	case cde{24, 1, 0}: // device type
		if !p.one() {
			return false
		}
		g := p.group(0)
		if len(g) == 0 {
			p.mbusDev(ch)
			return true
		}
		d, ok := parseDecimal(g)
		if !ok || d.Scale != 0 || d.Int < 0 || d.Int > 255 {
			p.fail(p.g[0][0], "want an M-Bus device type 0-255, got %q", g)
			return false
		}
		m := p.mbusDev(ch)
		m.Type = int(d.Int)
		m.Kind = mbusKind(m.Type, m.Unit)
	case cde{96, 1, 0}, cde{96, 1, 1}: // equipment id
		if !p.one() {
			return false
		}
		id, ok := p.ident(0)
		if !ok {
			return false
		}
		p.mbusDev(ch).ID = id
	case cde{96, 1, 2}:
		if !p.one() {
			return false
		}
		ean, ok := p.ident(0)
		if !ok {
			return false
		}
		p.mbusDev(ch).EAN = ean
	case cde{24, 2, 1}, cde{24, 2, 3}, cde{24, 2, 0}: // (capture time)(value*unit)
		var ti, vi int
		switch p.ng {
		case 1:
			ti, vi = -1, 0
		case 2:
			ti, vi = 0, 1
		default:
			p.fail(p.g[0][0]-1, "want (capture time)(value*unit), got %d groups", p.ng)
			return false
		}
		return p.mbusReading(ch, ti, vi)
	case cde{24, 3, 0}: // DSMR 2.2/3: (ts)(00)(60)(1)(0-n:24.2.1)(unit), value on the next line
		if p.ng != 6 && p.ng != 7 {
			p.fail(p.g[0][0]-1, "want (time)(status)(period)(count)(code)(unit), got %d groups", p.ng)
			return false
		}
		tm, ok := p.timestamp(0)
		if !ok {
			return false
		}
		if p.ng == 7 {
			return p.mbusReading(ch, 0, 6)
		}
		m := p.mbusDev(ch)
		m.Time = tm
		m.Unit = p.group(5)
		m.Kind = mbusKind(m.Type, m.Unit)
		for i := range p.t.MBus {
			if p.t.MBus[i].Channel == ch {
				p.pending = i
			}
		}
	case cde{24, 4, 0}: // valve
		v, ok := p.mbusInt()
		if ok {
			p.mbusDev(ch).Valve = v
		}
		return ok
	case cde{96, 3, 10}: // breaker
		v, ok := p.mbusInt()
		if ok {
			p.mbusDev(ch).Breaker = v
		}
		return ok
	default:
		return false
	}
	return true
}

// mbusReading stores the capture time in group ti (none when ti < 0) and
// the value*unit in group vi as channel ch's reading. For a 0-n:24.3.0 line
// with the value inline (vi 6), the unit is group 5.
func (p *lineParser) mbusReading(ch uint8, ti, vi int) bool {
	var tm time.Time
	if ti >= 0 {
		var ok bool
		if tm, ok = p.timestamp(ti); !ok {
			return false
		}
	}
	d, unit, ok := splitValue(p.group(vi))
	if !ok {
		p.fail(p.g[vi][0], "want a reading value*unit, got %q", p.group(vi))
		return false
	}
	if d, ok = bounded(d, mbusLimit, true); !ok {
		p.fail(p.g[vi][0], "want %s with at most %d digits after the point, got %q", mbusLimit.text, maxScale, p.group(vi))
		return false
	}
	if !p.printable(vi, "a unit", unit) || vi == 6 && !p.printable(5, "a unit", p.group(5)) {
		return false
	}
	m := p.mbusDev(ch)
	if ti >= 0 {
		m.Time = tm
	}
	if vi == 6 {
		m.Unit = p.group(5)
	}
	m.Value, m.HasValue = d, true
	if len(unit) > 0 || (ti >= 0 && vi != 6) {
		m.Unit = unit
	}
	m.Kind = mbusKind(m.Type, m.Unit)
	return true
}

// mbusInt reads the line's one group as an integer.
func (p *lineParser) mbusInt() (int, bool) {
	if !p.one() {
		return 0, false
	}
	d, ok := parseDecimal(p.group(0))
	if !ok || d.Scale != 0 {
		p.fail(p.g[0][0], "want an integer, got %q", p.group(0))
		return 0, false
	}
	return int(d.Int), true
}

// mbusKind maps the M-Bus device type (EN 13757-3 medium, printed in
// decimal) to a kind; an unknown type with an energy unit is a heat meter.
func mbusKind(typ int, unit []byte) MBusKind {
	switch typ {
	case 3:
		return KindGas
	case 6, 7, 21, 22, 23: // warm, cold, hot, dual water
		return KindWater
	case 4, 5, 10, 11, 12, 13: // heat, steam, cooling and heat/cooling meters
		return KindHeat
	}
	switch string(unit) {
	case "GJ", "MJ", "kWh", "MWh":
		return KindHeat
	case "m3":
		// No device type was sent (trimmed or odd telegrams): on a P1 port
		// a volume in m3 is, all but always, the gas meter.
		if typ < 0 {
			return KindGas
		}
	}
	return KindOther
}
