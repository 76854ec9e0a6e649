package parser

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

// frame builds a DSMR 5 telegram around body lines with a correct CRC.
func frame(lines ...string) []byte {
	var b bytes.Buffer
	b.WriteString("/TST5\\2TEST\r\n\r\n1-3:0.2.8(50)\r\n")
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	b.WriteString("!")
	fmt.Fprintf(&b, "%04X\r\n", CRC16(b.Bytes()))
	return b.Bytes()
}

// frame22 builds a DSMR 2.2 telegram (no CRC, no version line).
func frame22(lines ...string) []byte {
	var b bytes.Buffer
	b.WriteString("/ISk5\\2MT382-1004\r\n\r\n")
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	b.WriteString("!\r\n")
	return b.Bytes()
}

func TestCRC16(t *testing.T) {
	tests := []struct {
		in   string
		want uint16
	}{
		{"", 0},
		{"123456789", 0xBB3D}, // CRC-16/ARC check value
		{"/", crc16Table([]byte("/"))},
	}
	for _, tc := range tests {
		if got := CRC16([]byte(tc.in)); got != tc.want {
			t.Errorf("CRC16(%q) = %04X, want %04X", tc.in, got, tc.want)
		}
	}
	// Slicing-by-16 must agree with the byte-wise table for every length and
	// alignment.
	buf := make([]byte, 300)
	for i := range buf {
		buf[i] = byte(i*31 + 7)
	}
	for n := 0; n <= len(buf); n++ {
		if got, want := CRC16(buf[:n]), crc16Table(buf[:n]); got != want {
			t.Fatalf("length %d: CRC16 %04X, table %04X", n, got, want)
		}
	}
}

