package parser

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

func jsonValid(b []byte) bool { return json.Valid(b) }

func seedCorpus(f *testing.F) {
	for _, file := range telegramFiles(f) {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	for _, seed := range hostileSeeds() {
		f.Add(seed)
	}
	for _, lines := range hostileLines {
		f.Add(frame(lines...))
	}
}

// hostileSeeds are the cases of issue 11 that the parser once got wrong:
// empty histories, state-only M-Bus channels, and garbage framed like a
// telegram without a CRC.
func hostileSeeds() [][]byte {
	return [][]byte{
		frame("0-0:98.1.0(0)(1-0:1.6.0)(1-0:1.6.0)()"),
		frame("0-0:98.1.0(0)(1-0:1.6.0)(1-0:1.6.0)"),
		frame("1-0:99.97.0()"),
		frame("1-0:99.97.0(1)()()()"),
		frame("0-3:96.3.10(0)", "0-4:24.4.0(1)", "0-1:96.1.1()"),
		frame("1-0:1.8.1(000001.000*kWh)", "1-0:1.8.2(bad*kWh)"),
		[]byte("/\x00\x9c\x01\n!\n"),
		[]byte("/ABC5 x\r\n1-0:1.8.1(\x80*kWh)\r\n!\r\n"),
		[]byte("/ABC5 x\r\nhello world\r\n!\r\n"),
		[]byte("/12345\r\n1-0:1.8.1(1*kWh)\r\n!\r\n"),
		[]byte("/ABC5 x\r\n\r\n!\r\n"),
	}
}

// hostileLines are lines that once panicked, wrapped or were silently
// dropped: values that overflow when scaled, unsigned registers sent
// negative, 40-digit numbers, and timestamps that are not dates.
var hostileLines = [][]string{
	{"1-0:1.8.1(0.000000000000000001*Wh)", "1-0:1.8.2(000001.000*kWh)"},
	{"1-0:31.7.0(0.000000000000000001*mA)"},
	{"1-0:1.7.0(999999999999999999*kW)", "1-0:2.7.0(00.100*kW)"},
	{"1-0:1.8.1(999999999999999999*kWh)", "1-0:1.8.2(000000.001*kWh)"},
	{"1-0:1.8.1(9999999999999999999999999999999999999999*kWh)", "1-0:1.8.2(000002.000*kWh)"},
	{"1-0:2.8.1(-000001.000*kWh)", "1-0:2.8.2(000001.000*kWh)"},
	{"0-0:17.0.0(999999999999999999*kVA)", "1-0:1.4.0(-01.000*kW)"},
	{"0-1:24.1.0(003)", "0-1:24.2.1(230101000000W)(-00001.000*m3)"},
	{"0-1:24.3.0(230101000000)(00)(60)(1)(0-1:24.2.1)(m3)", "(999999999999999999)"},
	{"0-0:98.1.0(1)(1-0:1.6.0)(1-0:1.6.0)(230801000000S)(230712000000S)(999999999999999999*kW)"},
	{"0-0:1.0.0(261325023000W)", "1-0:1.6.0(261025993000S)(01.000*kW)"},
	{"0-0:1.0.0(261032023000W)", "0-1:24.2.1(270229000000W)(00001.000*m3)"},
	{"0-0:1.0.0(231029013000S)", "1-0:99.97.0(1)(0-0:96.7.19)(261025026000W)(0000000240*s)"},
	{"0-0:1.0.0(000000000000W)", "0-1:24.2.1(632525252525W)(00001.000*m3)"},
}

// FuzzParse: no input may panic, and whatever parses must render valid JSON
// and parse identically a second time into a reused Telegram.
func FuzzParse(f *testing.F) {
	seedCorpus(f)
	var reused Telegram
	f.Fuzz(func(t *testing.T, data []byte) {
		tg, err := Parse(data, brussels)
		js := tg.AppendJSON(nil)
		if !json.Valid(js) {
			t.Fatalf("invalid JSON: %s", js)
		}
		// Every register kept, derived ones included, is within the
		// bounds a meter can send: downstream sums are then exact.
		for f := Field(0); int(f) < NumFields; f++ {
			d, ok := tg.Get(f)
			if ok && (!d.valid() || d.Scale > maxScale) {
				t.Fatalf("%s = Decimal{%d, %d}: out of range", f, d.Int, d.Scale)
			}
			if ok && d.Int < 0 && (f <= Injected || f >= TakenT3 && f <= InjectedT4) {
				t.Fatalf("%s = %s: negative energy kept", f, d)
			}
		}
		for _, m := range tg.MBus {
			if m.HasValue && (m.Value.Int < 0 || m.Value.Scale > maxScale) {
				t.Fatalf("M-Bus %d value %s kept", m.Channel, m.Value)
			}
		}
		err2 := ParseInto(&reused, data, brussels)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("Parse err %v, ParseInto err %v", err, err2)
		}
		if err == nil && !bytes.Equal(js, reused.AppendJSON(nil)) {
			t.Fatalf("reused telegram differs")
		}
		// Without a CRC, only the shape vouches: what Parse accepts, the
		// Splitter must not have skipped as garbage.
		if err == nil && tg.CRC == CRCNone && shapeless(data) {
			t.Fatalf("accepted a frame the Splitter calls garbage")
		}
	})
}

// FuzzSplit: the Splitter must consume any stream with a bounded buffer and
// never lose a whole telegram that follows the noise.
func FuzzSplit(f *testing.F) {
	seedCorpus(f)
	good := frame("1-0:1.8.1(000001.000*kWh)")
	f.Fuzz(func(t *testing.T, noise []byte) {
		stream := append(append(append([]byte{}, noise...), "\r\n"...), good...)
		var sp Splitter
		sc := bufio.NewScanner(bytes.NewReader(stream))
		sc.Buffer(make([]byte, 0, 64), MaxTelegramSize)
		sc.Split(sp.Split)
		var last []byte
		n := 0
		for sc.Scan() {
			if len(sc.Bytes()) > MaxTelegramSize {
				t.Fatalf("token of %d bytes", len(sc.Bytes()))
			}
			last = append(last[:0], sc.Bytes()...)
			if n++; n > len(stream)+1 {
				t.Fatal("more tokens than bytes")
			}
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("scanner: %v", err)
		}
		if !bytes.Equal(last, good) {
			t.Fatalf("last token %q, want the good telegram", last)
		}
	})
}
