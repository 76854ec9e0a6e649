package ingest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/p1logger/p1logger/parser"
)

func mustParse(tb testing.TB, frame []byte) *parser.Telegram {
	tb.Helper()
	tg, err := parser.Parse(frame, brussels)
	if err != nil {
		tb.Fatalf("parse: %v\n%s", err, frame)
	}
	return tg
}

func TestEncodeCycle(t *testing.T) {
	at := time.Date(2026, 3, 14, 18, 45, 12, 0, brussels)
	tg := mustParse(t, belgian(7, at))
	e := encoder{loc: brussels}
	var w writtenState
	if !e.p1("home", tg, at) {
		t.Fatal("p1 wrote no line")
	}
	if got, want := e.mbus("home", tg, &w), 2; got != want {
		t.Errorf("mbus lines: got %d, want %d", got, want)
	}
	if got, want := e.peaks("home", tg, &w), 4; got != want {
		t.Errorf("peak lines: got %d, want %d", got, want)
	}
	want := strings.Join([]string{
		"p1,gateway=home,meter_id=1SAG3100721326 taken_t1_kwh=301.555,taken_t2_kwh=270.014,taken_kwh=571.569," +
			"injected_t1_kwh=0.008,injected_t2_kwh=0.000,injected_kwh=0.008,power_taken_w=345,power_injected_w=0," +
			"power_net_w=345,power_taken_l1_w=47,power_taken_l2_w=179,power_taken_l3_w=111,power_injected_l1_w=0," +
			"power_injected_l2_w=0,power_injected_l3_w=0,voltage_l1_v=220.7,voltage_l2_v=228.1,voltage_l3_v=228.1," +
			"current_l1_a=0.27,current_l2_a=0.88,current_l3_a=0.52,tariff=1i,demand_avg_w=52,demand_max_month_w=3066 1773510312000000000",
		// Gas captured 2 s before, water with its own old capture time.
		"p1_mbus,channel=1,gateway=home,kind=gas,meter_id=7FLO2123088027,unit=m3 value=92.288 1773510310000000000",
		"p1_mbus,channel=2,gateway=home,kind=water,meter_id=8SET0000961173,unit=m3 value=8.579 1698923732000000000",
		// The history's first month has no peak (632525252525W): skipped.
		`p1_peak,gateway=home peak_w=1862,peak_at="2023-08-31T18:15:00+02:00" 1690840800000000000`,
		`p1_peak,gateway=home peak_w=4229,peak_at="2023-09-10T18:30:00+02:00" 1693519200000000000`,
		`p1_peak,gateway=home peak_w=4927,peak_at="2023-10-16T13:00:00+02:00" 1696111200000000000`,
		// The current month, at 2026-03-01T00:00+01:00.
		`p1_peak,gateway=home peak_w=3066,peak_at="2026-03-14T18:44:00+01:00" 1772319600000000000`,
	}, "\n") + "\n"
	if got := string(e.b.Buf); got != want {
		t.Errorf("lines:\ngot\n%s\nwant\n%s", got, want)
	}

	// Telegram 10, 3 s later: gas captured anew (18:45:15), water not,
	// and the month's peak grew to 3.067 kW: one line each.
	e.b.Reset()
	at2 := at.Add(3 * time.Second)
	tg2 := mustParse(t, belgian(10, at2))
	if got, want := e.mbus("home", tg2, &w), 1; got != want {
		t.Errorf("second cycle mbus lines: got %d, want %d (water not recaptured)", got, want)
	}
	if got, want := e.peaks("home", tg2, &w), 1; got != want {
		t.Errorf("second cycle peak lines: got %d, want %d (history not rewritten)", got, want)
	}
	want2 := "p1_mbus,channel=1,gateway=home,kind=gas,meter_id=7FLO2123088027,unit=m3 value=92.289 1773510315000000000\n" +
		`p1_peak,gateway=home peak_w=3067,peak_at="2026-03-14T18:44:00+01:00" 1772319600000000000` + "\n"
	if got := string(e.b.Buf); got != want2 {
		t.Errorf("second cycle:\ngot\n%s\nwant\n%s", got, want2)
	}
	// The same telegram again: nothing new.
	e.b.Reset()
	if n := e.mbus("home", tg2, &w) + e.peaks("home", tg2, &w); n != 0 {
		t.Errorf("repeat: got %d lines, want 0:\n%s", n, e.b.Buf)
	}
}

