package parser

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"time"
)

// Parse decodes one telegram (as framed by [Splitter]: "/" … "!CRC", line end
// optional) into a new Telegram. Meter timestamps are read as wall-clock time
// in loc (nil means time.Local), with their S/W flag choosing between the two
// instants of the repeated autumn hour.
//
// A *CRCError or *FrameError means nothing in the Telegram can be trusted. A
// *SyntaxError (several are joined with errors.Join) concerns single lines; all
// other lines were decoded. See [ParseInto] for the allocation-free form.
func Parse(frame []byte, loc *time.Location) (*Telegram, error) {
	t := new(Telegram)
	err := ParseInto(t, frame, loc)
	return t, err
}

// ParseInto is [Parse] into a caller-owned Telegram. It overwrites every field
// of t and reuses t's storage, so a caller that parses telegram after
// telegram into the same t allocates nothing once t has grown to size.
func ParseInto(t *Telegram, frame []byte, loc *time.Location) error {
	if loc == nil {
		loc = time.Local
	}
	t.reset()
	if cap(t.buf) < len(frame) {
		t.buf = make([]byte, 0, len(frame)+len(frame)/4)
	}
	t.buf = append(t.buf[:0], frame...)
	if cap(t.dec) < len(frame) {
		t.dec = make([]byte, 0, len(frame))
	}
	f := t.buf

	if len(f) == 0 || f[0] != '/' {
		return &FrameError{Offset: 0, Msg: `want "/" at the start of a telegram`}
	}
	// One pass finds the line ends and, with them, the end line: the first
	// line that starts with "!".
	ends, bang := t.ends[:0], -1
	for pos := 0; ; {
		i := bytes.IndexByte(f[pos:], '\n')
		if i < 0 {
			t.ends = ends
			return &FrameError{Offset: len(f), Msg: `no end line "!": telegram cut off`}
		}
		pos += i + 1
		ends = append(ends, pos-1)
		if pos < len(f) && f[pos] == '!' {
			bang = pos
			break
		}
	}
	t.ends = ends
	if err := t.checkCRC(f, bang); err != nil {
		return err
	}
	if t.CRC == CRCNone {
		// The Splitter skips such frames as garbage; a frame that came
		// another way gets the same check.
		if err := shapeError(f[:bang]); err != nil {
			return err
		}
	}

	p := t.lineParser(loc)
	t.Header = trimCR(f[1:ends[0]])
	pos := ends[0] + 1
	for i, end := range ends[1:] {
		p.line(trimCR(f[pos:end]), i+2, pos)
		pos = end + 1
	}
	p.finish()
	t.derive(p.bad)
	if t.CRC == CRCNone && len(t.Version) > 0 {
		return &FrameError{Offset: bang, Msg: fmt.Sprintf("P1 version %q requires a CRC after \"!\"; none was sent", t.Version)}
	}
	if len(p.errs) == 1 {
		return p.errs[0]
	}
	return errors.Join(p.errs...)
}

func (t *Telegram) reset() {
	// Zeroed in place and refilled, rather than assigned a composite
	// literal: that would build a whole Telegram on the stack first.
	peaks, fails, mbus, other := t.Peaks[:0], t.FailureLog[:0], t.MBus[:0], t.Other[:0]
	buf, dec, ends, lp := t.buf[:0], t.dec[:0], t.ends[:0], t.lp
	*t = Telegram{}
	t.Peaks, t.FailureLog, t.MBus, t.Other = peaks, fails, mbus, other
	t.buf, t.dec, t.ends, t.lp = buf, dec, ends, lp
	if lp != nil {
		// A frame error returns before the lines are parsed: the last
		// telegram's line errors must not show through LineErrors.
		lp.errs = lp.errs[:0]
	}
}

// checkCRC reads the field after "!" and, when there is one, verifies it.
func (t *Telegram) checkCRC(f []byte, bang int) error {
	rest := f[bang+1:]
	n := 0
	var sent uint16
	for n < len(rest) && hexVal(rest[n]) >= 0 {
		if n == 4 {
			return &FrameError{Offset: bang + 1, Msg: "CRC field has more than 4 hex digits"}
		}
		sent = sent<<4 | uint16(hexVal(rest[n]))
		n++
	}
	for _, c := range rest[n:] {
		if c != '\r' && c != '\n' && c != ' ' && c != '\t' && c != 0 {
			return &FrameError{Offset: bang + 1 + n, Msg: fmt.Sprintf("want 1-4 hex CRC digits and a line end after \"!\", got %q", clip(rest, 16))}
		}
	}
	if n == 0 {
		t.CRC = CRCNone
		return nil
	}
	// Some meters drop leading zeros ("!B9F"): the value still compares.
	if got := CRC16(f[:bang+1]); got != sent {
		return &CRCError{Sent: sent, Computed: got}
	}
	t.CRC = CRCOK
	return nil
}

