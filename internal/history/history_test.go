package history

import (
	"math"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/p1logger/p1logger/parser"
)

func brussels(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Brussels")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// dec parses a decimal literal such as "-123.456".
func dec(t testing.TB, s string) parser.Decimal {
	t.Helper()
	neg := strings.HasPrefix(s, "-")
	ip, fp, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	n, err := strconv.ParseInt(ip+fp, 10, 64)
	if err != nil {
		t.Fatalf("dec %q: %v", s, err)
	}
	if neg {
		n = -n
	}
	return parser.Decimal{Int: n, Scale: uint8(len(fp))}
}

func telegram(t *testing.T, netW, taken, injected string) *parser.Telegram {
	t.Helper()
	tg := &parser.Telegram{MeterID: []byte("E1")}
	for _, x := range []struct {
		f parser.Field
		v string
	}{{parser.PowerNet, netW}, {parser.Taken, taken}, {parser.Injected, injected}} {
		tg.Set(x.f, dec(t, x.v))
	}
	return tg
}

// netValues maps the minutes that have a value (unix seconds) to it.
func netValues(p Power) map[int64]int32 {
	m := map[int64]int32{}
	for i, v := range p.NetW {
		if v != nil {
			m[p.Start.Add(time.Duration(i)*time.Minute).Unix()] = *v
		}
	}
	return m
}

// TestPowerMinutes: readings are averaged per minute, minutes without a
// reading are gaps, and the window ends at now.
func TestPowerMinutes(t *testing.T) {
	loc := brussels(t)
	s := New(loc, []string{"home"})
	t0 := time.Date(2026, 3, 29, 10, 0, 0, 0, loc)
	for _, r := range []struct {
		at  time.Duration
		net string
	}{{0, "1000"}, {20 * time.Second, "2000"}, {40 * time.Second, "-600"}, {3*time.Minute + 5*time.Second, "-250"}} {
		s.Observe("home", t0.Add(r.at), telegram(t, r.net, "1", "1"))
	}
	s.Observe("unknown", t0, telegram(t, "5", "1", "1")) // ignored
	got, ok := s.Get("home", t0.Add(5*time.Minute))
	if !ok {
		t.Fatal("home unknown")
	}
	if want := t0.Add(5*time.Minute - Window + time.Minute); !got.Power.Start.Equal(want) || len(got.Power.NetW) != minutes {
		t.Errorf("window starts %v with %d minutes, want %v and %d", got.Power.Start, len(got.Power.NetW), want, minutes)
	}
	want := map[int64]int32{t0.Unix(): 800, t0.Add(3 * time.Minute).Unix(): -250}
	if vals := netValues(got.Power); len(vals) != len(want) || vals[t0.Unix()] != 800 || vals[t0.Add(3*time.Minute).Unix()] != -250 {
		t.Errorf("power = %v, want %v", vals, want)
	}
	if !got.Since.Equal(t0) {
		t.Errorf("since = %v, want %v", got.Since, t0)
	}
	// Seven hours on, the old minutes have left the window.
	s.Observe("home", t0.Add(7*time.Hour), telegram(t, "42", "1", "1"))
	got, _ = s.Get("home", t0.Add(7*time.Hour))
	if vals := netValues(got.Power); len(vals) != 1 || vals[t0.Add(7*time.Hour).Unix()] != 42 {
		t.Errorf("power after 7 h = %v, want only the newest minute", vals)
	}
	if _, ok := s.Get("unknown", t0); ok {
		t.Error("an unknown gateway has a history")
	}
}

// TestTodayHours: register increases go to their local hour, across the
// 25-hour day of the autumn DST change; a register that goes down counts
// nothing; the day says since when it counts.
func TestTodayHours(t *testing.T) {
	loc := brussels(t)
	s := New(loc, []string{"home"})
	day := time.Date(2026, 10, 25, 0, 0, 0, 0, loc) // 25 hours long
	obs := func(at time.Duration, taken, injected string) {
		s.Observe("home", day.Add(at), telegram(t, "0", taken, injected))
	}
	obs(-10*time.Second, "100.000", "50.000")           // yesterday: the baseline
	obs(5*time.Second, "100.010", "50.000")             // 10 Wh across midnight: hour 0
	obs(90*time.Minute, "100.510", "50.000")            // hour 1
	obs(150*time.Minute, "100.710", "50.250")           // hour 2 (the second 02:00 is hour 3)
	obs(24*time.Hour+30*time.Minute, "1.000", "50.250") // meter replaced: nothing
	obs(24*time.Hour+40*time.Minute, "1.100", "50.300") // hour 24, the last
	got, _ := s.Get("home", day.Add(24*time.Hour+45*time.Minute))
	if len(got.Today) != 25 {
		t.Fatalf("%d hours, want 25", len(got.Today))
	}
	want := map[int][2]float64{0: {0.010, 0}, 1: {0.5, 0}, 2: {0.2, 0.25}, 24: {0.1, 0.05}}
	for h, hr := range got.Today {
		w := want[h]
		if hr.TakenKWh != w[0] || hr.InjectedKWh != w[1] || !hr.Start.Equal(day.Add(time.Duration(h)*time.Hour)) {
			t.Errorf("hour %d (%v): taken %v injected %v, want %v", h, hr.Start, hr.TakenKWh, hr.InjectedKWh, w)
		}
	}
	if !got.TodaySince.Equal(day) {
		t.Errorf("today since %v, want midnight", got.TodaySince)
	}

	// A store started during the day counts from its first reading.
	s = New(loc, []string{"home"})
	obs(13*time.Hour+7*time.Minute, "200.000", "0")
	obs(13*time.Hour+8*time.Minute, "200.100", "0")
	got, _ = s.Get("home", day.Add(14*time.Hour))
	if want := day.Add(13*time.Hour + 7*time.Minute); !got.TodaySince.Equal(want) || got.Today[13].TakenKWh != 0.1 {
		t.Errorf("started at 13:07: since %v, hour 13 %v kWh; want %v and 0.1", got.TodaySince, got.Today[13].TakenKWh, want)
	}
	// The next day, before its first reading: no hours.
	if got, _ = s.Get("home", day.AddDate(0, 0, 1).Add(time.Hour)); got.Today != nil {
		t.Errorf("next day before any reading: %v", got.Today)
	}
}

// TestGasHours: gas counts at its capture time, once per capture.
func TestGasHours(t *testing.T) {
	loc := brussels(t)
	s := New(loc, []string{"home"})
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, loc)
	gas := func(at, capture time.Duration, v string) {
		tg := telegram(t, "0", "1", "1")
		d := dec(t, v)
		tg.MBus = []parser.MBus{{Channel: 1, Kind: parser.KindGas, Value: d, HasValue: true, Time: day.Add(capture)}}
		s.Observe("home", day.Add(at), tg)
	}
	gas(8*time.Hour, 7*time.Hour, "10.000")
	gas(8*time.Hour+5*time.Second, 7*time.Hour, "10.000")
	gas(9*time.Hour+10*time.Minute, 9*time.Hour, "10.250")
	gas(9*time.Hour+11*time.Minute, 9*time.Hour, "10.250") // the same capture again
	got, _ := s.Get("home", day.Add(10*time.Hour))
	if got.Today[9].GasM3 != 0.25 || got.Today[7].GasM3 != 0 {
		t.Errorf("gas hours: %+v", got.Today)
	}
}

