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
