package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/p1logger/p1logger/internal/lptest"
	"github.com/p1logger/p1logger/parser"
)

// hostileFrame returns a telegram of lines with a correct CRC.
func hostileFrame(lines ...string) []byte {
	var b bytes.Buffer
	b.WriteString("/XMX5\\2HOSTILE\r\n\r\n")
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	b.WriteString("!")
	fmt.Fprintf(&b, "%04X\r\n", parser.CRC16(b.Bytes()))
	return b.Bytes()
}

// hostileSeeds are the telegrams of issue 11 that got through: values that
// overflowed or panicked, tags ending in a backslash, control characters.
// The two that panicked in parser.Decimal.AppendText (18 decimals in a
// scaled unit: 0.000000000000000001*Wh and *mA) are in
// testdata/fuzz/FuzzPipeline, as the fuzzer keeps its findings.
var hostileSeeds = [][]byte{
	hostileFrame("1-0:1.7.0(999999999999999999*kW)"),
	hostileFrame("1-0:1.8.1(999999999999999.999*kWh)", "1-0:1.8.2(0.001*kWh)"),
	hostileFrame("1-0:1.8.1(-000001.000*kWh)", "1-0:2.7.0(-1.5*kW)"),
	hostileFrame("1-0:1.8.1(0000000000000000000000000000000000000001*kWh)", "1-0:1.8.2(000001.000*kWh)"),
	hostileFrame(`0-0:96.1.1(AB\)`, "1-0:1.8.1(000001.000*kWh)"),
	hostileFrame(`0-0:96.1.1(41425C)`, "1-0:1.8.1(000001.000*kWh)"),
	hostileFrame("0-0:96.1.1(410A42)", "1-0:1.8.1(000001.000*kWh)"),
	hostileFrame("0-0:96.1.1(41FF0D)", "1-0:1.8.1(000001.000*kWh)"),
	hostileFrame("0-1:24.1.0(003)", `0-1:96.1.0(X, Y=Z\)`, `0-1:24.2.1(231102121532W)(00008.579*m3\)`),
	hostileFrame("0-1:24.1.0(003)", "0-1:96.1.0(4142)", "0-1:24.2.1(231102121532W)(00008.579*m\"3)"),
	hostileFrame("1-0:1.6.0(231102121500W)(99999999999999.999*kW)"),
	hostileFrame("0-0:1.0.0(231399999999W)", "1-0:1.8.1(000001.000*kWh)"),
}

// FuzzPipeline runs raw bytes through what the daemon does with them (the
// Splitter, ParseInto, the Batcher's encoder) and reads the line protocol
// back with the reference parser: no input may panic, every line must parse,
// every p1 and p1_mbus value must equal the telegram's exactly, and the tags
// must be the meter's ids and units as lineproto documents them.
func FuzzPipeline(f *testing.F) {
	for _, dir := range []string{"telegrams", "bad"} {
		files, err := filepath.Glob(filepath.Join("..", "testdata", dir, "*"))
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			raw, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(raw)
		}
	}
	for _, s := range hostileSeeds {
		f.Add(s)
	}
	at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		var sp parser.Splitter
		var tg parser.Telegram
		e := encoder{loc: brussels}
		for n := 0; len(data) > 0 && n < 1000; n++ {
			adv, tok, _ := sp.Split(data, true)
			if adv == 0 && tok == nil {
				break
			}
			data = data[adv:]
			if tok == nil {
				continue
			}
			if err := parser.ParseInto(&tg, tok, brussels); errors.Is(err, parser.ErrCRC) || errors.Is(err, parser.ErrFrame) {
				continue
			}
			var w writtenState
			e.b.Reset()
			p1 := e.p1("gw", &tg, at)
			e.mbus("gw", &tg, &w)
			e.peaks("gw", &tg, &w)
			lines, err := lptest.Decode(e.b.Buf)
			if err != nil {
				t.Fatalf("reference parser: %v\nlines %q\ntelegram %q", err, e.b.Buf, tok)
			}
			if p1 {
				checkP1Line(t, lines[0], &tg)
				lines = lines[1:]
			}
			checkMBusLines(t, lines, &tg)
		}
	})
}

// exact returns d as an exact rational.
func exact(d parser.Decimal) *big.Rat {
	den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(d.Scale)), nil)
	return new(big.Rat).SetFrac(big.NewInt(d.Int), den)
}