// TestMemoryPerGateway measures the store at 10,000 gateways, every one
// with a full window of minutes and a full day of hours, and fails above
// 4 KB per gateway (about 2.3 KB is expected).
func TestMemoryPerGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 10,000 gateways")
	}
	const n = 10000
	names := make([]string, n)
	for i := range names {
		names[i] = "gateway-" + string(rune('a'+i%26)) + time.Duration(i).String()
	}
	loc := brussels(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := New(loc, names)
	t0 := time.Date(2026, 3, 2, 18, 0, 0, 0, loc)
	for _, g := range names {
		for m := range minutes {
			at := t0.Add(time.Duration(m) * time.Minute)
			s.add(g, reading{at: at, netW: float64(m), hasNet: true,
				reg: [numRegs]int64{int64(m) * 10, int64(m), int64(m), int64(m), int64(m)}, has: [numRegs]bool{true, true, true, true, true},
				meter: [numRegs][]byte{[]byte("E1"), []byte("E1"), []byte("G1"), []byte("W1"), []byte("H1")}, captured: [3]time.Time{at, at, at}})
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("history of %d gateways (%v of minutes, a day of hours each): %.0f bytes per gateway, %.1f MiB in all",
		n, Window, per, per*n/(1<<20))
	if per > 4096 {
		t.Errorf("%.0f bytes per gateway, want at most 4096", per)
	}
	if g, _ := s.Get(names[n-1], t0.Add(Window-time.Minute)); netValues(g.Power)[t0.Add(Window-time.Minute).Unix()] != int32(minutes-1) {
		t.Error("the last gateway's newest minute is wrong")
	}
	runtime.KeepAlive(s)
}

// BenchmarkObserve: the cost the Batcher pays per gateway and cycle.
func BenchmarkObserve(b *testing.B) {
	loc := brussels(b)
	s := New(loc, []string{"home"})
	tg := &parser.Telegram{MeterID: []byte("E0025")}
	d := dec(b, "1234.567")
	tg.Set(parser.Taken, d)
	tg.Set(parser.Injected, d)
	tg.Set(parser.PowerNet, d)
	t0 := time.Date(2026, 3, 2, 18, 0, 0, 0, loc)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Observe("home", t0.Add(time.Duration(i)*5*time.Second), tg)
	}
}

// TestGasClockAhead: a gas capture stamped after its receipt (a meter clock
// ahead of ours) counts in the hour it was received, not in one to come.
func TestGasClockAhead(t *testing.T) {
	loc := brussels(t)
	s := New(loc, []string{"home"})
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, loc)
	for i, v := range []string{"10.000", "10.100"} {
		tg := telegram(t, "0", "1", "1")
		tg.MBus = []parser.MBus{{Channel: 1, Kind: parser.KindGas, Value: dec(t, v), HasValue: true,
			Time: day.Add(time.Duration(23+i) * time.Hour)}} // the meter thinks it is 23:00, then tomorrow
		s.Observe("home", day.Add(10*time.Hour+time.Duration(i)*time.Minute), tg)
	}
	got, _ := s.Get("home", day.Add(10*time.Hour+5*time.Minute))
	if len(got.Today) != 11 || got.Today[10].GasM3 != 0.1 {
		t.Errorf("today = %+v, want 0.1 m³ in hour 10", got.Today)
	}
}