func hexVal(c byte) int { return int(hexValues[c]) }

// hexValues maps a byte to its value as a hex digit, or -1.
var hexValues = func() (t [256]int8) {
	for c := range t {
		switch {
		case c >= '0' && c <= '9':
			t[c] = int8(c - '0')
		case c >= 'A' && c <= 'F':
			t[c] = int8(c-'A') + 10
		case c >= 'a' && c <= 'f':
			t[c] = int8(c-'a') + 10
		default:
			t[c] = -1
		}
	}
	return t
}()

func trimCR(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\r' || b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// derive fills the registers that are computed from others: totals from
// tariffs where the meter sends no total, and the net power. A derived
// register is written only when every input line the meter sent decoded:
// bad has bit f set for each register f whose line was a syntax error, and
// a total summed from the tariffs that remain would be a wrong total.
func (t *Telegram) derive(bad uint64) {
	sum := func(total Field, parts ...Field) {
		if t.Has(total) || bad&(1<<total) != 0 {
			return
		}
		var s Decimal
		any := false
		for _, f := range parts {
			if bad&(1<<f) != 0 {
				return
			}
			if d, ok := t.Get(f); ok {
				var err error
				// Registers are bounded (see limits), so four of them always
				// sum exactly; an error would be a bug, and then no total is
				// better than a wrong one.
				if s, err = s.Add(d); err != nil {
					return
				}
				any = true
			}
		}
		if any {
			t.Set(total, s)
		}
	}
	sum(Taken, TakenT1, TakenT2, TakenT3, TakenT4)
	sum(Injected, InjectedT1, InjectedT2, InjectedT3, InjectedT4)
	if bad&(1<<PowerTaken|1<<PowerInjected) != 0 {
		return
	}
	in, okIn := t.Get(PowerTaken)
	out, okOut := t.Get(PowerInjected)
	if okIn || okOut {
		if net, err := in.Sub(out); err == nil {
			t.Set(PowerNet, net)
		}
	}
}

// deriveInput returns the register of o's line when it is one that derive
// uses: a tariff or total of 1.8.x and 2.8.x, or 1.7.0 and 2.7.0.
func deriveInput(o OBIS) (Field, bool) {
	if o[0] != 1 || o[1] != 0 || o[5] != 255 {
		return 0, false
	}
	switch {
	case o[2] == 1 && o[3] == 8 && o[4] <= 4:
		return [...]Field{Taken, TakenT1, TakenT2, TakenT3, TakenT4}[o[4]], true
	case o[2] == 2 && o[3] == 8 && o[4] <= 4:
		return [...]Field{Injected, InjectedT1, InjectedT2, InjectedT3, InjectedT4}[o[4]], true
	case o[2] == 1 && o[3] == 7 && o[4] == 0:
		return PowerTaken, true
	case o[2] == 2 && o[3] == 7 && o[4] == 0:
		return PowerInjected, true
	}
	return 0, false
}

// maxGroups bounds the "(…)" groups of one line: 13 months of peak history
// need 42, the longest failure logs 22.
const maxGroups = 64

type lineParser struct {
	t       *Telegram
	loc     *time.Location
	errs    []error
	idPrio  int  // priority of the id now in t.MeterID; 0 = none
	idCode  OBIS // its code and raw text, kept in Other if a better id comes
	idRaw   []byte
	pending int    // index in t.MBus awaiting a DSMR 2.2 value line, or -1
	bad     uint64 // bit f set when a line of register f was a syntax error (see derive)

	// current line, for error messages
	lineNo int
	pos    int
	text   []byte

	ng int
	g  [maxGroups][2]int // group bounds within text, parentheses excluded

	zones zoneCache // kept from telegram to telegram
}

// lineParser returns t's line parser, reset for a telegram in loc. It lives
// with the Telegram, not on the caller's stack: its group table alone is 1 KB,
// and a logger decodes on one goroutine per gateway, whose stacks double in
// size for every frame that does not fit.
func (t *Telegram) lineParser(loc *time.Location) *lineParser {
	if t.lp == nil {
		t.lp = new(lineParser)
	}
	p := t.lp
	p.t, p.loc, p.errs, p.pending, p.bad = t, loc, p.errs[:0], -1, 0
	p.idPrio, p.idCode, p.idRaw = 0, OBIS{}, nil
	p.lineNo, p.pos, p.text, p.ng = 0, 0, nil, 0
	return p
}

func (p *lineParser) fail(off int, format string, args ...any) {
	p.errs = append(p.errs, &SyntaxError{
		Line:   p.lineNo,
		Offset: p.pos + off,
		Text:   string(clip(p.text, 80)),
		Msg:    fmt.Sprintf(format, args...),
	})
}

func (p *lineParser) group(i int) []byte { return p.text[p.g[i][0]:p.g[i][1]] }

func (p *lineParser) finish() {
	if p.pending >= 0 {
		p.fail(len(p.text), "M-Bus reading 0-%d:24.3.0 has no value line", p.t.MBus[p.pending].Channel)
	}
	// Every channel that sent a line stays in MBus, whatever it sent: only a
	// breaker or valve state ("0-3:96.3.10(0)", e-MUCS and Luxembourg
	// meters), only a device type, or only an empty id ("0-1:96.1.1()"). The
	// line was consumed as the channel's, so dropping the device would make
	// it vanish from the telegram; the encoder writes only devices with a
	// reading and a capture time.
}

func (p *lineParser) line(l []byte, lineNo, pos int) {
	if len(l) == 0 {
		return
	}
	p.lineNo, p.pos, p.text = lineNo, pos, l
	if l[0] == '(' {
		p.valueLine()
		return
	}
	o, n, ok := parseOBIS(l)
	if !ok {
		p.fail(0, "want an OBIS code A-B:C.D.E before the first \"(\"")
		return
	}
	errs := len(p.errs)
	if !p.groups(n) || !p.dispatch(o) {
		p.keep(o, l[n:])
	}
	if len(p.errs) > errs {
		if f, ok := deriveInput(o); ok {
			p.bad |= 1 << f
		}
	}
}

// valueLine handles the DSMR 2.2/3 M-Bus form, where the reading of
// 0-n:24.3.0 comes alone on the next line: "(00001.001)".
func (p *lineParser) valueLine() {
	if !p.groups(0) {
		return
	}
	if p.pending < 0 {
		p.fail(0, "value line without a preceding 0-n:24.3.0 object")
		return
	}
	m := &p.t.MBus[p.pending]
	p.pending = -1
	if p.ng != 1 {
		p.fail(0, "want one (value) group on an M-Bus value line, got %d", p.ng)
		return
	}
	d, unit, ok := splitValue(p.group(0))
	if !ok {
		p.fail(p.g[0][0], "want a number, got %q", p.group(0))
		return
	}
	if d, ok = bounded(d, mbusLimit, true); !ok {
		p.fail(p.g[0][0], "want %s with at most %d digits after the point, got %q", mbusLimit.text, maxScale, p.group(0))
		return
	}
	if len(unit) > 0 {
		m.Unit = unit
	}
	m.Value, m.HasValue = d, true
	m.Kind = mbusKind(m.Type, m.Unit)
}

// groups splits text[n:] into "(…)" groups. It reports false (and records a
// syntax error) when the line is not a sequence of groups.
func (p *lineParser) groups(n int) bool {
	l := p.text
	p.ng = 0
	if n >= len(l) || l[n] != '(' {
		p.fail(n, "want \"(\" after the code")
		return false
	}
	for n < len(l) {
		if l[n] != '(' {
			p.fail(n, "want \"(\" or the end of the line, got %q", l[n])
			return false
		}
		end := closeParen(l[n+1:])
		if end < 0 {
			p.fail(len(l), "group opened at byte %d has no \")\"", p.pos+n)
			return false
		}
		if p.ng == maxGroups {
			p.fail(n, "more than %d groups on one line", maxGroups)
			return false
		}
		p.g[p.ng] = [2]int{n + 1, n + 1 + end}
		p.ng++
		n += end + 2
	}
	return true
}

// closeParen returns the index of the first ")" in g, or -1. Groups are
// short (a value, a timestamp), so it looks at eight bytes per step, where
// bytes.IndexByte would spend longer getting going than searching.
func closeParen(g []byte) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(g); i += 8 {
		// A byte of w is zero where g has ")"; the lowest byte flagged by
		// (w-ones) &^ w & highs is the first zero byte (flags above a zero
		// byte may be false, flags below it cannot be).
		w := binary.LittleEndian.Uint64(g[i:]) ^ (')' * ones)
		if m := (w - ones) &^ w & highs; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(g); i++ {
		if g[i] == ')' {
			return i
		}
	}
	return -1
}

func (p *lineParser) keep(o OBIS, raw []byte) {
	p.t.Other = append(p.t.Other, Object{OBIS: o, Raw: raw})
}

// parseOBIS reads "A-B:C.D.E" with an optional "*F" or ".F" and returns the
// code, the number of bytes read and whether it was well formed.
func parseOBIS(l []byte) (o OBIS, n int, ok bool) {
	o[5] = 255
	seps := [...]byte{'-', ':', '.', '.'}
	for i := 0; i < 5; i++ {
		v, m := readUint8(l[n:])
		if m == 0 {
			return o, n, false
		}
		o[i] = v
		n += m
		if i < 4 {
			if n >= len(l) || l[n] != seps[i] {
				return o, n, false
			}
			n++
		}
	}
	if n < len(l) && (l[n] == '*' || l[n] == '.') {
		v, m := readUint8(l[n+1:])
		if m == 0 {
			return o, n, false
		}
		o[5] = v
		n += 1 + m
	}
	return o, n, true
}

// readUint8 reads a number of one to three digits, at most 255, that no
// further digit follows; it returns 0, 0 when there is none.
func readUint8(b []byte) (uint8, int) {
	if len(b) == 0 || b[0]-'0' > 9 {
		return 0, 0
	}
	v, n := uint(b[0]-'0'), 1
	for ; n < len(b) && b[n]-'0' <= 9; n++ {
		if n == 3 {
			return 0, 0
		}
		v = v*10 + uint(b[n]-'0')
	}
	if v > 255 {
		return 0, 0
	}
	return uint8(v), n
}

// key packs A, B, C, D, E for the dispatch switch (F must be 255).
func key(a, b, c, d, e uint64) uint64 { return a<<32 | b<<24 | c<<16 | d<<8 | e }

// Unit conversions for registers: the exponent that turns the sent unit into
// the canonical one.
type unitRule uint8

const (
	unitKWh   unitRule = iota // kWh; Wh ÷ 1000
	unitW                     // W; kW × 1000
	unitV                     // V
	unitA                     // A
	unitCount                 // no unit
)

// dispatch interprets a line with a known code. It returns false for codes
// it does not interpret, which the caller keeps in Other.
func (p *lineParser) dispatch(o OBIS) bool {
	if o[5] != 255 {
		return false
	}
	if o[0] == 0 && o[1] >= 1 && o[1] <= 4 && (o[2] == 24 || o[2] == 96) {
		return p.mbus(o)
	}
	t := p.t
	switch key(uint64(o[0]), uint64(o[1]), uint64(o[2]), uint64(o[3]), uint64(o[4])) {
	case key(1, 3, 0, 2, 8), key(0, 0, 96, 1, 4):
		t.Version = p.text1()
	case key(0, 0, 1, 0, 0):
		return p.timeOnly(&t.Time, o)
	case key(0, 0, 96, 1, 1):
		p.meterID(5, o)
	case key(0, 0, 42, 0, 0):
		p.meterID(4, o)
	case key(0, 0, 96, 1, 0):
		p.meterID(3, o)
	case key(0, 0, 96, 1, 255):
		p.meterID(2, o)
	case key(1, 0, 0, 0, 0):
		p.meterID(1, o)
	case key(0, 0, 96, 1, 2):
		if p.one() {
			if ean, ok := p.ident(0); ok {
				t.EAN = ean
			}
		}
	case key(0, 0, 96, 13, 0):
		if p.one() {
			t.TextMessage = p.decodeText(p.group(0), true)
		}
	case key(0, 0, 96, 13, 1):
		if p.one() {
			t.TextCode = p.decodeText(p.group(0), true)
		}
	case key(1, 0, 1, 8, 1):
		return p.register(TakenT1, unitKWh)
	case key(1, 0, 1, 8, 2):
		return p.register(TakenT2, unitKWh)
	case key(1, 0, 1, 8, 3):
		return p.register(TakenT3, unitKWh)
	case key(1, 0, 1, 8, 4):
		return p.register(TakenT4, unitKWh)
	case key(1, 0, 1, 8, 0):
		return p.register(Taken, unitKWh)
	case key(1, 0, 2, 8, 1):
		return p.register(InjectedT1, unitKWh)
	case key(1, 0, 2, 8, 2):
		return p.register(InjectedT2, unitKWh)
	case key(1, 0, 2, 8, 3):
		return p.register(InjectedT3, unitKWh)
	case key(1, 0, 2, 8, 4):
		return p.register(InjectedT4, unitKWh)
	case key(1, 0, 2, 8, 0):
		return p.register(Injected, unitKWh)
	case key(1, 0, 1, 7, 0):
		return p.register(PowerTaken, unitW)
	case key(1, 0, 2, 7, 0):
		return p.register(PowerInjected, unitW)
	case key(1, 0, 21, 7, 0):
		return p.register(PowerTakenL1, unitW)
	case key(1, 0, 41, 7, 0):
		return p.register(PowerTakenL2, unitW)
	case key(1, 0, 61, 7, 0):
		return p.register(PowerTakenL3, unitW)
	case key(1, 0, 22, 7, 0):
		return p.register(PowerInjectedL1, unitW)
	case key(1, 0, 42, 7, 0):
		return p.register(PowerInjectedL2, unitW)
	case key(1, 0, 62, 7, 0):
		return p.register(PowerInjectedL3, unitW)
	case key(1, 0, 32, 7, 0):
		return p.register(VoltageL1, unitV)
	case key(1, 0, 52, 7, 0):
		return p.register(VoltageL2, unitV)
	case key(1, 0, 72, 7, 0):
		return p.register(VoltageL3, unitV)
	case key(1, 0, 31, 7, 0):
		return p.register(CurrentL1, unitA)
	case key(1, 0, 51, 7, 0):
		return p.register(CurrentL2, unitA)
	case key(1, 0, 71, 7, 0):
		return p.register(CurrentL3, unitA)
	case key(0, 0, 96, 14, 0):
		return p.register(Tariff, unitCount)
	case key(1, 0, 1, 4, 0):
		return p.register(DemandAvg, unitW)
	case key(1, 0, 1, 6, 0):
		return p.demandMax(o)
	case key(0, 0, 98, 1, 0):
		return p.peaks(o)
	case key(0, 0, 96, 7, 21):
		return p.register(PowerFailures, unitCount)
	case key(0, 0, 96, 7, 9):
		return p.register(LongPowerFailures, unitCount)
	case key(1, 0, 99, 97, 0):
		return p.failureLog(o)
	case key(1, 0, 32, 32, 0):
		return p.register(VoltageSagsL1, unitCount)
	case key(1, 0, 52, 32, 0):
		return p.register(VoltageSagsL2, unitCount)
	case key(1, 0, 72, 32, 0):
		return p.register(VoltageSagsL3, unitCount)
	case key(1, 0, 32, 36, 0):
		return p.register(VoltageSwellsL1, unitCount)
	case key(1, 0, 52, 36, 0):
		return p.register(VoltageSwellsL2, unitCount)
	case key(1, 0, 72, 36, 0):
		return p.register(VoltageSwellsL3, unitCount)
	case key(0, 0, 96, 3, 10):
		return p.register(BreakerState, unitCount)
	case key(0, 0, 17, 0, 0):
		return p.limiter()
	case key(1, 0, 31, 4, 0):
		return p.register(FuseA, unitA)
	default:
		return false
	}
	return true
}

// one checks that the line has exactly one group.
func (p *lineParser) one() bool {
	if p.ng != 1 {
		p.fail(p.g[0][0]-1, "want one (value) group, got %d", p.ng)
		return false
	}
	return true
}

// text1 returns the single group's text (or nil, recording an error).
func (p *lineParser) text1() []byte {
	if !p.one() {
		return nil
	}
	return p.group(0)
}

// splitValue splits "001234.567*kWh" into its number and unit.
func splitValue(g []byte) (d Decimal, unit []byte, ok bool) {
	d, n, ok := scanDecimal(g)
	switch {
	case n == len(g):
		return d, nil, ok
	case g[n] == '*':
		return d, g[n+1:], ok
	}
	// Something other than "*" follows the number: not a value, though
	// the unit is still what follows the first "*".
	if i := bytes.IndexByte(g, '*'); i >= 0 {
		unit = g[i+1:]
	}
	return Decimal{}, unit, false
}

// convert normalises d from unit into the rule's canonical unit. Units are
// compared without regard to case: in this context "KWH" or "kw" can only
// mean kWh and kW, and some meters print them so. ok is false for a unit
// the rule does not know; err is ErrDecimalRange when the scaled value needs
// more digits than a Decimal has ("0.000000000000000001*Wh").
func convert(d Decimal, unit []byte, rule unitRule) (_ Decimal, ok bool, err error) {
	var low [8]byte
	if len(unit) > len(low) {
		return d, false, nil
	}
	for i, c := range unit {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		low[i] = c
	}
	u := low[:len(unit)] // switch string(u) compares in place, without a copy
	shift, ok := 0, false
	switch rule {
	case unitKWh:
		switch string(u) {
		case "kwh":
			ok = true
		case "wh":
			shift, ok = -3, true
		}
	case unitW:
		switch string(u) {
		case "kw":
			shift, ok = 3, true
		case "w":
			ok = true
		}
	case unitV:
		switch string(u) {
		case "v":
			ok = true
		case "kv":
			shift, ok = 3, true
		}
	case unitA:
		switch string(u) {
		case "a":
			ok = true
		case "ma":
			shift, ok = -3, true
		}
	case unitCount:
		ok = len(unit) == 0
	}
	if !ok || shift == 0 {
		return d, ok, nil
	}
	d, err = d.Shift(shift)
	return d, true, err
}

var wantUnit = [...]string{
	unitKWh:   "kWh or Wh",
	unitW:     "kW or W",
	unitV:     "V",
	unitA:     "A",
	unitCount: "no unit",
}

// A limit is what a register can hold in its canonical unit: less than Max
// in magnitude, at most maxScale digits after the point. Values outside are
// no meter's reading but a fault (or an attack) and become line errors, so
// that they reach neither InfluxDB nor a rollup. The bounds are generous:
//
//   - energy below 10^8 kWh: eight integer digits, the widest register seen
//     (EasyMeter Q3D, "00032549.5061662*kWh"); DSMR and e-MUCS print six.
//   - power below 10^7 W (10 MW), over a hundred times the largest
//     household connection (3 × 80 A); DSMR prints at most 99.999 kW.
//   - voltage below 10^6 V, current below 10^5 A, counts below 10^10.
//
// Nine digits after the point is two more than any meter prints (7,
// EasyMeter) and as many as a Wh register with six decimals gives in kWh.
// Together the two bounds keep every register below 10^17 × 10^-9, so that
// the sums and differences done downstream (tariff totals, net power, day
// energy) are exact in a Decimal.
type limit struct {
	max      int64 // exclusive bound on the magnitude, in whole units
	unsigned bool  // negative values are errors
	text     string
}

const maxScale = 9

var limits = [...]limit{
	unitKWh:   {1e8, true, "a non-negative energy below 100000000 kWh"},
	unitW:     {1e7, false, "a power below 10000000 W"},
	unitV:     {1e6, false, "a voltage below 1000000 V"},
	unitA:     {1e5, false, "a current below 100000 A"},
	unitCount: {1e10, true, "a non-negative count below 10000000000"},
}

// bounded checks d against lim, forcing unsigned when the register's
// standard defines it so, and returns d with at most maxScale digits after
// the point (trailing zeros dropped when needed).
func bounded(d Decimal, lim limit, unsigned bool) (Decimal, bool) {
	d, err := d.fitScale(maxScale)
	if err != nil {
		return d, false
	}
	if (lim.unsigned || unsigned) && d.Int < 0 {
		return d, false
	}
	m := Decimal{Int: lim.max}
	return d, d.Cmp(m) < 0 && d.Cmp(m.Neg()) > 0
}

// mbusLimit bounds M-Bus readings (gas, water, heat totals) in the unit the
// device sends: EN 13757-3 counters have eight BCD digits, DSMR prints gas
// as 99999.999 m3. A total never runs backwards, so it is never negative.
var mbusLimit = limit{1e9, true, "a non-negative M-Bus total below 1000000000"}

// demandLimit bounds demand and peak registers (1-0:1.4.0, 1-0:1.6.0,
// 0-0:98.1.0), which e-MUCS defines as +P averages: never negative.
var demandLimit = limit{1e7, true, "a non-negative demand below 10000000 W"}

func (p *lineParser) register(f Field, rule unitRule) bool {
	if !p.one() {
		return false
	}
	return p.setValue(f, rule, 0)
}

// setValue stores group i as register f, normalised by rule.
func (p *lineParser) setValue(f Field, rule unitRule, i int) bool {
	lim := limits[rule]
	if f == DemandAvg || f == DemandMaxMonth {
		lim = demandLimit
	}
	d, ok := p.value(i, rule, lim)
	if ok {
		p.t.Set(f, d)
	}
	return ok
}

// value reads group i as a number in one of rule's units, converts it to
// the canonical unit and checks it against lim, recording a syntax error
// that says which of the three failed.
func (p *lineParser) value(i int, rule unitRule, lim limit) (Decimal, bool) {
	g := p.group(i)
	d, unit, ok := splitValue(g)
	if !ok {
		p.fail(p.g[i][0], "want a number, got %q", g)
		return d, false
	}
	d, ok, err := convert(d, unit, rule)
	if !ok {
		p.fail(p.g[i][0], "want unit %s, got %q", wantUnit[rule], unit)
		return d, false
	}
	if err == nil {
		d, ok = bounded(d, lim, false)
	}
	if err != nil || !ok {
		p.fail(p.g[i][0], "want %s with at most %d digits after the point, got %q", lim.text, maxScale, g)
		return d, false
	}
	if rule == unitCount {
		// Counts and states are written as InfluxDB integers: a fraction
		// ("0002.5") would be cut off there while decode printed it, so it
		// is a line error, not a value. Trailing zeros ("0002.0") are fine.
		if d, err = d.fitScale(0); err != nil {
			p.fail(p.g[i][0], "want a whole number, got %q", g)
			return d, false
		}
	}
	return d, true
}

func (p *lineParser) limiter() bool {
	if !p.one() {
		return false
	}
	d, unit, ok := splitValue(p.group(0))
	if !ok {
		p.fail(p.g[0][0], "want a number, got %q", p.group(0))
		return false
	}
	var f Field
	var err error
	lim := limit{1e7, true, "a non-negative threshold below 10000000 W, VA or A"}
	switch string(unit) {
	case "kW":
		f = LimiterW
		d, err = d.Shift(3)
	case "W":
		f = LimiterW
	case "A":
		f = LimiterA
	case "kVA", "":
		// Luxembourg Smarty meters send the threshold in kVA, some
		// without the unit: 0-0:17.0.0(77.376) in a real capture.
		f = LimiterVA
		d, err = d.Shift(3)
	case "VA":
		f = LimiterVA
	default:
		p.fail(p.g[0][0], "want unit kW, W, A or kVA (or none: kVA), got %q", unit)
		return false
	}
	if err == nil {
		d, ok = bounded(d, lim, true)
	}
	if err != nil || !ok {
		p.fail(p.g[0][0], "want %s with at most %d digits after the point, got %q", lim.text, maxScale, p.group(0))
		return false
	}
	p.t.Set(f, d)
	return true
}

// meterID keeps the equipment identifier with the highest priority; the
// others stay visible in Other.
func (p *lineParser) meterID(prio int, o OBIS) {
	if !p.one() {
		return
	}
	raw := p.group(0)
	if len(raw) == 0 {
		p.keep(o, p.text[p.g[0][0]-1:])
		return
	}
	if prio < p.idPrio {
		p.keep(o, p.text[p.g[0][0]-1:])
		return
	}
	id, ok := p.ident(0)
	if !ok {
		p.keep(o, p.text[p.g[0][0]-1:])
		return
	}
	if p.idPrio > 0 {
		p.keep(p.idCode, p.idRaw)
	}
	p.idPrio, p.idCode = prio, o
	p.idRaw = p.text[p.g[0][0]-1:]
	p.t.MeterID = id
}