// checkFloat checks that a float field's text is exactly d.
func checkFloat(t *testing.T, what string, l lptest.Line, key string, d parser.Decimal) {
	t.Helper()
	raw, ok := l.Raw[key]
	if !ok {
		t.Errorf("%s: no field %s in %+v", what, key, l)
		return
	}
	if _, isFloat := l.Fields[key].(float64); !isFloat {
		t.Errorf("%s: field %s=%v is %T, want a float", what, key, l.Fields[key], l.Fields[key])
	}
	got, ok := new(big.Rat).SetString(raw)
	if !ok || got.Cmp(exact(d)) != 0 {
		t.Errorf("%s: field %s=%s, want exactly %s (Decimal %+v)", what, key, raw, exact(d).FloatString(int(d.Scale)), d)
	}
}

// lpText is what line protocol reads back for a meter-sent name: lineproto
// replaces bytes that are not UTF-8, control characters and a trailing
// backslash with U+FFFD.
func lpText(b []byte) string {
	var out []rune
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r < 0x20 || r == 0x7f || (r == utf8.RuneError && n == 1) || (r == '\\' && n == len(b)) {
			r = utf8.RuneError
		}
		out = append(out, r)
		b = b[n:]
	}
	return string(out)
}

func checkTag(t *testing.T, what string, l lptest.Line, key string, sent []byte) {
	t.Helper()
	got, ok := l.Tags[key]
	switch {
	case len(sent) == 0 && ok:
		t.Errorf("%s: tag %s=%q, want none", what, key, got)
	case len(sent) > 0 && got != lpText(sent):
		t.Errorf("%s: tag %s=%q, want %q (sent %q)", what, key, got, lpText(sent), sent)
	}
}

func checkP1Line(t *testing.T, l lptest.Line, tg *parser.Telegram) {
	t.Helper()
	if l.Measurement != "p1" {
		t.Fatalf("first line is %s, want p1", l.Measurement)
	}
	checkTag(t, "p1", l, "meter_id", tg.MeterID)
	if l.Tags["gateway"] != "gw" || len(l.Tags) > 2 {
		t.Errorf("p1 tags %q", l.Tags)
	}
	n := 0
	for f := parser.Field(0); int(f) < parser.NumP1Fields; f++ {
		d, ok := tg.Get(f)
		if !ok {
			continue
		}
		n++
		if !f.IsInteger() {
			checkFloat(t, "p1", l, f.Name(), d)
			continue
		}
		// Integer registers are written truncated to an integer.
		want := new(big.Int).Quo(big.NewInt(d.Int), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(d.Scale)), nil))
		if got, ok := l.Fields[f.Name()].(int64); !ok || big.NewInt(got).Cmp(want) != 0 {
			t.Errorf("p1: field %s=%v, want %v", f.Name(), l.Fields[f.Name()], want)
		}
	}
	if len(l.Fields) != n {
		t.Errorf("p1: %d fields %v, want %d", len(l.Fields), l.FieldOrder, n)
	}
}

// checkMBusLines checks the p1_mbus lines, written for each device with a
// value and a capture time (once per channel and time), in order.
func checkMBusLines(t *testing.T, lines []lptest.Line, tg *parser.Telegram) {
	t.Helper()
	seen := map[uint8]int64{}
	var devs []*parser.MBus
	for i := range tg.MBus {
		m := &tg.MBus[i]
		if !m.HasValue || m.Time.IsZero() {
			continue
		}
		if at, ok := seen[m.Channel]; ok && at == m.Time.UnixNano() {
			continue
		}
		seen[m.Channel] = m.Time.UnixNano()
		devs = append(devs, m)
	}
	var mb []lptest.Line
	for _, l := range lines {
		if l.Measurement == "p1_mbus" {
			mb = append(mb, l)
		}
	}
	if len(mb) != len(devs) {
		t.Fatalf("%d p1_mbus lines, want %d", len(mb), len(devs))
	}
	for i, m := range devs {
		l := mb[i]
		checkFloat(t, "p1_mbus", l, "value", m.Value)
		checkTag(t, "p1_mbus", l, "meter_id", m.ID)
		checkTag(t, "p1_mbus", l, "unit", m.Unit)
		if l.Tags["kind"] != m.Kind.String() || !l.Time.Equal(m.Time) {
			t.Errorf("p1_mbus %d: kind %q time %v, want %q %v", i, l.Tags["kind"], l.Time, m.Kind, m.Time)
		}
	}
}