// TestWaterHeatHours: the first water and heat devices count like gas, each
// at its capture time; a replaced device (another id) starts afresh.
func TestWaterHeatHours(t *testing.T) {
	loc := brussels(t)
	s := New(loc, []string{"home"})
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, loc)
	obs := func(at time.Duration, waterID, water, heat string) {
		tg := telegram(t, "0", "1", "1")
		tg.MBus = []parser.MBus{
			{Channel: 1, Kind: parser.KindHeat, ID: []byte("H1"), Value: dec(t, heat), HasValue: true, Unit: []byte("GJ"), Time: day.Add(at - time.Minute)},
			{Channel: 2, Kind: parser.KindWater, ID: []byte(waterID), Value: dec(t, water), HasValue: true, Unit: []byte("m3"), Time: day.Add(at - time.Minute)},
			{Channel: 3, Kind: parser.KindWater, ID: []byte("W9"), Value: dec(t, "999"), HasValue: true, Time: day.Add(at)}, // a second water meter: not counted
		}
		s.Observe("home", day.Add(at), tg)
	}
	obs(7*time.Hour, "W1", "100.000", "5.000")
	obs(7*time.Hour+30*time.Minute, "W1", "100.040", "5.010")
	obs(8*time.Hour+10*time.Minute, "W1", "100.100", "5.012")
	obs(8*time.Hour+20*time.Minute, "W2", "3.000", "5.013") // water meter replaced
	obs(8*time.Hour+30*time.Minute, "W2", "3.005", "5.013")
	got, _ := s.Get("home", day.Add(9*time.Hour))
	want := map[int][2]float64{7: {0.040, 0.010}, 8: {0.065, 0.003}}
	for h, hr := range got.Today {
		if w := want[h]; math.Abs(hr.WaterM3-w[0]) > 1e-9 || math.Abs(hr.Heat-w[1]) > 1e-9 {
			t.Errorf("hour %d: water %v m³, heat %v GJ; want %v", h, hr.WaterM3, hr.Heat, w)
		}
	}
}
