package parser

import (
	"os"
	"testing"
)

// benchFiles are paths under ../testdata.
var benchFiles = []struct{ name, file string }{
	{"BE-3ph-gas-water", "telegrams/be-fluvius-emucs-1.7.1-3ph-gas-water-peak4.txt"},
	{"NL-DSMR5-3ph-gas", "telegrams/nl-dsmr50-iskra-am550-3ph-export-gas.txt"},
	// The telegram a Belgian gateway sends all day once its meter has a
	// year of capacity-tariff history: 1329 bytes, 0-0:98.1.0(12) with 36
	// timestamps, and a gas meter. No capture in telegrams/ has the whole
	// history and all registers, so this one is the simulator's, saved with
	// CRLF line ends and its CRC (B619) checked against the bytes.
	{"BE-3ph-gas-peak12", "sim/be-emucs-1.7.1-3ph-gas-peak12-sim.txt"},
}

func benchRead(b *testing.B, file string) []byte {
	raw, err := os.ReadFile("../testdata/" + file)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkParse measures CRC check + full decode into a reused Telegram.
func BenchmarkParse(b *testing.B) {
	for _, bf := range benchFiles {
		raw := benchRead(b, bf.file)
		b.Run(bf.name, func(b *testing.B) {
			var tg Telegram
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if err := ParseInto(&tg, raw, brussels); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCRC16 is the slicing-by-8 CRC the parser uses.
func BenchmarkCRC16(b *testing.B) {
	for _, bf := range benchFiles {
		raw := benchRead(b, bf.file)
		b.Run(bf.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				CRC16(raw)
			}
		})
	}
}

// BenchmarkCRC16Table is the classic 256-entry table CRC: the floor that
// BenchmarkParse is measured against (target: parse ≤ 3× this).
func BenchmarkCRC16Table(b *testing.B) {
	for _, bf := range benchFiles {
		raw := benchRead(b, bf.file)
		b.Run(bf.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				crc16Table(raw)
			}
		})
	}
}

func BenchmarkSplit(b *testing.B) {
	raw := benchRead(b, benchFiles[0].file)
	var sp Splitter
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if n, tok, _ := sp.Split(raw, false); n != len(raw) || tok == nil {
			b.Fatal("no telegram")
		}
	}
}