// TestEncodePeakMonthSkippedMidnight: the current month's peak (1-0:1.6.0)
// is dated by the same calendar rule as the parser's history: October 2023
// in America/Asuncion began at 2023-10-01T01:00-03:00, the clock having
// jumped over midnight (a plain time.Date gave 30 September 23:00).
func TestEncodePeakMonthSkippedMidnight(t *testing.T) {
	asuncion, err := time.LoadLocation("America/Asuncion")
	if err != nil {
		t.Fatal(err)
	}
	raw := "/TST5\\2TEST\r\n\r\n1-3:0.2.8(50)\r\n1-0:1.6.0(231016130000S)(04.927*kW)\r\n" +
		"0-0:98.1.0(1)(1-0:1.6.0)(1-0:1.6.0)(231101000000S)(231016130000S)(04.927*kW)\r\n!"
	raw += fmt.Sprintf("%04X\r\n", parser.CRC16([]byte(raw)))
	tg, err := parser.Parse([]byte(raw), asuncion)
	if err != nil {
		t.Fatal(err)
	}
	e := encoder{loc: asuncion}
	var w writtenState
	// History and current month name the same month: one line.
	if got, want := e.peaks("home", tg, &w), 1; got != want {
		t.Errorf("peak lines: got %d, want %d", got, want)
	}
	want := `p1_peak,gateway=home peak_w=4927,peak_at="2023-10-16T13:00:00-03:00" ` +
		fmt.Sprint(time.Date(2023, 10, 1, 4, 0, 0, 0, time.UTC).UnixNano()) + "\n"
	if got := string(e.b.Buf); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestEncodeNoRegisters(t *testing.T) {
	// A telegram with only an id yields no p1 line (InfluxDB refuses a
	// line without fields).
	body := "/XMX5TEST\r\n\r\n0-0:96.1.1(4530303033303030303030303030303030)\r\n!"
	tg := mustParse(t, []byte(body+"\r\n"))
	e := encoder{loc: brussels}
	if e.p1("g", tg, time.Unix(1, 0)) || e.b.Len() != 0 {
		t.Fatalf("got a line for a telegram without registers: %q", e.b.Buf)
	}
}

func TestEncodeHealth(t *testing.T) {
	e := encoder{loc: brussels}
	s := GatewayStats{Name: "roof pv", Connected: true, Telegrams: 12, CRCErrors: 3, ParseErrors: 2, Reconnects: 1}
	e.health(&s, time.Unix(1700000000, 0))
	want := `p1_gateway,gateway=roof\ pv connected=true,telegrams=12i,crc_errors=3i,parse_errors=2i,reconnects=1i 1700000000000000000` + "\n"
	if got := string(e.b.Buf); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestEncodeAllTestdata(t *testing.T) {
	// Every telegram in testdata that parses yields lines InfluxDB's
	// grammar accepts: at least a measurement, a field set and a time.
	for _, name := range []string{
		"be-fluvius-emucs-1.7.1-peak13-trimmed.txt",
		"nl-dsmr50-iskra-am550-3ph-gas-ch2-emptych1.txt",
		"lu-smarty-anon-nophase.txt",
		"nl-dsmr22-kamstrup-ka6u-export-gas.txt",
	} {
		tg, err := parser.Parse(readTestTelegram(t, name), brussels)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		e := encoder{loc: brussels}
		var w writtenState
		e.p1("gw", tg, time.Unix(1700000000, 0))
		e.mbus("gw", tg, &w)
		e.peaks("gw", tg, &w)
		for _, l := range strings.Split(strings.TrimSuffix(string(e.b.Buf), "\n"), "\n") {
			if strings.Count(l, " ") < 2 || strings.HasSuffix(l, " ") {
				t.Errorf("%s: malformed line %q", name, l)
			}
		}
	}
}

// BenchmarkEncode measures one gateway's cycle: the p1 point, its M-Bus
// and peak checks (nothing new after the first), with a warm encoder.
func BenchmarkEncode(b *testing.B) {
	at := time.Date(2026, 3, 14, 18, 45, 12, 0, brussels)
	tg := mustParse(b, belgian(7, at))
	e := encoder{loc: brussels}
	var w writtenState
	e.p1("home", tg, at)
	e.mbus("home", tg, &w)
	e.peaks("home", tg, &w)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		e.b.Reset()
		e.p1("home", tg, at)
		e.mbus("home", tg, &w)
		e.peaks("home", tg, &w)
	}
	b.SetBytes(int64(e.b.Len()))
}

// BenchmarkCycle measures the Batcher's cycle over 1,000 gateways, each with
// a fresh telegram, into a discarding writer: decoding each gateway's slot
// (it holds the telegram's bytes) and encoding its points.
func BenchmarkCycle(b *testing.B) {
	at := time.Date(2026, 3, 14, 18, 45, 12, 0, brussels)
	const n = 1000
	gws := make([]*Gateway, n)
	for i := range gws {
		gws[i] = tcpGateway("gw"+strings.Repeat("x", i%7), "127.0.0.1:1")
		gws[i].store(belgian(i, at), brussels, at)
	}
	bt := NewBatcher(BatcherConfig{Location: brussels}, gws, discard{}, nil)
	bt.Cycle(b.Context())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, g := range gws {
			g.mu.Lock()
			g.fresh = true
			g.mu.Unlock()
		}
		bt.Cycle(b.Context())
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/gateway")
}

type discard struct{}

func (discard) WriteLines(_ context.Context, _ []byte) error { return nil }