func TestDecimal(t *testing.T) {
	tests := []struct {
		in       string
		ok       bool
		text     string
		float    float64
		int      int64
		scale    uint8
		shift    int
		shiftTxt string
	}{
		{"001234.567", true, "1234.567", 1234.567, 1234567, 3, 3, "1234567"},
		{"00.611", true, "0.611", 0.611, 611, 3, 3, "611"},
		{"-00.024", true, "-0.024", -0.024, -24, 3, 3, "-24"},
		{"006545766", true, "6545766", 6545766, 6545766, 0, -3, "6545.766"},
		{"00032549.5061662", true, "32549.5061662", 32549.5061662, 325495061662, 7, 0, "32549.5061662"},
		{"0230.0", true, "230.0", 230, 2300, 1, 0, "230.0"},
		{"000.00", true, "0.00", 0, 0, 2, 3, "0"},
		{"0000000000000000000000001", true, "1", 1, 1, 0, 0, "1"},
		{"", false, "", 0, 0, 0, 0, ""},
		{"-", false, "", 0, 0, 0, 0, ""},
		{"12.", false, "", 0, 0, 0, 0, ""},
		{"1.2.3", false, "", 0, 0, 0, 0, ""},
		{"1EA43311", false, "", 0, 0, 0, 0, ""},
		{"1234567890123456789", false, "", 0, 0, 0, 0, ""},
	}
	for _, tc := range tests {
		d, ok := parseDecimal([]byte(tc.in))
		if ok != tc.ok {
			t.Errorf("parseDecimal(%q) ok = %v, want %v", tc.in, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		if d.String() != tc.text || d.Float64() != tc.float || d.Int != tc.int || d.Scale != tc.scale {
			t.Errorf("parseDecimal(%q) = %v (%d, %d, %v), want %s (%d, %d, %v)", tc.in, d, d.Int, d.Scale, d.Float64(), tc.text, tc.int, tc.scale, tc.float)
		}
		if got, err := d.Shift(tc.shift); err != nil || got.String() != tc.shiftTxt {
			t.Errorf("%q shifted by %d = %s, %v, want %s", tc.in, tc.shift, got, err, tc.shiftTxt)
		}
	}
}

// TestDecimalArithmetic checks that Add, Sub and Shift are exact or fail
// with ErrDecimalRange, never wrap, and that Cmp orders any two Decimals.
func TestDecimalArithmetic(t *testing.T) {
	const max = 999_999_999_999_999_999
	tests := []struct {
		name string
		op   func() (Decimal, error)
		want string // "" for ErrDecimalRange
	}{
		{"add", func() (Decimal, error) { return Decimal{1234567, 3}.Add(Decimal{25, 1}) }, "1237.067"},
		{"add negative", func() (Decimal, error) { return Decimal{-24, 3}.Add(Decimal{1, 0}) }, "0.976"},
		{"sub", func() (Decimal, error) { return Decimal{611, 3}.Sub(Decimal{1193, 0}) }, "-1192.389"},
		{"add at max", func() (Decimal, error) { return Decimal{max - 1, 0}.Add(Decimal{1, 0}) }, "999999999999999999"},
		{"add past max", func() (Decimal, error) { return Decimal{max, 0}.Add(Decimal{1, 0}) }, ""},
		{"sub past -max", func() (Decimal, error) { return Decimal{-max, 0}.Sub(Decimal{1, 0}) }, ""},
		// A huge T1 plus a tiny T2: aligning the scales would wrap.
		{"add huge and tiny", func() (Decimal, error) { return Decimal{max, 0}.Add(Decimal{1, 3}) }, ""},
		{"add out of range operand", func() (Decimal, error) { return Decimal{math.MaxInt64, 0}.Add(Decimal{}) }, ""},
		{"add scale 19", func() (Decimal, error) { return Decimal{1, 19}.Add(Decimal{}) }, ""},
		{"sub MinInt64", func() (Decimal, error) { return Decimal{}.Sub(Decimal{math.MinInt64, 0}) }, ""},
		{"kW to W", func() (Decimal, error) { return Decimal{1193, 3}.Shift(3) }, "1193"},
		{"kW to W, no point", func() (Decimal, error) { return Decimal{12, 0}.Shift(3) }, "12000"},
		{"kW to W overflows", func() (Decimal, error) { return Decimal{max, 0}.Shift(3) }, ""},
		{"kW to W at the edge", func() (Decimal, error) { return Decimal{max / 1000, 0}.Shift(3) }, "999999999999999000"},
		{"Wh to kWh", func() (Decimal, error) { return Decimal{6545766, 0}.Shift(-3) }, "6545.766"},
		// 18 decimals in Wh are 21 in kWh: unrepresentable.
		{"Wh to kWh, 18 decimals", func() (Decimal, error) { return Decimal{1, 18}.Shift(-3) }, ""},
		{"Wh to kWh, trailing zeros given up", func() (Decimal, error) { return Decimal{1000, 18}.Shift(-3) }, "0.000000000000000001"},
		{"mA to A, 17 decimals", func() (Decimal, error) { return Decimal{5, 17}.Shift(-3) }, ""},
		{"shift far", func() (Decimal, error) { return Decimal{1, 0}.Shift(40) }, ""},
	}
	for _, tc := range tests {
		got, err := tc.op()
		if tc.want == "" {
			if !errors.Is(err, ErrDecimalRange) {
				t.Errorf("%s: got %s, %v, want ErrDecimalRange", tc.name, got, err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("%s: got %s, %v, want %s", tc.name, got, err, tc.want)
		}
	}

	cmps := []struct {
		a, b Decimal
		want int
	}{
		{Decimal{1, 0}, Decimal{1000, 3}, 0},
		{Decimal{1, 0}, Decimal{1001, 3}, -1},
		{Decimal{-1, 0}, Decimal{-1001, 3}, 1},
		{Decimal{max, 0}, Decimal{1, 18}, 1},
		{Decimal{1, 18}, Decimal{max, 0}, -1},
		{Decimal{-max, 0}, Decimal{-1, 18}, -1},
		{Decimal{math.MinInt64, 0}, Decimal{math.MaxInt64, 0}, -1},
		{Decimal{math.MaxInt64, 0}, Decimal{math.MaxInt64, 200}, 1},
		{Decimal{0, 5}, Decimal{0, 0}, 0},
		{Decimal{-1, 3}, Decimal{0, 0}, -1},
	}
	for _, tc := range cmps {
		if got := tc.a.Cmp(tc.b); got != tc.want {
			t.Errorf("%v.Cmp(%v) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestDecimalFormat checks that every Decimal formats, including those no
// parser makes, without panicking (AppendText used to index 10^Scale).
func TestDecimalFormat(t *testing.T) {
	tests := []struct {
		d     Decimal
		want  string
		float float64
	}{
		{Decimal{1, 21}, "0.000000000000000000001", 1e-21},
		{Decimal{-5, 20}, "-0.00000000000000000005", -5e-20},
		{Decimal{math.MinInt64, 0}, "-9223372036854775808", -9223372036854775808},
		{Decimal{math.MinInt64, 3}, "-9223372036854775.808", -9223372036854775.808},
		{Decimal{math.MaxInt64, 19}, "0.9223372036854775807", 0.9223372036854775807},
		{Decimal{12, 2}, "0.12", 0.12},
		{Decimal{-120, 2}, "-1.20", -1.2},
		{Decimal{0, 3}, "0.000", 0},
	}
	for _, tc := range tests {
		if got := tc.d.String(); got != tc.want {
			t.Errorf("Decimal{%d, %d}: got %s, want %s", tc.d.Int, tc.d.Scale, got, tc.want)
		}
		if got := tc.d.Float64(); got != tc.float {
			t.Errorf("Decimal{%d, %d}.Float64(): got %v, want %v", tc.d.Int, tc.d.Scale, got, tc.float)
		}
	}
}

// TestRegisters is a table over every register kind the parser interprets.
func TestRegisters(t *testing.T) {
	tests := []struct {
		line  string
		field Field
		want  string
	}{
		{"1-0:1.8.1(001234.567*kWh)", TakenT1, "1234.567"},
		{"1-0:1.8.2(000001.001*kWh)", TakenT2, "1.001"},
		{"1-0:1.8.0(006545766*Wh)", Taken, "6545.766"},
		{"1-0:2.8.1(000000.005*kWh)", InjectedT1, "0.005"},
		{"1-0:2.8.2(002876.514*kWh)", InjectedT2, "2876.514"},
		{"1-0:2.8.0(00000000.001*kWh)", Injected, "0.001"},
		{"1-0:1.8.3(000009.963*kWh)", TakenT3, "9.963"},
		{"1-0:2.8.4(000000.000*kWh)", InjectedT4, "0.000"},
		{"1-0:1.7.0(01.193*kW)", PowerTaken, "1193"},
		{"1-0:1.7.0(000000286*W)", PowerTaken, "286"},
		{"1-0:1.7.0(001688.21*W)", PowerTaken, "1688.21"},
		{"1-0:2.7.0(00.498*kW)", PowerInjected, "498"},
		{"1-0:21.7.0(00.047*kW)", PowerTakenL1, "47"},
		{"1-0:41.7.0(00.179*kW)", PowerTakenL2, "179"},
		{"1-0:61.7.0(00.111*kW)", PowerTakenL3, "111"},
		{"1-0:22.7.0(04.444*kW)", PowerInjectedL1, "4444"},
		{"1-0:42.7.0(05.555*kW)", PowerInjectedL2, "5555"},
		{"1-0:62.7.0(06.666*kW)", PowerInjectedL3, "6666"},
		{"1-0:32.7.0(232.9*V)", VoltageL1, "232.9"},
		{"1-0:52.7.0(0230.0*V)", VoltageL2, "230.0"},
		{"1-0:72.7.0(001.0*V)", VoltageL3, "1.0"},
		{"1-0:31.7.0(000.27*A)", CurrentL1, "0.27"},
		{"1-0:51.7.0(002*A)", CurrentL2, "2"},
		{"1-0:71.7.0(0.86*A)", CurrentL3, "0.86"},
		{"0-0:96.14.0(0002)", Tariff, "2"},
		{"1-0:1.4.0(02.351*kW)", DemandAvg, "2351"},
		{"1-0:1.6.0(200509134558S)(02.589*kW)", DemandMaxMonth, "2589"},
		{"0-0:96.7.21(00039)", PowerFailures, "39"},
		{"0-0:96.7.9(00007)", LongPowerFailures, "7"},
		{"1-0:32.32.0(00002)", VoltageSagsL1, "2"},
		{"1-0:52.32.0(00001)", VoltageSagsL2, "1"},
		{"1-0:72.32.0(00192)", VoltageSagsL3, "192"},
		{"1-0:32.36.0(00001)", VoltageSwellsL1, "1"},
		{"1-0:52.36.0(00003)", VoltageSwellsL2, "3"},
		{"1-0:72.36.0(00000)", VoltageSwellsL3, "0"},
		{"0-0:96.3.10(1)", BreakerState, "1"},
		{"0-0:17.0.0(999.9*kW)", LimiterW, "999900"},
		{"0-0:17.0.0(016*A)", LimiterA, "16"},
		{"0-0:17.0.0(27.600*kVA)", LimiterVA, "27600"},
		{"0-0:17.0.0(77.376)", LimiterVA, "77376"}, // Smarty, no unit
		{"1-0:31.4.0(999.99*A)", FuseA, "999.99"},
		{"1-0:31.7.0.255(001*A)", CurrentL1, "1"},
		{"1-0:21.7.0*255(000557.29*W)", PowerTakenL1, "557.29"},
		{"1-0:1.8.1(001234.567*KWH)", TakenT1, "1234.567"},
		{"1-0:2.7.0(00.498*kw)", PowerInjected, "498"},
		{"1-0:31.7.0(500*mA)", CurrentL1, "0.500"},
	}
	for _, tc := range tests {
		tg, err := Parse(frame(tc.line), brussels)
		if err != nil {
			t.Errorf("%s: %v", tc.line, err)
			continue
		}
		d, ok := tg.Get(tc.field)
		if !ok || d.String() != tc.want {
			t.Errorf("%s: %s = %v (set %v), want %s", tc.line, tc.field, d, ok, tc.want)
		}
		if len(tg.Other) != 0 {
			t.Errorf("%s: unexpectedly kept in Other: %s", tc.line, tg.Other[0].OBIS)
		}
	}
}

func TestDerived(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  map[Field]string // "" = must be absent
	}{
		{"sum of tariffs", []string{"1-0:1.8.1(000100.001*kWh)", "1-0:1.8.2(000200.02*kWh)", "1-0:2.8.1(000001.5*kWh)"},
			map[Field]string{Taken: "300.021", Injected: "1.5"}},
		{"meter total wins", []string{"1-0:1.8.0(000173.640*kWh)", "1-0:1.8.1(000047.719*kWh)", "1-0:1.8.2(000125.921*kWh)"},
			map[Field]string{Taken: "173.640"}},
		{"four tariffs", []string{"1-0:1.8.1(1.000*kWh)", "1-0:1.8.2(2.000*kWh)", "1-0:1.8.3(3.000*kWh)", "1-0:1.8.4(4.000*kWh)"},
			map[Field]string{Taken: "10.000", Injected: ""}},
		{"net power", []string{"1-0:1.7.0(00.338*kW)", "1-0:2.7.0(01.000*kW)"},
			map[Field]string{PowerNet: "-662"}},
		{"net power without injection register", []string{"1-0:1.7.0(002124.86*W)"},
			map[Field]string{PowerNet: "2124.86"}},
		{"nothing to derive", []string{"0-0:96.14.0(0001)"},
			map[Field]string{Taken: "", Injected: "", PowerNet: ""}},
	}
	for _, tc := range tests {
		tg, err := Parse(frame(tc.lines...), brussels)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for f, want := range tc.want {
			d, ok := tg.Get(f)
			got := ""
			if ok {
				got = d.String()
			}
			if got != want {
				t.Errorf("%s: %s = %q, want %q", tc.name, f, got, want)
			}
		}
	}
}

// TestHostileValues: values no meter sends, which overflowed, panicked or
// were stored wrong, are line errors naming the line, and nothing derived
// from a bad line is written.
func TestHostileValues(t *testing.T) {
	forty := strings.Repeat("9", 40)
	tests := []struct {
		name  string
		lines []string
		err   string           // "" for no error; else part of the message
		want  map[Field]string // "" = must be absent
	}{
		{"18 decimals in Wh", []string{"1-0:1.8.1(0.000000000000000001*Wh)", "1-0:1.8.2(000001.000*kWh)"},
			`line 4 "1-0:1.8.1(0.000000000000000001*Wh)" at byte 40: want a non-negative energy below 100000000 kWh with at most 9 digits after the point`,
			map[Field]string{TakenT1: "", TakenT2: "1.000", Taken: ""}},
		{"18 decimals in mA", []string{"1-0:31.7.0(0.000000000000000001*mA)"},
			`"1-0:31.7.0(0.000000000000000001*mA)" at byte 41: want a current below 100000 A`,
			map[Field]string{CurrentL1: ""}},
		{"18 digits in kW", []string{"1-0:1.7.0(999999999999999999*kW)", "1-0:2.7.0(00.100*kW)"},
			`line 4 "1-0:1.7.0(999999999999999999*kW)" at byte 40: want a power below 10000000 W`,
			map[Field]string{PowerTaken: "", PowerInjected: "100", PowerNet: ""}},
		{"huge T1 and tiny T2", []string{"1-0:1.8.1(999999999999999999*kWh)", "1-0:1.8.2(000000.001*kWh)"},
			"want a non-negative energy below 100000000 kWh",
			map[Field]string{TakenT1: "", TakenT2: "0.001", Taken: ""}},
		{"40 digits", []string{"1-0:1.8.1(" + forty + "*kWh)", "1-0:1.8.2(000002.000*kWh)"},
			`line 4 "1-0:1.8.1(` + forty + `*kWh)" at byte 40: want a number`,
			map[Field]string{TakenT1: "", TakenT2: "2.000", Taken: ""}},
		{"40 digits injected", []string{"1-0:2.8.1(000001.000*kWh)", "1-0:2.8.2(" + forty + "*kWh)"},
			"want a number", map[Field]string{InjectedT1: "1.000", Injected: ""}},
		{"bad total is not replaced by the tariffs", []string{"1-0:1.8.0(-1.000*kWh)", "1-0:1.8.1(000001.000*kWh)"},
			"want a non-negative energy", map[Field]string{TakenT1: "1.000", Taken: ""}},
		{"bad tariff does not hide the meter's total", []string{"1-0:1.8.0(000005.000*kWh)", "1-0:1.8.1(-1*kWh)"},
			"want a non-negative energy", map[Field]string{Taken: "5.000"}},
		{"negative energy", []string{"1-0:1.8.2(-000001.000*kWh)"}, "want a non-negative energy", map[Field]string{TakenT2: ""}},
		{"negative injected", []string{"1-0:2.8.2(-000001.000*kWh)"}, "want a non-negative energy", map[Field]string{InjectedT2: ""}},
		{"unparseable power", []string{"1-0:1.7.0(00.500*kW)", "1-0:2.7.0(x*kW)"}, "want a number",
			map[Field]string{PowerTaken: "500", PowerNet: ""}},
		{"energy at the bound", []string{"1-0:1.8.1(99999999.9999999*kWh)"}, "", map[Field]string{TakenT1: "99999999.9999999", Taken: "99999999.9999999"}},
		{"energy past the bound", []string{"1-0:1.8.1(100000000.000*kWh)"}, "below 100000000 kWh", map[Field]string{TakenT1: ""}},
		{"Wh past the bound", []string{"1-0:1.8.1(100000000000*Wh)"}, "below 100000000 kWh", map[Field]string{TakenT1: ""}},
		{"power at the bound", []string{"1-0:1.7.0(9999.999*kW)"}, "", map[Field]string{PowerTaken: "9999999"}},
		{"power past the bound", []string{"1-0:1.7.0(10000.000*kW)"}, "below 10000000 W", map[Field]string{PowerTaken: ""}},
		{"ten decimals", []string{"1-0:1.8.1(0.0000000001*kWh)"}, "at most 9 digits after the point", map[Field]string{TakenT1: ""}},
		{"ten decimals, last zero", []string{"1-0:1.8.1(0.0000000010*kWh)"}, "", map[Field]string{TakenT1: "0.000000001"}},
		{"Wh with six decimals", []string{"1-0:1.8.1(1.000001*Wh)"}, "", map[Field]string{TakenT1: "0.001000001"}},
		{"negative demand", []string{"1-0:1.4.0(-01.000*kW)"}, "want a non-negative demand", map[Field]string{DemandAvg: ""}},
		{"negative monthly peak", []string{"1-0:1.6.0(230101000000W)(-01.000*kW)"}, "want a non-negative demand", map[Field]string{DemandMaxMonth: ""}},
		{"negative peak history", []string{"0-0:98.1.0(1)(1-0:1.6.0)(1-0:1.6.0)(230801000000S)(230712000000S)(-01.000*kW)"}, "want a non-negative demand", nil},
		{"huge limiter", []string{"0-0:17.0.0(99999999999*kW)"}, "want a non-negative threshold", map[Field]string{LimiterW: ""}},
		{"negative count", []string{"0-0:96.7.21(-0001)"}, "want a non-negative count", map[Field]string{PowerFailures: ""}},
		// Counts are InfluxDB integers: a fraction would be written cut off.
		{"fractional tariff", []string{"0-0:96.14.0(0002.5)"}, `"0-0:96.14.0(0002.5)" at byte 42: want a whole number, got "0002.5"`, map[Field]string{Tariff: ""}},
		{"fractional count", []string{"0-0:96.7.21(00004.001)"}, "want a whole number", map[Field]string{PowerFailures: ""}},
		// A count past 18 digits read as no count at all, an empty history.
		{"peak history count past 18 digits", []string{"0-0:98.1.0(99999999999999999999)(1-0:1.6.0)(1-0:1.6.0)()"},
			`at byte 41: peak history announces "99999999999999999999" entries, want at most 18 digits`, nil},
		{"failure log count past 18 digits", []string{"1-0:99.97.0(99999999999999999999)(0-0:96.7.19)"},
			`at byte 42: failure log announces "99999999999999999999" entries, want at most 18 digits`, nil},
		// Seconds past what a time.Duration holds wrapped to a negative
		// duration_s (-6930898828 for this one).
		{"failure longer than a Duration", []string{"1-0:99.97.0(1)(0-0:96.7.19)(230101000000W)(999999999999999999*s)"},
			`want a duration in whole seconds, at most 9223372036, got "999999999999999999*s"`, nil},
		{"failure at the Duration bound", []string{"1-0:99.97.0(1)(0-0:96.7.19)(230101000000W)(9223372036*s)"}, "", nil},
		// Ids and units become tags; a byte InfluxDB cannot keep as sent is
		// a line error, so that decode and the daemon hold the same id.
		{"meter id with control bytes", []string{"0-0:96.1.1(A\x01\xffB)"}, `want an identifier in printable ASCII, got byte 0x01 in "A\x01\xffB"`, nil},
		{"M-Bus id not UTF-8", []string{"0-1:96.1.0(\xc3\x28)"}, "want an identifier in printable ASCII, got byte 0xc3", nil},
		{"M-Bus unit with a tab", []string{"0-1:24.2.1(230101000000W)(00001.000*m\t3)"}, "want a unit in printable ASCII, got byte 0x09", nil},
		{"count with zero decimals", []string{"0-0:96.7.21(00004.000)", "0-0:96.3.10(1.0)"}, "", map[Field]string{PowerFailures: "4", BreakerState: "1"}},
		{"negative gas", []string{"0-1:24.1.0(003)", "0-1:24.2.1(230101000000W)(-00001.000*m3)"}, "want a non-negative M-Bus total", nil},
		{"huge gas", []string{"0-1:24.2.1(230101000000W)(999999999999*m3)"}, "want a non-negative M-Bus total", nil},
		// Signed registers stay accepted: instantaneous power (some meters
		// sign it) and the Lithuanian net power and power factor, kept in Other.
		{"signed power", []string{"1-0:21.7.0(-00.100*kW)"}, "", map[Field]string{PowerTakenL1: "-100"}},
		{"lithuanian signed lines", []string{"1-0:16.24.0(-00.024*kW)", "1-0:13.7.0(-1.000)", "1-0:33.7.0(-0.913)"}, "", nil},
	}
	for _, tc := range tests {
		tg, err := Parse(frame(tc.lines...), brussels)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err != "" && (!errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: err = %v, want a line error containing %q", tc.name, err, tc.err)
		}
		for f, want := range tc.want {
			d, ok := tg.Get(f)
			got := ""
			if ok {
				got = d.String()
			}
			if got != want {
				t.Errorf("%s: %s = %q, want %q", tc.name, f, got, want)
			}
		}
		// Whatever was kept must format and encode without a panic.
		tg.AppendJSON(nil)
		for _, f := range tg.FailureLog {
			if f.Duration < 0 {
				t.Errorf("%s: failure of %s kept", tc.name, f.Duration)
			}
		}
		for _, m := range tg.MBus {
			if m.HasValue && m.Value.Int < 0 {
				t.Errorf("%s: M-Bus value %s kept", tc.name, m.Value)
			}
		}
		for _, p := range tg.Peaks {
			if p.Value.Int < 0 {
				t.Errorf("%s: peak %s kept", tc.name, p.Value)
			}
		}
	}
}

func TestIdentifiersAndTexts(t *testing.T) {
	tests := []struct {
		name        string
		lines       []string
		meterID     string
		ean         string
		textMessage string
		version     string
		other       string // OBIS codes kept in Other, comma-separated
	}{
		{"hex id decoded", []string{"0-0:96.1.1(4530303334303036383130353136343136)"}, "E0034006810516416", "", "", "50", ""},
		{"padded hex id trimmed", []string{"0-0:96.1.1(204B413655303031363630323937393132)"}, "KA6U001660297912", "", "", "50", ""},
		{"non-ascii hex kept raw", []string{"0-0:96.1.1(12345678901234567890123456789012)"}, "12345678901234567890123456789012", "", "", "50", ""},
		{"not hex kept raw", []string{"0-0:96.1.1(xxxxxxxxxx)"}, "xxxxxxxxxx", "", "", "50", ""},
		{"luxembourg id", []string{"0-0:42.0.0(53414731303330373930303032353734)"}, "SAG1030790002574", "", "", "50", ""},
		{"96.1.1 beats 96.1.0 even when it comes last", []string{"0-0:96.1.0(09610)", "0-0:96.1.1(3030)"}, "00", "", "", "50", "0-0:96.1.0"},
		{"empty id is no id", []string{"0-0:96.1.1()"}, "", "", "", "50", "0-0:96.1.1"},
		{"ean and message", []string{"0-0:96.1.2(353431343430303132333435363738393030)", "0-0:96.13.0(73657450315F6D61785F337068)"}, "", "541440012345678900", "setP1_max_3ph", "50", ""},
		{"belgian version", []string{"0-0:96.1.4(50217)"}, "", "", "", "50217", ""},
		{"unknown codes kept", []string{"1-0:3.8.0(000014.422*kvarh)", "1-1:31.4.0(100*A)(-063*A)"}, "", "", "", "50", "1-0:3.8.0,1-1:31.4.0"},
	}
	for _, tc := range tests {
		tg, err := Parse(frame(tc.lines...), brussels)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var other []string
		for _, o := range tg.Other {
			other = append(other, o.OBIS.String())
		}
		got := []string{string(tg.MeterID), string(tg.EAN), string(tg.TextMessage), string(tg.Version), strings.Join(other, ",")}
		want := []string{tc.meterID, tc.ean, tc.textMessage, tc.version, tc.other}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, want)
		}
	}
}

func TestTimestamps(t *testing.T) {
	tests := []struct {
		in   string
		loc  *time.Location
		want string // RFC 3339, or "" for the zero time
	}{
		// The autumn hour 02:00-03:00 happens twice on 2026-10-25 in Brussels.
		{"261025023000S", brussels, "2026-10-25T02:30:00+02:00"},
		{"261025023000W", brussels, "2026-10-25T02:30:00+01:00"},
		{"261025023000s", brussels, "2026-10-25T02:30:00+02:00"},
		{"261025013000S", brussels, "2026-10-25T01:30:00+02:00"},
		{"261025033000W", brussels, "2026-10-25T03:30:00+01:00"},
		// Spring: 01:59:59 winter, then 03:00:00 summer.
		{"260329015959W", brussels, "2026-03-29T01:59:59+01:00"},
		{"260329030000S", brussels, "2026-03-29T03:00:00+02:00"},
		{"280229120000W", brussels, "2028-02-29T12:00:00+01:00"},
		{"261025023000W", mustLoad("Asia/Kathmandu"), "2026-10-25T02:30:00+05:45"},
		{"261025023000S", time.UTC, "2026-10-25T02:30:00Z"},
		{"161107190000", brussels, "2016-11-07T19:00:00+01:00"},
		// "Not set" markers.
		{"632525252525W", brussels, ""},
		{"000000000000W", brussels, ""},
		{"000101010000W", brussels, ""},
		{"700101010000W", brussels, ""},
		{"000000000000", brussels, ""},
		{"000101185853W", brussels, ""},
		{"632525252525S", brussels, ""},
		// Ireland: Go's tzdata makes winter (GMT) the daylight-saving
		// period, so the flag must be read from the offset, not IsDST.
		{"231029013000S", dublin, "2023-10-29T01:30:00+01:00"},
		{"231029013000W", dublin, "2023-10-29T01:30:00Z"},
		{"231029003000S", dublin, "2023-10-29T00:30:00+01:00"},
		{"231029023000W", dublin, "2023-10-29T02:30:00Z"},
		{"231029023000S", dublin, "2023-10-29T02:30:00Z"}, // not repeated: a wrong flag changes nothing
		{"230715120000S", dublin, "2023-07-15T12:00:00+01:00"},
		{"230715120000W", dublin, "2023-07-15T12:00:00+01:00"},
		{"230115120000W", dublin, "2023-01-15T12:00:00Z"},
		{"230326013000W", dublin, "2023-03-26T02:30:00+01:00"}, // skipped hour: moved on, as time.Date does
		{"231029013000S", london, "2023-10-29T01:30:00+01:00"},
		{"231029013000W", london, "2023-10-29T01:30:00Z"},
		{"230715120000S", london, "2023-07-15T12:00:00+01:00"},
		{"230115120000W", london, "2023-01-15T12:00:00Z"},
		{"231029023000S", brussels, "2023-10-29T02:30:00+02:00"},
		{"231029023000W", brussels, "2023-10-29T02:30:00+01:00"},
		{"230115120000W", brussels, "2023-01-15T12:00:00+01:00"},
	}
	for _, tc := range tests {
		got, ok := parseTimestamp([]byte(tc.in), tc.loc)
		if !ok {
			t.Errorf("%s: not accepted", tc.in)
			continue
		}
		s := ""
		if !got.IsZero() {
			s = got.Format(time.RFC3339)
		}
		if s != tc.want {
			t.Errorf("%s in %s = %q, want %q", tc.in, tc.loc, s, tc.want)
		}
	}
	for _, bad := range []string{"", "2610250230", "26102502300X", "2610250230000W", "26102502300AW",
		// Digits, but not a date and time.
		"261325023000W", "261032023000W", "270229000000W", "261025993000W", "261025026000S", "261025023060W",
		"260000000000W", "000100000000W", "000101990000W", "991299999999"} {
		if _, ok := parseTimestamp([]byte(bad), brussels); ok {
			t.Errorf("%q accepted as a timestamp", bad)
		}
	}
}

func TestMBus(t *testing.T) {
	tests := []struct {
		name  string
		raw   []byte
		want  string // channel kind type id value unit time per device, ';'-separated
		isErr bool
	}{
		{"dsmr5 gas", frame("0-1:24.1.0(003)", "0-1:96.1.0(4730303339303031363532303530323136)", "0-1:24.2.1(220214130459W)(04405.296*m3)"),
			"1 gas 3 G0039001652050216 4405.296 m3 2022-02-14T13:04:59+01:00", false},
		{"belgian gas and water", frame("0-1:24.1.0(003)", "0-1:24.4.0(1)", "0-1:24.2.3(231102121002W)(00092.287*m3)", "0-2:24.1.0(007)", "0-2:24.2.1(231102121532W)(00008.579*m3)"),
			"1 gas 3  92.287 m3 2023-11-02T12:10:02+01:00;2 water 7  8.579 m3 2023-11-02T12:15:32+01:00", false},
		{"heat in GJ", frame("0-4:24.1.0(005)", "0-4:24.2.1(220213170901S)(00020.006*GJ)"),
			"4 heat 5  20.006 GJ 2022-02-13T17:09:01+01:00", false},
		{"disconnected, marker time, no unit", frame("0-1:24.1.0(003)", "0-1:24.2.3(632525252525W)(00000.000)"),
			"1 gas 3  0.000  -", false},
		{"dsmr 2.2 value on next line", frame22("0-1:24.1.0(3)", "0-1:96.1.0(3238313031353431303034303232323131)", "0-1:24.3.0(160315210000)(00)(60)(1)(0-1:24.2.1)(m3)", "(04083.631)"),
			"1 gas 3 28101541004022211 4083.631 m3 2016-03-15T21:00:00+01:00", false},
		{"dsmr 2.2 value line missing", frame22("0-1:24.3.0(160315210000)(00)(60)(1)(0-1:24.2.1)(m3)"),
			"1 gas -1  - m3 2016-03-15T21:00:00+01:00", true},
		{"stray value line", frame22("1-0:1.8.1(00001.000*kWh)", "(04083.631)"), "", true},
		{"bad device type leaves no device", frame("0-1:24.1.0(GAS)"), "", true},
	}
	for _, tc := range tests {
		tg, err := Parse(tc.raw, brussels)
		if (err != nil) != tc.isErr {
			t.Errorf("%s: err = %v, want error %v", tc.name, err, tc.isErr)
		}
		if err != nil && !errors.Is(err, ErrSyntax) {
			t.Errorf("%s: err = %v, want a syntax error", tc.name, err)
		}
		var devs []string
		for _, m := range tg.MBus {
			v, tm := "-", "-"
			if m.HasValue {
				v = m.Value.String()
			}
			if !m.Time.IsZero() {
				tm = m.Time.Format(time.RFC3339)
			}
			devs = append(devs, fmt.Sprintf("%d %s %d %s %s %s %s", m.Channel, m.Kind, m.Type, m.ID, v, m.Unit, tm))
		}
		if got := strings.Join(devs, ";"); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

func TestPeaksAndFailureLog(t *testing.T) {
	tg, err := Parse(frame(
		"1-0:1.6.0(231102114500W)(03.064*kW)",
		"0-0:98.1.0(3)(1-0:1.6.0)(1-0:1.6.0)(230801000000S)(632525252525W)(00.000*kW)(231101000000W)(231016130000S)(04.927*kW)(260401000000S)(260329023000S)(05.5*kW)",
		"1-0:99.97.0(2)(0-0:96.7.19)(101208152415W)(0000000240*s)(000101000001W)(2147483647*s)",
	), brussels)
	if err != nil {
		t.Fatal(err)
	}
	if got := tg.DemandMaxAt.Format(time.RFC3339); got != "2023-11-02T11:45:00+01:00" {
		t.Errorf("DemandMaxAt = %s", got)
	}
	var peaks []string
	for _, p := range tg.Peaks {
		at := "-"
		if !p.At.IsZero() {
			at = p.At.Format(time.RFC3339)
		}
		peaks = append(peaks, p.Month.Format(time.RFC3339)+" "+at+" "+p.Value.String())
	}
	want := "2023-07-01T00:00:00+02:00 - 0|2023-10-01T00:00:00+02:00 2023-10-16T13:00:00+02:00 4927|" +
		// 02:30 summer time on the spring-forward day does not exist; the
		// wall clock is kept as Go normalises it.
		"2026-03-01T00:00:00+01:00 2026-03-29T03:30:00+02:00 5500"
	if got := strings.Join(peaks, "|"); got != want {
		t.Errorf("peaks:\n got %s\nwant %s", got, want)
	}
	if len(tg.FailureLog) != 2 || tg.FailureLog[0].Duration != 240*time.Second ||
		tg.FailureLog[0].End.Format(time.RFC3339) != "2010-12-08T15:24:15+01:00" ||
		!tg.FailureLog[1].End.IsZero() || tg.FailureLog[1].Duration != 2147483647*time.Second {
		t.Errorf("failure log = %+v", tg.FailureLog)
	}
	// The Hungarian billing snapshot shares the code but not the shape.
	tg, err = Parse(frame("0-0:98.1.0(230701000000S)(000040.777*kWh)(03.564*kW)"), brussels)
	if err != nil || len(tg.Peaks) != 0 || len(tg.Other) != 1 || tg.Other[0].OBIS.String() != "0-0:98.1.0" {
		t.Errorf("billing snapshot: err %v, peaks %d, other %v", err, len(tg.Peaks), tg.Other)
	}
}

// TestPeakMonthSkippedMidnight: in America/Asuncion the clock went from
// 2023-09-30 24:00 to 2023-10-01 01:00, so October began at the jump
// (04:00Z). time.Date(2023, 10, 1, 0, ...) gives 23:00 on 30 September,
// which dated the October peak in September.
func TestPeakMonthSkippedMidnight(t *testing.T) {
	asuncion := mustLoad("America/Asuncion")
	tg, err := Parse(frame("0-0:98.1.0(1)(1-0:1.6.0)(1-0:1.6.0)(231101000000S)(231016130000S)(04.927*kW)"), asuncion)
	if err != nil {
		t.Fatal(err)
	}
	if len(tg.Peaks) != 1 {
		t.Fatalf("got %d peaks, want 1", len(tg.Peaks))
	}
	if got, want := tg.Peaks[0].Month.UTC().Format(time.RFC3339), "2023-10-01T04:00:00Z"; got != want {
		t.Errorf("month = %s, want %s", got, want)
	}
}

// TestErrors covers every error the parser reports.
func TestErrors(t *testing.T) {
	good := frame("1-0:1.8.1(000001.000*kWh)")
	bang := bytes.LastIndexByte(good, '!')
	tests := []struct {
		name string
		raw  []byte
		is   error
		msg  string
	}{
		{"empty", nil, ErrFrame, `bad frame at byte 0: want "/" at the start of a telegram`},
		{"no slash", good[1:], ErrFrame, `want "/"`},
		{"cut", good[:40], ErrFrame, `bad frame at byte 40: no end line "!": telegram cut off`},
		{"crc mismatch", append(append([]byte{}, good[:bang+1]...), "0000\r\n"...), ErrCRC, "crc mismatch: telegram says 0000, bytes give"},
		{"crc too long", append(append([]byte{}, good[:bang+1]...), "12345\r\n"...), ErrFrame, "more than 4 hex digits"},
		{"crc not hex", append(append([]byte{}, good[:bang+1]...), "12G4\r\n"...), ErrFrame, `want 1-4 hex CRC digits and a line end after "!", got "12G4\r\n"`},
		{"version without crc", append(append([]byte{}, good[:bang+1]...), "\r\n"...), ErrFrame, `P1 version "50" requires a CRC`},
		{"bad obis", frame("1-0:1.8.X(1*kWh)"), ErrSyntax, `line 4 "1-0:1.8.X(1*kWh)" at byte`},
		{"obis colon typo", frame("1-0:72:32.0(00000)"), ErrSyntax, "want an OBIS code A-B:C.D.E"},
		{"no group", frame("1-0:1.8.1"), ErrSyntax, `want "(" after the code`},
		{"unclosed group", frame("1-0:1.8.1(000001.000*kWh"), ErrSyntax, `has no ")"`},
		{"text after group", frame("1-0:1.8.1(1.0*kWh)x"), ErrSyntax, `want "(" or the end of the line, got 'x'`},
		{"wrong unit", frame("1-0:1.8.1(000001.000*kvarh)"), ErrSyntax, `want unit kWh or Wh, got "kvarh"`},
		{"missing unit", frame("1-0:1.7.0(00.338)"), ErrSyntax, `want unit kW or W, got ""`},
		{"not a number", frame("1-0:32.7.0(abc*V)"), ErrSyntax, `want a number, got "abc*V"`},
		{"empty value", frame("1-0:1.8.1()"), ErrSyntax, `want a number, got ""`},
		{"two groups", frame("1-0:1.8.1(1*kWh)(2*kWh)"), ErrSyntax, "want one (value) group, got 2"},
		{"bad timestamp", frame("0-0:1.0.0(2610250230X)"), ErrSyntax, "want a timestamp YYMMDDhhmmss"},
		{"month 13", frame("0-0:1.0.0(261325023000W)"), ErrSyntax, `line 4 "0-0:1.0.0(261325023000W)" at byte 40: want a timestamp YYMMDDhhmmssX, got "261325023000W": the month is not 01-12`},
		{"hour 99", frame("0-0:1.0.0(261025993000S)"), ErrSyntax, `got "261025993000S": the hour is not 00-23`},
		{"day 32", frame("0-1:24.2.1(261032023000W)(00001.000*m3)"), ErrSyntax, `got "261032023000W": the month has no such day`},
		{"minute 60 in a peak", frame("1-0:1.6.0(261025026000W)(01.000*kW)"), ErrSyntax, `the minute is not 00-59`},
		{"peak count mismatch", frame("0-0:98.1.0(2)(1-0:1.6.0)(1-0:1.6.0)(230801000000S)(230712000000S)(01.000*kW)"), ErrSyntax, "announces 2 entries but has 6 groups (want 9)"},
		{"failure log count mismatch", frame("1-0:99.97.0(1)(0-0:96.7.19)"), ErrSyntax, "announces 1 entries"},
		{"failure duration unit", frame("1-0:99.97.0(1)(0-0:96.7.19)(101208152415W)(240*min)"), ErrSyntax, "whole seconds"},
		{"limiter unit", frame("0-0:17.0.0(16*V)"), ErrSyntax, "want unit kW, W, A or kVA"},
		{"too many groups", frame("1-0:99.1.0" + strings.Repeat("(1)", maxGroups+1)), ErrSyntax, "more than 64 groups"},
	}
	for _, tc := range tests {
		_, err := Parse(tc.raw, brussels)
		if !errors.Is(err, tc.is) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.is)
			continue
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: err = %q, want it to contain %q", tc.name, err, tc.msg)
		}
	}
	// A syntax error names the line and keeps every other register.
	tg, err := Parse(frame("1-0:1.8.1(000001.000*kWh)", "1-0:1.8.2(bad*kWh)", "1-0:2.8.1(000002.000*kWh)"), brussels)
	var se *SyntaxError
	if !errors.As(err, &se) || se.Line != 5 || se.Text != "1-0:1.8.2(bad*kWh)" {
		t.Fatalf("err = %#v", err)
	}
	if d, _ := tg.Get(InjectedT1); d.String() != "2.000" || tg.Has(TakenT2) || len(tg.Other) != 1 {
		t.Errorf("after a bad line: injected_t1 %v, taken_t2 set %v, other %d", d, tg.Has(TakenT2), len(tg.Other))
	}
	var ce *CRCError
	_, err = Parse(append(append([]byte{}, good[:bang+1]...), "0000\r\n"...), brussels)
	if !errors.As(err, &ce) || ce.Sent != 0 || ce.Computed != CRC16(good[:bang+1]) {
		t.Errorf("CRCError = %#v", err)
	}
}

func TestCRCUnpadded(t *testing.T) {
	// Some devices print the CRC without leading zeros ("!B9F").
	raw, err := os.ReadFile("../testdata/telegrams/nl-dsmr50-warmtelink-heat-crc-unpadded.txt")
	if err != nil {
		t.Fatal(err)
	}
	tg, err := Parse(raw, brussels)
	if err != nil || tg.CRC != CRCOK {
		t.Fatalf("err %v, crc %v", err, tg.CRC)
	}
}

// splitStream feeds r through a bufio.Scanner with the Splitter, reading
// chunk bytes at a time, and returns the tokens.
func splitStream(t *testing.T, data []byte, chunk int) ([]string, int64) {
	t.Helper()
	var sp Splitter
	sc := bufio.NewScanner(&chunkReader{data: data, n: chunk})
	sc.Buffer(make([]byte, 0, 64), MaxTelegramSize)
	sc.Split(sp.Split)
	var toks []string
	for sc.Scan() {
		toks = append(toks, sc.Text())
		if len(toks) > 1000 {
			t.Fatal("runaway splitter")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scanner: %v", err)
	}
	return toks, sp.Skipped
}

type chunkReader struct {
	data []byte
	n    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, errEOF
	}
	n := min(r.n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

var errEOF = func() error { _, err := bytes.NewReader(nil).Read(nil); return err }()

func TestSplitter(t *testing.T) {
	a := string(frame("1-0:1.8.1(000001.000*kWh)"))
	b := string(frame("1-0:1.8.1(000002.000*kWh)"))
	n22 := string(frame22("1-0:1.8.1(00001.001*kWh)"))
	const (
		gBin    = "/\x00\x9c\x01\n!\n"
		gHigh   = "/ABC5 x\r\n1-0:1.8.1(\x80*kWh)\r\n!\r\n"
		gFF     = "/ABC5 x\r\n\xff\r\n!\r\n"
		gText   = "/ABC5 x\r\nhello world\r\n!\r\n"
		gDigits = "/12345\r\n1-0:1.8.1(1*kWh)\r\n!\r\n"
		gEmpty  = "/ABC5 x\r\n\r\n!\r\n"
	)
	tests := []struct {
		name    string
		in      string
		want    []string
		skipped int64
	}{
		{"two telegrams", a + b, []string{a, b}, 0},
		{"garbage around", "xx!\r\n" + a + "\x00\xff!!" + b + "tail", []string{a, b}, 5 + 4 + 4},
		{"cut by a new telegram", a[:50] + b, []string{a[:50], b}, 0},
		{"cut inside the crc line", a[:len(a)-3] + b, []string{a[:len(a)-3], b}, 0},
		{"no crc (dsmr 2.2)", n22 + n22, []string{n22, n22}, 0},
		{"cut at eof", a + b[:30], []string{a, b[:30]}, 0},
		{"only noise", "hello\r\n!1234\r\n", nil, 14},
		// Frames without a CRC that do not look like a telegram are
		// garbage, not telegrams (issue 11: binary noise came through as
		// "crc": "none").
		{"binary frame without crc", gBin + n22, []string{n22}, int64(len(gBin))},
		{"unprintable line without crc", gHigh + n22 + gFF, []string{n22}, int64(len(gHigh) + len(gFF))},
		{"text line without crc", gText + n22, []string{n22}, int64(len(gText))},
		{"header without letters, no crc", gDigits + n22, []string{n22}, int64(len(gDigits))},
		{"no object, no crc", gEmpty + n22, []string{n22}, int64(len(gEmpty))},
		{"garbage frame at eof", n22 + "/x\n!\n", []string{n22}, 5},
		// With a CRC, the CRC decides: Parse reports the frame.
		{"binary frame with crc", "/\x00\x01\n!1234\r\n" + n22, []string{"/\x00\x01\n!1234\r\n", n22}, 0},
	}
	for _, tc := range tests {
		for _, chunk := range []int{1, 7, 4096} {
			got, skipped := splitStream(t, []byte(tc.in), chunk)
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) || skipped != tc.skipped {
				t.Errorf("%s (chunk %d):\n got %q skipped %d\nwant %q skipped %d", tc.name, chunk, got, skipped, tc.want, tc.skipped)
			}
		}
	}
}

func TestSplitterBounded(t *testing.T) {
	// A "telegram" that never ends must not grow the buffer past
	// MaxTelegramSize, and the next real telegram must still come through.
	good := frame("1-0:1.8.1(000001.000*kWh)")
	in := append([]byte("/HUGE\r\n"), bytes.Repeat([]byte("1-0:1.8.1(000001.000*kWh)\r\n"), 2000)...)
	in = append(in, good...)
	toks, skipped := splitStream(t, in, 512)
	if len(toks) != 2 || len(toks[0]) != MaxTelegramSize || toks[1] != string(good) {
		t.Fatalf("got %d tokens (first %d bytes), want the oversized chunk and the good telegram", len(toks), len(toks[0]))
	}
	if want := int64(len(in) - MaxTelegramSize - len(good)); skipped != want {
		t.Errorf("skipped %d, want %d", skipped, want)
	}
	if _, err := Parse([]byte(toks[0]), brussels); !errors.Is(err, ErrFrame) {
		t.Errorf("oversized chunk: err = %v, want ErrFrame", err)
	}
}

func TestParseIntoReuse(t *testing.T) {
	be, err := os.ReadFile("../testdata/telegrams/be-fluvius-emucs-1.7.1-3ph-gas-water-peak4.txt")
	if err != nil {
		t.Fatal(err)
	}
	nl, err := os.ReadFile("../testdata/telegrams/nl-dsmr42-kaifa-1ph-nogas.txt")
	if err != nil {
		t.Fatal(err)
	}
	var tg Telegram
	if err := ParseInto(&tg, be, brussels); err != nil {
		t.Fatal(err)
	}
	first := string(tg.AppendJSON(nil))
	if err := ParseInto(&tg, nl, brussels); err != nil {
		t.Fatal(err)
	}
	// Nothing of the Belgian telegram may leak into the Dutch one.
	if len(tg.MBus) != 0 || len(tg.Peaks) != 0 || tg.Has(DemandAvg) || tg.Has(VoltageL1) || !tg.DemandMaxAt.IsZero() {
		t.Errorf("state leaked across ParseInto: %s", tg.AppendJSON(nil))
	}
	fresh, _ := Parse(nl, brussels)
	if got, want := string(tg.AppendJSON(nil)), string(fresh.AppendJSON(nil)); got != want {
		t.Errorf("reused telegram differs from a fresh one:\n%s\n%s", got, want)
	}
	if err := ParseInto(&tg, be, brussels); err != nil || string(tg.AppendJSON(nil)) != first {
		t.Errorf("third parse differs: %v", err)
	}
}

func TestParseIntoAllocs(t *testing.T) {
	for _, name := range []string{"be-fluvius-emucs-1.7.1-3ph-gas-water-peak4.txt", "nl-dsmr50-iskra-am550-3ph-export-gas.txt", "nl-dsmr22-kamstrup-ka6u-export-gas.txt"} {
		raw, err := os.ReadFile("../testdata/telegrams/" + name)
		if err != nil {
			t.Fatal(err)
		}
		var tg Telegram
		if err := ParseInto(&tg, raw, brussels); err != nil {
			t.Fatal(err)
		}
		n := testing.AllocsPerRun(100, func() {
			if err := ParseInto(&tg, raw, brussels); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per ParseInto, want 0", name, n)
		}
	}
}

func TestAppendJSONValid(t *testing.T) {
	for _, file := range telegramFiles(t) {
		raw, _ := os.ReadFile(file)
		var sp Splitter
		for _, fr := range splitAll(&sp, raw) {
			tg, _ := Parse(fr, brussels)
			js := tg.AppendJSON(nil)
			if !jsonValid(js) {
				t.Errorf("%s: invalid JSON %s", file, js)
			}
		}
	}
}

// TestSplitValue checks splitValue, which reads number and unit in one
// pass, against the plain split at the first "*".
func TestSplitValue(t *testing.T) {
	ref := func(g []byte) (Decimal, []byte, bool) {
		num, unit := g, []byte(nil)
		if i := bytes.IndexByte(g, '*'); i >= 0 {
			num, unit = g[:i], g[i+1:]
		}
		d, ok := parseDecimal(num)
		return d, unit, ok
	}
	for _, in := range []string{"", "*", "*kW", "001234.567*kWh", "00.611*kW", "-00.024*kW", "+1*A", "1.*kW", ".5*kW", "1.2.3*kW",
		"12", "12*", "12**", "1x*kW", "1*k*W", "-*kW", "-", "0000000000000000000000001.5*kWh", "1234567890123456789*kWh",
		"0.1234567890123456789*V", "12 *kW", "1e3*W", "(1)*W", "999.9*kW"} {
		d, unit, ok := splitValue([]byte(in))
		wd, wunit, wok := ref([]byte(in))
		if d != wd || ok != wok || !bytes.Equal(unit, wunit) || (unit == nil) != (wunit == nil) {
			t.Errorf("splitValue(%q) = %v %q %v, want %v %q %v", in, d, unit, ok, wd, wunit, wok)
		}
	}
}

// TestParseDecimalShort compares parseDecimal and splitValue, on every short
// string of the bytes that matter and on long runs of digits, with a
// digit-by-digit reading.
func TestParseDecimalShort(t *testing.T) {
	ref := func(s []byte) (d Decimal, ok bool) {
		i, neg := 0, false
		if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
			neg, i = s[0] == '-', 1
		}
		digits, dot, any := 0, false, false
		for ; i < len(s); i++ {
			switch c := s[i]; {
			case c >= '0' && c <= '9':
				any = true
				if d.Int != 0 || dot || c != '0' {
					digits++
				}
				if digits > MaxDigits {
					return Decimal{}, false
				}
				d.Int = d.Int*10 + int64(c-'0')
				if dot {
					d.Scale++
				}
			case c == '.' && !dot:
				dot = true
			default:
				return Decimal{}, false
			}
		}
		if !any || dot && d.Scale == 0 {
			return Decimal{}, false
		}
		if neg {
			d.Int = -d.Int
		}
		return d, true
	}
	check := func(s []byte) {
		d, ok := parseDecimal(s)
		wd, wok := ref(s)
		if d != wd || ok != wok {
			t.Fatalf("parseDecimal(%q) = %v %v, want %v %v", s, d, ok, wd, wok)
		}
		num := s
		if i := bytes.IndexByte(s, '*'); i >= 0 {
			num = s[:i]
		}
		wd, wok = ref(num)
		if d, _, ok := splitValue(s); d != wd || ok != wok {
			t.Fatalf("splitValue(%q) = %v %v, want %v %v", s, d, ok, wd, wok)
		}
	}
	const alphabet = "019.-+*x"
	var walk func(s []byte)
	walk = func(s []byte) {
		check(s)
		if len(s) == 6 {
			return
		}
		for _, c := range []byte(alphabet) {
			walk(append(s, c))
		}
	}
	walk(nil)
	for n := 15; n <= 22; n++ {
		for _, form := range []string{"%0*d", "0.%0*d", "9%0*d", "-%0*d.5", "000%0*d*kW"} {
			for _, v := range []int{0, 1, 7} {
				check(fmt.Appendf(nil, form, n, v))
				check(bytes.Repeat([]byte("9"), n))
			}
		}
	}
}

// TestCloseParen compares closeParen with bytes.IndexByte for every length
// up to 40 with ")" at every place, amid bytes that differ from ")" by one
// bit or carry into their neighbour.
func TestCloseParen(t *testing.T) {
	fill := []byte{'(', '*', 0xa9, 0x28, 0x2a, 0x00, 0x01, 0x80, 0xff, 0x7f, 'k', '0'}
	for n := 0; n <= 40; n++ {
		for at := -1; at < n; at++ {
			for k := range fill {
				g := make([]byte, n)
				for i := range g {
					g[i] = fill[(i+k)%len(fill)]
				}
				if at >= 0 {
					g[at] = ')'
				}
				if got, want := closeParen(g), bytes.IndexByte(g, ')'); got != want {
					t.Fatalf("closeParen(%q) = %d, want %d", g, got, want)
				}
				if at >= 0 && at+1 < n {
					g[n-1] = ')' // a later one must not win
					if got, want := closeParen(g), bytes.IndexByte(g, ')'); got != want {
						t.Fatalf("closeParen(%q) = %d, want %d", g, got, want)
					}
				}
			}
		}
	}
}

// TestEmptyHistories: what real meters send before they have a history.
// The JSON is what "p1logger decode" prints for the line.
func TestEmptyHistories(t *testing.T) {
	tests := []struct {
		name, line string
		key        string // JSON key that must be absent ("") or hold want
		want       string
	}{
		// A Fluvius meter installed this month: no past month yet.
		{"peaks zero with empty group", "0-0:98.1.0(0)(1-0:1.6.0)(1-0:1.6.0)()", "peaks", ""},
		{"peaks zero, grammar form", "0-0:98.1.0(0)(1-0:1.6.0)(1-0:1.6.0)", "peaks", ""},
		// Iskra AM550 before its first long power failure (dsmr_parser #67).
		{"failure log empty", "1-0:99.97.0()", "power_failure_log", ""},
		{"failure log zero", "1-0:99.97.0(0)(0-0:96.7.19)", "power_failure_log", ""},
		// dsmr_parser #57: a count with empty groups is an entry without data.
		{"failure log entry without data", "1-0:99.97.0(1)()()()", "power_failure_log", `[{"end":null,"duration_s":null}]`},
		{"failure log mixed", "1-0:99.97.0(2)(0-0:96.7.19)()()(101208152415W)(0000000240*s)", "power_failure_log",
			`[{"end":null,"duration_s":null},{"end":"2010-12-08T15:24:15+01:00","duration_s":240}]`},
	}
	for _, tc := range tests {
		tg, err := Parse(frame("1-0:1.8.1(000001.000*kWh)", tc.line), brussels)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(tg.Other) != 0 {
			t.Errorf("%s: kept in other: %v", tc.name, tg.Other)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(tg.AppendJSON(nil), &m); err != nil {
			t.Fatal(err)
		}
		got, ok := m[tc.key]
		switch {
		case tc.want == "" && ok:
			t.Errorf("%s: %s = %s, want it absent", tc.name, tc.key, got)
		case tc.want != "" && string(got) != tc.want:
			t.Errorf("%s: %s = %s, want %s", tc.name, tc.key, got, tc.want)
		}
	}
	// Still errors: half-empty entries, counts that do not match, garbage.
	for _, line := range []string{
		"0-0:98.1.0(0)(1-0:1.6.0)(1-0:1.6.0)(x)",
		"0-0:98.1.0(0)(1-0:1.6.0)(1-0:1.6.0)()()",
		"0-0:98.1.0(1)(1-0:1.6.0)(1-0:1.6.0)()",
		"1-0:99.97.0(1)()()(0000000240*s)",
		"1-0:99.97.0(1)(0-0:96.7.19)(101208152415W)()",
		"1-0:99.97.0(2)()()()",
		"1-0:99.97.0()()",
		"1-0:99.97.0(x)",
	} {
		if _, err := Parse(frame(line), brussels); !errors.Is(err, ErrSyntax) {
			t.Errorf("%s: err = %v, want a syntax error", line, err)
		}
	}
}

// TestMBusStateOnly: a channel that sends only a breaker or valve state, a
// device type or an empty id stays in the device list; nothing it sent
// vanishes, and a line that fails adds no device.
func TestMBusStateOnly(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  string // per device: channel type valve breaker id, ';'-separated
	}{
		{"breaker only (e-MUCS 2.1.1, Luxembourg)", []string{"0-3:96.3.10(0)", "0-4:96.3.10(1)"}, "3 -1 -1 0 ;4 -1 -1 1 "},
		{"valve only", []string{"0-2:24.4.0(1)"}, "2 -1 1 -1 "},
		{"type only", []string{"0-2:24.1.0(007)"}, "2 7 -1 -1 "},
		{"empty type only", []string{"0-2:24.1.0()"}, "2 -1 -1 -1 "},
		{"empty id only (Irish Iskra)", []string{"0-1:96.1.1()"}, "1 -1 -1 -1 "},
		{"id without a value line", []string{"0-1:96.1.0(4730303339303031363532303530323136)"}, "1 -1 -1 -1 G0039001652050216"},
		{"bad breaker adds nothing", []string{"0-2:96.3.10(on)"}, ""},
		{"bad reading adds nothing", []string{"0-2:24.2.1(231102121532W)(x*m3)"}, ""},
	}
	for _, tc := range tests {
		tg, _ := Parse(frame(tc.lines...), brussels)
		var devs []string
		for _, m := range tg.MBus {
			devs = append(devs, fmt.Sprintf("%d %d %d %d %s", m.Channel, m.Type, m.Valve, m.Breaker, m.ID))
		}
		if got := strings.Join(devs, ";"); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

// TestShapeWithoutCRC: Parse gives a frame without a CRC the Splitter's
// shape check, and every real capture without a CRC passes it.
func TestShapeWithoutCRC(t *testing.T) {
	tests := []struct{ name, in, msg string }{
		{"binary header", "/\x00\x9c\x01\n1-0:1.8.1(1*kWh)\n!\n", `header "/\x00\x9c\x01" is not "/XXXZ"`},
		{"no baud digit", "/ABCD\r\n1-0:1.8.1(1*kWh)\r\n!\r\n", "three letters, a baud digit"},
		{"unprintable", "/ABC5 x\r\n1-0:1.8.1(\x80*kWh)\r\n!\r\n", "byte 0x80 is not printable ASCII"},
		{"not an object", "/ABC5 x\r\nhello\r\n!\r\n", `line "hello" is not an OBIS object`},
		{"no object", "/ABC5 x\r\n\r\n!\r\n", "no OBIS object"},
	}
	for _, tc := range tests {
		_, err := Parse([]byte(tc.in), brussels)
		if !errors.Is(err, ErrFrame) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: err = %v, want a frame error with %q", tc.name, err, tc.msg)
		}
	}
	n := 0
	for _, file := range telegramFiles(t) {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var sp Splitter
		for _, fr := range splitAll(&sp, raw) {
			if bang := bytes.Index(fr, []byte("\n!")); bang >= 0 && bytes.TrimSpace(fr[bang+2:]) == nil {
				if err := shapeError(fr[:bang+1]); err != nil {
					t.Errorf("%s: %v", file, err)
				}
				n++
			}
		}
	}
	if n < 8 {
		t.Errorf("%d captures without a CRC checked, want the 8 real ones at least", n)
	}
}
